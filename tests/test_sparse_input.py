"""Sparse (scipy.sparse) input to EntropicSparseMap: same results as dense,
dtype kept, nothing mutated, new points densified one chunk at a time."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold, cross_val_score

from skmonge import EntropicSparseMap
from skmonge.costs import make_cost


def _sparse_data(n=40, d=12, density=0.35, seed=0, dtype=np.float64):
    """Two populations of non-negative, mostly-zero 'expression' rows."""
    rng = np.random.default_rng(seed)
    X = rng.exponential(size=(2 * n, d))
    X[n:, :2] += 2.0  # the target population is shifted on two features
    X[rng.random(X.shape) > density] = 0.0
    return X.astype(dtype), np.repeat([0, 1], n)


def _all_outputs(est, X, y, Xnew):
    return {
        "transform": est.transform(Xnew),
        "inverse_transform": est.inverse_transform(Xnew),
        "displacement": est.displacement(Xnew),
        "interpolate": est.interpolate(Xnew, [0.0, 0.4, 1.0]),
        "score": np.array(est.score(X, y)),
    }


@pytest.mark.parametrize("cost", ["elastic_l1", "elastic_stvs", "sqeuclidean"])
@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_sparse_fit_and_maps_equal_dense(cost, storage):
    X, y = _sparse_data()
    Xs = sp.csr_matrix(X)
    dense = EntropicSparseMap(cost=cost, gamma=0.3).fit(X, y)
    cost_obj = make_cost(cost, gamma=0.3)
    # this data is ~40 % dense: by default its clouds are stored dense; a
    # cutoff above 1 forces the CSR kernels
    cost_obj.sparse_density_cutoff = 1.1 if storage == "csr" else 0.0
    sparse = EntropicSparseMap(cost=cost_obj).fit(Xs, y)
    assert sp.issparse(sparse.source_) == (storage == "csr")
    assert sp.issparse(sparse.target_) == (storage == "csr")
    to_dense = (lambda A: A.toarray()) if storage == "csr" else (lambda A: A)
    np.testing.assert_array_equal(to_dense(sparse.source_), X[y == 0])
    np.testing.assert_array_equal(to_dense(sparse.target_), X[y == 1])
    np.testing.assert_allclose(
        sparse.potential_target_, dense.potential_target_, rtol=1e-12, atol=1e-12
    )
    assert sparse.epsilon_ == pytest.approx(dense.epsilon_, rel=1e-14)
    out_dense = _all_outputs(dense, X, y, X)
    out_sparse = _all_outputs(sparse, Xs, y, Xs)
    for name, value in out_dense.items():
        assert type(out_sparse[name]) is np.ndarray, name
        np.testing.assert_allclose(
            out_sparse[name], value, rtol=1e-12, atol=1e-12, err_msg=name
        )
    # On one fitted model sparse and dense points go through the same
    # arithmetic: the maps agree bit for bit.
    np.testing.assert_array_equal(sparse.transform(Xs), sparse.transform(X))
    np.testing.assert_array_equal(sparse.displacement(Xs), sparse.transform(X) - X)


def test_storage_follows_density():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 400))
    X[rng.random(X.shape) > 0.005] = 0.0  # 0.5 % dense
    y = np.repeat([0, 1], 30)
    very_sparse = EntropicSparseMap(gamma=0.3).fit(sp.csr_matrix(X), y)
    assert sp.issparse(very_sparse.source_) and sp.issparse(very_sparse.target_)
    dense_fit = EntropicSparseMap(gamma=0.3).fit(X, y)
    np.testing.assert_allclose(
        very_sparse.transform(X), dense_fit.transform(X), rtol=1e-10, atol=1e-12
    )
    # dense input is stored CSR too below the cutoff (less memory), with the
    # same maps as dense storage up to rounding
    from_dense = EntropicSparseMap(gamma=0.3).fit(X, y)
    assert sp.issparse(from_dense.source_) and sp.issparse(from_dense.target_)
    forced_dense = make_cost("elastic_l1", gamma=0.3)
    forced_dense.sparse_density_cutoff = 0.0
    dense_storage = EntropicSparseMap(cost=forced_dense).fit(X, y)
    assert isinstance(dense_storage.target_, np.ndarray)
    np.testing.assert_allclose(
        from_dense.transform(X), dense_storage.transform(X), rtol=1e-10, atol=1e-12
    )
    X2, y2 = _sparse_data()  # ~40 % dense
    for X_in in (X2, sp.csr_matrix(X2)):
        assert isinstance(EntropicSparseMap().fit(X_in, y2).source_, np.ndarray)


@pytest.mark.parametrize(
    "container",
    [sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.csc_array, sp.coo_array],
)
def test_other_sparse_formats_are_accepted(container):
    X, y = _sparse_data(seed=3)
    ref = EntropicSparseMap(gamma=0.5).fit(X, y)
    est = EntropicSparseMap(gamma=0.5).fit(container(X), y)
    np.testing.assert_allclose(est.potential_target_, ref.potential_target_, rtol=1e-12)
    np.testing.assert_allclose(
        est.transform(container(X[:7])), ref.transform(X[:7]), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(est.score(container(X), y), ref.score(X, y), rtol=1e-10)


def test_float32_sparse_is_preserved():
    X, y = _sparse_data(dtype=np.float32, seed=2)
    Xs = sp.csr_matrix(X)
    est = EntropicSparseMap(gamma=0.5).fit(Xs, y)
    assert est.source_.dtype == np.float32 and est.target_.dtype == np.float32
    for out in (
        est.transform(Xs),
        est.inverse_transform(Xs),
        est.displacement(Xs),
        est.interpolate(Xs, 0.5),
    ):
        assert out.dtype == np.float32
    np.testing.assert_array_equal(est.transform(Xs), est.transform(X))


def test_sparse_input_is_not_mutated():
    X, y = _sparse_data(seed=3)
    Xs = sp.csr_matrix(X)
    # Non-canonical CSR (unsorted column indices in every row): validation,
    # row slicing and toarray() must not sort the caller's arrays in place.
    for i in range(Xs.shape[0]):
        lo, hi = Xs.indptr[i], Xs.indptr[i + 1]
        Xs.indices[lo:hi] = Xs.indices[lo:hi][::-1].copy()
        Xs.data[lo:hi] = Xs.data[lo:hi][::-1].copy()
    Xs.has_sorted_indices = False
    saved = (Xs.data.copy(), Xs.indices.copy(), Xs.indptr.copy())
    est = EntropicSparseMap(gamma=0.3).fit(Xs, y)
    _all_outputs(est, Xs, y, Xs)
    for before, after in zip(saved, (Xs.data, Xs.indices, Xs.indptr), strict=True):
        np.testing.assert_array_equal(before, after)
    assert not Xs.has_sorted_indices
    # The reordered matrix still means X (the sparse cost kernels sum in
    # another order than the dense ones: equal to rounding).
    np.testing.assert_allclose(
        est.transform(Xs),
        EntropicSparseMap(gamma=0.3).fit(X, y).transform(X),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("bad,match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_sparse_values_raise(bad, match):
    X, y = _sparse_data(seed=4)
    X[5, np.flatnonzero(X[5])[0]] = bad  # a stored entry of the CSR
    Xs = sp.csr_matrix(X)
    with pytest.raises(ValueError, match=match):
        EntropicSparseMap().fit(Xs, y)
    est = EntropicSparseMap().fit(np.nan_to_num(X, posinf=0.0), y)
    with pytest.raises(ValueError, match=match):
        est.transform(Xs)
    with pytest.raises(ValueError, match=match):
        est.inverse_transform(Xs)


class _ToarraySpy:
    """Record the number of rows of every csr_matrix densified by toarray()."""

    def __init__(self, monkeypatch):
        self.rows = []
        original = sp.csr_matrix.toarray

        def toarray(matrix, *args, **kwargs):
            self.rows.append(matrix.shape[0])
            return original(matrix, *args, **kwargs)

        monkeypatch.setattr(sp.csr_matrix, "toarray", toarray)


def test_transform_densifies_sparse_input_chunk_by_chunk(monkeypatch):
    X, y = _sparse_data(n=30, d=20, seed=5)
    est = EntropicSparseMap(gamma=0.5, chunk_size=64).fit(X, y)
    rng = np.random.default_rng(6)
    big = sp.random(1000, 20, density=0.1, random_state=rng, format="csr") * 5.0
    expected = est.transform(big.toarray())
    spy = _ToarraySpy(monkeypatch)
    out = est.transform(big)
    np.testing.assert_array_equal(out, expected)
    assert spy.rows == [64] * 15 + [40]
    for method in (est.inverse_transform, est.displacement):
        spy.rows.clear()
        method(big)
        assert spy.rows == [64] * 15 + [40], method.__name__
    spy.rows.clear()
    est.interpolate(big, [0.5, 1.0])
    assert max(spy.rows) == 64 and sum(spy.rows) == 1000


def test_default_chunks_bound_the_densified_rows(monkeypatch):
    # chunk_size=None: rows per chunk follow from the 64 MiB budget
    # (8 bytes * (2 * 25 + 3 * 3000) per row -> 926 rows here), rounded down
    # to whole rounds of 32-row blocks for the threads (896 on 2 threads),
    # so a 2000-row sparse matrix is densified in 3 pieces, never whole.
    import numba

    unit = 32 * numba.get_num_threads()
    step = 926 - 926 % unit if 926 >= unit else 926
    rng = np.random.default_rng(7)
    X = sp.random(50, 3000, density=0.02, random_state=rng, format="csr")
    y = np.repeat([0, 1], 25)
    est = EntropicSparseMap(gamma=0.1).fit(X, y)
    new = sp.random(2000, 3000, density=0.01, random_state=rng, format="csr")
    assert sp.issparse(est.target_)  # 2 % dense: stored CSR
    spy = _ToarraySpy(monkeypatch)
    est.transform(new)
    # the 25 fitted target rows are densified by blocks for the dense kernels
    expected = [step] * (2000 // step) + ([2000 % step] if 2000 % step else [])
    assert [rows for rows in spy.rows if rows != 25] == expected


def test_cross_validation_on_sparse_matches_dense():
    X, y = _sparse_data(n=45, d=6, seed=8)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    est = EntropicSparseMap(gamma=0.2)
    dense = cross_val_score(est, X, y, cv=cv)
    sparse = cross_val_score(est, sp.csr_matrix(X), y, cv=cv)
    assert np.all(np.isfinite(dense))
    np.testing.assert_allclose(sparse, dense, rtol=1e-10)


def test_sparse_dataframe_keeps_gene_names():
    pd = pytest.importorskip("pandas")
    from skmonge.datasets import load_kang2018

    X, y = load_kang2018("liger", as_frame=True, return_X_y=True)
    assert all(isinstance(dt, pd.SparseDtype) for dt in X.dtypes)
    est = EntropicSparseMap(gamma=1.0, source="control", target="stimulated").fit(X, y)
    np.testing.assert_array_equal(est.get_feature_names_out(), X.columns)
    Xc = X[(y == "control").to_numpy()].iloc[:20]
    with pytest.warns(UserWarning, match="valid feature names"):
        as_coo = est.transform(Xc.sparse.to_coo())
    np.testing.assert_array_equal(est.transform(Xc), as_coo)


@pytest.mark.parametrize(
    "cost, density, densified",
    [
        ("elastic_l1", 0.10, True),  # above l1's 4 %: dense SIMD kernel
        ("elastic_l1", 0.02, False),  # below: the kernel visits non-zeros
        ("elastic_stvs", 0.10, False),  # STVS visits non-zeros up to 20 %
        ("sqeuclidean", 0.02, True),  # BLAS always runs on dense rows
    ],
)
def test_cost_operand_densifies_where_the_kernels_would(cost, density, densified):
    rng = np.random.default_rng(10)
    Y = sp.random(40, 300, density=density, random_state=rng, format="csr") * 3.0
    X = rng.normal(size=(7, 300))
    c = make_cost(cost, gamma=0.5)
    operand = c.cost_operand(Y)
    assert sp.issparse(operand) != densified
    if densified:
        np.testing.assert_array_equal(operand, Y.toarray())
    else:
        assert operand is Y
    np.testing.assert_allclose(
        c.cost_matrix(X, operand), c.cost_matrix(X, Y), rtol=1e-12, atol=1e-12
    )
    dense = Y.toarray()
    assert c.cost_operand(dense) is dense


def test_cost_operand_respects_its_memory_budget(monkeypatch):
    import skmonge.costs as costs

    Y = sp.random(40, 300, density=0.1, random_state=0, format="csr")
    c = make_cost("elastic_l1")
    monkeypatch.setattr(costs, "_DENSE_OPERAND_BYTES", 40 * 300 * 8 - 1)
    assert c.cost_operand(Y) is Y  # one byte too large
    # a caller holding a larger matrix anyway may allow more
    assert not sp.issparse(c.cost_operand(Y, max_bytes=40 * 300 * 8))


@pytest.mark.parametrize("debias", [False, True])
def test_csr_cloud_is_densified_once_per_call(monkeypatch, debias):
    # 10 % non-zeros: the fitted target is stored CSR (below 25 %) but is
    # dense enough (above 4 %) for the l1 kernels to run on dense rows, so
    # each cost matrix densifies its cloud once, not once per chunk of rows.
    # Debiased, the fit has two more cost matrices (each sample with itself)
    # and the map one more (new rows with the source).
    rng = np.random.default_rng(11)
    X = sp.random(60, 500, density=0.1, random_state=rng, format="csr") * 3.0
    y = np.repeat([0, 1], 30)
    new = sp.random(100, 500, density=0.1, random_state=rng, format="csr") * 3.0
    reference = EntropicSparseMap(gamma=0.1, debias=debias).fit(X.toarray(), y)
    spy = _ToarraySpy(monkeypatch)
    est = EntropicSparseMap(gamma=0.1, chunk_size=8, debias=debias).fit(X, y)
    assert sp.issparse(est.target_) and sp.issparse(est.source_)
    matrices = 3 if debias else 1
    assert spy.rows.count(30) == matrices, spy.rows  # a 30-row cloud, once each
    assert [rows for rows in spy.rows if rows != 30] == [8, 8, 8, 6] * matrices
    spy.rows.clear()
    out = est.transform(new)
    assert spy.rows.count(30) == (2 if debias else 1), spy.rows
    assert [rows for rows in spy.rows if rows != 30] == [8] * 12 + [4]
    np.testing.assert_allclose(out, reference.transform(new), rtol=1e-10, atol=1e-10)


def test_fit_chunks_grow_with_the_cost_matrix(monkeypatch):
    # A fit on CSR input densifies its source rows by chunks. Beyond the
    # fixed budget (here shrunk to 4 rows), chunks may take up to an eighth
    # of the cost matrix: 8 * 200 * 200 / 8 bytes over 8 * (2 * 200 + 3 * 10)
    # bytes per row -> 11 rows, so 200 rows come in 18 chunks of 11 and 1 of 2.
    import skmonge.entropic as entropic

    rng = np.random.default_rng(13)
    X = sp.random(400, 10, density=0.5, random_state=rng, format="csr") * 3.0
    monkeypatch.setattr(entropic, "_CHUNK_BYTES", 8 * (2 * 200 + 3 * 10) * 4)
    cost = make_cost("elastic_l1", gamma=0.1)
    spy = _ToarraySpy(monkeypatch)
    C = EntropicSparseMap(gamma=0.1)._fit_cost_matrix(cost, X[:200], X[200:])
    # the 200 target rows are densified once (cost_operand), the source by chunks
    assert [rows for rows in spy.rows if rows != 200] == [11] * 18 + [2]
    expected = cost.cost_matrix(X[:200].toarray(), X[200:].toarray())
    np.testing.assert_allclose(C, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cost", ["elastic_l1", "elastic_stvs", "sqeuclidean"])
def test_map_evaluation_validates_the_fitted_cloud_once(cost, monkeypatch):
    # the cloud is validated by fit; each chunk of a transform used to pass
    # over it again in cost_matrix and grad_h_aggregate
    import skmonge.costs as costs

    rng = np.random.default_rng(12)
    X = np.abs(rng.normal(size=(80, 40)))
    y = np.repeat([0, 1], 40)
    new = np.abs(rng.normal(size=(50, 40)))
    reference = EntropicSparseMap(cost=cost, gamma=0.3).fit(X, y).transform(new)
    calls = []
    check = costs._dense_rows_and_cloud

    def counted(*args):
        calls.append(1)
        return check(*args)

    monkeypatch.setattr(costs, "_dense_rows_and_cloud", counted)
    est = EntropicSparseMap(cost=cost, gamma=0.3, chunk_size=7).fit(X, y)
    calls.clear()
    out = est.transform(new)
    assert calls == []  # 8 chunks, no per-chunk validation
    np.testing.assert_allclose(out, reference, rtol=1e-12, atol=1e-12)


def test_map_evaluation_finds_the_clouds_columns_once(monkeypatch):
    # STVS on a dense cloud with 30 % non-zeros: every chunk's cost matrix
    # runs over the cloud's non-zeros by feature, which the transform finds
    # once (support_columns) instead of once per chunk (0.16 s each on
    # 600 x 34,000 cells)
    from skmonge._kernels import separable

    rng = np.random.default_rng(14)
    X = rng.exponential(size=(80, 60)) * (rng.random((80, 60)) < 0.3)
    y = np.repeat([0, 1], 40)
    new = rng.exponential(size=(50, 60)) * (rng.random((50, 60)) < 0.3)
    reference = EntropicSparseMap(cost="elastic_stvs", gamma=0.3).fit(X, y)
    est = EntropicSparseMap(cost="elastic_stvs", gamma=0.3, chunk_size=7).fit(X, y)
    assert not sp.issparse(est.target_)
    assert separable._tau_route(est.target_, separable.KIND_STVS) == "targets"
    calls = []
    to_csc = separable._dense_to_csc

    def counted(Y):
        calls.append(Y.shape)
        return to_csc(Y)

    monkeypatch.setattr(separable, "_dense_to_csc", counted)
    out = est.transform(new)
    # each cloud once (the target, and the source for the debiased map's
    # centring), not once for each of 8 chunks
    assert calls == [(40, 60), (40, 60)]
    np.testing.assert_allclose(out, reference.transform(new), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stvs_cost_on_a_csr_cloud_over_its_nonzeros(dtype, monkeypatch):
    # a CSR cloud with 30 % non-zeros stays CSR (cost_operand) and its STVS
    # cost, square included, runs over its non-zeros: no densified rows
    rng = np.random.default_rng(15)
    X = (rng.exponential(size=(37, 300)) * (rng.random((37, 300)) < 0.4)).astype(dtype)
    Yd = rng.exponential(size=(23, 300)) * (rng.random((23, 300)) < 0.3)
    Y = sp.csr_matrix(Yd.astype(dtype))
    c = make_cost("elastic_stvs", gamma=0.6)
    assert c.cost_operand(Y) is Y
    spy = _ToarraySpy(monkeypatch)
    C = c.cost_matrix(X, Y)
    assert spy.rows == [] and C.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(C, c.cost_matrix(X, Yd.astype(dtype)), rtol=rtol)
    diff = X.astype(np.float64)[:, None, :] - Yd[None, :, :]
    naive = 0.5 * (diff**2).sum(-1) + c.tau(diff.reshape(-1, 300)).reshape(37, 23)
    np.testing.assert_allclose(C, naive, rtol=rtol)


def test_stvs_cost_on_a_csr_cloud_with_duplicate_entries():
    # duplicates of one coordinate add up (scipy's convention), also on the
    # route over the cloud's non-zeros; the caller's matrix is left alone
    rng = np.random.default_rng(16)
    X = rng.exponential(size=(9, 40))
    Yd = rng.exponential(size=(6, 40)) * (rng.random((6, 40)) < 0.3)
    Yd[2, 5] = 1.5
    Y = sp.csr_matrix(Yd)
    # entry (2, 5) stored twice, as 1.0 and 0.5
    k = Y.indptr[2] + np.flatnonzero(Y.indices[Y.indptr[2] : Y.indptr[3]] == 5)[0]
    data = np.insert(Y.data, Y.indptr[3], 0.5)
    data[k] = 1.0
    indices = np.insert(Y.indices, Y.indptr[3], 5)
    indptr = Y.indptr + (np.arange(7) >= 3)
    dup = sp.csr_matrix((data, indices, indptr), shape=Y.shape)
    assert dup.nnz == Y.nnz + 1
    c = make_cost("elastic_stvs", gamma=0.6)
    assert c._route(dup) == "targets"
    np.testing.assert_allclose(
        c.cost_matrix(X, dup), c.cost_matrix(X, Yd), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_array_equal(dup.data, data)  # not summed in place
    assert dup.nnz == Y.nnz + 1
