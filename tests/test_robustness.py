"""Extreme but legal inputs, and bad ones, to the numpy side of skmonge.

Each test pins one defect found by a matrix of bad or extreme inputs: the
answer must be a correct result, a ``ConvergenceWarning`` or a ``ValueError``
that names the problem in the user's terms, never NaN or a raw crash.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skmonge import EntropicSparseMap
from skmonge.costs import make_cost
from skmonge.sinkhorn import (
    gibbs_weights,
    lse_potential,
    sinkhorn,
    sinkhorn_divergence,
    transport_plan,
)

COSTS = ["sqeuclidean", "elastic_l1", "elastic_stvs"]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat([0, 1], 20)
    return X, y


def _half_sq(X, Y):
    return 0.5 * ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)


# ------------------------------------------------------ huge C / ε: weights
@pytest.mark.parametrize("epsilon", [1.0, 0.3])
def test_gibbs_weights_stay_finite_when_logits_exceed_the_exponent_range(epsilon):
    # new points 1e10 away: |C / ε| ~ 1e21. The fused max-then-exp loops
    # rounded the largest logit to a non-zero exponent, every weight of a
    # row underflowed and P was NaN (at ε = 0.3 on the code before the fix).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)) * 1e10
    Y = rng.normal(size=(25, 3))
    C = _half_sq(X, Y)
    g = rng.normal(size=25)
    P, f = gibbs_weights(C, g, epsilon)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(f))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    # the limit of the softmax: all the mass on the cheapest column
    logits = g - C
    np.testing.assert_array_equal(P.argmax(axis=1), logits.argmax(axis=1))
    np.testing.assert_allclose(P.max(axis=1), 1.0)
    np.testing.assert_allclose(f, -logits.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(lse_potential(C, g, epsilon), f, rtol=1e-12)


@pytest.mark.parametrize("cost", COSTS)
def test_transform_far_from_the_data_is_finite(data, cost):
    X, y = data
    est = EntropicSparseMap(cost=cost).fit(X, y)
    far = est.transform(X * 1e10)
    assert np.all(np.isfinite(far))
    plain = EntropicSparseMap(cost=cost, debias=False).fit(X, y)
    assert np.all(np.isfinite(plain.transform(X * 1e10)))
    if cost == "sqeuclidean":
        # one-hot weights: each far point lands on one target point (up to
        # the rounding of x - (x - y) at |x| ~ 1e10) ...
        dist = np.abs(plain.transform(X * 1e10)[:, None, :] - X[None, y == 1])
        assert np.all(dist.max(axis=-1).min(axis=1) < 1e-4)
        # ... and, debiased, moves by one difference y_j - x_i of a target
        # and a source point
        pairs = (X[y == 1][:, None, :] - X[y == 0][None]).reshape(-1, X.shape[1])
        moved = far - X * 1e10
        dist = np.abs(moved[:, None, :] - pairs[None]).max(axis=-1)
        assert np.all(dist.min(axis=1) < 1e-4)


# ------------------------------------------------------ huge C / ε: solver
def test_sinkhorn_refuses_an_epsilon_float64_cannot_represent(data):
    X, _ = data
    C = _half_sq(X[:20], X[20:])
    with pytest.raises(ValueError, match="epsilon=.* is too small for costs"):
        sinkhorn(C, 1e-19 * C.mean())
    est = EntropicSparseMap(cost="sqeuclidean", epsilon=1e-25)
    with pytest.raises(ValueError, match="Use a larger epsilon"):
        est.fit(*data)


def test_sinkhorn_flags_potentials_that_lost_the_plan(data):
    X, _ = data
    C = _half_sq(X[:20], X[20:])
    # C / ε = 1e9: the potentials still carry the plan to the tolerance
    eps = 1e-9 * C.mean()
    res = sinkhorn(C, eps, max_iter=5000)
    assert res.converged
    P = transport_plan(C, res.f, res.g, eps)
    assert np.abs(P.sum(axis=1) - 1 / 20).sum() <= 1e-6
    # C / ε = 1e12: the solver's own kernel converges, but f and g rounded to
    # float64 rebuild a plan with marginal error ~5e-4 > tol: say so
    eps = 1e-12 * C.mean()
    with pytest.warns(ConvergenceWarning, match="float64 potentials"):
        res = sinkhorn(C, eps, max_iter=5000)
    assert not res.converged
    P = transport_plan(C, res.f, res.g, eps)
    np.testing.assert_allclose(
        np.abs(P.sum(axis=1) - 1 / 20).sum(), res.marginal_error, rtol=1e-6
    )


def test_warm_start_with_a_large_constant_offset(data):
    # (f + c, g - c) is the same warm start; an offset of 1e14 used to
    # cancel in (g_j - C_ij) / ε and return a wrong plan with converged=True.
    X, _ = data
    C = _half_sq(X[:20], X[20:])
    ref = sinkhorn(C, 0.5, tol=1e-9)
    P_ref = transport_plan(C, ref.f, ref.g, 0.5)
    for offset in (1e10, 1e14, 1e16):
        for init in (
            {"g_init": ref.g + offset},
            {"f_init": ref.f + offset},
            {"f_init": ref.f + offset, "g_init": ref.g - offset},
            {"f_init": ref.f + offset, "g_init": ref.g + offset},
        ):
            res = sinkhorn(C, 0.5, tol=1e-9, **init)
            assert res.converged
            P = transport_plan(C, res.f, res.g, 0.5)
            assert np.abs(P - P_ref).sum() < 1e-7, (offset, list(init))


def test_non_converged_fits_never_store_non_finite_potentials():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n, d = int(rng.integers(3, 30)), int(rng.integers(1, 5))
        X = rng.normal(size=(2 * n, d)) * 10 ** rng.uniform(-3, 3)
        y = np.repeat([0, 1], n)
        est = EntropicSparseMap(
            cost=str(rng.choice(COSTS)),
            relative_epsilon=10 ** rng.uniform(-5, -1),
            max_iter=int(rng.integers(1, 20)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        assert np.all(np.isfinite(est.potential_source_))
        assert np.all(np.isfinite(est.potential_target_))
        assert np.all(np.isfinite(est.transform(X[:n])))


def test_score_of_data_scaled_far_below_the_fit(data):
    # Y concentrated at 1e-30 next to X of order 1: the automatic ε of the
    # divergence used to follow Y's spread and overflow the solver.
    X, y = data
    est = EntropicSparseMap(cost="sqeuclidean").fit(X, y)
    score = est.score(X * 1e-30, y)
    assert np.isfinite(score) and score < 0
    value = sinkhorn_divergence(X[:20], X[20:] * 1e-30)
    # the clouds are far apart relative to Y's spread: S ~ OT ~ ½ E|x|²
    np.testing.assert_allclose(value, 0.5 * (X[:20] ** 2).sum(1).mean(), rtol=0.2)


# ------------------------------------------------------ data scale
@pytest.mark.parametrize("scale", [1e160, 1e-170, 1e-300])
@pytest.mark.parametrize("cost", ["sqeuclidean", "elastic_l1"])
def test_fit_on_data_whose_squares_overflow_or_underflow(data, scale, cost):
    X, y = data
    for est in (
        EntropicSparseMap(cost=cost),
        EntropicSparseMap(cost=cost, relative_epsilon=0.1),
    ):
        with pytest.raises(ValueError, match="Rescale the data") as info:
            est.fit(X * scale, y)
        # not the old "identical constant samples?" guess
        assert "constant" not in str(info.value)


def test_transform_of_data_whose_costs_overflow(data):
    X, y = data
    est = EntropicSparseMap().fit(X, y)
    with pytest.raises(ValueError, match="overflow") as info:
        est.transform(X * 1e160)
    assert "C_new" not in str(info.value)
    est32 = EntropicSparseMap().fit(X.astype(np.float32), y)
    with pytest.raises(ValueError, match="overflow float32"):
        est32.transform(X.astype(np.float32) * np.float32(1e25))


# ------------------------------------------------------ labels
def test_labels_mixing_types_or_holding_none(data):
    X, _ = data
    mixed = np.array([0] * 20 + ["a"] * 20, dtype=object)
    with pytest.raises(ValueError, match="source and target are None"):
        EntropicSparseMap().fit(X, mixed)
    est = EntropicSparseMap(source=0, target="a").fit(X, mixed)
    assert est.source_label_ == 0 and est.target_label_ == "a"
    with_none = np.array([0] * 19 + [None] + [1] * 20, dtype=object)
    est = EntropicSparseMap(source=0, target=1).fit(X, with_none)
    assert est.transform(X).shape == X.shape
    with pytest.raises(ValueError, match="label 2 does not occur"):
        EntropicSparseMap(source=0, target=2).fit(X, with_none)


# ------------------------------------------------------ public functions
def test_sinkhorn_divergence_names_a_wrong_shaped_cost_callable(data):
    X, _ = data
    with pytest.raises(ValueError, match=r"cost\(X, Y\) must return .* \(20, 20\)"):
        sinkhorn_divergence(X[:20], X[20:], cost=lambda A, B: np.ones((3, 3)))


def test_sparse_input_to_dense_only_functions(data):
    X, _ = data
    C = sp.csr_matrix(_half_sq(X[:20], X[20:]))
    with pytest.raises(ValueError, match="C is a scipy.sparse matrix"):
        sinkhorn(C, 1.0)
    with pytest.raises(ValueError, match="X is a scipy.sparse matrix"):
        sinkhorn_divergence(sp.csr_matrix(X[:20]), X[20:])
    for cost in COSTS:
        with pytest.raises(ValueError, match="Z is a scipy.sparse matrix"):
            make_cost(cost).prox(sp.csr_matrix(X))


@pytest.mark.parametrize("cost", COSTS + ["elastic_kovlp"])
def test_complex_and_non_finite_input_is_rejected(data, cost):
    X, _ = data
    c = make_cost(cost, k=2) if cost == "elastic_kovlp" else make_cost(cost)
    C = _half_sq(X[:20], X[20:])
    with pytest.raises(ValueError, match="must be real"):
        c.prox(X + 1j)
    with pytest.raises(ValueError, match="must be real"):
        c.cost_matrix(X[:5] + 0j, X[5:])
    with pytest.raises(ValueError, match="must be real"):
        sinkhorn(C + 0j, 1.0)
    with pytest.raises(ValueError, match="must be real"):
        sinkhorn_divergence(X[:20] + 0j, X[20:])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        c.prox(bad)
    with pytest.raises(ValueError, match="X contains NaN or infinite"):
        c.cost_matrix(bad, X)
    with pytest.raises(ValueError, match="Y contains NaN or infinite"):
        c.cost_matrix(X, np.where(bad == bad, bad, np.inf))
    C[2, 2] = np.inf
    with pytest.raises(ValueError, match="C contains NaN or infinite"):
        sinkhorn(C, 1.0)


@pytest.mark.parametrize("cost", COSTS)
def test_grad_h_aggregate_shape_errors(data, cost):
    X, _ = data
    c = make_cost(cost)
    with pytest.raises(ValueError, match=r"P must have shape .* got \(5, 4\)"):
        c.grad_h_aggregate(X[:5], X[5:10], np.ones((5, 4)))
    with pytest.raises(ValueError, match="same number of features"):
        c.grad_h_aggregate(X[:5], X[5:10, :2], np.ones((5, 5)))


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("sparse", [False, True])
def test_cost_matrix_width_error(data, cost, sparse):
    # the kernels run unchecked after cost_matrix validates: the width check
    # must stay with it, dense or sparse cloud
    X, _ = data
    Y = sp.csr_matrix(X[5:10, :2]) if sparse else X[5:10, :2]
    with pytest.raises(ValueError, match="same number of features"):
        make_cost(cost).cost_matrix(X[:5], Y)


# ------------------------------------------------------ the package's own calls
def test_reports_on_a_map_fitted_by_sc_fit_map_do_not_warn(data):
    ad = pytest.importorskip("anndata")
    pytest.importorskip("matplotlib")
    from skmonge import sc
    from skmonge.inspection import cell_displacements, displacement_report
    from skmonge.plotting import plot_feature_displacements

    X, y = data
    adata = ad.AnnData(X)
    adata.var_names = ["g0", "g1", "g2"]
    adata.obs["condition"] = np.where(y == 0, "ctrl", "stim")
    est = sc.fit_map(adata, EntropicSparseMap(), source="ctrl", target="stim")
    assert list(est.feature_names_in_) == ["g0", "g1", "g2"]
    with warnings.catch_warnings():
        # sklearn's "X does not have valid feature names" on adata.X
        warnings.simplefilter("error")
        report = displacement_report(est, adata.X)
        cell_displacements(est, adata.X, 0)
        plot_feature_displacements(est, adata.X)
    assert list(report.index.names) == ["feature"]
    assert set(report.index) == {"g0", "g1", "g2"}
