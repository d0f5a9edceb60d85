"""Cost objects: h, ∇h, prox = ∇h*, cost matrices, against first principles."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize

from skmonge.costs import (
    ElasticKOverlap,
    ElasticL1,
    ElasticSTVS,
    SqEuclidean,
    make_cost,
)

COSTS = [
    SqEuclidean(),
    ElasticL1(0.7),
    ElasticSTVS(0.5),
    ElasticKOverlap(0.8, 2),
]


def _conjugate_argmax(cost, w):
    """argmax_z <w, z> - h(z), by a generic optimiser: ∇h*(w) by Danskin."""

    def objective(z):
        return float(cost.h(z[None])[0] - w @ z)

    best = None
    for start in (w, np.zeros_like(w), w / 2):
        res = minimize(
            objective,
            start,
            method="Powell",
            options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 40000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return best.x


@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_prox_is_gradient_of_conjugate(cost):
    rng = np.random.default_rng(0)
    W = rng.normal(scale=2.0, size=(6, 5))
    W[0, 1] = 0.0
    P = cost.prox(W)
    for w, p in zip(W, P, strict=True):
        z = _conjugate_argmax(cost, w)

        def obj(v, w=w):
            return float(cost.h(v[None])[0] - w @ v)

        assert obj(p) <= obj(z) + 1e-8
        np.testing.assert_allclose(p, z, atol=2e-4)


@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_prox_inverts_grad_h(cost):
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(20, 6))
    Z += np.sign(Z) * 0.1  # no coordinate at the kink of l1 / k-overlap ties
    np.testing.assert_allclose(cost.prox(cost.grad_h(Z)), Z, atol=1e-9)


@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_grad_h_matches_finite_differences(cost):
    rng = np.random.default_rng(2)
    z = rng.normal(size=6) + 0.2
    step = 1e-6
    fd = np.array(
        [
            (cost.h((z + step * e)[None])[0] - cost.h((z - step * e)[None])[0])
            / (2 * step)
            for e in np.eye(6)
        ]
    )
    np.testing.assert_allclose(cost.grad_h(z[None])[0], fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cost", COSTS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cost_matrix_matches_rowwise_h(cost, dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 5)).astype(dtype)
    Y = rng.normal(size=(4, 5)).astype(dtype)
    X0, Y0 = X.copy(), Y.copy()
    C = cost.cost_matrix(X, Y)
    assert C.dtype == dtype and C.shape == (7, 4)
    expected = np.array(
        [[cost.h((x - y)[None].astype(np.float64))[0] for y in Y] for x in X]
    )
    np.testing.assert_allclose(
        C,
        expected,
        rtol=1e-5 if dtype == np.float32 else 1e-10,
        atol=1e-5 if dtype == np.float32 else 1e-10,
    )
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


@pytest.mark.parametrize("density", [1.0, 0.2], ids=["dense", "sparse"])
@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_grad_h_aggregate_matches_explicit_sum(cost, density):
    # density 0.2: separable costs take the one-pass kernel over the
    # non-zeros of Y (also for a CSR Y); ties x_it = y_jt != 0 included
    rng = np.random.default_rng(4)
    X = rng.normal(size=(7, 30))
    Y = rng.normal(size=(9, 30))
    X[rng.random(X.shape) > density] = 0.0
    Y[rng.random(Y.shape) > density] = 0.0
    X[0, :5] = Y[1, :5]
    P = rng.dirichlet(np.ones(9), size=7)
    expected = np.stack(
        [
            sum(P[i, j] * cost.grad_h((X[i] - Y[j])[None])[0] for j in range(9))
            for i in range(7)
        ]
    )
    np.testing.assert_allclose(cost.grad_h_aggregate(X, Y, P), expected, atol=1e-10)
    np.testing.assert_allclose(
        cost.grad_h_aggregate(X, sp.csr_matrix(Y), P), expected, atol=1e-10
    )
    got32 = cost.grad_h_aggregate(
        X.astype(np.float32), Y.astype(np.float32), P.astype(np.float32)
    )
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, atol=1e-5)


@pytest.mark.parametrize("cost", COSTS, ids=repr)
def test_validated_prox_equals_prox(cost):
    # map evaluation's prox of its own gradient: the same values as prox;
    # element-wise proxes overwrite the array instead of allocating one
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        Z = (rng.normal(size=(6, 12)) * 2).astype(dtype)
        expected = cost.prox(Z)
        got = cost._validated_prox(Z)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)
        if isinstance(cost, (ElasticL1, ElasticSTVS)):
            assert got is Z


def test_l1_and_stvs_closed_forms():
    z = np.array([[-3.0, -0.5, 0.0, 0.2, 2.0]])
    np.testing.assert_allclose(ElasticL1(1.0).prox(z), [[-2.0, 0, 0, 0, 1.0]])
    np.testing.assert_allclose(
        ElasticSTVS(1.0).prox(z), [[-3 + 1 / 3, 0, 0, 0, 2 - 1 / 2]]
    )
    np.testing.assert_allclose(ElasticL1(0.5).tau(z), [0.5 * 5.7])
    # STVS: even, zero only at 0
    tau = ElasticSTVS(0.3).tau(np.array([[1.5, -2.0]]))
    assert tau[0] > 0
    np.testing.assert_allclose(
        ElasticSTVS(0.3).tau(np.array([[1.5, -2.0]])),
        ElasticSTVS(0.3).tau(np.array([[-1.5, 2.0]])),
    )
    assert ElasticSTVS(0.3).tau(np.zeros((1, 3)))[0] == 0


def test_kovlp_limits():
    """k = d gives ½‖z‖²(1+γ); k = 1 gives ½‖z‖² + (γ/2)‖z‖₁²."""
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(4, 5))
    np.testing.assert_allclose(
        ElasticKOverlap(0.5, 5).h(Z), 0.75 * np.sum(Z**2, axis=1), rtol=1e-10
    )
    np.testing.assert_allclose(
        ElasticKOverlap(0.5, 1).h(Z),
        0.5 * np.sum(Z**2, axis=1) + 0.25 * np.sum(np.abs(Z), axis=1) ** 2,
        rtol=1e-10,
    )


def test_make_cost_and_validation():
    assert make_cost("elastic_l1", gamma=2.0) == ElasticL1(2.0)
    cost = ElasticSTVS(0.1)
    assert make_cost(cost) is cost
    with pytest.raises(ValueError, match="Unknown cost"):
        make_cost("l3")
    with pytest.raises(ValueError, match="needs the support size k"):
        make_cost("elastic_kovlp", gamma=1.0)
    for bad in (0.0, -1.0, np.inf, "a"):
        with pytest.raises(ValueError, match="gamma"):
            ElasticL1(bad)
    with pytest.raises(ValueError, match="k="):
        ElasticKOverlap(1.0, 7).prox(np.ones((2, 3)))
    assert repr(ElasticKOverlap(1.0, 3)) == "ElasticKOverlap(gamma=1.0, k=3)"
    assert ElasticL1(1.0)(np.array([1.0, -1.0]), np.zeros(2)) == pytest.approx(3.0)


@pytest.mark.parametrize("name", ["elastic_l1", "elastic_stvs", "elastic_kovlp"])
def test_quadratic_and_tau_parts_add_up_to_the_cost_matrix(name):
    # the γ path builds C(γ) = Q + γ L from these parts; they must round as
    # the cost matrix does (float32 cells far from 0: BLAS's ½‖x‖² + ½‖y‖²
    # - x·y loses ~1e-5 of C there, the one-pass ℓ1 kernel does not)
    rng = np.random.default_rng(8)
    X = (20.0 + rng.standard_normal((30, 400))).astype(np.float32)
    Y = (20.0 + rng.standard_normal((25, 400))).astype(np.float32)
    cost = make_cost(name, gamma=0.7, k=5)
    unit = make_cost(name, gamma=1.0, k=5)
    C = cost.cost_matrix(X, Y).astype(np.float64)
    parts = cost.quadratic_matrix(X, Y).astype(np.float64)
    # Q + γ L for the costs linear in γ (what the path does), Q + τ otherwise
    linear = cost.linear_in_gamma
    parts += 0.7 * unit.tau_matrix(X, Y) if linear else cost.tau_matrix(X, Y)
    D = X.astype(np.float64)[:, None, :] - Y.astype(np.float64)[None, :, :]
    Q = 0.5 * (D * D).sum(-1)
    np.testing.assert_allclose(parts, C, rtol=2e-6)
    if name == "elastic_l1":  # both computed without cancellation
        np.testing.assert_allclose(cost.quadratic_matrix(X, Y), Q, rtol=2e-6)
    if not linear:
        with pytest.raises(ValueError, match="not linear in gamma"):
            cost.linear_parts(X, Y)
        return
    # the path's parts (one pass for dense ℓ1) are those parts, for a dense
    # or a CSR cloud (where the quadratic part goes through BLAS)
    for cloud in (Y, sp.csr_matrix(Y)):
        Q_path, L_path = cost.linear_parts(X, cloud)
        assert Q_path.dtype == L_path.dtype == np.float32
        np.testing.assert_allclose(Q_path, cost.quadratic_matrix(X, cloud), rtol=1e-6)
        np.testing.assert_allclose(L_path, unit.tau_matrix(X, cloud), rtol=1e-6)
    Q_path, L_path = cost.linear_parts(X, Y)
    np.testing.assert_allclose(Q_path + 0.7 * L_path, C, rtol=2e-6)
