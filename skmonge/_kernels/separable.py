"""Numba kernels for the separable regularisers tau, their proxes and pairwise costs.

Single source of truth for the separable regularisers of the elastic costs
``h(z) = 1/2 ||z||^2 + tau(z)``, ``tau(z) = sum_t tau_1(z_t)`` (gamma included):

* ``KIND_L1``: tau_1(z) = gamma |z|, tau_1'(z) = gamma sign(z).
* ``KIND_STVS``: tau_1(z) = gamma^2 (s + 1/2 - 1/2 e^{-2 s}), s = asinh(u),
  u = |z| / (2 gamma); equivalently gamma^2 (asinh(u) + u sqrt(u^2 + 1) - u^2).
  tau_1'(z) = sign(z) gamma e^{-s}
  = sign(z) gamma^2 (1 + e^{-2s}) / sqrt(z^2 + 4 gamma^2)
  = sign(z) 2 gamma^2 / (|z| + sqrt(z^2 + 4 gamma^2)).

Both behave like gamma |z| at 0 (a kink); the subgradient 0 is used there.
Everything is evaluated through w = e^s = u + sqrt(u^2 + 1) >= 1, free of
cancellation: s = log w, u sqrt(u^2 + 1) - u^2 = u / w, gamma e^{-s} = gamma / w.

The scalar functions ``tau_l1``, ``grad_tau_l1``, ``tau_stvs``,
``grad_tau_stvs``, ``tau_sep`` and ``grad_tau_sep`` are jitted; they take a
float32 or float64 ``z`` and a ``gamma`` of the same type and return that
type (call them from numba code). The array functions take 2-d arrays
(float32/float64 kept, anything else becomes float64), never modify their
inputs and return the (common) input dtype.

Proximal operators (``∇h* = prox_τ``): :func:`soft_threshold` (ℓ1) and
:func:`stvs_prox` (STVS); they compute in float64 and return the input dtype.

Implementation notes (the *why*):

* numba's ``math.log`` is a scalar libm call that keeps loops scalar, so
  ``_log_poly`` / ``_log1p_poly`` (:mod:`skmonge._kernels.fastmath`) are
  polynomial logarithms (exponent split on the bit pattern, polynomial in
  s = f / (2 + f)); they vectorise.
* The pairwise STVS kernel needs no log per element at all:
  sum_t log w_t = log 2 sum_t k_t + log prod_t m_t with w_t = 2^k_t m_t,
  m_t in [sqrt(1/2), sqrt(2)); one log per pair and chunk of <= 480 features.
* ``error_model='numpy'`` drops numba's division-by-zero checks, which keep
  divisions scalar. Float constants go through ``_tc``: a float64 literal
  would promote float32 arithmetic to float64.
* Inner loops index 0-based chunk views: with a variable start, numba's
  negative-index wraparound turns the loads into gathers.
* ``fastmath`` is limited to re-association/contraction (to vectorise
  reductions); no no-NaN/no-Inf assumptions.
"""

import math

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from .._arrays import as_float_2d, common_float_dtype
from .fastmath import _FM_SCALAR, _LN2, _log1p_poly, _log_poly, _log_split, _tc

__all__ = [
    "KIND_L1",
    "KIND_STVS",
    "tau_l1",
    "grad_tau_l1",
    "tau_stvs",
    "grad_tau_stvs",
    "tau_sep",
    "grad_tau_sep",
    "separable_tau_rows",
    "separable_grad_tau",
    "separable_tau_pairwise",
    "separable_cost_pairwise",
    "separable_quadratic_pairwise",
    "separable_linear_parts",
    "stvs_cost_over_target_nonzeros",
    "separable_grad_tau_aggregate",
    "separable_tau_pairwise_csr",
    "separable_grad_tau_aggregate_csr",
    "separable_grad_h_aggregate_sparse",
    "sparse_columns",
    "sqeuclidean_half",
    "soft_threshold",
    "stvs_prox",
    "prox_in_place",
]

KIND_L1 = 0
KIND_STVS = 1

# Re-association lets LLVM vectorise reductions, contraction allows FMA.
_FM_KERNEL = {"reassoc", "contract", "nsz", "arcp"}

# For u >= 2^60, sqrt(u^2 + 1) rounds to u in both precisions, and u^2 would
# overflow float32 from 2^64 on: use w = u + sqrt(u^2 + 1) = 2 u there.
_BIG_U = 2.0**60

# Block sizes. L1 pairwise: 32 rows x chunk of X stay in L2 (256 KiB), the
# two y-row chunks of the 4 x 2 micro-kernel in L1.
_BR = 32
# rows per parallel task of the pairwise kernels, for callers that size
# chunks of rows to whole rounds of tasks
ROW_BLOCK = _BR
_BT_L1_F32 = 2048
_BT_L1_F64 = 1024
# STVS pairwise: a product of <= 240 mantissas in [sqrt(1/2), sqrt(2)) lies
# in [2^-120, 2^120], safe in float32.
_STVS_STREAM = 240
# aggregate: rows per task, feature chunk (the 4 y-chunks of a column group
# and the task's x/out chunks stay in L1/L2 while all rows of the task use them)
_BR_AGG = 16
_BT_AGG = 256


# ---------------------------------------------------------------------------
# scalar regularisers (single source of truth)
# ---------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _stvs_w(u):
    """w = u + sqrt(u^2 + 1) = exp(asinh(u)) for u >= 0 (overflow-safe)."""
    if u < _tc(u, _BIG_U, _BIG_U):
        return u + np.sqrt(u * u + _tc(u, 1.0, 1.0))
    return u + u


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def tau_l1(z, gamma):
    """tau_1(z) = gamma |z|."""
    return gamma * abs(z)


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def grad_tau_l1(z, gamma):
    """tau_1'(z) = gamma sign(z), with the subgradient 0 at z = 0."""
    if z > 0:
        return gamma
    if z < 0:
        return -gamma
    return z - z  # 0 of z's type (also keeps NaN)


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def tau_stvs(z, gamma):
    """tau_1(z) = gamma^2 (asinh(u) + u sqrt(u^2 + 1) - u^2),  u = |z| / (2 gamma).

    Evaluated as gamma^2 (log1p(u + u^2 / (1 + sqrt(u^2 + 1))) + u / w),
    w = u + sqrt(u^2 + 1): both terms are free of cancellation.
    """
    # u = |z| / (2 gamma); the reciprocal is hoisted out of callers' loops
    u = abs(z) * (_tc(z, 0.5, 0.5) / gamma)
    one = _tc(z, 1.0, 1.0)
    if u < _tc(z, _BIG_U, _BIG_U):
        q = np.sqrt(u * u + one)
        wm1 = u + u * u / (one + q)  # w - 1 without cancellation
        r = u / (u + q)
    else:
        wm1 = u + u
        r = _tc(z, 0.5, 0.5)
    return gamma * gamma * (_log1p_poly(wm1) + r)


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def grad_tau_stvs(z, gamma):
    """tau_1'(z) = sign(z) gamma / w, w = u + sqrt(u^2 + 1), u = |z| / (2 gamma).

    Equals sign(z) 2 gamma^2 / (|z| + sqrt(z^2 + 4 gamma^2)). Derivation:
    d/dz gamma^2 (s + 1/2 - 1/2 e^{-2s}) with ds/dz = 1 / (2 gamma cosh s) is
    gamma (1 + e^{-2s}) / (2 cosh s) = gamma e^{-s} = gamma / w. Subgradient 0
    at z = 0.
    """
    g = gamma / _stvs_w(abs(z) * (_tc(z, 0.5, 0.5) / gamma))
    if z > 0:
        return g
    if z < 0:
        return -g
    return z - z


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def tau_sep(z, kind, gamma):
    """tau_1(z) of regulariser ``kind`` (KIND_L1 or KIND_STVS)."""
    if kind == KIND_L1:
        return tau_l1(z, gamma)
    return tau_stvs(z, gamma)


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def grad_tau_sep(z, kind, gamma):
    """tau_1'(z) of regulariser ``kind`` (KIND_L1 or KIND_STVS)."""
    if kind == KIND_L1:
        return grad_tau_l1(z, gamma)
    return grad_tau_stvs(z, gamma)


# ---------------------------------------------------------------------------
# row-wise kernels
# ---------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _tau_rows_kernel(Z, kind, gamma, out):
    n, d = Z.shape
    for i in prange(n):
        z = Z[i]
        tot = 0.0  # float64 across chunks, dtype within a chunk
        for t0 in range(0, d, _BT_L1_F32):
            t1 = min(d, t0 + _BT_L1_F32)
            zc = z[t0:t1]  # 0-based view: no wraparound checks, SIMD loads
            s = gamma - gamma
            if kind == KIND_L1:
                for t in range(zc.size):
                    s += abs(zc[t])
                tot += gamma * s
            else:
                for t in range(zc.size):
                    s += tau_stvs(zc[t], gamma)
                tot += s
        out[i] = tot


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _grad_tau_kernel(Z, kind, gamma, out):
    n, d = Z.shape
    for i in prange(n):
        z = Z[i]
        o = out[i]
        if kind == KIND_L1:
            for t in range(d):
                o[t] = grad_tau_l1(z[t], gamma)
        else:
            for t in range(d):
                o[t] = grad_tau_stvs(z[t], gamma)


# ---------------------------------------------------------------------------
# pairwise kernels
# ---------------------------------------------------------------------------


@njit(inline="always", cache=True, fastmath=_FM_KERNEL)
def _l1_term(a, b, h, g):
    """|z| (h |z| + g) for z = a - b: γ|z| (h = 0) or ½z² + γ|z| (h = ½)."""
    z = abs(a - b)
    return z * (h * z + g)


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _pairwise_l1_kernel(X, Y, bt, half, scale, out):
    """out[i, j] += sum_t |z| (half |z| + scale), z = x_it - y_jt, blocked
    32 rows x bt features.

    ``half = 0`` gives ``scale`` times the ℓ1 distance; ``half = 1/2`` and
    ``scale = γ`` the whole elastic-ℓ1 cost ½z² + γ|z| in the same pass (one
    FMA more per term), without the BLAS expansion ½‖x‖² + ½‖y‖² - x·y and
    its cancellation.
    4 x 2 register micro-kernel: 6 loads feed 8 accumulations.
    Rows/columns past the end are clamped duplicates whose sums are dropped.
    Each block of rows sums its feature chunks in a float64 buffer of its
    own (32 x m), then adds it to ``out`` (in ``out``'s dtype): no n x m
    float64 array.
    """
    n, d = X.shape
    m = Y.shape[0]
    nblk = (n + _BR - 1) // _BR
    for b in prange(nblk):
        i0 = b * _BR
        i1 = min(n, i0 + _BR)
        acc = np.zeros((i1 - i0, m), dtype=np.float64)
        for t0 in range(0, d, bt):
            t1 = min(d, t0 + bt)
            for j in range(0, m, 2):
                jb = min(j + 1, m - 1)
                # chunk views: indexing from 0 lets LLVM drop numba's
                # negative-index wraparound, which otherwise turns the loads
                # into gathers
                y0 = Y[j, t0:t1]
                y1 = Y[jb, t0:t1]
                for i in range(i0, i1, 4):
                    x0 = X[i, t0:t1]
                    x1 = X[min(i + 1, i1 - 1), t0:t1]
                    x2 = X[min(i + 2, i1 - 1), t0:t1]
                    x3 = X[min(i + 3, i1 - 1), t0:t1]
                    zero = _tc(X, 0.0, 0.0)
                    h = _tc(X, half, half)
                    g = _tc(X, scale, scale)
                    s00 = zero
                    s01 = zero
                    s10 = zero
                    s11 = zero
                    s20 = zero
                    s21 = zero
                    s30 = zero
                    s31 = zero
                    for t in range(t1 - t0):
                        a0 = x0[t]
                        a1 = x1[t]
                        a2 = x2[t]
                        a3 = x3[t]
                        b0 = y0[t]
                        b1 = y1[t]
                        s00 += _l1_term(a0, b0, h, g)
                        s01 += _l1_term(a0, b1, h, g)
                        s10 += _l1_term(a1, b0, h, g)
                        s11 += _l1_term(a1, b1, h, g)
                        s20 += _l1_term(a2, b0, h, g)
                        s21 += _l1_term(a2, b1, h, g)
                        s30 += _l1_term(a3, b0, h, g)
                        s31 += _l1_term(a3, b1, h, g)
                    two = jb > j
                    r = i - i0
                    acc[r, j] += s00
                    if two:
                        acc[r, jb] += s01
                    if i + 1 < i1:
                        acc[r + 1, j] += s10
                        if two:
                            acc[r + 1, jb] += s11
                    if i + 2 < i1:
                        acc[r + 2, j] += s20
                        if two:
                            acc[r + 2, jb] += s21
                    if i + 3 < i1:
                        acc[r + 3, j] += s30
                        if two:
                            acc[r + 3, jb] += s31
        for r in range(i1 - i0):
            for j in range(m):
                out[i0 + r, j] += acc[r, j]


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _pairwise_l1_parts_kernel(X, Y, bt, Q, L):
    """Q[i, j] += ½ sum_t z², L[i, j] += sum_t |z|, z = x_it - y_jt, in one
    pass: the two sums of ``_pairwise_l1_kernel`` (half = ½, scale = 0 and
    half = 0, scale = 1), with the same terms in the same blocks, from one
    set of loads.

    2 x 2 register micro-kernel (8 accumulations from 4 loads: a 4 x 2 one
    would need 16 accumulators, more than the SIMD registers), blocked
    32 rows x bt features with float64 block buffers, as in
    ``_pairwise_l1_kernel``.
    """
    n, d = X.shape
    m = Y.shape[0]
    nblk = (n + _BR - 1) // _BR
    for b in prange(nblk):
        i0 = b * _BR
        i1 = min(n, i0 + _BR)
        acc_q = np.zeros((i1 - i0, m), dtype=np.float64)
        acc_l = np.zeros((i1 - i0, m), dtype=np.float64)
        for t0 in range(0, d, bt):
            t1 = min(d, t0 + bt)
            for j in range(0, m, 2):
                jb = min(j + 1, m - 1)
                y0 = Y[j, t0:t1]
                y1 = Y[jb, t0:t1]
                for i in range(i0, i1, 2):
                    x0 = X[i, t0:t1]
                    x1 = X[min(i + 1, i1 - 1), t0:t1]
                    zero = _tc(X, 0.0, 0.0)
                    h = _tc(X, 0.5, 0.5)
                    q00 = zero
                    q01 = zero
                    q10 = zero
                    q11 = zero
                    l00 = zero
                    l01 = zero
                    l10 = zero
                    l11 = zero
                    for t in range(t1 - t0):
                        z00 = abs(x0[t] - y0[t])
                        z01 = abs(x0[t] - y1[t])
                        z10 = abs(x1[t] - y0[t])
                        z11 = abs(x1[t] - y1[t])
                        q00 += z00 * (h * z00)
                        q01 += z01 * (h * z01)
                        q10 += z10 * (h * z10)
                        q11 += z11 * (h * z11)
                        l00 += z00
                        l01 += z01
                        l10 += z10
                        l11 += z11
                    two = jb > j
                    r = i - i0
                    acc_q[r, j] += q00
                    acc_l[r, j] += l00
                    if two:
                        acc_q[r, jb] += q01
                        acc_l[r, jb] += l01
                    if i + 1 < i1:
                        acc_q[r + 1, j] += q10
                        acc_l[r + 1, j] += l10
                        if two:
                            acc_q[r + 1, jb] += q11
                            acc_l[r + 1, jb] += l11
        for r in range(i1 - i0):
            for j in range(m):
                Q[i0 + r, j] += acc_q[r, j]
                L[i0 + r, j] += acc_l[r, j]


@njit(cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _stvs_split_terms(a, b, c, one, big):
    """Terms of tau_stvs(a - b) / gamma^2 = u / w + k log 2 + log m.

    u = c |a - b|, w = u + sqrt(u^2 + 1) = 2^k m, m in [sqrt(1/2), sqrt(2)).
    Accuracy: log w inherits the rounding of w, an absolute error <= ~eps,
    i.e. a relative error ~eps / (4 u) of the term when u << 1 (the scalar
    ``tau_stvs`` avoids this with a log1p, at the price of two more
    divisions; an FMA-based correction here cost 30 % of the throughput).
    """
    u = abs(a - b) * c
    w = u + np.sqrt(u * u + one) if u < big else u + u
    k, m = _log_split(w)
    return u / w, k, m


@njit(inline="always", cache=True)
def _stvs_constants(X, gamma):
    """Constants of the pairwise STVS kernels in X's dtype: 1 / (2 gamma)
    (u = c |z|), 1, 0, the bound of _stvs_split_terms' big-u branch, log 2."""
    return (
        _tc(X, 0.5, 0.5) / gamma,
        _tc(X, 1.0, 1.0),
        _tc(X, 0.0, 0.0),
        _tc(X, _BIG_U, _BIG_U),
        _tc(X, _LN2, _LN2),
    )


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _pairwise_stvs_kernel(X, Y, gamma, scale, out):
    """out[i, j] += scale * sum_t tau_stvs(x_it - y_jt) / gamma^2, blocked.

    No log per element: sum_t log w_t = log 2 sum_t k_t + log prod_t m_t. A
    feature chunk (<= 2 x 240) is read as two interleaved streams of <= 240
    terms whose mantissa products (in X's dtype, |log2| <= 120) cannot
    overflow; both are combined in float64 and one log is taken per chunk.
    Two streams halve the per-stream reduction overhead that dominates
    shorter loops.
    """
    n, d = X.shape
    m = Y.shape[0]
    c, one, zero, big, ln2 = _stvs_constants(X, gamma)
    nblk = (n + _BR - 1) // _BR
    for b in prange(nblk):
        i0 = b * _BR
        i1 = min(n, i0 + _BR)
        # float64 sums of the block's rows (see _pairwise_l1_kernel)
        acc = np.zeros((i1 - i0, m), dtype=np.float64)
        for t0 in range(0, d, 2 * _STVS_STREAM):
            t1 = min(d, t0 + 2 * _STVS_STREAM)
            h = (t1 - t0) // 2
            tm = t0 + h
            for j in range(m):
                ya = Y[j, t0:tm]
                yb = Y[j, tm : tm + h]
                ylast = Y[j, t1 - 1]
                for i in range(i0, i1):
                    xa = X[i, t0:tm]
                    xb = X[i, tm : tm + h]
                    pa = one
                    pb = one
                    sg = zero
                    for t in range(h):
                        ra, ka, ma = _stvs_split_terms(xa[t], ya[t], c, one, big)
                        rb, kb, mb = _stvs_split_terms(xb[t], yb[t], c, one, big)
                        sg += (ra + rb) + (ka + kb) * ln2
                        pa *= ma
                        pb *= mb
                    prod = np.float64(pa) * np.float64(pb)
                    if t1 - t0 > 2 * h:  # odd chunk length: one more term
                        r1, k1, m1 = _stvs_split_terms(X[i, t1 - 1], ylast, c, one, big)
                        sg += r1 + k1 * ln2
                        prod *= np.float64(m1)
                    acc[i - i0, j] += np.float64(sg) + _log_poly(prod)
        for r in range(i1 - i0):
            for j in range(m):
                out[i0 + r, j] += scale * acc[r, j]


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _aggregate_kernel(X, Y, P, kind, gamma, prune, out):
    """out[i] = sum_{j kept} P_ij tau'(x_i - y_j), kept: P_ij > prune max_j P_ij.

    Parallel over blocks of rows. Within a block the columns kept by any row
    are visited in groups of four; each group's y-chunks (4 x 256 features)
    stay in L1 while all rows of the block use them (a row's weight is 0
    where it pruned the column, and the row is skipped if all four are 0).
    """
    n, d = X.shape
    m = Y.shape[0]
    zero = _tc(X, 0.0, 0.0)
    nblk = (n + _BR_AGG - 1) // _BR_AGG
    for b in prange(nblk):
        i0 = b * _BR_AGG
        i1 = min(n, i0 + _BR_AGG)
        nb = i1 - i0
        # thresholds, union of kept columns, and the block's weights on it
        thr = np.empty(nb, dtype=X.dtype)
        for r in range(nb):
            pmax = zero
            for j in range(m):
                pmax = max(pmax, P[i0 + r, j])
            thr[r] = prune * pmax
        cols = np.empty(m, dtype=np.intp)
        nc = 0
        for j in range(m):
            keep = False
            for r in range(nb):
                if P[i0 + r, j] > thr[r]:
                    keep = True
            if keep:
                cols[nc] = j
                nc += 1
        W = np.zeros((nb, nc + 3), dtype=X.dtype)  # +3: padding of last group
        for r in range(nb):
            for c in range(nc):
                v = P[i0 + r, cols[c]]
                if v > thr[r]:
                    W[r, c] = v
        for t0 in range(0, d, _BT_AGG):
            t1 = min(d, t0 + _BT_AGG)
            for r in range(nb):
                out[i0 + r, t0:t1] = zero
            for c in range(0, nc, 4):
                ya = Y[cols[c], t0:t1]
                yb = Y[cols[min(c + 1, nc - 1)], t0:t1]
                yc = Y[cols[min(c + 2, nc - 1)], t0:t1]
                yd = Y[cols[min(c + 3, nc - 1)], t0:t1]
                for r in range(nb):
                    wa = W[r, c]
                    wb = W[r, c + 1]
                    wc = W[r, c + 2]
                    wd = W[r, c + 3]
                    if wa == 0 and wb == 0 and wc == 0 and wd == 0:
                        continue
                    x = X[i0 + r, t0:t1]
                    o = out[i0 + r, t0:t1]
                    if kind == KIND_L1:
                        # w gamma sign(z) as two masked adds (cheaper than
                        # the nested selects of grad_tau_l1)
                        ga = wa * gamma
                        gb = wb * gamma
                        gc = wc * gamma
                        gd = wd * gamma
                        for t in range(t1 - t0):
                            xt = x[t]
                            za = xt - ya[t]
                            zb = xt - yb[t]
                            zc = xt - yc[t]
                            zd = xt - yd[t]
                            o[t] += (
                                ((ga if za > 0 else zero) - (ga if za < 0 else zero))
                                + ((gb if zb > 0 else zero) - (gb if zb < 0 else zero))
                            ) + (
                                ((gc if zc > 0 else zero) - (gc if zc < 0 else zero))
                                + ((gd if zd > 0 else zero) - (gd if zd < 0 else zero))
                            )
                    else:
                        for t in range(t1 - t0):
                            xt = x[t]
                            o[t] += (
                                wa * grad_tau_stvs(xt - ya[t], gamma)
                                + wb * grad_tau_stvs(xt - yb[t], gamma)
                            ) + (
                                wc * grad_tau_stvs(xt - yc[t], gamma)
                                + wd * grad_tau_stvs(xt - yd[t], gamma)
                            )


# ---------------------------------------------------------------------------
# Python wrappers
# ---------------------------------------------------------------------------


def _check_kind_gamma(kind, gamma):
    if kind not in (KIND_L1, KIND_STVS):
        raise ValueError(f"kind must be KIND_L1 (0) or KIND_STVS (1), got {kind!r}")
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")


def _check_same_d(X, Y):
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got {X.shape[1]} "
            f"and {Y.shape[1]}"
        )


def separable_tau_rows(Z, kind, gamma):
    """Row-wise regulariser value ``tau(z_i) = sum_t tau_1(z_it)``.

    Parameters
    ----------
    Z : array-like of shape (n, d)
        Displacements (float32 or float64; other types become float64).
    kind : int
        ``KIND_L1`` or ``KIND_STVS``.
    gamma : float
        Regularisation strength (> 0), included in tau.

    Returns
    -------
    ndarray of shape (n,), dtype of ``Z``.
    """
    Z = as_float_2d(Z, "Z")
    _check_kind_gamma(kind, gamma)
    out = np.empty(Z.shape[0], dtype=np.float64)
    _tau_rows_kernel(Z, int(kind), Z.dtype.type(gamma), out)
    return out.astype(Z.dtype, copy=False)


def separable_grad_tau(Z, kind, gamma):
    """Element-wise (sub)gradient ``[tau_1'(z_it)]`` (0 at z = 0).

    Parameters
    ----------
    Z : array-like of shape (n, d)
    kind : int
        ``KIND_L1`` or ``KIND_STVS``.
    gamma : float
        Regularisation strength (> 0).

    Returns
    -------
    ndarray of shape (n, d), dtype of ``Z``.
    """
    Z = as_float_2d(Z, "Z")
    _check_kind_gamma(kind, gamma)
    out = np.empty_like(Z)
    _grad_tau_kernel(Z, int(kind), Z.dtype.type(gamma), out)
    return out


def _dense_pair(X, Y, check_input):
    """Dense ``X`` and ``Y`` validated and coerced to their common float
    dtype, or as given when ``check_input`` is False (already validated)."""
    if not check_input:
        return X, Y
    dt = common_float_dtype(X, Y)
    X, Y = as_float_2d(X, "X", dt), as_float_2d(Y, "Y", dt)
    _check_same_d(X, Y)
    return X, Y


def sqeuclidean_half(X, Y, check_input=True):
    """Half squared Euclidean distances ``C_ij = 1/2 ||x_i - y_j||^2``.

    Computed with BLAS as ``1/2 ||x_i||^2 + 1/2 ||y_j||^2 - <x_i, y_j>`` and
    clipped at 0 (the expansion can round slightly negative). Its absolute
    error is ~eps (||x_i||^2 + ||y_j||^2), so for nearby points far from the
    origin the relative error is large (most visible in float32).

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like or sparse matrix of shape (m, d)
    check_input : bool, default=True
        Validate and coerce ``X`` and ``Y``. ``False`` is for callers that
        already have (the cost classes): C-contiguous finite ``X`` and ``Y``
        (or CSR ``Y``) of one float dtype and the same width.

    Returns
    -------
    ndarray of shape (n, m), common float dtype of X and Y.
    """
    if sp.issparse(Y):
        if check_input:
            X, Y, _ = _dense_and_csr(X, Y)
        dt = X.dtype
        half = dt.type(0.5)
        xx = half * np.einsum("ij,ij->i", X, X)
        yy = half * np.asarray(Y.multiply(Y).sum(axis=1), dtype=dt).ravel()
        # BLAS on dense blocks of Y rows: scipy's sparse product is serial
        # and slower than the GEMM whenever Y is not very sparse
        C = np.empty((X.shape[0], Y.shape[0]), dtype=dt)
        for rows, block in dense_row_blocks(Y, dt):
            C[:, rows] = X @ block.T
    else:
        X, Y = _dense_pair(X, Y, check_input)
        dt = X.dtype
        half = dt.type(0.5)
        xx = half * np.einsum("ij,ij->i", X, X)
        yy = half * np.einsum("ij,ij->i", Y, Y)
        C = X @ Y.T
    C *= -1
    C += xx[:, None]
    C += yy[None, :]
    np.maximum(C, 0, out=C)
    return C


def separable_tau_pairwise(X, Y, kind, gamma, out=None, check_input=True):
    """Pairwise regulariser ``C_ij = sum_t tau_1(x_it - y_jt)``.

    Parallel over blocks of 32 rows of ``X``, blocked over features. Sums run
    in the input dtype within a feature chunk (<= 2048 terms for l1, <= 480
    for STVS) and are accumulated across chunks in float64, in a buffer of
    32 x m per block of rows, so float32 results are within ~1e-7 relative
    of float64 ones also for d = 34,000, without any n x m float64 array.
    STVS takes log w of the rounded w = u + sqrt(u^2 + 1): absolute error
    <= ~eps gamma^2 per feature (a relative ~eps / (4 u) on features with
    u = |z| / (2 gamma) << 1).

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d)
    kind : int
        ``KIND_L1`` or ``KIND_STVS``.
    gamma : float
        Regularisation strength (> 0).
    out : ndarray of shape (n, m), default=None
        C-contiguous array of the common float dtype to *add* the regulariser
        to (the cost matrix adds it to its quadratic part in place, so that
        only one n x m array is allocated); ``None`` allocates zeros.
    check_input : bool, default=True
        Validate and coerce ``X`` and ``Y``, as in :func:`sqeuclidean_half`.

    Returns
    -------
    ndarray of shape (n, m), common float dtype of X and Y (``out`` when
    given).
    """
    X, Y = _dense_pair(X, Y, check_input)
    _check_kind_gamma(kind, gamma)
    out = _check_out(out, (X.shape[0], Y.shape[0]), X.dtype)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return out
    return _add_tau_pairwise(X, Y, kind, gamma, out, _tau_route(Y, kind))


def _tau_route(Y, kind):
    """How the pairwise τ against the dense cloud ``Y`` is summed: over its
    pairs of non-zeros (``"pairs"``), over the non-zeros of ``Y`` for every
    row of ``X`` (``"targets"``, STVS) or densely (``"dense"``); see
    :func:`tau_route_for_density`.

    The density is estimated on at most ``_DENSITY_ROWS`` evenly spaced rows
    (the same rows for the same cloud, so the choice is reproducible): the
    map and the fit call this once per chunk of rows against the same cloud,
    and a full count of 600 x 34,000 cells took 10 ms each time.
    """
    if Y.shape[0] > _DENSITY_ROWS:
        Y = Y[np.linspace(0, Y.shape[0] - 1, _DENSITY_ROWS).astype(np.intp)]
    return tau_route_for_density(np.count_nonzero(Y) / max(1, Y.size), kind)


def tau_route_for_density(density, kind):
    """``"pairs"`` below ``TAU_COLUMN_DENSITY[kind]`` non-zeros in the target
    cloud, ``"targets"`` below ``TAU_TARGET_DENSITY[kind]``, else
    ``"dense"``."""
    if density < TAU_COLUMN_DENSITY[kind]:
        return "pairs"
    if density < TAU_TARGET_DENSITY.get(kind, 0.0):
        return "targets"
    return "dense"


_DENSITY_ROWS = 64


def _add_tau_pairwise(X, Y, kind, gamma, out, route, columns=None):
    """``out += [τ(x_i - y_j)]`` for validated dense inputs (``route``:
    :func:`_tau_route` of ``Y``; ``columns``: its CSC arrays, if known)."""
    if route != "dense":
        if columns is None:
            columns = _dense_to_csc(Y)
        return _tau_pairwise_sparse_target(
            X, columns, Y.shape[0], kind, gamma, out, route
        )
    if kind == KIND_L1:
        _l1_pass(X, Y, 0.0, float(gamma), out, columns)
    else:
        _pairwise_stvs_kernel(X, Y, X.dtype.type(gamma), float(gamma) ** 2, out)
    return out


def _l1_chunk(dtype):
    return _BT_L1_F32 if dtype == np.float32 else _BT_L1_F64


def separable_cost_pairwise(X, Y, kind, gamma, check_input=True, columns=None):
    r"""Pairwise elastic cost :math:`C_{ij} = ½‖x_i - y_j‖^2 + \sum_t
    τ_1(x_{it} - y_{jt})` of dense clouds.

    For ℓ1 on a cloud with at least ``TAU_COLUMN_DENSITY`` non-zeros, both
    terms are summed in one pass, :math:`\sum_t |z_t|(½|z_t| + γ)`: on
    1,000 x 1,000 harmony cells with 9,015 genes (float32) this took 0.22 s
    against 0.38 s for BLAS plus the ℓ1 kernel, with a tenth of their
    rounding error (no cancellation in ½‖x‖² + ½‖y‖² - x·y). Features
    that few pairs of rows share as non-zeros are summed over those pairs
    only (see ``L1_PAIR_COST``): 2,000 x 2,000 harmony cells in 0.47 s
    against 1.73 s densely, the same run. STVS on a
    cloud on the ``"targets"`` route (:func:`tau_route_for_density`) sums
    both terms in one pass over the non-zeros of ``Y`` likewise. Otherwise
    the quadratic part goes through :func:`sqeuclidean_half` and the
    regulariser is added to it in place (:func:`separable_tau_pairwise`).

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d)
    kind : int
        ``KIND_L1`` or ``KIND_STVS``.
    gamma : float
        Regularisation strength (> 0).
    check_input : bool, default=True
        Validate and coerce ``X`` and ``Y``, as in :func:`sqeuclidean_half`.
    columns : tuple of arrays, default=None
        The CSC arrays of ``Y`` (:func:`sparse_columns`), for callers that
        evaluate many chunks of rows against the same cloud: building them
        is two branchy passes over ``Y`` (0.16 s for 600 x 34,000 cells at
        29 % non-zeros), which chunks of 128 rows would otherwise repeat.

    Returns
    -------
    ndarray of shape (n, m), common float dtype of X and Y.
    """
    X, Y = _dense_pair(X, Y, check_input)
    _check_kind_gamma(kind, gamma)
    route = _tau_route(Y, kind) if Y.size else "dense"
    if route != "dense" and columns is None:
        columns = _dense_to_csc(Y)
    if _one_pass(X, Y, kind, route):
        out = np.zeros((X.shape[0], Y.shape[0]), dtype=X.dtype)
        return _l1_pass(X, Y, 0.5, float(gamma), out, columns)
    if route == "targets" and X.shape[0] > 0:
        return stvs_cost_over_target_nonzeros(X, columns, Y.shape[0], gamma)
    C = sqeuclidean_half(X, Y, check_input=False)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return C
    return _add_tau_pairwise(X, Y, kind, gamma, C, route, columns)


def _one_pass(X, Y, kind, route):
    """Whether :func:`separable_cost_pairwise` sums the whole cost in the ℓ1
    micro-kernel (dense ℓ1 clouds that are not empty)."""
    return kind == KIND_L1 and route == "dense" and X.shape[0] > 0 and Y.shape[0] > 0


# ℓ1 cost matrices of sparse cells, split by feature. The dense micro-kernel
# costs the same for every feature of a pair of rows; over the pairs of
# non-zeros (_l1_pairs_kernel) a feature costs about L1_PAIR_COST times that
# per pair of non-zeros (a scattered add against a SIMD term), and nothing
# for the other pairs. The features of Y non-zero in at least a fraction
# ``cut`` of its rows are summed densely and the others over their pairs,
# with ``cut`` among _L1_DENSE_CUTS the one of least predicted work
# |dense| + L1_PAIR_COST sum_{t sparse} p_X(t) p_Y(t) (in dense-kernel
# pair-features); a cut by Y alone lets chunks of rows against one cloud
# share its dense block (SparseColumns). Harmony cells (6.3 % non-zero,
# 9,015 genes): about 1,000 genes dense, 2,000 x 2,000 cells in 0.47 s
# against 1.73 s for the dense kernel alone.
L1_PAIR_COST = 60.0
_L1_DENSE_CUTS = (0.6, 0.4, 0.25, 0.15, 0.1, 0.06)
# The split is taken when it predicts at most this fraction of the dense
# kernel's work (the copies of the dense features cost a little more than
# the model counts).
_L1_SPLIT_WORK = 0.7
# Building the CSC arrays of a dense Y costs about this many dense-kernel
# pair-features per element of Y (3.7 ns against 0.05 ns): a caller that
# evaluates chunks of rows passes them, built once; a single call of a few
# rows against a large Y stays dense.
_CSC_BUILD_COST = 75.0


class SparseColumns(tuple):
    """The CSC arrays ``(indptr, rows, values)`` of a cloud (unpacked as a
    3-tuple), with the cloud's parts that the ℓ1 split reuses across chunks
    of rows (``split_parts``: its tile pointers, its dense-feature block by
    cut, and the sums of ``h`` over its other features by cut and ``h``)."""

    def __new__(cls, indptr, rows, values):
        columns = super().__new__(cls, (indptr, rows, values))
        columns.split_parts = {}
        return columns

    def __reduce__(self):
        # the parts are a cache: not pickled
        return (SparseColumns, tuple(self))


@njit(parallel=True, cache=True, error_model="numpy")
def _column_counts(X):
    """Non-zeros per column of dense ``X`` (row blocks in parallel)."""
    n, d = X.shape
    nblk = (n + 255) // 256
    counts = np.zeros((nblk, d), dtype=np.int64)
    for b in prange(nblk):
        for i in range(b * 256, min(n, b * 256 + 256)):
            for t in range(d):
                if X[i, t] != 0:
                    counts[b, t] += 1
    return counts.sum(axis=0)


@njit(cache=True, error_model="numpy")
def _l1_column_sums(indptr, rows, values, features, half, scale, m):
    """hy[j] = sum over ``features`` t of |y_jt| (half |y_jt| + scale), from
    the CSC arrays of Y."""
    hy = np.zeros(m)
    for t in features:
        for k in range(indptr[t], indptr[t + 1]):
            v = abs(np.float64(values[k]))
            hy[rows[k]] += v * (half * v + scale)
    return hy


# Targets per tile of the pairs kernel: its 4096 float64 accumulators (32 KiB)
# stay in L1 while the row's non-zeros scatter into them. One accumulator per
# target spilled to L2 at 20,000 targets and beyond (64 rows x 40,000
# harmony cells: 0.6 s, against 1.2 s for the dense kernel).
_PAIRS_TILE = 4096


@njit(cache=True, error_model="numpy")
def _tile_pointers(indptr, rows, m, tile):
    """``ptr[b, t]``: the first non-zero of feature t (CSC arrays, rows sorted
    within each feature) whose row is at least ``b * tile``; the last row of
    ``ptr`` is ``indptr[1:]``."""
    d = indptr.shape[0] - 1
    n_tiles = (m + tile - 1) // tile
    ptr = np.empty((n_tiles + 1, d), dtype=np.int64)
    for t in range(d):
        k = indptr[t]
        for b in range(n_tiles):
            while k < indptr[t + 1] and rows[k] < b * tile:
                k += 1
            ptr[b, t] = k
        ptr[n_tiles, t] = indptr[t + 1]
    return ptr


@njit(parallel=True, cache=True, error_model="numpy")
def _l1_pairs_kernel(X, features, tile_ptr, tile, rows, values, half, scale, hy, out):
    r"""out[i, j] += sum over ``features`` t of h(x_it - y_jt),
    h(z) = |z| (half |z| + scale), visiting only the pairs of non-zeros.

    .. math:: h(x - y) = h(x) + h(y) + \big[h(x - y) - h(x) - h(y)\big],

    where the bracket vanishes unless x y ≠ 0 and equals
    -2 half x y + scale (|x - y| - |x| - |y|) (no cancellation of squares).
    ``hy[j]`` is the sum of h(y_jt) (:func:`_l1_column_sums`); ``Y`` is given
    by its CSC rows and values and the tile pointers of
    :func:`_tile_pointers`. Rows in parallel; each gathers its non-zeros
    among ``features`` once, then sums tile by tile of ``tile`` targets in
    float64 accumulators before one add to ``out``.
    """
    n = X.shape[0]
    m = out.shape[1]
    n_tiles = tile_ptr.shape[0] - 1
    for i in prange(n):
        acc = np.empty(tile)
        nz = np.empty(features.shape[0], dtype=np.int64)
        nx = np.empty(features.shape[0])
        count = 0
        hx = 0.0
        for t in features:
            x = np.float64(X[i, t])
            if x != 0:
                ax = abs(x)
                hx += ax * (half * ax + scale)
                nz[count] = t
                nx[count] = x
                count += 1
        for b in range(n_tiles):
            j0 = b * tile
            j1 = min(m, j0 + tile)
            acc[: j1 - j0] = 0.0
            for q in range(count):
                t = nz[q]
                x = nx[q]
                ax = abs(x)
                for k in range(tile_ptr[b, t], tile_ptr[b + 1, t]):
                    v = np.float64(values[k])
                    acc[rows[k] - j0] += (
                        scale * (abs(x - v) - ax - abs(v)) - 2.0 * half * x * v
                    )
            for j in range(j0, j1):
                out[i, j] += acc[j - j0] + hx + hy[j]


def _l1_split(X, Y, columns=None):
    """``(cut, dense_features, pair_features)`` of the ℓ1 split (see
    ``L1_PAIR_COST``), or None when the dense kernel alone is predicted to be
    about as fast. ``columns``: the CSC arrays of ``Y``, when known."""
    n, d = X.shape
    m = Y.shape[0]
    if n == 0 or m == 0 or d == 0:
        return None
    y_counts = np.diff(columns[0]) if columns is not None else _column_counts(Y)
    y_share = y_counts / m
    pair_share = (_column_counts(X) / n) * y_share
    best = None
    for cut in _L1_DENSE_CUTS:
        dense = y_share >= cut
        work = np.count_nonzero(dense) + L1_PAIR_COST * pair_share[~dense].sum()
        if best is None or work < best[0]:
            best = (work, cut, dense)
    work, cut, dense = best
    if columns is None:
        work += _CSC_BUILD_COST * d / n
    if work > _L1_SPLIT_WORK * d:
        return None
    return cut, np.flatnonzero(dense), np.flatnonzero(~dense)


def _l1_pass(X, Y, half, scale, out, columns=None):
    """``out[i, j] += sum_t |z| (half |z| + scale)``, z = x_it - y_jt, for
    validated dense clouds of one dtype: the features where many pairs are
    non-zero through the dense micro-kernel (``_pairwise_l1_kernel``), the
    others over their pairs of non-zeros (``_l1_pairs_kernel``), when that
    split pays (:func:`_l1_split`); the dense kernel alone otherwise.
    ``columns`` given as :class:`SparseColumns` keeps the cloud's parts of
    the split for the next chunk of rows."""
    split = _l1_split(X, Y, columns)
    if split is None:
        _pairwise_l1_kernel(X, Y, _l1_chunk(X.dtype), half, scale, out)
        return out
    cut, dense, pairs = split
    if columns is None:
        columns = _dense_to_csc(Y)
    indptr, rows, values = columns
    parts = getattr(columns, "split_parts", {})
    m = Y.shape[0]
    tile = min(m, _PAIRS_TILE)
    if "tiles" not in parts:
        parts["tiles"] = _tile_pointers(indptr, rows, m, tile)
    if cut not in parts:
        parts[cut] = np.ascontiguousarray(Y[:, dense])
    if (cut, half, scale) not in parts:
        sums = _l1_column_sums(indptr, rows, values, pairs, half, scale, m)
        parts[cut, half, scale] = sums
    dense_block, hy = parts[cut], parts[cut, half, scale]
    if dense.size:
        _pairwise_l1_kernel(
            np.ascontiguousarray(X[:, dense]),
            dense_block,
            _l1_chunk(X.dtype),
            half,
            scale,
            out,
        )
    _l1_pairs_kernel(X, pairs, parts["tiles"], tile, rows, values, half, scale, hy, out)
    return out


def separable_quadratic_pairwise(X, Y, kind, check_input=True):
    r""":math:`½‖x_i - y_j‖^2` computed the way :func:`separable_cost_pairwise`
    computes it for the same ``kind`` and cloud: summed term by term in the
    ℓ1 micro-kernel where that kernel takes the whole cost, by BLAS
    (:func:`sqeuclidean_half`) otherwise.

    A γ path builds :math:`C(γ) = Q + γ L` from this ``Q`` and the τ matrix
    ``L`` at γ = 1; with the same rounding as a direct fit's cost matrix, the
    path's maps equal the fits' to the Sinkhorn tolerance in float32 too
    (BLAS's cancellation would put them 10x further apart on the harmony
    cells).
    """
    X, Y = _dense_pair(X, Y, check_input)
    route = _tau_route(Y, kind) if Y.size else "dense"
    if not _one_pass(X, Y, kind, route):
        return sqeuclidean_half(X, Y, check_input=False)
    out = np.zeros((X.shape[0], Y.shape[0]), dtype=X.dtype)
    return _l1_pass(X, Y, 0.5, 0.0, out)


def separable_linear_parts(X, Y, kind, check_input=True):
    r"""The parts of :math:`C(γ) = Q + γ L` of a regulariser linear in γ (ℓ1):
    :math:`Q_{ij} = ½‖x_i - y_j‖^2` and :math:`L_{ij} = τ_{γ=1}(x_i - y_j)`.

    Each part is computed as :func:`separable_quadratic_pairwise` and
    :func:`separable_tau_pairwise` compute it, and both in one pass
    (``_pairwise_l1_parts_kernel``) where both run the ℓ1 micro-kernel:
    on 1,000 x 1,000 harmony cells (9,015 genes, float32) 0.49 s against
    0.93 s for the two.

    Returns
    -------
    Q, L : ndarrays of shape (n, m), common float dtype of X and Y.
    """
    X, Y = _dense_pair(X, Y, check_input)
    _check_kind_gamma(kind, 1.0)
    if kind != KIND_L1:
        raise ValueError("only the ℓ1 regulariser is linear in gamma.")
    route = _tau_route(Y, kind) if Y.size else "dense"
    if not _one_pass(X, Y, kind, route):
        Q = sqeuclidean_half(X, Y, check_input=False)
        L = _check_out(None, Q.shape, X.dtype)
        if Q.size:
            _add_tau_pairwise(X, Y, kind, 1.0, L, route)
        return Q, L
    Q = np.zeros((X.shape[0], Y.shape[0]), dtype=X.dtype)
    L = np.zeros_like(Q)
    if _l1_split(X, Y) is not None:
        # each part as the split computes it in the cost matrix
        columns = _dense_to_csc(Y)
        return _l1_pass(X, Y, 0.5, 0.0, Q, columns), _l1_pass(
            X, Y, 0.0, 1.0, L, columns
        )
    _pairwise_l1_parts_kernel(X, Y, _l1_chunk(X.dtype), Q, L)
    return Q, L


def _check_out(out, shape, dtype):
    """``out`` (checked) or a new zero array: where a pairwise sum is added."""
    if out is None:
        return np.zeros(shape, dtype=dtype)
    if (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != dtype
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise ValueError(
            f"out must be a writeable C-contiguous {np.dtype(dtype).name} array "
            f"of shape {shape}."
        )
    return out


# Bytes of one densified block of a sparse cloud's rows (dense_row_blocks)
_DENSE_BLOCK_BYTES = 32 * 2**20


def dense_row_blocks(Y, dtype):
    """``(slice, dense rows)`` blocks covering the rows of the sparse ``Y``.

    Kernels that are faster on dense rows than on non-zeros (BLAS, the SIMD
    pairwise kernels) run on blocks of at most ``_DENSE_BLOCK_BYTES``, so a
    cloud stored sparse (for memory) costs them no more than a dense one.
    """
    m, d = Y.shape
    step = max(1, min(m, _DENSE_BLOCK_BYTES // max(1, d * np.dtype(dtype).itemsize)))
    for start in range(0, m, step):
        rows = slice(start, min(m, start + step))
        yield rows, np.ascontiguousarray(Y[rows].toarray(), dtype=dtype)


# Below this fraction of non-zeros in a dense target cloud, the regulariser
# part of the cost matrix visits only the pairs of non-zeros
# (_tau_pairwise_columns_kernel). benchmarks/bench_sparse_kernels.py, 800 x
# 800 harmony cells: break-even near 4 % for ℓ1 (whose dense SIMD kernel is
# cheap). For STVS the pairs kernel is the faster below ~5 % on those cells
# (0.16 s against 0.21 s for the targets kernel at 3.2 %, 0.45 s against
# 0.32 s at their own 6.3 %); its work follows how the non-zeros of the two
# clouds meet feature by feature, so on synthetic log-Poisson cells (512 x
# 600, 8,000 genes) it still wins at 5 % (0.064 s against 0.136 s) and
# breaks even near 12 %.
TAU_COLUMN_DENSITY = {KIND_L1: 0.04, KIND_STVS: 0.06}

# Below this fraction of non-zeros (and from TAU_COLUMN_DENSITY on), the STVS
# part visits the non-zeros of the target cloud for every source row
# (_stvs_pairwise_targets_kernel): its work is the density times the dense
# kernel's, at about 2x the cost per element. Harmony cells filled to 34 %:
# 1.25 s against 1.80 s dense, to 100 %: 3.18 s against 1.60 s; log-Poisson
# cells: 0.60 s against 0.73 s at 42 %, 0.84 s against 0.72 s at 62 %.
TAU_TARGET_DENSITY = {KIND_STVS: 0.5}

# Below this fraction of non-zeros in the target cloud, the aggregate visits
# only the non-zeros of each feature column (_column_aggregate_kernel): its
# cost per visited element is about 1.8x the dense kernel's
# (benchmarks/bench_sparse_kernels.py), so it wins well before this density.
COLUMN_AGGREGATE_DENSITY = 0.4


@njit(cache=True, error_model="numpy")
def _dense_to_csc(Y):
    """Column pointers, row indices and values of the non-zeros of dense ``Y``."""
    m, d = Y.shape
    indptr = np.zeros(d + 1, dtype=np.int64)
    for j in range(m):
        for t in range(d):
            if Y[j, t] != 0:
                indptr[t + 1] += 1
    for t in range(d):
        indptr[t + 1] += indptr[t]
    rows = np.empty(indptr[d], dtype=np.int64)
    values = np.empty(indptr[d], dtype=Y.dtype)
    fill = indptr[:-1].copy()
    for j in range(m):
        for t in range(d):
            v = Y[j, t]
            if v != 0:
                rows[fill[t]] = j
                values[fill[t]] = v
                fill[t] += 1
    return indptr, rows, values


# Features per task of the column aggregate, read once into a transposed
# tile (and written back from one) in blocks of 8 rows: 2x faster than a
# row-by-row transposition, which took half the aggregate on 512 harmony
# cells (9,015 genes, 6 % non-zero).
_BT_COLUMNS = 32
_TRANSPOSE_ROWS = 8


@njit(inline="always", cache=True, fastmath=_FM_KERNEL)
def _l1_sign_step(x, y, gamma, zero, s):
    """gamma (sign(x - y) - sign(x)), with s = gamma sign(x) given."""
    return ((gamma if x > y else zero) - (gamma if x < y else zero)) - s


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _column_aggregate_kernel(
    X, PT, total, indptr, rows, values, kind, gamma, with_h, out
):
    """out[i, t] = sum_j P_ij tau'(x_it - y_jt), visiting the non-zeros of Y.

    With r_i = sum_j P_ij, the targets with y_jt = 0 contribute
    tau'(x_it) times their weight, so that

        out[i, t] = tau'(x_it) r_i
                    + sum_{j: y_jt != 0} P_ij (tau'(x_it - y_jt) - tau'(x_it)),

    and only the non-zeros of Y are visited, each a contiguous row
    ``PT[j]`` of weights over all rows i (SIMD over i). With ``with_h`` the
    quadratic part of ∇h is added in the same pass: out[i, t] += x_it r_i -
    sum_j P_ij y_jt (the barycentre also only needs the non-zeros).

    Parallel over tiles of ``_BT_COLUMNS`` features, each read once into a
    transposed tile (no per-feature allocations or strided loads in the
    loops over non-zeros). For ℓ1, four non-zeros are combined per pass
    over the rows, so that the accumulator and x are loaded and stored once
    for four weight rows.
    """
    n, d = X.shape
    zero = _tc(X, 0.0, 0.0)
    n_tiles = (d + _BT_COLUMNS - 1) // _BT_COLUMNS
    for b in prange(n_tiles):
        t0 = b * _BT_COLUMNS
        t1 = min(d, t0 + _BT_COLUMNS)
        xs = np.empty((t1 - t0, n), dtype=X.dtype)
        acc = np.empty((t1 - t0, n), dtype=X.dtype)
        gx = np.empty(n, dtype=X.dtype)
        for r0 in range(0, n, _TRANSPOSE_ROWS):
            for t in range(t0, t1):
                for i in range(r0, min(n, r0 + _TRANSPOSE_ROWS)):
                    xs[t - t0, i] = X[i, t]
        for t in range(t0, t1):
            x = xs[t - t0]
            o = acc[t - t0]
            for i in range(n):
                gx[i] = grad_tau_sep(x[i], kind, gamma)
                o[i] = gx[i] * total[i]
            if with_h:
                for i in range(n):
                    o[i] += x[i] * total[i]
            k = indptr[t]
            k1 = indptr[t + 1]
            if kind == KIND_L1:
                while k + 4 <= k1:
                    w0 = PT[rows[k]]
                    w1 = PT[rows[k + 1]]
                    w2 = PT[rows[k + 2]]
                    w3 = PT[rows[k + 3]]
                    y0 = values[k]
                    y1 = values[k + 1]
                    y2 = values[k + 2]
                    y3 = values[k + 3]
                    h0 = y0 if with_h else zero
                    h1 = y1 if with_h else zero
                    h2 = y2 if with_h else zero
                    h3 = y3 if with_h else zero
                    for i in range(n):
                        xi = x[i]
                        s = gx[i]
                        o[i] += (
                            w0[i] * (_l1_sign_step(xi, y0, gamma, zero, s) - h0)
                            + w1[i] * (_l1_sign_step(xi, y1, gamma, zero, s) - h1)
                        ) + (
                            w2[i] * (_l1_sign_step(xi, y2, gamma, zero, s) - h2)
                            + w3[i] * (_l1_sign_step(xi, y3, gamma, zero, s) - h3)
                        )
                    k += 4
            while k < k1:
                w = PT[rows[k]]
                y = values[k]
                h = y if with_h else zero
                if kind == KIND_L1:
                    for i in range(n):
                        o[i] += w[i] * (_l1_sign_step(x[i], y, gamma, zero, gx[i]) - h)
                else:
                    for i in range(n):
                        o[i] += w[i] * (grad_tau_stvs(x[i] - y, gamma) - gx[i] - h)
                k += 1
        for r0 in range(0, n, _TRANSPOSE_ROWS):
            for t in range(t0, t1):
                for i in range(r0, min(n, r0 + _TRANSPOSE_ROWS)):
                    out[i, t] = acc[t - t0, i]


def _column_aggregate(X, csc, P, kind, gamma, with_h=False):
    """:func:`separable_grad_tau_aggregate` from the CSC arrays of ``Y``
    (with ``with_h``: :func:`separable_grad_h_aggregate_sparse`)."""
    indptr, rows, values = csc
    out = np.empty(X.shape, dtype=X.dtype)
    PT = np.ascontiguousarray(P.T)
    total = P.sum(axis=1, dtype=X.dtype)
    gamma = X.dtype.type(gamma)
    _column_aggregate_kernel(
        X, PT, total, indptr, rows, values, int(kind), gamma, with_h, out
    )
    return out


def sparse_columns(Y):
    """CSC arrays ``(indptr, rows, values)`` of a CSR matrix, or of a dense
    array with few non-zeros (None when at least ``COLUMN_AGGREGATE_DENSITY``
    of it is non-zero). Computed once per cloud, they can be passed to
    :func:`separable_grad_h_aggregate_sparse` for every chunk of rows."""
    if sp.issparse(Y):
        # one entry per coordinate, sorted; on a copy, never the caller's
        csc = Y.tocsc(copy=True)
        csc.sum_duplicates()
        return SparseColumns(
            csc.indptr.astype(np.int64), csc.indices.astype(np.int64), csc.data
        )
    if np.count_nonzero(Y) >= COLUMN_AGGREGATE_DENSITY * Y.size:
        return None
    return SparseColumns(*_dense_to_csc(Y))


def separable_grad_h_aggregate_sparse(X, Y, P, kind, gamma, columns=None):
    r"""The whole gradient of the entropic potential, on the non-zeros of ``Y``.

    .. math:: \sum_j P_{ij} ∇h(x_i - y_j) = x_i \sum_j P_{ij} - P_{i:} Y
              + \sum_j P_{ij} τ'(x_i - y_j)

    in one pass over the non-zeros of ``Y`` (``_column_aggregate_kernel``).
    For validated inputs of one float dtype (the cost classes' job): ``X``
    and ``P`` dense, ``Y`` dense or CSR; ``columns``: :func:`sparse_columns`
    of ``Y`` when already computed, False when ``Y`` is known to be too
    dense (then None is returned at once).

    Returns
    -------
    ndarray of shape (n, d), or None when ``Y`` is a dense array with at least
    ``COLUMN_AGGREGATE_DENSITY`` non-zeros (the dense kernels are faster).
    """
    if X.shape[0] == 0 or X.shape[1] == 0 or Y.shape[0] == 0:
        return None
    csc = sparse_columns(Y) if columns is None else columns
    if csc is None or csc is False:
        return None
    return _column_aggregate(X, csc, P, kind, gamma, with_h=True)


def separable_grad_tau_aggregate(X, Y, P, kind, gamma, prune=1e-12):
    """Weighted sum of regulariser gradients ``G_i = sum_j P_ij tau'(x_i - y_j)``.

    Used by the entropic map T(x) = x - prox(sum_j p_j(x) grad h(x - y_j)).
    When fewer than ``COLUMN_AGGREGATE_DENSITY`` of the entries of ``Y`` are
    non-zero (single-cell data), only its non-zeros are visited, feature by
    feature (``_column_aggregate_kernel``, exact: no pruning). Otherwise
    terms with ``P_ij <= prune * max_j P_ij`` are skipped. Since
    |tau_1'| <= gamma for both regularisers, this changes each coordinate of
    G_i by at most ``m * prune * max_j P_ij * gamma`` (<= m prune gamma for
    probability rows); ``prune=0`` only skips exact zeros (exact result).

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d)
    P : array-like of shape (n, m)
        Non-negative weights (typically softmax rows).
    kind : int
        ``KIND_L1`` or ``KIND_STVS``.
    gamma : float
        Regularisation strength (> 0).
    prune : float, default=1e-12
        Relative pruning threshold (>= 0).

    Returns
    -------
    ndarray of shape (n, d), common float dtype of X and Y.
    """
    dt = common_float_dtype(X, Y)
    X = as_float_2d(X, "X", dt)
    Y = as_float_2d(Y, "Y", dt)
    P = as_float_2d(P, "P", dt)
    _check_same_d(X, Y)
    _check_kind_gamma(kind, gamma)
    if P.shape != (X.shape[0], Y.shape[0]):
        raise ValueError(f"P must have shape {(X.shape[0], Y.shape[0])}, got {P.shape}")
    if not (np.isfinite(prune) and prune >= 0):
        raise ValueError(f"prune must be a finite number >= 0, got {prune!r}")
    if X.shape[0] == 0 or Y.shape[0] == 0 or X.shape[1] == 0:
        return np.zeros(X.shape, dtype=dt)
    csc = sparse_columns(Y)
    if csc is not None:
        return _column_aggregate(X, csc, P, kind, gamma)
    out = np.zeros(X.shape, dtype=dt)
    _aggregate_kernel(X, Y, P, int(kind), dt.type(gamma), dt.type(prune), out)
    return out


# ---------------------------------------------------------------------------
# sparse (CSR) target clouds
# ---------------------------------------------------------------------------
# Single-cell matrices are mostly zeros. Since tau(0) = tau'(0) = 0 and tau is
# even, a coordinate where only one of x_t, y_t is non-zero contributes
# tau(x_t) + tau(y_t), and one where both are zero contributes nothing. So
#
#   sum_t tau(x_t - y_t) = T(x) + T(y)
#       + sum_{t in supp x ∩ supp y} [tau(x_t - y_t) - tau(x_t) - tau(y_t)]
#
# with T(z) = sum_t tau(z_t), and the work per pair is nnz(y_j) instead of d.


@njit(parallel=True, cache=True, fastmath=_FM_SCALAR, error_model="numpy")
def _tau_pairwise_columns_kernel(
    X, indptr, rows, values, tau_values, kind, gamma, tx, ty, out
):
    """out[i, j] += T(x_i) + T(y_j) + the correction on supp x_i ∩ supp y_j.

    ``Y`` is given by its non-zeros feature by feature (CSC arrays, with
    ``tau_values`` = τ of each). Row i visits the non-zeros t of x_i and,
    for each, the targets j with y_jt != 0: only the pairs of non-zeros
    cost a τ evaluation, computed into a contiguous buffer and then added to
    the row's accumulator (m float64 numbers, cache-resident). Parallel over
    rows.
    """
    n, d = X.shape
    m = out.shape[1]
    widest = 0
    for t in range(d):
        widest = max(widest, indptr[t + 1] - indptr[t])
    for i in prange(n):
        acc = np.empty(m)
        for j in range(m):
            acc[j] = tx[i] + ty[j]
        buf = np.empty(widest, dtype=values.dtype)
        for t in range(d):
            x = X[i, t]
            if x == 0:
                continue
            tau_x = tau_sep(x, kind, gamma)
            k0 = indptr[t]
            k1 = indptr[t + 1]
            for k in range(k0, k1):
                buf[k - k0] = (
                    tau_sep(x - values[k], kind, gamma) - tau_x - tau_values[k]
                )
            for k in range(k0, k1):
                acc[rows[k]] += buf[k - k0]
        for j in range(m):
            out[i, j] += acc[j]


def _tau_pairwise_columns(X, columns, n_targets, kind, gamma, out):
    """:func:`separable_tau_pairwise` from the CSC arrays of ``Y``, over the
    pairs of non-zeros."""
    indptr, rows, values = columns
    dt = X.dtype
    g = dt.type(gamma)
    # τ of each non-zero: row sums of the one-column matrix of them
    tau_values = separable_tau_rows(values[:, None], kind, gamma)
    ty = np.bincount(rows, weights=tau_values, minlength=n_targets)
    tx = separable_tau_rows(X, kind, gamma).astype(np.float64)
    _tau_pairwise_columns_kernel(
        X, indptr, rows, values, tau_values, int(kind), g, tx, ty, out
    )
    return out


# STVS over the targets' non-zeros: rows of X per task (one ROW_BLOCK, so the
# map's chunks of whole rounds of blocks keep every thread busy) and features
# per tile: <= 240 mantissa products per accumulator cannot overflow float32.
_BT_STVS_TARGETS = 240


@njit(parallel=True, cache=True, fastmath=_FM_KERNEL, error_model="numpy")
def _stvs_pairwise_targets_kernel(X, indptr, rows, values, gamma, half_sq, out):
    r"""out[i, j] += sum_t tau_stvs(x_it - y_jt) + half_sq (x_it - y_jt)^2,
    visiting only the non-zeros of ``Y`` (CSC arrays); ``half_sq`` is 1/2
    for the whole cost, 0 for the regulariser alone.

    .. math:: \sum_t τ(x_t - y_t) = \sum_t τ(x_t)
              + \sum_{t:\, y_t \ne 0} \big[τ(x_t - y_t) - τ(x_t)\big]

    (exact since τ(0) = 0; likewise for the square). A task takes 32 rows
    of X, transposed per tile of features with their τ(x_t) (plus the
    square); each non-zero y_jt then updates the 32 accumulators of column
    j with contiguous SIMD loads, no scatter. As in
    :func:`_pairwise_stvs_kernel`, log w is not taken per element: each
    accumulator pair holds sum_t (u/w + k log 2 - τ(x_t)) and prod_t m
    (w = 2^k m), folded into float64 with one log per tile.
    """
    n, d = X.shape
    m = out.shape[1]
    c, one, zero, big, ln2 = _stvs_constants(X, gamma)
    inv_g2 = one / (gamma * gamma)
    # sums run in units of gamma^2, as the tau terms
    sq = _tc(X, half_sq, half_sq) * inv_g2
    scale = np.float64(gamma) * np.float64(gamma)
    nblk = (n + _BR - 1) // _BR
    for b in prange(nblk):
        i0 = b * _BR
        nr = min(n, i0 + _BR) - i0
        acc = np.zeros((m, _BR))
        sums = np.zeros((m, _BR), dtype=X.dtype)
        prods = np.ones((m, _BR), dtype=X.dtype)
        tau_rows = np.zeros(_BR)
        # rows past n stay 0 (their sums are computed and dropped);
        # tau_xt: τ(x)/γ² + half_sq x²/γ², the terms a non-zero y replaces
        xt = np.zeros((_BT_STVS_TARGETS, _BR), dtype=X.dtype)
        tau_xt = np.zeros((_BT_STVS_TARGETS, _BR), dtype=X.dtype)
        for t0 in range(0, d, _BT_STVS_TARGETS):
            t1 = min(d, t0 + _BT_STVS_TARGETS)
            for r in range(nr):
                for t in range(t0, t1):
                    x = X[i0 + r, t]
                    tau = tau_stvs(x, gamma) * inv_g2 + sq * (x * x)
                    xt[t - t0, r] = x
                    tau_xt[t - t0, r] = tau
                    tau_rows[r] += tau
            for t in range(t0, t1):
                x_t = xt[t - t0]
                tau_t = tau_xt[t - t0]
                for k in range(indptr[t], indptr[t + 1]):
                    s_j = sums[rows[k]]
                    p_j = prods[rows[k]]
                    y = values[k]
                    for r in range(_BR):
                        q, e, mant = _stvs_split_terms(x_t[r], y, c, one, big)
                        z = x_t[r] - y
                        s_j[r] += (q + e * ln2 + sq * (z * z)) - tau_t[r]
                        p_j[r] *= mant
            for j in range(m):
                for r in range(_BR):
                    acc[j, r] += np.float64(sums[j, r]) + _log_poly(
                        np.float64(prods[j, r])
                    )
                    sums[j, r] = zero
                    prods[j, r] = one
        for r in range(nr):
            for j in range(m):
                out[i0 + r, j] += scale * (tau_rows[r] + acc[j, r])


def stvs_cost_over_target_nonzeros(X, columns, n_targets, gamma):
    r"""Whole elastic-STVS cost :math:`C_{ij} = ½‖x_i - y_j‖^2 + τ(x_i - y_j)`
    in one pass over the non-zeros of the cloud ``Y``, given by its CSC
    arrays (:func:`sparse_columns`; ``Y`` dense or CSR): no BLAS product
    and no densified ``Y``.

    Returns
    -------
    ndarray of shape (n, n_targets), X's dtype (the values' dtype).
    """
    C = np.zeros((X.shape[0], n_targets), dtype=X.dtype)
    if X.shape[0] and n_targets:
        indptr, rows, values = columns
        g = X.dtype.type(gamma)
        _stvs_pairwise_targets_kernel(X, indptr, rows, values, g, 0.5, C)
    return C


def _tau_pairwise_sparse_target(X, columns, n_targets, kind, gamma, out, route):
    """``out += [τ(x_i - y_j)]`` from the CSC arrays of ``Y``: over the pairs
    of non-zeros (``route="pairs"``) or over ``Y``'s non-zeros for every row
    of ``X`` (``"targets"``, STVS only)."""
    if route == "pairs":
        return _tau_pairwise_columns(X, columns, n_targets, kind, gamma, out)
    if kind != KIND_STVS:
        raise ValueError(f"route {route!r} is only implemented for STVS.")
    indptr, rows, values = columns
    g = X.dtype.type(gamma)
    _stvs_pairwise_targets_kernel(X, indptr, rows, values, g, 0.0, out)
    return out


def _dense_and_csr(X, Y, P=None):
    dt = common_float_dtype(X, Y.data)
    X = as_float_2d(X, "X", dt)
    Y = sp.csr_matrix(Y, dtype=dt)
    if not Y.has_canonical_format:
        # one entry per coordinate, sorted; on a copy, never the caller's
        Y = Y.copy()
        Y.sum_duplicates()
    _check_same_d(X, Y)
    if P is None:
        return X, Y, dt
    P = as_float_2d(P, "P", dt)
    if P.shape != (X.shape[0], Y.shape[0]):
        raise ValueError(f"P must have shape {(X.shape[0], Y.shape[0])}, got {P.shape}")
    return X, Y, P, dt


def separable_tau_pairwise_csr(X, Y, kind, gamma, out=None):
    r"""``[sum_t tau(x_it - y_jt)]_ij`` for a sparse target cloud ``Y``.

    .. math:: \sum_t τ(x_t - y_t) = \sum_t τ(x_t) + \sum_t τ(y_t)
              + \sum_{t:\, x_t \ne 0 \ne y_t}
                \big[τ(x_t - y_t) - τ(x_t) - τ(y_t)\big]

    (exact because τ is even with τ(0) = 0), so each pair costs
    ``nnz(y_j)`` operations instead of ``d``. That pays below
    ``TAU_COLUMN_DENSITY`` non-zeros; a denser ``Y`` goes through the dense
    kernel on blocks of densified rows (:func:`dense_row_blocks`).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Dense rows.
    Y : sparse matrix of shape (m, d)
        Sparse cloud (any scipy format; converted to CSR).
    kind, gamma
        Regulariser, as in :func:`separable_tau_pairwise`.
    out : ndarray of shape (n, m), default=None
        Array to add the regulariser to, as in :func:`separable_tau_pairwise`.

    Returns
    -------
    ndarray of shape (n, m), common float dtype of X and Y (``out`` when
    given).
    """
    X, Y, dt = _dense_and_csr(X, Y)
    _check_kind_gamma(kind, gamma)
    out = _check_out(out, (X.shape[0], Y.shape[0]), dt)
    if X.shape[0] == 0 or Y.shape[0] == 0 or X.shape[1] == 0:
        return out
    route = tau_route_for_density(Y.nnz / (Y.shape[0] * Y.shape[1]), kind)
    if route != "dense":
        return _tau_pairwise_sparse_target(
            X, sparse_columns(Y), Y.shape[0], kind, gamma, out, route
        )
    # denser clouds: the dense SIMD kernel on dense blocks of Y rows
    for rows, block in dense_row_blocks(Y, dt):
        part = np.zeros((X.shape[0], block.shape[0]), dtype=dt)
        separable_tau_pairwise(X, block, kind, gamma, out=part, check_input=False)
        out[:, rows] += part
    return out


def separable_grad_tau_aggregate_csr(X, Y, P, kind, gamma):
    r"""``[sum_j P_ij tau'(x_i - y_j)]_i`` for a sparse target cloud ``Y``.

    With the subgradient τ'(0) = 0, feature ``t`` of row ``i`` is

    .. math:: τ'(x_{it}) \sum_{j:\, y_{jt} = 0} P_{ij}
              + \sum_{j:\, y_{jt} \ne 0} P_{ij}\, τ'(x_{it} - y_{jt}),

    so only the non-zeros of ``Y`` are visited, column by column
    (``_column_aggregate_kernel`` on ``Y`` in CSC form): ``n nnz(Y)`` work.

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : sparse matrix of shape (m, d)
    P : array-like of shape (n, m)
        Weights (rows of Gibbs weights).
    kind, gamma
        Regulariser.

    Returns
    -------
    ndarray of shape (n, d), common float dtype of X and Y.
    """
    X, Y, P, dt = _dense_and_csr(X, Y, P)
    _check_kind_gamma(kind, gamma)
    if X.shape[0] == 0 or X.shape[1] == 0:
        return np.zeros(X.shape, dtype=dt)
    return _column_aggregate(X, sparse_columns(Y), P, kind, gamma)


# ---------------------------------------------------------------------------
# proximal operators
# ---------------------------------------------------------------------------


def _check_gamma(gamma):
    # gamma >= 0 of the proxes (also used by the k-overlap prox); the tau
    # kernels above need gamma > 0 (_check_kind_gamma)
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma >= 0.0):
        raise ValueError(f"gamma must be a finite non-negative number, got {gamma}.")
    return gamma


@njit(inline="always", cache=True)
def _stvs_prox_scalar(z, gamma):
    # (1 - γ²/z²)_+ z = z - γ²/z for |z| > γ, else 0 (also at z = 0)
    if abs(z) > gamma:
        return z - gamma * gamma / z
    if z != z:
        return z  # NaN in, NaN out
    return 0.0


@njit(parallel=True, cache=True, error_model="numpy")
def _soft_threshold_kernel(Z, gamma, out):
    # (|z| - γ)_+ sign(z) in Z's dtype (NaN in, NaN out), in a form that
    # vectorises (select, copysign): 4x faster than a float64 scalar
    # function with branches on float32 rows of 34,000 genes
    n, d = Z.shape
    g = Z.dtype.type(gamma)
    zero = Z.dtype.type(0.0)
    for i in prange(n):
        z = Z[i]
        o = out[i]
        for j in range(d):
            v = abs(z[j]) - g
            kept = v if v > zero else zero
            o[j] = math.copysign(kept, z[j]) if v == v else v


@njit(parallel=True, cache=True)
def _stvs_prox_kernel(Z, gamma, out):
    n, d = Z.shape
    for i in prange(n):
        for j in range(d):
            out[i, j] = _stvs_prox_scalar(np.float64(Z[i, j]), gamma)


def _elementwise_prox(kernel, Z, gamma):
    # validated Z and gamma, a new output array of Z's dtype filled by kernel
    Z = as_float_2d(Z)
    gamma = _check_gamma(gamma)
    out = np.empty_like(Z)
    kernel(Z, gamma, out)
    return out


def prox_in_place(kind, Z, gamma):
    """The prox of regulariser ``kind`` (:func:`soft_threshold` or
    :func:`stvs_prox`) of a validated C-contiguous float ``Z``, written into
    ``Z`` (element-wise, so in place is safe) and returned."""
    kernel = _soft_threshold_kernel if kind == KIND_L1 else _stvs_prox_kernel
    kernel(Z, _check_gamma(gamma), Z)
    return Z


def soft_threshold(Z, gamma):
    r"""Soft-thresholding, the prox of :math:`γ‖·‖_1`, element-wise.

    .. math:: \operatorname{ST}_γ(z) = (|z| - γ)_+ \operatorname{sign}(z)

    Parameters
    ----------
    Z : array-like of shape (n, d)
        Points (float32 stays float32, anything else becomes float64).
    gamma : float
        Threshold, ``>= 0``.

    Returns
    -------
    U : ndarray of shape (n, d)
        New array of the dtype of ``Z``; ``Z`` is not modified.
    """
    return _elementwise_prox(_soft_threshold_kernel, Z, gamma)


def stvs_prox(Z, gamma):
    r"""Prox of the STVS regulariser, element-wise.

    For :math:`τ(z) = γ² (\operatorname{asinh}(u) + u\sqrt{u²+1} - u²)`,
    :math:`u = |z| / 2γ`,

    .. math:: \operatorname{prox}_τ(z) = (1 - γ²/z²)_+ \, z \quad (0 \text{ at } z = 0).

    Parameters
    ----------
    Z : array-like of shape (n, d)
    gamma : float
        Scale, ``>= 0``.

    Returns
    -------
    U : ndarray of shape (n, d)
        New array of the dtype of ``Z``; ``Z`` is not modified.
    """
    return _elementwise_prox(_stvs_prox_kernel, Z, gamma)
