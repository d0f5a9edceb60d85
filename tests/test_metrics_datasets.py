"""Metrics and dataset generators."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import mannwhitneyu

from skmonge.datasets import load_kang2018, make_sparse_monge
from skmonge.metrics import (
    displacement_dimension,
    displacement_sparsity,
    nmse,
    rank_biased_overlap,
    support_error,
    wilcoxon_scores,
)


def test_displacement_metrics_by_hand():
    X = np.zeros((2, 4))
    T = np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.005, 0.0]])
    assert displacement_sparsity(X, T) == pytest.approx(3 / 8)
    assert displacement_dimension(X, T) == pytest.approx((2 + 0) / 2)
    # row 0: 4 of 5 squared displacement off support {0}; row 1 entirely off
    assert support_error(X, T, [0]) == pytest.approx((4 / 5 + 1.0) / 2)
    mask = np.array([[True, False, False, True], [False, False, True, False]])
    assert support_error(X, T, mask) == 0.0
    assert support_error(X, X, [0]) == 0.0
    assert nmse(X, T) == pytest.approx((1 + 4 + 0.005**2) / 8)
    with pytest.raises(ValueError, match="same shape"):
        nmse(X, T[:1])
    with pytest.raises(ValueError, match="boolean support"):
        support_error(X, T, np.ones(3, dtype=bool))


def test_rank_biased_overlap():
    a = list("abcdefghij")
    assert rank_biased_overlap(a, a) == pytest.approx(1 - 0.9**10)
    assert rank_biased_overlap(a, list("klmnopqrst")) == 0.0
    # depth 2 by hand: t=1 overlap 0; t=2 overlap {a,b} -> 2/2
    assert rank_biased_overlap(["a", "b"], ["b", "a"]) == pytest.approx(0.1 * 0.9)
    assert rank_biased_overlap(a, a[::-1]) < rank_biased_overlap(a, a)
    with pytest.raises(ValueError, match="duplicate"):
        rank_biased_overlap(["a", "a"], ["a", "b"])


def test_wilcoxon_scores_match_scipy():
    rng = np.random.default_rng(0)
    X = rng.poisson(1.0, size=(60, 5)).astype(float)
    X[:30, 2] += 2
    y = np.repeat(["g", "r"], 30)
    z = wilcoxon_scores(sp.csr_matrix(X), y, "g", "r")
    assert np.argmax(z) == 2
    for t in range(5):
        u = mannwhitneyu(X[:30, t], X[30:, t]).statistic
        expected = (u - 30 * 30 / 2) / np.sqrt(30 * 30 * 61 / 12)
        assert z[t] == pytest.approx(expected)


@pytest.mark.parametrize("pattern", ["constant", "x_dependent"])
def test_make_sparse_monge(pattern):
    X, y, true_map = make_sparse_monge(
        50, 6, 2, pattern=pattern, n_target=40, random_state=0
    )
    assert X.shape == (90, 6) and np.sum(y == 0) == 50
    src, tgt = X[y == 0], X[y == 1]
    assert src.min() >= 0 and src.max() <= 1
    mask = true_map.support(src)
    assert np.all(mask.sum(1) == 2)
    mapped = true_map(src)
    np.testing.assert_array_equal(mapped[~mask], src[~mask])
    np.testing.assert_allclose(mapped[mask], np.exp(src[mask]))
    # target rows are images of fresh uniform points: moved coords in [1, e]
    assert np.all(tgt.max(1) >= 1.0)
    X2, _, _ = make_sparse_monge(50, 6, 2, pattern=pattern, random_state=0)
    np.testing.assert_array_equal(X2[:50], X[:50])
    if pattern == "x_dependent":
        first = np.sum(src[:, :2] ** 2, 1) > np.sum(src[:, 2:4] ** 2, 1)
        assert np.all(mask[first, :2]) and np.all(mask[~first, 2:4])
        with pytest.raises(ValueError, match="needs at least"):
            make_sparse_monge(10, 3, 2, pattern=pattern)


def test_load_kang2018():
    data = load_kang2018("harmony")
    X, y = data.data, data.target
    assert sp.issparse(X) and X.shape == (2000, 9015) and X.dtype == np.float32
    assert set(y) == {"control", "stimulated"} and np.sum(y == "control") == 1000
    # log-CP10K: expm1 of every row sums to 1e4
    np.testing.assert_allclose(
        np.expm1(X.toarray().astype(np.float64)).sum(1), 1e4, rtol=1e-4
    )
    assert "ISG15" in set(data.feature_names) and data.cell_type is not None
    Xc, yc = load_kang2018("liger", lognorm=False, return_X_y=True)
    assert Xc.shape == (600, 249)
    assert np.all(Xc.data == np.round(Xc.data))
    df, ys = load_kang2018("liger", as_frame=True, return_X_y=True)
    assert list(df.columns[:3]) == list(load_kang2018("liger").feature_names[:3])
    assert ys.name == "condition"
    with pytest.raises(ValueError, match="subset"):
        load_kang2018("scgen")


def test_load_kang2018_from_path_keeps_lognorm_files(tmp_path):
    """A path loads another file; an already log-normalised layer is not redone."""
    raw = load_kang2018("liger", lognorm=False)
    X = raw.data.copy()
    X.data = np.log1p(X.data)
    path = tmp_path / "lognorm.npz"
    np.savez(
        path,
        X_data=X.data,
        X_indices=X.indices,
        X_indptr=X.indptr,
        X_shape=np.array(X.shape),
        genes=np.asarray(raw.feature_names, str),
        condition=np.asarray(raw.target, str),
        cells=np.asarray(raw.cell_names, str),
        layer=np.array("lognorm"),
        cell_type=np.repeat("T", X.shape[0]),
    )
    data = load_kang2018(path)
    np.testing.assert_array_equal(data.data.toarray(), X.toarray())
    assert set(data.cell_type) == {"T"}


def _scaled_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skmonge import EntropicSparseMap

    rng = np.random.default_rng(0)
    scale = np.geomspace(0.1, 10.0, 8)  # genes on very different scales
    Xs = rng.normal(size=(40, 8)) * scale
    Xt = rng.normal(size=(40, 8)) * scale
    Xt[:, :2] += 2.0 * scale[:2]
    X, y = np.vstack([Xs, Xt]), np.repeat(["ctrl", "stim"], 40)
    pipe = make_pipeline(
        StandardScaler(),
        EntropicSparseMap(gamma=0.3, source="ctrl", target="stim"),
    ).fit(X, y)
    return pipe, X, y


def test_sparsity_scorers_accept_a_pipeline():
    """Scored in the map's (scaled) space, as Pipeline.score does."""
    from skmonge.metrics import displacement_sparsity_score, make_sparsity_fit_scorer
    from skmonge.sinkhorn import sinkhorn_divergence

    pipe, X, y = _scaled_pipeline()
    Z = pipe[0].transform(X)
    Zs, Zt = Z[y == "ctrl"], Z[y == "stim"]
    mapped = pipe[-1].transform(Zs)
    sparsity = displacement_sparsity(Zs, mapped)
    assert 0.0 < sparsity < 1.0  # a sparse map, not a trivial value
    assert displacement_sparsity_score(pipe, X, y) == pytest.approx(sparsity)
    residual = sinkhorn_divergence(mapped, Zt) / sinkhorn_divergence(Zs, Zt)
    assert residual < 0.9
    scorer = make_sparsity_fit_scorer(tradeoff=0.3)
    expected = -(0.7 * residual + 0.3 * sparsity)
    assert scorer(pipe, X, y) == pytest.approx(expected)
    # the divergences are those of the scaled space: the input space differs
    Xs_in = X[y == "ctrl"]
    X_in = pipe[0].inverse_transform(mapped)  # (a guard: never converges tightly)
    raw = sinkhorn_divergence(X_in, X[y == "stim"], warn=False) / sinkhorn_divergence(
        Xs_in, X[y == "stim"], warn=False
    )
    assert abs(raw - residual) > 1e-3
    assert pipe.score(X, y) == pytest.approx(-sinkhorn_divergence(mapped, Zt))
