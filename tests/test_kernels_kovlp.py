"""Tests of the proximal-operator kernels: k-overlap (``skmonge._kernels.kovlp``)
and the separable proxes (``skmonge._kernels.separable``).

References are independent of the kernels: closed forms, scipy's generic
optimisers, Argyriou et al.'s sorted formula for the k-overlap norm, finite
differences and convex-duality certificates.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import minimize, minimize_scalar

from skmonge._kernels import kovlp
from skmonge._kernels.kovlp import (
    kovlp_grad_aggregate,
    kovlp_grad_half_sq,
    kovlp_prox,
    kovlp_sq_norm,
    kovlp_sq_norm_pairwise,
)
from skmonge._kernels.separable import soft_threshold, stvs_prox

HYP = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------


def ref_sq_norm_grad(z, k):
    """Argyriou et al. (2012), Prop. 2.1, by trying every r (1-based indices).

    ``|z|↓_{k-r-1} > T_r / (r+1) >= |z|↓_{k-r}``, ``T_r = Σ_{i >= k-r} |z|↓_i``;
    returns ``‖z‖²_ovk`` and the gradient of its half.
    """
    z = np.asarray(z, dtype=np.float64)
    order = np.argsort(-np.abs(z), kind="stable")
    a = np.abs(z)[order]
    d = a.size
    if k >= d:
        return float(a @ a), z.copy()
    for r in range(k):
        head = k - r - 1  # number of coordinates kept in the ℓ2 part
        tail = a[head:].sum()
        upper = np.inf if head == 0 else a[head - 1]
        if upper > tail / (r + 1) >= a[head]:
            g = np.sign(z) * tail / (r + 1)
            g[order[:head]] = z[order[:head]]
            return float(a[:head] @ a[:head] + tail**2 / (r + 1)), g
    raise AssertionError("no r satisfies the condition")


def ref_sq_norm(z, k):
    return ref_sq_norm_grad(z, k)[0]


def top_k_sq(g, k):
    """Squared dual norm of the k-overlap norm: sum of the k largest g_i²."""
    s = np.sort(np.asarray(g, dtype=np.float64) ** 2)[::-1]
    return float(s[:k].sum())


def tau_stvs(u, gamma):
    v = np.abs(u) / (2 * gamma)
    return gamma**2 * (np.arcsinh(v) + v * np.sqrt(v * v + 1) - v * v)


def grad_tau_stvs(z, gamma):
    s = np.arcsinh(np.abs(z) / (2 * gamma))
    return np.sign(z) * gamma**2 * (1 + np.exp(-2 * s)) / np.sqrt(z * z + 4 * gamma**2)


def random_rows(rng, n, d, zero_frac=0.2, ties=True):
    """Rows with negative, zero, tiny, large and tied coordinates."""
    Z = rng.normal(size=(n, d)) * rng.exponential(size=(n, 1)) * 3
    Z[rng.random((n, d)) < zero_frac] = 0.0
    big = rng.random((n, d)) < 0.05
    Z[big] *= 1e3
    if ties and d > 2:
        Z[::3, 1] = -Z[::3, 0]
    return Z


def kovlp_objective(u, z, gamma, k):
    return 0.5 * np.sum((u - z) ** 2) + 0.5 * gamma * ref_sq_norm(u, k)


def generic_kovlp_prox(z, gamma, k, starts):
    """argmin ½‖u - z‖² + (γ/2)‖u‖²_ovk by Powell (derivative-free: the
    objective has kinks where u_i = 0) from each start, restarted once from
    the best point."""

    def fun(u):
        return kovlp_objective(u, z, gamma, k)

    opts = {"xtol": 1e-11, "ftol": 1e-15, "maxfev": 4000}
    best = min(
        (minimize(fun, u0, method="Powell", options=opts) for u0 in starts),
        key=lambda r: r.fun,
    )
    res = minimize(fun, best.x, method="Powell", options=opts)
    return (res.x, res.fun) if res.fun < best.fun else (best.x, best.fun)


# ---------------------------------------------------------------------------
# separable proxes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.05, 1.0, 7.0])
def test_soft_threshold_is_scalar_argmin(gamma):
    rng = np.random.default_rng(0)
    Z = random_rows(rng, 4, 6)
    U = soft_threshold(Z, gamma)
    np.testing.assert_array_equal(U, np.sign(Z) * np.maximum(np.abs(Z) - gamma, 0))
    for z, u in zip(Z.ravel(), U.ravel(), strict=True):
        obj = lambda v, z=z: 0.5 * (v - z) ** 2 + gamma * abs(v)  # noqa: E731
        res = minimize_scalar(
            obj,
            bounds=(-abs(z) - 1, abs(z) + 1),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert obj(u) <= res.fun + 1e-12
        assert abs(u - res.x) < 1e-5 * (1 + abs(z))


@pytest.mark.parametrize("gamma", [0.05, 1.0, 7.0])
def test_stvs_prox_is_scalar_argmin(gamma):
    rng = np.random.default_rng(1)
    Z = random_rows(rng, 4, 6)
    U = stvs_prox(Z, gamma)
    for z, u in zip(Z.ravel(), U.ravel(), strict=True):

        def obj(v, z=z):
            return 0.5 * (v - z) ** 2 + tau_stvs(v, gamma)

        res = minimize_scalar(
            obj,
            bounds=(-abs(z) - 1, abs(z) + 1),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert obj(u) <= res.fun + 1e-9 * (1 + z * z)
        assert abs(u - res.x) < 1e-4 * (1 + abs(z))
    # closed form, exact zero inside [-γ, γ] and at 0
    expect = np.where(np.abs(Z) > gamma, Z - gamma**2 / np.where(Z == 0, 1, Z), 0.0)
    np.testing.assert_allclose(U, expect, rtol=1e-14, atol=0)
    assert stvs_prox(np.zeros((1, 3)), gamma).tolist() == [[0.0, 0.0, 0.0]]


def test_separable_prox_inverts_grad_h():
    rng = np.random.default_rng(2)
    Z = random_rows(rng, 5, 8)
    for gamma in (0.1, 2.0):
        # l1: ∇h(z) = z + γ sign(z) (0 is a valid subgradient at 0)
        np.testing.assert_allclose(
            soft_threshold(Z + gamma * np.sign(Z), gamma), Z, rtol=1e-13, atol=1e-12
        )
        # stvs: ∇h(z) = z + τ'(z); z = 0 maps to 0 -> 0
        X = Z + grad_tau_stvs(Z, gamma)
        np.testing.assert_allclose(stvs_prox(X, gamma), Z, rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------------------
# k-overlap norm and gradient
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5, 9, 40])
def test_kovlp_sq_norm_matches_sorted_formula(d):
    rng = np.random.default_rng(d)
    Z = random_rows(rng, 30, d)
    for k in sorted({1, 2, 3, d // 2 + 1, d, d + 3}):
        got = kovlp_sq_norm(Z, k)
        ref = np.array([ref_sq_norm(z, k) for z in Z])
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(kovlp_sq_norm(Z, 1), np.abs(Z).sum(1) ** 2, rtol=1e-12)
    np.testing.assert_allclose(kovlp_sq_norm(Z, d), (Z * Z).sum(1), rtol=1e-12)


def test_kovlp_sq_norm_matches_variational_form():
    # ‖z‖²_ovk = min Σ z_i²/θ_i over 0 < θ <= 1, Σθ <= k, by SLSQP
    rng = np.random.default_rng(3)
    for _ in range(6):
        d = int(rng.integers(3, 7))
        k = int(rng.integers(1, d))
        z = rng.normal(size=d) * 2
        cons = [
            {
                "type": "ineq",
                "fun": lambda th, k=k: k - th.sum(),
                "jac": lambda th: -np.ones_like(th),
            }
        ]
        res = minimize(
            lambda th, z=z: np.sum(z * z / th),
            np.full(d, k / d),
            jac=lambda th, z=z: -z * z / th**2,
            method="SLSQP",
            bounds=[(1e-9, 1.0)] * d,
            constraints=cons,
            options={"ftol": 1e-14, "maxiter": 500},
        )
        # SLSQP may stop on a line-search message a hair from the optimum
        np.testing.assert_allclose(kovlp_sq_norm(z[None], k)[0], res.fun, rtol=1e-6)


def test_kovlp_dual_norm_certificate():
    # the maximiser of <u, z> over ‖u‖_(k) <= 1 is ∇(½‖z‖²)/‖z‖: its dual
    # (top-k ℓ2) norm equals ‖z‖_ovk and <g, z> = ‖z‖²_ovk
    rng = np.random.default_rng(4)
    for d, k in [(7, 3), (50, 1), (50, 10), (300, 40)]:
        Z = random_rows(rng, 10, d, ties=False)
        G = kovlp_grad_half_sq(Z, k)
        N = kovlp_sq_norm(Z, k)
        np.testing.assert_allclose(np.einsum("ij,ij->i", G, Z), N, rtol=1e-11)
        np.testing.assert_allclose([top_k_sq(g, k) for g in G], N, rtol=1e-11)


def test_kovlp_grad_matches_finite_differences():
    rng = np.random.default_rng(5)
    h = 1e-6
    for d, k in [(4, 1), (6, 2), (8, 5), (30, 7)]:
        z = rng.normal(size=d) * rng.exponential(size=d)  # generic: no zero, no tie
        g = kovlp_grad_half_sq(z[None], k)[0]
        E = np.eye(d) * h
        fd = (kovlp_sq_norm(z + E, k) - kovlp_sq_norm(z - E, k)) / (4 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# k-overlap prox
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.1, 1.0, 5.0])
def test_kovlp_prox_is_argmin(gamma):
    rng = np.random.default_rng(int(gamma * 10))
    for d in (3, 6):
        Z = random_rows(rng, 2, d)
        Z[0, :] = rng.normal(size=d)  # one row without zeros or huge entries
        for k in (1, 2, d - 1, d):
            U = kovlp_prox(Z, gamma, k)
            for z, u in zip(Z, U, strict=True):
                starts = [z, u, rng.normal(size=d)]
                u_opt, f_opt = generic_kovlp_prox(z, gamma, k, starts)
                f_ours = kovlp_objective(u, z, gamma, k)
                scale = 1 + z @ z
                assert f_ours <= f_opt + 1e-9 * scale
                np.testing.assert_allclose(u, u_opt, atol=1e-4 * np.sqrt(scale))


def test_kovlp_prox_fenchel_young_certificate():
    # u = prox(z) iff g = (z - u)/γ ∈ ∂(½‖·‖²_ovk)(u)
    #            iff ½‖u‖²_ovk + ½‖g‖²_(k) = <g, u>   (Fenchel-Young equality)
    rng = np.random.default_rng(6)
    for d, k, gamma in [
        (5, 2, 0.3),
        (60, 1, 1.0),
        (60, 10, 0.01),
        (400, 30, 3.0),
        (2000, 100, 1e3),
        (2000, 50, 1e-3),
    ]:
        Z = random_rows(rng, 6, d)
        U = kovlp_prox(Z, gamma, k)
        G = (Z - U) / gamma
        Nu = kovlp_sq_norm(U, k)
        gap = (
            0.5 * Nu
            + 0.5 * np.array([top_k_sq(g, k) for g in G])
            - np.einsum("ij,ij->i", G, U)
        )
        scale = np.einsum("ij,ij->i", Z, Z) / gamma + 1e-300
        assert np.all(np.abs(gap) <= 1e-9 * scale), gap / scale


@pytest.mark.parametrize("gamma", [0.0, 1e-3, 0.5, 20.0, 1e6])
def test_kovlp_prox_search_matches_full_sort(gamma):
    # the bracketing search (Newton + pivots + partial sweep) against the
    # plain O(d log d) sort-and-sweep, on hard inputs: ties, many zeros,
    # heavy tails, dense breakpoints (large γ)
    rng = np.random.default_rng(7)
    rows = [
        random_rows(rng, 20, 500),
        rng.standard_t(1, size=(20, 3000)),
        np.round(rng.normal(size=(20, 800)), 1),
        rng.normal(size=(20, 3000)) * (rng.random((20, 3000)) < 0.02),
    ]
    for Z in rows:
        for k in (1, 7, 100):
            U1 = np.empty_like(Z)
            U2 = np.empty_like(Z)
            kovlp._kovlp_prox_kernel(Z, gamma, k, kovlp._NEWTON, U1)
            kovlp._kovlp_prox_kernel(Z, gamma, k, kovlp._SORT, U2)
            np.testing.assert_allclose(U1, U2, rtol=1e-10, atol=1e-12)
            N1 = np.empty(len(Z))
            N2 = np.empty(len(Z))
            kovlp._kovlp_sq_norm_kernel(Z, k, kovlp._NEWTON, N1)
            kovlp._kovlp_sq_norm_kernel(Z, k, kovlp._SORT, N2)
            np.testing.assert_allclose(N1, N2, rtol=1e-11)


def test_kovlp_prox_closed_forms():
    rng = np.random.default_rng(8)
    Z = random_rows(rng, 8, 9)
    for gamma in (0.2, 3.0):
        # k >= d: (γ/2)‖·‖² so prox = z/(1+γ); also when nnz(z) <= k
        np.testing.assert_allclose(kovlp_prox(Z, gamma, 9), Z / (1 + gamma), rtol=1e-14)
        np.testing.assert_allclose(
            kovlp_prox(Z, gamma, 20), Z / (1 + gamma), rtol=1e-14
        )
        S = Z.copy()
        S[:, 3:] = 0.0
        np.testing.assert_allclose(kovlp_prox(S, gamma, 3), S / (1 + gamma), rtol=1e-14)
        # k = 1: prox of (γ/2)‖·‖₁² is soft-thresholding at λ = γ‖u‖₁
        U = kovlp_prox(Z, gamma, 1)
        lam = gamma * np.abs(U).sum(1, keepdims=True)
        np.testing.assert_allclose(
            U, np.sign(Z) * np.maximum(np.abs(Z) - lam, 0), rtol=1e-12, atol=1e-12
        )
    assert not kovlp_prox(np.zeros((2, 4)), 1.0, 2).any()
    np.testing.assert_array_equal(kovlp_prox(Z, 0.0, 3), Z)


def test_kovlp_prox_inverts_grad_h():
    # prox(z + γ ∇½‖z‖²_ovk) = z, also with zero coordinates (0 is a valid
    # subgradient there) and ties
    rng = np.random.default_rng(9)
    for d, k in [(6, 2), (40, 1), (40, 9), (500, 50)]:
        Z = random_rows(rng, 10, d)
        for gamma in (0.05, 1.0, 30.0):
            X = Z + gamma * kovlp_grad_half_sq(Z, k)
            np.testing.assert_allclose(
                kovlp_prox(X, gamma, k), Z, rtol=1e-9, atol=1e-9 * np.abs(Z).max()
            )


# ---------------------------------------------------------------------------
# pairwise kernels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pairwise_kernels_match_double_loop(dtype):
    rng = np.random.default_rng(10)
    X = random_rows(rng, 7, 6).astype(dtype)
    Y = random_rows(rng, 5, 6).astype(dtype)
    Y[0] = X[0]  # a zero difference
    P = rng.random((7, 5)).astype(dtype)
    P[P < 0.3] = 0.0
    P[2] = 0.0
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for k in (1, 3, 6):
        M = kovlp_sq_norm_pairwise(X, Y, k)
        G = kovlp_grad_aggregate(X, Y, P, k)
        assert M.dtype == dtype and G.dtype == dtype
        Mref = np.empty((7, 5))
        Gref = np.zeros((7, 6))
        X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
        for i in range(7):
            for j in range(5):
                z = X64[i] - Y64[j]
                Mref[i, j] = ref_sq_norm(z, k)
                Gref[i] += float(P[i, j]) * kovlp_grad_half_sq(z[None], k)[0]
        np.testing.assert_allclose(M, Mref, rtol=rtol, atol=1e-30)
        np.testing.assert_allclose(G, Gref, rtol=rtol, atol=rtol * np.abs(Gref).max())
        assert not G[2].any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(bad):
    # NaN/inf used to pass through (a NaN row out); like the estimators, the
    # public kernels now refuse it and name the argument.
    Z = np.array([[1.0, bad, -2.0, 0.5], [3.0, -1.0, 0.0, 2.0]])
    Y = np.array([[3.0, -1.0, 0.0, 2.0]])
    for call in (
        lambda: soft_threshold(Z, 0.1),
        lambda: stvs_prox(Z, 0.1),
        lambda: kovlp_prox(Z, 0.5, 2),
        lambda: kovlp_grad_half_sq(Z, 2),
        lambda: kovlp_sq_norm(Z, 2),
        lambda: kovlp_sq_norm_pairwise(Z, Y, 2),
        lambda: kovlp_grad_aggregate(Z, Y, np.ones((2, 1)), 2),
    ):
        with pytest.raises(ValueError, match="NaN or infinite"):
            call()
    with pytest.raises(ValueError, match="Y contains NaN"):
        kovlp_sq_norm_pairwise(Y, Z, 2)


def test_input_validation():
    Z = np.ones((2, 3))
    with pytest.raises(ValueError, match="2-d"):
        kovlp_prox(np.ones(3), 1.0, 1)
    with pytest.raises(ValueError, match="gamma"):
        soft_threshold(Z, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        stvs_prox(Z, np.nan)
    for bad_k in (0, 1.5, True):
        with pytest.raises(ValueError, match="k must"):
            kovlp_sq_norm(Z, bad_k)
    with pytest.raises(ValueError, match="columns"):
        kovlp_sq_norm_pairwise(Z, np.ones((2, 4)), 1)
    with pytest.raises(ValueError, match="P must"):
        kovlp_grad_aggregate(Z, Z, np.ones((3, 2)), 1)


# ---------------------------------------------------------------------------
# hypothesis properties
# ---------------------------------------------------------------------------

# squares of |x| < 1e-150 underflow: map such draws to exact zeros
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False).map(
    lambda x: 0.0 if abs(x) < 1e-100 else x
)


@st.composite
def rows_and_k(draw, max_n=4, max_d=8):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    Z = draw(hnp.arrays(np.float64, (n, d), elements=finite))
    k = draw(st.integers(1, d + 1))
    return Z, k


gammas = st.sampled_from([0.0, 1e-3, 0.3, 1.0, 25.0])


@HYP
@given(rows_and_k(), gammas, st.sampled_from([np.float32, np.float64]))
def test_shapes_dtypes_no_mutation(zk, gamma, dtype):
    Z, k = zk
    Z = Z.astype(dtype)
    Z0 = Z.copy()
    Y = Z[::-1].copy()
    P = np.abs(Z[:, :1] @ Y[:, :1].T)
    n, d = Z.shape
    outs = {
        "st": (soft_threshold(Z, gamma), (n, d)),
        "stvs": (stvs_prox(Z, gamma), (n, d)),
        "prox": (kovlp_prox(Z, gamma, k), (n, d)),
        "norm": (kovlp_sq_norm(Z, k), (n,)),
        "grad": (kovlp_grad_half_sq(Z, k), (n, d)),
        "pair": (kovlp_sq_norm_pairwise(Z, Y, k), (n, n)),
        "agg": (kovlp_grad_aggregate(Z, Y, P.astype(dtype), k), (n, d)),
    }
    for name, (out, shape) in outs.items():
        assert out.shape == shape, name
        assert out.dtype == dtype, name
        assert np.all(np.isfinite(out)), name
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(Y, Z0[::-1])


@HYP
@given(rows_and_k(), gammas, st.randoms(use_true_random=False))
def test_kovlp_symmetries(zk, gamma, rnd):
    Z, k = zk
    perm = np.array(rnd.sample(range(Z.shape[1]), Z.shape[1]))
    U = kovlp_prox(Z, gamma, k)
    np.testing.assert_allclose(kovlp_prox(-Z, gamma, k), -U, rtol=0, atol=0)
    np.testing.assert_allclose(
        kovlp_prox(Z[:, perm], gamma, k),
        U[:, perm],
        rtol=1e-12,
        atol=1e-12 * (1 + np.abs(Z).max()),
    )
    G = kovlp_grad_half_sq(Z, k)
    np.testing.assert_allclose(kovlp_grad_half_sq(-Z, k), -G, rtol=0, atol=0)
    np.testing.assert_allclose(
        kovlp_grad_half_sq(Z[:, perm], k),
        G[:, perm],
        rtol=1e-12,
        atol=1e-12 * (1 + np.abs(Z).max()),
    )
    np.testing.assert_array_equal(soft_threshold(-Z, gamma), -soft_threshold(Z, gamma))
    np.testing.assert_array_equal(stvs_prox(-Z, gamma), -stvs_prox(Z, gamma))
    N = kovlp_sq_norm(Z, k)
    np.testing.assert_allclose(kovlp_sq_norm(-Z[:, perm], k), N, rtol=1e-12)


@HYP
@given(
    rows_and_k(max_n=3), st.floats(-50, 50).filter(lambda c: c == 0 or abs(c) > 1e-6)
)
def test_kovlp_norm_properties(zk, c):
    Z, k = zk
    d = Z.shape[1]
    N = np.sqrt(kovlp_sq_norm(Z, k))
    tol = 1e-10 * (1 + np.abs(Z).sum(1))
    # homogeneity
    np.testing.assert_allclose(
        np.sqrt(kovlp_sq_norm(c * Z, k)), abs(c) * N, rtol=1e-10, atol=1e-300
    )
    # triangle inequality
    W = np.roll(Z, 1, axis=0) + np.roll(Z, 1, axis=1)
    Nw = np.sqrt(kovlp_sq_norm(W, k))
    assert np.all(np.sqrt(kovlp_sq_norm(Z + W, k)) <= N + Nw + tol)
    # ℓ2 <= ovk <= ℓ1, non-increasing in k
    assert np.all(N >= np.linalg.norm(Z, axis=1) - tol)
    assert np.all(N <= np.abs(Z).sum(1) + tol)
    if k < d:
        assert np.all(np.sqrt(kovlp_sq_norm(Z, k + 1)) <= N + tol)


@HYP
@given(rows_and_k(max_n=2), st.integers(0, 2**32 - 1))
def test_kovlp_dual_norm_bound(zk, seed):
    # <u, z> <= ‖z‖_ovk for every u with top-k ℓ2 norm <= 1, with equality at
    # u = ∇(½‖z‖²)/‖z‖
    Z, k = zk
    rng = np.random.default_rng(seed)
    N = np.sqrt(kovlp_sq_norm(Z, k))
    for z, nz in zip(Z, N, strict=True):
        u = rng.normal(size=(20, z.size)) * rng.exponential(size=(20, z.size))
        u /= np.sqrt([max(top_k_sq(v, k), 1e-300) for v in u])[:, None]
        assert np.all(u @ z <= nz * (1 + 1e-10) + 1e-300)
        if nz > 0:
            g = kovlp_grad_half_sq(z[None], k)[0] / nz
            assert top_k_sq(g, k) <= 1 + 1e-10
            np.testing.assert_allclose(g @ z, nz, rtol=1e-10)


def test_kovlp_root_with_coordinates_far_below_the_rest():
    # Hypothesis found this row: a coordinate 1e-68 beside others near 570.
    # The sweep's running interior sum used to cancel to a negative value
    # once 1e-5 saturated, stepping past the root t* = 1e5 to 4e67, so the
    # gradient of the 1e-68 coordinate was itself instead of the tail mean
    # 1e-5 (and depended on the column order).
    z = np.array(
        [1.0, 454, 570, 569.8192224141582, 1e-5, 1.0, 571, 2.371877759924147e-68]
    )
    # k = 7: six coordinates saturate, the tail {1e-5, 2.4e-68} shares T = 1e-5
    expected = z.copy()
    expected[7] = 1e-5
    rng = np.random.default_rng(0)
    for _ in range(50):
        perm = rng.permutation(8)
        grad = kovlp_grad_half_sq(z[perm][None], 7)[0]
        np.testing.assert_allclose(grad, expected[perm], rtol=1e-12, atol=0)
