"""The torch backend of EntropicSparseMap reproduces the numba backend (CPU torch)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import expected_failed_checks
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmonge import EntropicSparseMap, EntropicSparseMapCV
from skmonge.costs import ElasticKOverlap, ElasticL1, TranslationInvariantCost

torch = pytest.importorskip("torch")

from skmonge import _torch_ot  # noqa: E402  (needs torch)

COSTS = ["sqeuclidean", "elastic_l1", "elastic_stvs", "elastic_kovlp"]


def _clouds(n=120, m=130, d=12, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(n, d))
    X1 = rng.normal(size=(m, d))
    X1[:, :3] += 2.0
    X = np.vstack([X0, X1]).astype(dtype)
    return X, np.r_[np.zeros(n), np.ones(m)], rng.normal(size=(25, d)).astype(dtype)


def _pair(cost, dtype=np.float64, **params):
    X, y, X_new = _clouds(dtype=dtype)
    params = {"cost": cost, "gamma": 0.5, "epsilon": 1.5, "k": 3, **params}
    tol = 1e-11 if dtype == np.float64 else 1e-6
    numba = EntropicSparseMap(tol=tol, **params).fit(X, y)
    torch_ = EntropicSparseMap(tol=tol, backend="torch", device="cpu", **params)
    return numba, torch_.fit(X, y), X_new


@pytest.mark.parametrize("cost", COSTS)
def test_float64_maps_match_numba(cost):
    numba, torch_, X_new = _pair(cost)
    scale = np.abs(X_new).max()
    assert torch_.converged_
    for method in ("transform", "inverse_transform", "displacement"):
        a = getattr(numba, method)(X_new)
        b = getattr(torch_, method)(X_new)
        assert b.dtype == np.float64
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-8 * scale, err_msg=method)
    np.testing.assert_allclose(
        torch_.interpolate(X_new, [0.3, 0.7]),
        numba.interpolate(X_new, [0.3, 0.7]),
        rtol=0,
        atol=1e-8 * scale,
    )
    # same fixed point: potentials equal up to the constant (f + c, g - c)
    shift = np.mean(torch_.potential_target_ - numba.potential_target_)
    np.testing.assert_allclose(
        torch_.potential_target_ - shift, numba.potential_target_, atol=1e-8
    )
    np.testing.assert_allclose(
        torch_.potential_source_ + shift, numba.potential_source_, atol=1e-8
    )


@pytest.mark.parametrize("cost", COSTS)
def test_float32_maps_match_numba(cost):
    numba, torch_, X_new = _pair(cost, dtype=np.float32)
    scale = np.abs(X_new).max()
    a, b = numba.transform(X_new), torch_.transform(X_new)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * scale)


def test_elastic_zeros_are_exact():
    numba, torch_, X_new = _pair("elastic_l1", gamma=2.0)
    a, b = numba.displacement(X_new), torch_.displacement(X_new)
    assert 0.2 < np.mean(b == 0) < 1.0
    np.testing.assert_array_equal(a == 0, b == 0)


def test_default_epsilon_rule_and_schedule_match():
    X, y, X_new = _clouds()
    numba = EntropicSparseMap(tol=1e-10).fit(X, y)
    torch_ = EntropicSparseMap(tol=1e-10, backend="torch", device="cpu").fit(X, y)
    # both search the same factor-2 lattice with loose solves; ε is rounded
    # to 3 digits, so it agrees to the rounding of those solves
    assert torch_.epsilon_ == pytest.approx(numba.epsilon_, rel=1e-2)
    relative = EntropicSparseMap(relative_epsilon=0.05, backend="torch", device="cpu")
    assert relative.fit(X, y).epsilon_ == pytest.approx(
        EntropicSparseMap(relative_epsilon=0.05).fit(X, y).epsilon_, rel=1e-12
    )


@pytest.mark.parametrize("k", [1, 3, 12])
def test_kovlp_tensor_terms_match_kernels(k):
    rng = np.random.default_rng(k)
    Z = rng.normal(size=(60, 12))
    Z[rng.random(Z.shape) < 0.3] = 0.0
    Z[0] = 0.0
    Z[1] = 1.5  # all tied
    cost = ElasticKOverlap(0.7, k)
    T = torch.tensor(Z)
    np.testing.assert_allclose(cost.tau_tensor(T).numpy(), cost.tau(Z), atol=1e-12)
    np.testing.assert_allclose(
        cost.grad_tau_tensor(T).numpy(), cost.grad_tau(Z), atol=1e-12
    )
    np.testing.assert_allclose(cost.prox_tensor(T).numpy(), cost.prox(Z), atol=1e-12)


def test_sinkhorn_fixed_point_and_marginals():
    X, y, _ = _clouds(seed=3)
    backend = _torch_ot.TorchBackend("cpu", np.float64)
    cost = ElasticL1(0.3)
    S, T = backend.tensor(X[y == 0]), backend.tensor(X[y == 1])
    C = backend.cost_matrix(cost, S, T)
    np.testing.assert_allclose(
        C.numpy(), cost.cost_matrix(X[y == 0], X[y == 1]), rtol=1e-12, atol=1e-12
    )
    eps = 0.05 * float(C.mean())
    res = backend.sinkhorn(C, eps, tol=1e-10, max_iter=10_000)
    assert res.converged and res.n_iter > 1
    P = np.exp((res.f[:, None] + res.g[None, :] - C.numpy()) / eps) / C.numel()
    np.testing.assert_allclose(P.sum(1), 1 / C.shape[0], atol=1e-10)
    np.testing.assert_allclose(P.sum(0), 1 / C.shape[1], atol=1e-12)
    # the ε schedule does not move the fixed point
    plain = backend.sinkhorn(C, eps, tol=1e-10, max_iter=10_000, decay=None)
    np.testing.assert_allclose(
        res.g - res.g.mean(), plain.g - plain.g.mean(), atol=1e-8
    )


def test_small_blocks_give_the_same_map(monkeypatch):
    numba, _, X_new = _pair("elastic_stvs")
    X, y, _ = _clouds()
    # a few pairs per block and a few rows per Sinkhorn block: every blocked
    # loop (pairwise τ and ∇τ, column log-sum-exp by parts) runs many times
    monkeypatch.setitem(_torch_ot._BLOCK_BYTES, "cpu", 12 * 8 * 7)
    est = EntropicSparseMap(
        cost="elastic_stvs",
        gamma=0.5,
        epsilon=1.5,
        tol=1e-11,
        backend="torch",
        device="cpu",
    ).fit(X, y)
    np.testing.assert_allclose(
        est.transform(X_new), numba.transform(X_new), rtol=0, atol=1e-8 * 4
    )


def test_sparse_input_equals_dense():
    X, y, X_new = _clouds()
    X = np.where(np.abs(X) < 1.0, 0.0, X)
    params = {"epsilon": 1.5, "backend": "torch", "device": "cpu", "tol": 1e-10}
    dense = EntropicSparseMap(**params).fit(X, y)
    sparse = EntropicSparseMap(**params).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(
        sparse.transform(sp.csr_matrix(X_new)), dense.transform(X_new), atol=1e-10
    )


def test_pickle_keeps_numpy_state_and_map():
    _, est, X_new = _pair("elastic_l1")
    for name in ("potential_source_", "potential_target_", "source_", "target_"):
        assert isinstance(getattr(est, name), np.ndarray), name
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.transform(X_new), est.transform(X_new))
    # a model fitted on a GPU is used on a CPU-only machine this way
    loaded.set_params(device="cpu")
    np.testing.assert_array_equal(loaded.transform(X_new), est.transform(X_new))


def test_unsupported_cost_and_device_raise():
    X, y, _ = _clouds()

    class NumpyOnly(ElasticL1):
        grad_tau_tensor = TranslationInvariantCost.grad_tau_tensor

    with pytest.raises(ValueError, match="does not support the cost"):
        EntropicSparseMap(cost=NumpyOnly(), backend="torch").fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            EntropicSparseMap(backend="torch", device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        EntropicSparseMap(backend="jax").fit(X, y)


def test_auto_device_without_cuda_warns_and_runs_on_cpu(monkeypatch):
    X, y, X_new = _clouds()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    est = EntropicSparseMap(epsilon=1.5, backend="torch")
    with pytest.warns(UserWarning, match="found no CUDA device"):
        est.fit(X, y)
    with pytest.warns(UserWarning, match="found no CUDA device"):
        mapped = est.transform(X_new)
    cpu = EntropicSparseMap(epsilon=1.5, backend="torch", device="cpu").fit(X, y)
    np.testing.assert_array_equal(mapped, cpu.transform(X_new))


def test_not_converged_warns():
    X, y, _ = _clouds()
    est = EntropicSparseMap(
        relative_epsilon=0.001, max_iter=3, backend="torch", device="cpu"
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est.fit(X, y)
    assert not est.converged_ and est.n_iter_ == 3


def test_target_dim_runs_on_torch():
    X, y, _ = _clouds()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = EntropicSparseMap(target_dim=4, backend="torch", device="cpu").fit(X, y)
    moved = (np.abs(est.displacement(X[y == 0])) > 1e-8).sum(1).mean()
    assert abs(moved - 4) <= 0.4


def test_cv_estimator_refits_on_torch():
    X, y, X_new = _clouds()
    search = EntropicSparseMapCV(
        gammas=[0.3, 1.0], cv=2, random_state=0, backend="torch", device="cpu"
    ).fit(X, y)
    numba = EntropicSparseMapCV(gammas=[0.3, 1.0], cv=2, random_state=0).fit(X, y)
    assert search.gamma_ == numba.gamma_
    np.testing.assert_allclose(
        search.transform(X_new), numba.transform(X_new), atol=1e-5
    )


@parametrize_with_checks(
    [EntropicSparseMap(source=0, target=1, backend="torch", device="cpu")],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_torch(estimator, check):
    check(estimator)
