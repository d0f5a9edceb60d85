r"""Numba passes of the log-domain Sinkhorn solver.

The algorithm, its conventions and the role of each pass are described in
:mod:`skmonge.sinkhorn`, which validates the inputs and drives these kernels;
``exp`` is the vectorisable polynomial ``_fexp`` of
:mod:`skmonge._kernels.fastmath`.
"""

import math

import numpy as np
from numba import njit, prange

from .fastmath import _fexp

# Column block of the float32 partial dot products and of the max transform.
_COL_BLOCK = 512


@njit(cache=True, error_model="numpy", inline="always")
def _relaxed(u, target, omega):
    r"""Over-relaxed scaling update :math:`u^{1-ω} t^{ω}` (plain update for ω = 1).

    In the log domain this is :math:`f \leftarrow (1 - ω) f + ω\, T(g)`, the
    over-relaxed Sinkhorn step (Thibault et al. 2021; Lehmann et al. 2022):
    the same fixed point as the plain step, a faster linear rate for
    :math:`1 < ω < 2`.
    """
    if omega == 1.0:
        return target
    return math.exp((1.0 - omega) * math.log(u) + omega * math.log(target))


# --------------------------------------------------------------------------
# numba kernels (all inputs validated finite by the Python wrappers, hence
# fastmath; sentinels are finite numbers, never inf)
# --------------------------------------------------------------------------
@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _col_max_transform(C, alpha, inv_eps, beta):
    r"""Hard ("max") :math:`c`-transform on columns.

    .. math:: β_j = -\max_i (α_i - C_{ij} / ε)
    """
    n, m = C.shape
    nblocks = (m + _COL_BLOCK - 1) // _COL_BLOCK
    for jb in prange(nblocks):
        j0 = jb * _COL_BLOCK
        j1 = min(m, j0 + _COL_BLOCK)
        mx = np.empty(j1 - j0)
        for j in range(j0, j1):
            mx[j - j0] = alpha[0] - C[0, j] * inv_eps
        for i in range(1, n):
            ai = alpha[i]
            for j in range(j0, j1):
                mx[j - j0] = max(mx[j - j0], ai - C[i, j] * inv_eps)
        for j in range(j0, j1):
            beta[j] = -mx[j - j0]


@njit(inline="always", fastmath=True, cache=True)
def _row_max_logit(C, beta, inv_eps, i):
    r""":math:`\max_j (β_j - C_{ij}/ε)`: the shift of a stable row log-sum-exp."""
    mx = beta[0] - C[i, 0] * inv_eps
    for j in range(1, C.shape[1]):
        mx = max(mx, beta[j] - C[i, j] * inv_eps)
    return mx


@njit(fastmath=True, cache=True)
def _exact_row_weights(C, beta, inv_eps, i, buf):
    r"""Max-shifted weights :math:`e^{z_j - \max_k z_k}`, :math:`z_j = β_j - C_{ij}/ε`.

    Written to ``buf``; returns :math:`\max_k z_k`. The fallback of the fused
    row kernels below, which compute :math:`z_j` twice (once for the max, once
    for the exponent): under fastmath the two may round differently, and
    when :math:`|z| \gtrsim 10^{18}` the difference exceeds the exponent range,
    so that every weight of the row underflows and the row sum is 0 (NaN
    weights, an infinite scaling). Here each :math:`z_j` is computed once and
    stored, so the largest weight is exactly 1.
    """
    m = C.shape[1]
    for j in range(m):
        buf[j] = beta[j] - C[i, j] * inv_eps
    mx = buf[0]
    for j in range(1, m):
        mx = max(mx, buf[j])
    for j in range(m):
        buf[j] = _fexp(buf[j] - mx)
    return mx


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _build_kernel(C, beta, inv_eps, tiny, K, alpha):
    r"""Row-normalised Gibbs kernel (one ``exp`` pass).

    .. math:: α_i = -\max_j(β_j - C_{ij}/ε), \qquad
              \tilde K_{ij} = \exp(α_i + β_j - C_{ij}/ε)

    Entries below ``tiny`` (smallest normal of ``K``'s dtype) are set to 0.
    """
    n, m = C.shape
    for i in prange(n):
        mx = _row_max_logit(C, beta, inv_eps, i)
        total = 0.0
        for j in range(m):
            val = _fexp(beta[j] - C[i, j] * inv_eps - mx)
            K[i, j] = val if val >= tiny else 0.0
            total += val
        if not total >= 0.5:  # the largest entry is 1 up to rounding
            buf = np.empty(m)
            mx = _exact_row_weights(C, beta, inv_eps, i, buf)
            for j in range(m):
                K[i, j] = buf[j] if buf[j] >= tiny else 0.0
        alpha[i] = -mx


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _scaling_pass_f64(K, v, u, a, u_new, zpart, omega):
    r"""One Sinkhorn iteration over a float64 kernel, in one pass.

    For each row: :math:`w_i = (\tilde K v)_i`, the previous row-marginal
    residual :math:`|u_i w_i - a_i|`, :math:`u^{new}_i = a_i / w_i`, and
    ``zpart[t] += u^{new}_i K[i]`` (thread ``t``'s share of
    :math:`\tilde K^\top u^{new}`). Returns
    (:math:`\sum_i |u_i w_i - a_i|`, min ``u_new``, max ``u_new``).
    """
    n, m = K.shape
    nt = zpart.shape[0]
    chunk = ((n + nt - 1) // nt + 3) // 4 * 4
    errs = np.zeros(nt)
    umins = np.empty(nt)
    umaxs = np.empty(nt)
    for t in prange(nt):
        z = zpart[t]
        for j in range(m):
            z[j] = 0.0
        e = 0.0
        lo = 1.0e308
        hi = 0.0
        i = t * chunk
        i1 = min(n, i + chunk)
        # Four rows at a time: v is loaded once for four dot products and z
        # once for four axpys, so the pass runs at memory bandwidth.
        while i + 4 <= i1:
            w0 = 0.0
            w1 = 0.0
            w2 = 0.0
            w3 = 0.0
            for j in range(m):
                vj = v[j]
                w0 += K[i, j] * vj
                w1 += K[i + 1, j] * vj
                w2 += K[i + 2, j] * vj
                w3 += K[i + 3, j] * vj
            e += abs(u[i] * w0 - a[i]) + abs(u[i + 1] * w1 - a[i + 1])
            e += abs(u[i + 2] * w2 - a[i + 2]) + abs(u[i + 3] * w3 - a[i + 3])
            u0 = _relaxed(u[i], a[i] / w0, omega)
            u1 = _relaxed(u[i + 1], a[i + 1] / w1, omega)
            u2 = _relaxed(u[i + 2], a[i + 2] / w2, omega)
            u3 = _relaxed(u[i + 3], a[i + 3] / w3, omega)
            u_new[i] = u0
            u_new[i + 1] = u1
            u_new[i + 2] = u2
            u_new[i + 3] = u3
            lo = min(lo, min(min(u0, u1), min(u2, u3)))
            hi = max(hi, max(max(u0, u1), max(u2, u3)))
            for j in range(m):
                z[j] += (
                    u0 * K[i, j]
                    + u1 * K[i + 1, j]
                    + u2 * K[i + 2, j]
                    + (u3 * K[i + 3, j])
                )
            i += 4
        while i < i1:
            w = 0.0
            for j in range(m):
                w += K[i, j] * v[j]
            e += abs(u[i] * w - a[i])
            ui = _relaxed(u[i], a[i] / w, omega)
            u_new[i] = ui
            lo = min(lo, ui)
            hi = max(hi, ui)
            for j in range(m):
                z[j] += ui * K[i, j]
            i += 1
        errs[t] = e
        umins[t] = lo
        umaxs[t] = hi
    return errs.sum(), umins.min(), umaxs.max()


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _scaling_pass_f32(K, v32, u, a, u_new, zpart, omega):
    r""":func:`_scaling_pass_f64` for a float32 kernel.

    ``v32`` is ``v`` rounded to float32. Dot products are summed in float32
    within 512-column blocks and in float64 across blocks; the four-row axpy
    is formed in float32 and accumulated into the float64 ``zpart``.
    """
    n, m = K.shape
    nt = zpart.shape[0]
    chunk = ((n + nt - 1) // nt + 3) // 4 * 4
    errs = np.zeros(nt)
    umins = np.empty(nt)
    umaxs = np.empty(nt)
    zero = np.float32(0.0)
    for t in prange(nt):
        z = zpart[t]
        for j in range(m):
            z[j] = 0.0
        e = 0.0
        lo = 1.0e308
        hi = 0.0
        i = t * chunk
        i1 = min(n, i + chunk)
        while i + 4 <= i1:
            w0 = 0.0
            w1 = 0.0
            w2 = 0.0
            w3 = 0.0
            for jb in range(0, m, _COL_BLOCK):
                je = min(m, jb + _COL_BLOCK)
                s0 = zero
                s1 = zero
                s2 = zero
                s3 = zero
                for j in range(jb, je):
                    vj = v32[j]
                    s0 += K[i, j] * vj
                    s1 += K[i + 1, j] * vj
                    s2 += K[i + 2, j] * vj
                    s3 += K[i + 3, j] * vj
                w0 += s0
                w1 += s1
                w2 += s2
                w3 += s3
            e += abs(u[i] * w0 - a[i]) + abs(u[i + 1] * w1 - a[i + 1])
            e += abs(u[i + 2] * w2 - a[i + 2]) + abs(u[i + 3] * w3 - a[i + 3])
            u0 = _relaxed(u[i], a[i] / w0, omega)
            u1 = _relaxed(u[i + 1], a[i + 1] / w1, omega)
            u2 = _relaxed(u[i + 2], a[i + 2] / w2, omega)
            u3 = _relaxed(u[i + 3], a[i + 3] / w3, omega)
            u_new[i] = u0
            u_new[i + 1] = u1
            u_new[i + 2] = u2
            u_new[i + 3] = u3
            lo = min(lo, min(min(u0, u1), min(u2, u3)))
            hi = max(hi, max(max(u0, u1), max(u2, u3)))
            f0 = np.float32(u0)
            f1 = np.float32(u1)
            f2 = np.float32(u2)
            f3 = np.float32(u3)
            for j in range(m):
                z[j] += (
                    f0 * K[i, j]
                    + f1 * K[i + 1, j]
                    + f2 * K[i + 2, j]
                    + (f3 * K[i + 3, j])
                )
            i += 4
        while i < i1:
            w = 0.0
            for jb in range(0, m, _COL_BLOCK):
                je = min(m, jb + _COL_BLOCK)
                s = zero
                for j in range(jb, je):
                    s += K[i, j] * v32[j]
                w += s
            e += abs(u[i] * w - a[i])
            ui = _relaxed(u[i], a[i] / w, omega)
            u_new[i] = ui
            lo = min(lo, ui)
            hi = max(hi, ui)
            fi = np.float32(ui)
            for j in range(m):
                z[j] += fi * K[i, j]
            i += 1
        errs[t] = e
        umins[t] = lo
        umaxs[t] = hi
    return errs.sum(), umins.min(), umaxs.max()


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _symmetric_pass(K, v, u, a, u_new, nt):
    r"""Averaged symmetric Sinkhorn step (Feydy et al. 2019) in scaling form.

    With :math:`w = \tilde K v` (``v`` the column representation of the same
    potential), the previous residual :math:`\sum_i |u_i w_i - a_i|` and
    :math:`u^{new} = \sqrt{u \cdot a / w}`, i.e.
    :math:`f \leftarrow ½(f + T(f))` with :math:`T` the :math:`c`-transform.
    ``K`` may be float32 (then ``v`` is its float32 copy); sums are float64
    across 512-column blocks. Returns (residual, :math:`\sum_i u_i w_i`,
    min u_new, max u_new).
    """
    n, m = K.shape
    chunk = (n + nt - 1) // nt
    errs = np.zeros(nt)
    mass = np.zeros(nt)
    umins = np.empty(nt)
    umaxs = np.empty(nt)
    zero = K[0, 0] - K[0, 0]  # typed zero of K's dtype
    for t in prange(nt):
        e = 0.0
        s_uw = 0.0
        lo = 1.0e308
        hi = 0.0
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            w = 0.0
            for jb in range(0, m, _COL_BLOCK):
                s = zero
                for j in range(jb, min(m, jb + _COL_BLOCK)):
                    s += K[i, j] * v[j]
                w += s
            e += abs(u[i] * w - a[i])
            s_uw += u[i] * w
            ui = math.sqrt(u[i] * a[i] / w)
            u_new[i] = ui
            lo = min(lo, ui)
            hi = max(hi, ui)
        errs[t] = e
        mass[t] = s_uw
        umins[t] = lo
        umaxs[t] = hi
    return errs.sum(), mass.sum(), umins.min(), umaxs.max()


@njit(cache=True, error_model="numpy")
def _column_update(zpart, b, v, v32, omega):
    r"""Reduce the per-thread partials and set :math:`v_j = b_j / (\tilde K^\top u)_j`.

    Over-relaxed (:math:`v_j^{1-ω} (b_j / (\tilde K^\top u)_j)^{ω}`) when
    ``omega != 1``. Also refreshes the float32 copy ``v32`` (when it is
    non-empty) and returns (min v, max v); a zero column sum gives ``inf``
    (caught by the caller).
    """
    nt, m = zpart.shape
    lo = np.inf
    hi = 0.0
    for j in range(m):
        z = 0.0
        for t in range(nt):
            z += zpart[t, j]
        if z <= 0.0:
            vj = np.inf
        else:
            vj = _relaxed(v[j], b[j] / z, omega)
        v[j] = vj
        lo = min(lo, vj)
        hi = max(hi, vj)
    if v32.shape[0] == m:
        for j in range(m):
            v32[j] = v[j]
    return lo, hi


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _row_spread(C):
    r"""Mean over rows of :math:`\bar C_i - \min_j C_{ij}` (no temporaries)."""
    n, m = C.shape
    spread = np.empty(n)
    for i in prange(n):
        lo = C[i, 0]
        total = 0.0
        for j in range(m):
            c = C[i, j]
            lo = min(lo, c)
            total += c
        spread[i] = total / m - lo
    return spread.mean()


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _row_lse(C, beta, inv_eps, out):
    r"""Row log-sum-exp :math:`\mathrm{out}_i = \log \sum_j \exp(β_j - C_{ij}/ε)`."""
    n, m = C.shape
    for i in prange(n):
        mx = _row_max_logit(C, beta, inv_eps, i)
        s = 0.0
        for j in range(m):
            s += _fexp(beta[j] - C[i, j] * inv_eps - mx)
        if not s >= 0.5:  # the largest term is 1 up to rounding
            buf = np.empty(m)
            mx = _exact_row_weights(C, beta, inv_eps, i, buf)
            s = buf.sum()
        out[i] = mx + math.log(s)


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _row_softmax(C, beta, inv_eps, P, out):
    r"""Row softmax and log-sum-exp.

    .. math:: P_{ij} = \frac{\exp(β_j - C_{ij}/ε)}{\sum_k \exp(β_k - C_{ik}/ε)},
              \qquad \mathrm{out}_i = \log \sum_j \exp(β_j - C_{ij}/ε)
    """
    n, m = C.shape
    for i in prange(n):
        mx = _row_max_logit(C, beta, inv_eps, i)
        s = 0.0
        for j in range(m):
            e = _fexp(beta[j] - C[i, j] * inv_eps - mx)
            P[i, j] = e
            s += e
        if not s >= 0.5:  # the largest term is 1 up to rounding
            buf = np.empty(m)
            mx = _exact_row_weights(C, beta, inv_eps, i, buf)
            s = 0.0
            for j in range(m):
                P[i, j] = buf[j]
                s += buf[j]
        inv_s = 1.0 / s
        for j in range(m):
            P[i, j] = P[i, j] * inv_s
        out[i] = mx + math.log(s)


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _plan_row_error(C, alpha, beta, inv_eps, a):
    r""":math:`\sum_i |\sum_j \exp(α_i + β_j - C_{ij}/ε) - a_i|` without storing P."""
    n, m = C.shape
    err = np.empty(n)
    for i in prange(n):
        ai = alpha[i]
        s = 0.0
        for j in range(m):
            s += _fexp(ai + beta[j] - C[i, j] * inv_eps)
        err[i] = abs(s - a[i])
    return err.sum()


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _plan_kernel(C, alpha, beta, inv_eps, P):
    r""":math:`P_{ij} = \exp(α_i + β_j - C_{ij}/ε)` (``α = f/ε + \log a``, etc.)."""
    n, m = C.shape
    for i in prange(n):
        ai = alpha[i]
        for j in range(m):
            P[i, j] = _fexp(ai + beta[j] - C[i, j] * inv_eps)
