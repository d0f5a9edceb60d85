"""Tests of skmonge._kernels.separable: separable regularisers and pairwise kernels.

Every kernel is checked against a naive numpy float64 evaluation of the
defining formula; the polynomial logarithm against np.log.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skmonge._kernels import fastmath
from skmonge._kernels import separable as pw
from skmonge._kernels.separable import (
    KIND_L1,
    KIND_STVS,
    separable_grad_tau,
    separable_grad_tau_aggregate,
    separable_tau_pairwise,
    separable_tau_rows,
    sqeuclidean_half,
)

DTYPES = [np.float32, np.float64]
KINDS = [KIND_L1, KIND_STVS]
# relative tolerances of float32 / float64 results against float64 references
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


# ---------------------------------------------------------------------------
# naive float64 references
# ---------------------------------------------------------------------------


LD = np.longdouble  # 80-bit on x86: references ~1000x more precise than float64


def ref_tau(Z, kind, gamma):
    """Element-wise tau_1 (float64 result of an extended-precision evaluation).

    STVS as gamma^2 (asinh(u) + u / (u + sqrt(u^2 + 1))), the cancellation-free
    form of gamma^2 (asinh(u) + u sqrt(u^2 + 1) - u^2) (checked below).
    """
    Z = np.asarray(Z, dtype=np.float64).astype(LD)
    g = LD(gamma)
    if kind == KIND_L1:
        return (g * np.abs(Z)).astype(np.float64)
    u = np.abs(Z) / (2 * g)
    q = np.sqrt(u * u + 1)
    return (g * g * (np.arcsinh(u) + u / (u + q))).astype(np.float64)


def ref_tau_def(Z, gamma):
    """STVS exactly as defined, gamma^2 (asinh(u) + u sqrt(u^2+1) - u^2)."""
    u = np.abs(np.asarray(Z, dtype=np.float64)).astype(LD) / (2 * LD(gamma))
    return LD(gamma) ** 2 * (np.arcsinh(u) + u * np.sqrt(u * u + 1) - u * u)


def ref_tau_s(Z, gamma):
    """STVS in the s-form gamma^2 (s + 1/2 - 1/2 e^{-2s})."""
    s = np.arcsinh(np.abs(np.asarray(Z, dtype=np.float64)).astype(LD) / (2 * LD(gamma)))
    return LD(gamma) ** 2 * (s + LD(0.5) - LD(0.5) * np.exp(-2 * s))


def ref_grad(Z, kind, gamma):
    """Element-wise tau_1' (0 at 0); STVS in the form given in the brief."""
    Z = np.asarray(Z, dtype=np.float64)
    if kind == KIND_L1:
        return gamma * np.sign(Z)
    s = np.arcsinh(np.abs(Z) / (2 * gamma))
    return np.sign(Z) * gamma**2 * (1 + np.exp(-2 * s)) / np.sqrt(Z * Z + 4 * gamma**2)


def ref_pairwise(X, Y, kind, gamma):
    D = np.asarray(X, np.float64)[:, None, :] - np.asarray(Y, np.float64)[None, :, :]
    return ref_tau(D, kind, gamma).sum(-1)


def ref_aggregate(X, Y, P, kind, gamma):
    X, Y, P = (np.asarray(A, np.float64) for A in (X, Y, P))
    out = np.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(Y.shape[0]):
            out[i] += P[i, j] * ref_grad(X[i] - Y[j], kind, gamma)
    return out


def assert_pairwise_close(C, R, d, dtype, kind, gamma, rtol_factor=1.0):
    """|C - R| <= rtol |R|, plus d eps gamma^2 for STVS (the blocked kernel
    takes log w of a rounded w: an absolute error <= ~eps gamma^2 per
    feature, relative eps / (4 u) for u = |z| / (2 gamma) << 1)."""
    err = np.abs(C.astype(np.float64) - R)
    tol = rtol_factor * RTOL[dtype] * np.abs(R)
    if kind == KIND_STVS:
        tol = tol + d * np.finfo(dtype).eps * gamma**2
    assert (err <= tol).all(), f"max excess {np.max(err - tol):.3g}"


def _data(rng, n, m, d, dtype, scale=1.0):
    X = (scale * rng.standard_normal((n, d))).astype(dtype)
    Y = (scale * rng.standard_normal((m, d))).astype(dtype)
    return X, Y


# ---------------------------------------------------------------------------
# scalar regularisers
# ---------------------------------------------------------------------------


def test_stvs_identity_and_closed_forms():
    # gamma^2 (asinh(u) + u sqrt(u^2+1) - u^2) == gamma^2 (s + 1/2 - 1/2 e^{-2s})
    # (all in extended precision; the forms cancel differently, hence rtol)
    z = np.concatenate([-np.logspace(-4, 2, 50), [0.0], np.logspace(-4, 2, 50)])
    for gamma in (0.05, 1.0, 7.0):
        t_def, t_s = ref_tau_def(z, gamma), ref_tau_s(z, gamma)
        np.testing.assert_allclose(t_def, t_s, rtol=1e-11, atol=0)
        np.testing.assert_allclose(ref_tau(z, KIND_STVS, gamma), t_s, rtol=1e-11)
        got = np.array([pw.tau_stvs(v, gamma) for v in z])
        np.testing.assert_allclose(got, ref_tau(z, KIND_STVS, gamma), rtol=1e-15)
        # gamma e^{-s} form of the derivative equals the brief's expression
        g = np.array([pw.grad_tau_stvs(v, gamma) for v in z])
        np.testing.assert_allclose(g, ref_grad(z, KIND_STVS, gamma), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_scalar_tau_even_nonneg_zero_only_at_zero(dtype, kind):
    gamma = dtype(0.3)
    z = np.concatenate([np.logspace(-20, 20, 81), np.linspace(0.01, 5, 50)])
    z = z.astype(dtype)
    for v in z:
        t_pos = pw.tau_sep(v, kind, gamma)
        assert t_pos > 0
        assert pw.tau_sep(-v, kind, gamma) == t_pos
        assert pw.grad_tau_sep(-v, kind, gamma) == -pw.grad_tau_sep(v, kind, gamma)
    assert pw.tau_sep(dtype(0), kind, gamma) == 0
    assert pw.grad_tau_sep(dtype(0), kind, gamma) == 0
    np.testing.assert_allclose(
        [pw.tau_sep(v, kind, gamma) for v in z],
        ref_tau(z, kind, float(gamma)),
        rtol=RTOL[dtype],
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_scalar_dtype_preserved(dtype, kind):
    from numba import njit

    @njit
    def both(z, g):
        return pw.tau_sep(z, kind, g), pw.grad_tau_sep(z, kind, g)

    # numba boxes float32 as a Python float; check the compiled signature
    both(dtype(1.5), dtype(0.5))
    rtype = both.nopython_signatures[0].return_type
    assert str(rtype) == f"UniTuple({np.dtype(dtype).name} x 2)"


@pytest.mark.parametrize("kind", KINDS)
def test_grad_tau_finite_differences(kind):
    gamma = 0.7
    z = np.concatenate([-np.logspace(-2, 3, 40), np.logspace(-2, 3, 40)])
    h = 1e-6 * np.maximum(1.0, np.abs(z))
    fd = (ref_tau(z + h, kind, gamma) - ref_tau(z - h, kind, gamma)) / (2 * h)
    g = np.array([pw.grad_tau_sep(v, kind, gamma) for v in z])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_scalar_huge_arguments_finite(kind):
    # beyond the overflow guard: w = 2u, tau ~ gamma^2 (log(2u) + 1/2)
    for dtype, z in ((np.float32, 1e30), (np.float64, 1e250)):
        t = pw.tau_sep(dtype(z), kind, dtype(2.0))
        g = pw.grad_tau_sep(dtype(z), kind, dtype(2.0))
        assert np.isfinite(t) and t > 0 and np.isfinite(g) and g > 0
        np.testing.assert_allclose(t, ref_tau(np.float64(z), kind, 2.0), rtol=1e-6)


# ---------------------------------------------------------------------------
# polynomial logarithm
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_poly_against_numpy(dtype):
    fi = np.finfo(dtype)
    rng = np.random.default_rng(0)
    e = rng.uniform(np.log2(fi.smallest_subnormal), np.log2(fi.max), 20000)
    a = np.concatenate(
        [
            np.exp2(e),
            rng.uniform(0.5, 2.0, 20000),
            1 + rng.uniform(-1e-3, 1e-3, 2000),
            [fi.smallest_subnormal, fi.tiny, fi.tiny / 3, fi.max, 1.0, 2.0, 0.5],
        ]
    ).astype(dtype)
    a = a[(a > 0) & np.isfinite(a)]
    out = np.empty_like(a)
    fastmath._log_poly_array(a, out)
    ref = np.log(a.astype(np.float64))
    # absolute error relative to max(|log|, 1) ~ ulp of log near 1 as well
    err = np.abs(out - ref) / np.maximum(np.abs(ref), 1.0)
    assert err.max() < 3 * fi.eps
    nz = np.abs(ref) > 1e-3
    assert (np.abs(out - ref)[nz] / np.abs(ref[nz])).max() < 3 * fi.eps
    # special values
    sp = np.array([0.0, -1.0, np.inf, np.nan], dtype=dtype)
    o = np.empty_like(sp)
    fastmath._log_poly_array(sp, o)
    assert o[0] == -np.inf and np.isnan(o[1]) and o[2] == np.inf and np.isnan(o[3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_poly_small_and_large(dtype):
    fi = np.finfo(dtype)
    x = np.concatenate([[0.0], np.logspace(-30, 30, 3001)]).astype(dtype)
    x = x[np.isfinite(x)]
    out = np.empty_like(x)
    fastmath._log1p_poly_array(x, out)
    ref = np.log1p(x.astype(np.float64))
    err = np.abs(out - ref) / np.maximum(ref, np.finfo(np.float64).tiny)
    assert out[0] == 0
    assert err[1:].max() < 3 * fi.eps


# ---------------------------------------------------------------------------
# array kernels against naive numpy
# ---------------------------------------------------------------------------

SHAPES = [(1, 1, 1), (1, 7, 5), (6, 1, 33), (5, 9, 40), (37, 11, 13), (33, 3, 2049)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_tau_pairwise_matches_naive(dtype, kind, shape):
    n, m, d = shape
    rng = np.random.default_rng(n * 1000 + m * 10 + d)
    X, Y = _data(rng, n, m, d, dtype, scale=2.0)
    gamma = 0.6
    C = separable_tau_pairwise(X, Y, kind, gamma)
    assert C.dtype == dtype and C.shape == (n, m)
    assert_pairwise_close(C, ref_pairwise(X, Y, kind, gamma), d, dtype, kind, gamma)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_tau_pairwise_wide_range_and_chunks(dtype, kind):
    # odd chunk remainders (481 = 2 x 240 + 1), zeros, tiny and large values
    rng = np.random.default_rng(3)
    n, m, d = 5, 4, 1443
    scale = np.exp(rng.uniform(-12, 6, size=d))
    X = (rng.standard_normal((n, d)) * scale).astype(dtype)
    Y = (rng.standard_normal((m, d)) * scale).astype(dtype)
    Y[0] = X[0]  # a zero row of differences
    Y[1, ::3] = X[1, ::3]
    for gamma in (1e-3, 0.5, 50.0):
        C = separable_tau_pairwise(X, Y, kind, gamma)
        R = ref_pairwise(X, Y, kind, gamma)
        assert_pairwise_close(C, R, d, dtype, kind, gamma, rtol_factor=4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("density", [1.0, 0.02])
def test_cost_pairwise_matches_naive(dtype, kind, density):
    # ½‖z‖² + τ(z): dense ℓ1 takes the one-pass kernel, the other cases BLAS
    # plus the τ kernel; offsets make ½‖x‖² + ½‖y‖² - x·y cancel badly
    rng = np.random.default_rng(11)
    n, m, d = 37, 29, 2501  # a feature chunk of 2048 and a remainder
    X, Y = _data(rng, n, m, d, dtype)
    Y[rng.random((m, d)) > density] = 0
    X += dtype(30.0)
    Y += dtype(30.0) * (Y != 0)
    for gamma in (1e-3, 0.7, 20.0):
        C = pw.separable_cost_pairwise(X, Y, kind, gamma)
        assert C.dtype == dtype and C.shape == (n, m)
        D = X.astype(np.float64)[:, None, :] - Y.astype(np.float64)[None, :, :]
        R = 0.5 * (D * D).sum(-1) + ref_pairwise(X, Y, kind, gamma)
        if kind == KIND_L1 and density == 1.0:
            # no cancellation: within float rounding of the naive sum
            assert_pairwise_close(C, R, d, dtype, kind, gamma, rtol_factor=4)
        else:
            # BLAS: rounding of the norms, eps (‖x‖² + ‖y‖²) / 2 per entry
            sq = 0.5 * (
                (X.astype(np.float64) ** 2).sum(1)[:, None]
                + (Y.astype(np.float64) ** 2).sum(1)[None, :]
            )
            tol = 8 * np.finfo(dtype).eps * sq + 4 * RTOL[dtype] * R
            assert (np.abs(C - R) <= tol + d * np.finfo(dtype).eps * gamma**2).all()
    # empty sides
    assert pw.separable_cost_pairwise(X[:0], Y, kind, 1.0).shape == (0, m)
    assert pw.separable_cost_pairwise(X, Y[:0], kind, 1.0).shape == (n, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_tau_pairwise_constant_shift_no_overflow(dtype, kind):
    # all differences equal: the mantissa product would be m^d if the chunking
    # did not bound it (worst case for overflow)
    d = 5000
    X = np.zeros((2, d), dtype=dtype)
    for shift in (1.4142 * 2.0, 0.7072 * 2.0, 3.0, 1e-3, 1e4):
        Y = np.full((3, d), shift, dtype=dtype)
        C = separable_tau_pairwise(X, Y, kind, 1.0)
        R = ref_pairwise(X, Y, kind, 1.0)
        assert np.isfinite(C).all()
        assert_pairwise_close(C, R, d, dtype, kind, 1.0, rtol_factor=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_tau_rows_and_grad_match_naive(dtype, kind):
    rng = np.random.default_rng(5)
    for n, d in ((1, 1), (7, 33), (4, 2500)):
        Z = (2 * rng.standard_normal((n, d))).astype(dtype)
        Z[0, 0] = 0
        t = separable_tau_rows(Z, kind, 0.8)
        assert t.dtype == dtype and t.shape == (n,)
        np.testing.assert_allclose(t, ref_tau(Z, kind, 0.8).sum(1), rtol=RTOL[dtype])
        g = separable_grad_tau(Z, kind, 0.8)
        assert g.dtype == dtype and g.shape == (n, d)
        assert g[0, 0] == 0
        np.testing.assert_allclose(g, ref_grad(Z, kind, 0.8), rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sqeuclidean_half_matches_naive(dtype):
    rng = np.random.default_rng(7)
    for n, m, d in ((1, 1, 1), (5, 9, 13), (20, 1, 40)):
        X, Y = _data(rng, n, m, d, dtype)
        C = sqeuclidean_half(X, Y)
        D = X.astype(np.float64)[:, None] - Y.astype(np.float64)[None]
        R = 0.5 * (D * D).sum(-1)
        assert C.dtype == dtype and C.shape == (n, m)
        np.testing.assert_allclose(C, R, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * d)
    # identical points: clipped at exactly >= 0
    X = rng.standard_normal((4, 30)).astype(dtype) * 100
    assert (sqeuclidean_half(X, X) >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 300), (17, 6, 37), (5, 1, 20)])
def test_aggregate_prune0_equals_naive(dtype, kind, shape):
    n, m, d = shape
    rng = np.random.default_rng(11 + n + m + d)
    X, Y = _data(rng, n, m, d, dtype)
    L = rng.standard_normal((n, m)) * 3
    P = np.exp(L - L.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    P = P.astype(dtype)
    G = separable_grad_tau_aggregate(X, Y, P, kind, 0.9, prune=0.0)
    assert G.dtype == dtype and G.shape == (n, d)
    R = ref_aggregate(X, Y, P, kind, 0.9)
    np.testing.assert_allclose(G, R, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 0.9)


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_pruning_bound(kind):
    rng = np.random.default_rng(12)
    n, m, d, gamma, prune = 6, 50, 30, 1.3, 1e-3
    X, Y = _data(rng, n, m, d, np.float64)
    P = rng.random((n, m)) ** 8  # many small entries
    P[:, 0] = 0  # exact zeros
    P /= P.sum(1, keepdims=True)
    G0 = separable_grad_tau_aggregate(X, Y, P, kind, gamma, prune=0.0)
    G = separable_grad_tau_aggregate(X, Y, P, kind, gamma, prune=prune)
    kept = P > prune * P.max(1, keepdims=True)
    assert (~kept).sum() > n  # pruning active
    R = ref_aggregate(X, Y, np.where(kept, P, 0), kind, gamma)
    np.testing.assert_allclose(G, R, rtol=1e-12, atol=1e-14)
    bound = m * prune * P.max(1) * gamma
    assert (np.abs(G - G0).max(1) <= bound + 1e-15).all()


# ---------------------------------------------------------------------------
# API behaviour and properties
# ---------------------------------------------------------------------------


def test_inputs_not_modified_and_validation():
    rng = np.random.default_rng(13)
    X = np.asfortranarray(rng.standard_normal((6, 9)))  # non-contiguous input
    Y = rng.standard_normal((4, 9)).astype(np.float32)
    P = np.full((6, 4), 0.25)
    copies = [A.copy() for A in (X, Y, P)]
    separable_tau_pairwise(X, Y, KIND_STVS, 1.0)
    separable_grad_tau_aggregate(X, Y, P, KIND_L1, 1.0)
    separable_tau_rows(X, KIND_STVS, 1.0)
    separable_grad_tau(X, KIND_L1, 1.0)
    sqeuclidean_half(X, Y)
    for A, B in zip((X, Y, P), copies, strict=True):
        np.testing.assert_array_equal(A, B)
    # mixed dtypes: common type
    assert separable_tau_pairwise(X, Y, KIND_L1, 1.0).dtype == np.float64
    # integer input becomes float64
    assert separable_tau_rows(np.ones((2, 3), int), KIND_L1, 1.0).dtype == np.float64
    with pytest.raises(ValueError, match="2-d"):
        separable_tau_pairwise(X[0], Y, KIND_L1, 1.0)
    with pytest.raises(ValueError, match="features"):
        separable_tau_pairwise(X, Y[:, :3], KIND_L1, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        separable_tau_rows(X, KIND_L1, 0.0)
    with pytest.raises(ValueError, match="kind"):
        separable_grad_tau(X, 7, 1.0)
    with pytest.raises(ValueError, match="P must have shape"):
        separable_grad_tau_aggregate(X, Y, P.T, KIND_L1, 1.0)
    with pytest.raises(ValueError, match="prune"):
        separable_grad_tau_aggregate(X, Y, P, KIND_L1, 1.0, prune=-1)


def test_empty_inputs():
    X = np.zeros((0, 5))
    Y = np.ones((3, 5), np.float32)
    assert separable_tau_pairwise(X, Y.astype(np.float64), KIND_L1, 1.0).shape == (0, 3)
    assert separable_tau_pairwise(Y, Y[:0], KIND_STVS, 1.0).shape == (3, 0)
    assert separable_tau_rows(X, KIND_STVS, 1.0).shape == (0,)


_finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=32)


@settings(max_examples=25, deadline=None)
@given(
    X=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=9),
        elements=_finite,
    ),
    m=st.integers(1, 6),
    kind=st.sampled_from(KINDS),
    gamma=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
)
def test_property_symmetry_translation(X, m, kind, gamma, seed):
    rng = np.random.default_rng(seed)
    Y = np.round(rng.standard_normal((m, X.shape[1])) * 10, 2)
    C = separable_tau_pairwise(X, Y, kind, gamma)
    R = ref_pairwise(X, Y, kind, gamma)
    np.testing.assert_allclose(C, R, rtol=1e-12, atol=1e-300)
    # tau is even: C(X, Y) == C(Y, X)^T
    np.testing.assert_allclose(
        C, separable_tau_pairwise(Y, X, kind, gamma).T, rtol=1e-13
    )
    # translation invariance (exact shift by a power of two keeps differences)
    c = np.exp2(rng.integers(-3, 4, size=X.shape[1])).astype(np.float64)
    Xs, Ys = X + c, Y + c
    Rs = ref_pairwise(Xs, Ys, kind, gamma)
    np.testing.assert_allclose(
        separable_tau_pairwise(Xs, Ys, kind, gamma), Rs, rtol=1e-12, atol=1e-300
    )
    np.testing.assert_allclose(Rs, R, rtol=1e-9, atol=1e-9)
    # row sums of the diagonal case agree with tau_rows
    Z = X - Y[0]
    np.testing.assert_allclose(
        separable_tau_rows(Z, kind, gamma),
        separable_tau_pairwise(X, Y[:1], kind, gamma)[:, 0],
        rtol=1e-12,
        atol=1e-300,
    )


# ---------------------------------------------------------------------------
# sparse (CSR) target clouds
# ---------------------------------------------------------------------------


def _sparse_rows(rng, n, d, density):
    A = rng.normal(size=(n, d)) * 2
    A[rng.random((n, d)) > density] = 0.0
    return A


def _sparse_clouds_with_edge_cases(rng, shape, densities, dtype):
    """Sparse ``X`` (n x d) and ``Y`` (m x d) with an empty row and an empty
    feature column in each, and ties x_0t = y_5t != 0 on the support of y_5."""
    (n, m, d), (density_x, density_y) = shape, densities
    X = _sparse_rows(rng, n, d, density_x)
    Y = _sparse_rows(rng, m, d, density_y)
    X[3, :] = 0.0
    Y[4, :] = 0.0
    Y[:, 7] = 0.0
    X[:, 9] = 0.0
    Y[5, :4] = [1.5, -2.0, 0.7, 3.0]
    nz = np.flatnonzero(Y[5])
    X[0, nz] = Y[5, nz]
    return X.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize("density_y", [0.2, 0.38])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_aggregate_on_sparse_clouds_equals_naive(kind, dtype, density_y):
    # below COLUMN_AGGREGATE_DENSITY the aggregate visits the non-zeros of Y
    # feature by feature; ties x_it = y_jt != 0, signs, empty rows and
    # columns, and exact zero weights must all come out as the naive sum.
    # At 38 % most columns hold more than the 4 non-zeros that the ℓ1 kernel
    # combines per pass, plus a remainder; 41 features span 2 tiles of 32.
    rng = np.random.default_rng(5)
    X, Y = _sparse_clouds_with_edge_cases(rng, (23, 17, 41), (0.25, density_y), dtype)
    assert np.count_nonzero(Y) < pw.COLUMN_AGGREGATE_DENSITY * Y.size
    P = rng.dirichlet(np.ones(17), size=23)
    P[1, :5] = 0.0
    P = P.astype(dtype)
    R = ref_aggregate(X, Y, P, kind, 0.7)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for G in (
        pw.separable_grad_tau_aggregate(X, Y, P, kind, 0.7),
        pw.separable_grad_tau_aggregate_csr(X, sp.csr_matrix(Y), P, kind, 0.7),
    ):
        assert G.dtype == dtype and G.flags.c_contiguous
        np.testing.assert_allclose(G, R, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("density", [1.0, 0.02])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_parts_match_naive(dtype, density):
    # Q = ½‖x - y‖² and L = ‖x - y‖₁: one pass of the 2 x 2 kernel for dense
    # clouds (odd sizes: clamped rows and columns), BLAS + the column kernel
    # below TAU_COLUMN_DENSITY; both equal the single-part kernels
    rng = np.random.default_rng(9)
    X = _sparse_rows(rng, 37, 2100, density).astype(dtype)
    Y = _sparse_rows(rng, 23, 2100, density).astype(dtype)
    Q, L = pw.separable_linear_parts(X, Y, KIND_L1)
    assert Q.dtype == L.dtype == dtype and Q.shape == L.shape == (37, 23)
    D = X.astype(np.float64)[:, None, :] - Y.astype(np.float64)[None, :, :]
    np.testing.assert_allclose(Q, 0.5 * (D * D).sum(-1), rtol=RTOL[dtype])
    assert_pairwise_close(
        L, ref_pairwise(X, Y, KIND_L1, 1.0), 2100, dtype, KIND_L1, 1.0
    )
    np.testing.assert_allclose(
        Q, pw.separable_quadratic_pairwise(X, Y, KIND_L1), rtol=RTOL[dtype]
    )
    np.testing.assert_allclose(
        L, separable_tau_pairwise(X, Y, KIND_L1, 1.0), rtol=RTOL[dtype]
    )
    with pytest.raises(ValueError, match="linear in gamma"):
        pw.separable_linear_parts(X, Y, KIND_STVS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_gradient_on_the_nonzeros_equals_naive(kind, dtype):
    # the one-pass ∇f = x r - P Y + sum_j P_ij τ'(x - y_j) over the non-zeros
    # of Y (map evaluation's kernel), with columns of up to 29 non-zeros
    rng = np.random.default_rng(6)
    X, Y = _sparse_clouds_with_edge_cases(rng, (37, 29, 35), (0.3, 0.35), dtype)
    P = rng.dirichlet(np.ones(29), size=37).astype(dtype)
    P[2, 3:9] = 0.0
    X64, Y64, P64 = (A.astype(np.float64) for A in (X, Y, P))
    R = X64 * P64.sum(1)[:, None] - P64 @ Y64 + ref_aggregate(X, Y, P, kind, 0.6)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for cloud in (Y, sp.csr_matrix(Y)):
        G = pw.separable_grad_h_aggregate_sparse(X, cloud, P, kind, 0.6)
        assert G.dtype == dtype and G.flags.c_contiguous
        np.testing.assert_allclose(G, R, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_tau_matrix_on_sparse_clouds_equals_naive(kind, dtype):
    # below TAU_COLUMN_DENSITY only pairs of non-zeros cost a τ evaluation;
    # the result must be the naive sum, for a dense or a CSR cloud
    rng = np.random.default_rng(6)
    X, Y = _sparse_clouds_with_edge_cases(rng, (19, 23, 53), (0.15, 0.03), dtype)
    assert np.count_nonzero(Y) < pw.TAU_COLUMN_DENSITY[kind] * Y.size
    R = ref_pairwise(X, Y, kind, 0.8)
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    for C in (
        pw.separable_tau_pairwise(X, Y, kind, 0.8),
        pw.separable_tau_pairwise_csr(X, sp.csr_matrix(Y), kind, 0.8),
    ):
        assert C.dtype == dtype
        np.testing.assert_allclose(C, R, rtol=rtol, atol=rtol)
    # added to a given array, as the cost matrix does
    out = np.ones((19, 23), dtype=dtype)
    pw.separable_tau_pairwise(X, Y, kind, 0.8, out=out)
    np.testing.assert_allclose(out, R + 1.0, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kind", [pw.KIND_L1, pw.KIND_STVS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_kernels_equal_dense_kernels(kind, dtype):
    rng = np.random.default_rng(11)
    X = _sparse_rows(rng, 9, 37, 0.3).astype(dtype)
    Y = _sparse_rows(rng, 6, 37, 0.3).astype(dtype)
    Y[2] = 0.0  # an empty row
    P = rng.dirichlet(np.ones(6), size=9).astype(dtype)
    P[0, 3] = 0.0
    Ys = sp.csr_matrix(Y)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    C = pw.separable_tau_pairwise_csr(X, Ys, kind, 0.6)
    G = pw.separable_grad_tau_aggregate_csr(X, Ys, P, kind, 0.6)
    assert C.dtype == dtype and G.dtype == dtype
    np.testing.assert_allclose(
        C, pw.separable_tau_pairwise(X, Y, kind, 0.6), rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        G,
        pw.separable_grad_tau_aggregate(X, Y, P, kind, 0.6, prune=0.0),
        rtol=rtol,
        atol=rtol,
    )
    np.testing.assert_allclose(
        pw.sqeuclidean_half(X, Ys), pw.sqeuclidean_half(X, Y), rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_cloud_in_dense_blocks_equals_naive(kind, dtype, monkeypatch):
    # A CSR cloud on the dense route goes through the dense kernels on
    # densified blocks of its rows; blocks of 3 rows (budget of 3 rows of
    # 53 features) cover 23 rows unevenly, so a misplaced block shows
    rng = np.random.default_rng(13)
    X, Y = _sparse_clouds_with_edge_cases(rng, (19, 23, 53), (0.5, 0.7), dtype)
    Ys = sp.csr_matrix(Y)
    assert pw.tau_route_for_density(Ys.nnz / Y.size, kind) == "dense"
    itemsize = np.dtype(dtype).itemsize
    monkeypatch.setattr(pw, "_DENSE_BLOCK_BYTES", 3 * 53 * itemsize)
    blocks = list(pw.dense_row_blocks(Ys, dtype))
    assert [b.shape[0] for _, b in blocks] == [3] * 7 + [2]
    np.testing.assert_array_equal(np.vstack([b for _, b in blocks]), Y)
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    out = np.ones((19, 23), dtype=dtype)
    pw.separable_tau_pairwise_csr(X, Ys, kind, 0.8, out=out)
    np.testing.assert_allclose(
        out, ref_pairwise(X, Y, kind, 0.8) + 1.0, rtol=rtol, atol=rtol
    )
    diff = X.astype(np.float64)[:, None, :] - Y.astype(np.float64)[None, :, :]
    Q = 0.5 * np.einsum("ijk,ijk->ij", diff, diff)
    half = pw.sqeuclidean_half(X, Ys)
    assert half.dtype == dtype and half.flags.c_contiguous
    np.testing.assert_allclose(half, Q, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_csr_kernels_handle_duplicates_without_touching_the_input():
    rng = np.random.default_rng(12)
    X = _sparse_rows(rng, 4, 10, 0.5)
    # duplicate entries (0, 3) and unsorted indices in row 1
    data = np.array([0.5, 1.0, -2.0, 1.5, 0.25])
    indices = np.array([3, 3, 7, 9, 2])
    Ys = sp.csr_matrix((data, indices, np.array([0, 3, 5])), shape=(2, 10))
    assert not Ys.has_canonical_format
    saved = (Ys.data.copy(), Ys.indices.copy())
    Y = Ys.toarray()  # sums the duplicates
    assert Y[0, 3] == 1.5
    np.testing.assert_allclose(
        pw.separable_tau_pairwise_csr(X, Ys, pw.KIND_STVS, 0.4),
        pw.separable_tau_pairwise(X, Y, pw.KIND_STVS, 0.4),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(Ys.data, saved[0])
    np.testing.assert_array_equal(Ys.indices, saved[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_tau_pairwise_adds_into_out_in_place(dtype, kind):
    # the cost matrix adds τ to its quadratic part in place: the kernels must
    # add to (not overwrite) out, in out's dtype, over blocks of 32 rows
    rng = np.random.default_rng(7)
    X, Y = _data(rng, 70, 9, 300, dtype, scale=2.0)
    Y[::2] = np.where(rng.random(Y[::2].shape) < 0.7, 0, Y[::2])
    base = rng.standard_normal((70, 9)).astype(dtype)
    tau = separable_tau_pairwise(X, Y, kind, 0.6)
    for add in (
        lambda out: separable_tau_pairwise(X, Y, kind, 0.6, out=out),
        lambda out: pw.separable_tau_pairwise_csr(
            X, sp.csr_matrix(Y), kind, 0.6, out=out
        ),
    ):
        out = base.copy()
        result = add(out)
        assert result is out and out.dtype == dtype
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(
            out, base + tau, rtol=rtol, atol=rtol * np.abs(tau).max()
        )
    for bad in (
        base.astype(np.float64 if dtype == np.float32 else np.float32),
        base[:, :5],
        np.asfortranarray(base),
    ):
        with pytest.raises(ValueError, match="out must be"):
            separable_tau_pairwise(X, Y, kind, 0.6, out=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unchecked_kernels_equal_checked_ones(dtype):
    # check_input=False (the cost classes, after validating once) must give
    # what the validating entry points give on the same valid inputs
    rng = np.random.default_rng(12)
    X = rng.normal(size=(9, 50)).astype(dtype)
    Y = rng.normal(size=(11, 50)).astype(dtype)
    Y[rng.random(Y.shape) < 0.7] = 0.0
    for cloud in (Y, sp.csr_matrix(Y)):
        checked = pw.sqeuclidean_half(X, cloud)
        unchecked = pw.sqeuclidean_half(X, cloud, check_input=False)
        assert unchecked.dtype == dtype
        np.testing.assert_array_equal(unchecked, checked)
    for kind in (pw.KIND_L1, pw.KIND_STVS):
        checked = pw.separable_tau_pairwise(X, Y, kind, 0.7)
        out = np.zeros((9, 11), dtype=dtype)
        pw.separable_tau_pairwise(X, Y, kind, 0.7, out=out, check_input=False)
        np.testing.assert_array_equal(out, checked)


@pytest.mark.parametrize("kind", KINDS)
def test_density_choice_on_sampled_rows_matches_the_full_count(kind):
    # the pairwise τ kernels choose their variant from the density of at most
    # 64 evenly spaced rows of the cloud (reproducible: the same rows)
    rng = np.random.default_rng(5)
    thresholds = [pw.TAU_COLUMN_DENSITY[kind], pw.TAU_TARGET_DENSITY.get(kind)]
    for threshold in filter(None, thresholds):
        for m in (10, 64, 500):
            for density in (0.5 * threshold, min(0.95, 1.6 * threshold)):
                Y = rng.standard_normal((m, 4000)) * (rng.random((m, 4000)) < density)
                full = pw.tau_route_for_density(np.count_nonzero(Y) / Y.size, kind)
                assert pw._tau_route(Y, kind) == full
                assert pw._tau_route(Y, kind) == pw._tau_route(Y, kind)


def test_tau_routes_by_density():
    # ℓ1: pairs of non-zeros or dense; STVS also over the targets' non-zeros
    route = pw.tau_route_for_density
    assert route(0.01, pw.KIND_L1) == "pairs"
    assert route(0.3, pw.KIND_L1) == "dense"
    assert route(0.01, pw.KIND_STVS) == "pairs"
    assert route(0.3, pw.KIND_STVS) == "targets"
    assert route(0.9, pw.KIND_STVS) == "dense"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stvs_over_target_nonzeros_equals_naive(dtype):
    # 37 rows (a task of 32 and one of 5, padded), 530 features (tiles of
    # 240, 240 and 50), an empty row and column in each cloud and ties: the
    # targets kernel, chosen at 30 % non-zeros, against the float64 sum
    rng = np.random.default_rng(21)
    X, Y = _sparse_clouds_with_edge_cases(rng, (37, 29, 530), (0.4, 0.3), dtype)
    assert pw._tau_route(Y, pw.KIND_STVS) == "targets"
    R = ref_pairwise(X, Y, pw.KIND_STVS, 0.8)
    for C in (
        pw.separable_tau_pairwise(X, Y, pw.KIND_STVS, 0.8),
        pw.separable_tau_pairwise_csr(X, sp.csr_matrix(Y), pw.KIND_STVS, 0.8),
    ):
        assert C.dtype == dtype
        assert_pairwise_close(C, R, 530, dtype, pw.KIND_STVS, 0.8)
    # added to a given array, as the cost matrix does
    out = np.ones((37, 29), dtype=dtype)
    pw.separable_tau_pairwise(X, Y, pw.KIND_STVS, 0.8, out=out)
    assert_pairwise_close(out, R + 1.0, 530, dtype, pw.KIND_STVS, 0.8)
    # every route gives the same matrix on the same clouds
    for route in ("dense", "pairs", "targets"):
        out = np.zeros((37, 29), dtype=dtype)
        pw._add_tau_pairwise(X, Y, pw.KIND_STVS, 0.8, out, route)
        assert_pairwise_close(out, R, 530, dtype, pw.KIND_STVS, 0.8)
    with pytest.raises(ValueError, match="only implemented for STVS"):
        pw._add_tau_pairwise(X, Y, pw.KIND_L1, 0.8, out, "targets")
    # the whole cost, ½‖x - y‖² summed in the same pass
    diff = X.astype(np.float64)[:, None, :] - Y.astype(np.float64)[None, :, :]
    Q = 0.5 * np.einsum("ijk,ijk->ij", diff, diff)
    C = pw.separable_cost_pairwise(X, Y, pw.KIND_STVS, 0.8)
    assert C.dtype == dtype and C.flags.c_contiguous
    assert_pairwise_close(C, R + Q, 530, dtype, pw.KIND_STVS, 0.8)


def _cell_like(rng, n, d, dense_features, dtype):
    """Rows like cells: ``dense_features`` columns non-zero in 90 % of rows,
    the others in 3 %; signed values, an empty row, an empty column."""
    A = _sparse_rows(rng, n, d, 0.03)
    A[:, :dense_features] = _sparse_rows(rng, n, dense_features, 0.9)
    A[2, :] = 0.0
    A[:, dense_features + 5] = 0.0
    return A.astype(dtype)


@pytest.mark.parametrize("tile", [None, 50])
@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_split_by_feature_equals_naive(dtype, tile, monkeypatch):
    # Cell-like clouds (7 % non-zero, so not the sparse route): the features
    # non-zero in most rows go through the dense micro-kernel, the others
    # over their pairs of non-zeros (in tiles of 50 targets: 50 + 50 + 30);
    # every ℓ1 matrix must equal the naive sum, with ties x = y != 0 on the
    # pair features and the CSC arrays passed or not.
    if tile is not None:
        monkeypatch.setattr(pw, "_PAIRS_TILE", tile)
    rng = np.random.default_rng(21)
    n, m, d, dense_features = 160, 130, 600, 30
    X = _cell_like(rng, n, d, dense_features, dtype)
    Y = _cell_like(rng, m, d, dense_features, dtype)
    nz = np.flatnonzero(Y[7, dense_features:]) + dense_features
    X[0, nz] = Y[7, nz]
    assert pw._tau_route(Y, KIND_L1) == "dense"
    _, dense, pairs = pw._l1_split(X, Y)
    np.testing.assert_array_equal(dense, np.arange(dense_features))
    assert pairs.size == d - dense_features
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    Q = np.empty((n, m))
    L = np.empty((n, m))
    for i in range(n):
        Z = X64[i] - Y64
        Q[i] = 0.5 * (Z * Z).sum(1)
        L[i] = np.abs(Z).sum(1)
    gamma = 0.7
    rtol = RTOL[dtype] if dtype == np.float32 else 1e-12
    for known in (None, pw._dense_to_csc(Y)):
        C = pw.separable_cost_pairwise(X, Y, KIND_L1, gamma, columns=known)
        np.testing.assert_allclose(C, Q + gamma * L, rtol=rtol)
    # chunks of rows against one cloud share its dense block and sums
    columns = pw.sparse_columns(Y)
    for rows in (slice(0, 90), slice(90, n)):
        C = pw.separable_cost_pairwise(X[rows], Y, KIND_L1, gamma, columns=columns)
        np.testing.assert_allclose(C, (Q + gamma * L)[rows], rtol=rtol)
    assert len(columns.split_parts) == 3  # the tiles, one block, one sum
    np.testing.assert_allclose(
        pw.separable_quadratic_pairwise(X, Y, KIND_L1), Q, rtol=rtol
    )
    np.testing.assert_allclose(
        separable_tau_pairwise(X, Y, KIND_L1, gamma), gamma * L, rtol=rtol
    )
    Qs, Ls = pw.separable_linear_parts(X, Y, KIND_L1)
    np.testing.assert_allclose(Qs, Q, rtol=rtol)
    np.testing.assert_allclose(Ls, L, rtol=rtol)


def test_l1_split_chosen_by_predicted_work():
    # Dense clouds and a few rows against an unindexed cloud (the CSC arrays
    # would cost more than they save) stay on the dense kernel; given those
    # arrays, the same few rows split.
    rng = np.random.default_rng(22)
    X, Y = _data(rng, 64, 64, 200, np.float32)
    assert pw._l1_split(X, Y) is None
    assert pw._l1_split(X, Y, pw._dense_to_csc(Y)) is None
    X = _cell_like(rng, 8, 4000, 30, np.float32)
    Y = _cell_like(rng, 300, 4000, 30, np.float32)
    assert pw._l1_split(X, Y) is None
    assert pw._l1_split(X, Y, pw._dense_to_csc(Y)) is not None
