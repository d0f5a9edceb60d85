r"""Numba kernels of the k-overlap (k-support) regulariser.

The regulariser includes its weight ``gamma``; the elastic cost is
``h(z) = ½‖z‖² + τ(z)`` and ``∇h* = prox_τ``, with ``τ(z) = (γ/2)‖z‖²_{ovk}``
(Argyriou, Foygel & Srebro 2012): :func:`kovlp_prox`, :func:`kovlp_sq_norm`,
:func:`kovlp_grad_half_sq` and the pairwise kernels
:func:`kovlp_sq_norm_pairwise`, :func:`kovlp_grad_aggregate`. The separable
proxes (ℓ1, STVS) are in :mod:`skmonge._kernels.separable`.

k-overlap machinery
-------------------
All k-overlap quantities come from one variational formula (McDonald, Pontil
& Stamos 2016, box-norm with ``a = 0, b = 1, c = k``):

.. math::
    ‖z‖²_{ovk} = \min_{θ ∈ Θ} \sum_i z_i² / θ_i, \qquad
    Θ = \{θ ∈ (0, 1]^d : \sum_i θ_i \le k\}.

Minimising ``½‖u - z‖² + (γ/2) Σ u_i²/θ_i`` over ``u`` first gives
``u_i = z_i θ_i / (θ_i + γ)`` and leaves ``min_θ Σ z_i² / (θ_i + γ)``, whose
KKT conditions give, with ``a = |z|`` and a scalar ``t > 0``,

.. math::
    θ_i(t) = \operatorname{clip}(a_i t - γ, 0, 1), \qquad
    f(t) := \sum_i θ_i(t) = k .

``f`` is continuous, non-decreasing and piecewise linear in ``t`` with the
breakpoints ``γ/a_i`` (coordinate ``i`` enters) and ``(1+γ)/a_i`` (it
saturates). From the root ``t*``:

* prox: ``u_i = sign(z_i) a_i/(1+γ)`` if saturated, ``sign(z_i)(a_i - γ/t*)``
  if interior, 0 otherwise. This is Argyriou et al.'s Algorithm 1 with
  ``β = 1/γ`` (saturated = their top ``k-r-1`` coordinates, interior = their
  ``k-r .. l``);
* norm (``γ = 0``): ``‖z‖²_{ovk} = Σ_sat a_i² + Σ_int a_i / t*``, i.e.
  ``Σ_{i<k-r} (|z|↓_i)² + T²/(r+1)`` with ``T`` the tail ℓ1 sum;
* gradient of ``½‖z‖²_{ovk}`` (``γ = 0``): ``z_i`` on saturated coordinates,
  ``sign(z_i)/t* = sign(z_i) T/(r+1)`` on the others (0 on zero coordinates,
  a valid subgradient).

When ``z`` has at most ``k`` non-zeros, ``t* = +inf`` (every non-zero is
saturated): the norm is the ℓ2 norm and the prox is ``z/(1+γ)``.

The root is found by a bracketing search (:func:`_solve_t`): semismooth
Newton points (exact as soon as one lands in the linear piece holding the
root) interleaved with random-breakpoint pivots, on a working set from
which coordinates with a settled state are dropped; a short sort-and-sweep
finishes. Expected O(d) per row (typically 2-8 passes over a shrinking set),
never worse than O(d log d) plus ``_MAX_PASSES`` passes. The k-overlap
kernels run in float64 (float32 inputs are converted, results cast back);
every public function returns the dtype of its input.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit, prange

from .._arrays import as_float_2d
from .separable import _check_gamma

__all__ = [
    "kovlp_prox",
    "kovlp_sq_norm",
    "kovlp_grad_half_sq",
    "kovlp_sq_norm_pairwise",
    "kovlp_grad_aggregate",
]

#: Root-finder passes before the exact sort-based sweep finishes the bracket.
_MAX_PASSES = 64
#: Pure Newton passes before Newton and random-pivot passes alternate.
_NEWTON_FIRST = 1
#: Working-set size below which the sweep finishes the search.
_SWEEP_MIN = 16
#: Plan entries with |P_ij| <= _AGG_SKIP_REL * max_j |P_ij| are skipped by
#: :func:`kovlp_grad_aggregate` (exact zeros and underflow only).
_AGG_SKIP_REL = 1e-300

# root-finder selector for the private kernels (tests compare the two)
_NEWTON = 0
_SORT = 1


# --------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------


def _f64(A):
    # the k-overlap kernels compute in float64 anyway; one compiled
    # specialisation instead of two halves the JIT time
    return np.ascontiguousarray(A, dtype=np.float64)


def _check_k(k):
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)


def _pair(X, Y):
    X, Y = as_float_2d(X, "X"), as_float_2d(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns, got {X.shape[1]} "
            f"and {Y.shape[1]}."
        )
    dtype = np.result_type(X.dtype, Y.dtype)
    return (
        np.ascontiguousarray(X, dtype=dtype),
        np.ascontiguousarray(Y, dtype=dtype),
    )


# --------------------------------------------------------------------------
# k-overlap: root of f(t) = Σ clip(a_i t - γ, 0, 1) = k
# --------------------------------------------------------------------------


@njit(inline="always", cache=True)
def _bp_enter(a, gamma):
    # t at which coordinate with magnitude a > 0 leaves zero; the SAME
    # expression is used by the solver and by the output kernels so that
    # classification at t* is consistent.
    return gamma / a


@njit(inline="always", cache=True)
def _bp_sat(a, gamma):
    # t at which the coordinate saturates (θ_i = 1)
    return (1.0 + gamma) / a


@njit(cache=True)
def _load_abs(v, a, b0, b1, gamma):
    """Compact the non-zero |v_i| into ``a`` with their breakpoints; return nnz.

    Returns -1 if ``v`` holds a NaN (the callers then output NaN).
    """
    nnz = 0
    for i in range(v.shape[0]):
        x = abs(np.float64(v[i]))
        if x != x:
            return -1
        if x > 0.0:
            a[nnz] = x
            b0[nnz] = _bp_enter(x, gamma)
            b1[nnz] = _bp_sat(x, gamma)
            nnz += 1
    return nnz


@njit(cache=True)
def _load_abs_diff(x, y, a, b0, b1, gamma):
    """As :func:`_load_abs` for ``v = x - y`` (difference taken in float64)."""
    nnz = 0
    for i in range(x.shape[0]):
        v = abs(np.float64(x[i]) - np.float64(y[i]))
        if v != v:
            return -1
        if v > 0.0:
            a[nnz] = v
            b0[nnz] = _bp_enter(v, gamma)
            b1[nnz] = _bp_sat(v, gamma)
            nnz += 1
    return nnz


@njit(cache=True)
def _sweep(a, b0, b1, nu, gamma, k, t_lo, t_hi, n_sat, n_int, s_int):
    """Exact root of ``f(t) = k`` in ``[t_lo, t_hi]`` by sorting breakpoints.

    Requires ``f(t_lo) <= k <= f(t_hi)``. ``n_sat``, ``n_int``, ``s_int``
    account for coordinates already removed from the working set
    ``a[:nu]`` (saturated, resp. interior, on the whole bracket). Working
    coordinates whose state cannot change inside the bracket are folded in
    too; only the breakpoints inside the bracket are sorted:
    O(nu + b log b) for ``b`` of them. Between two events
    ``f(t) = p + t S - γ q`` with ``p`` saturated, ``q`` interior and ``S``
    the interior ℓ1 sum.
    """
    n_sat0 = n_sat
    n_int0 = n_int
    s_int0 = s_int
    n_ev = 0
    ev_t = np.empty(2 * nu)
    ev_a = np.empty(2 * nu)  # +a: enters, -a: saturates
    # state on the piece just right of t_lo
    for j in range(nu):
        c0 = b0[j]
        c1 = b1[j]
        if c1 <= t_lo:
            n_sat += 1.0
            continue
        if c0 <= t_lo:
            n_int += 1.0
            s_int += a[j]
        elif c0 < t_hi:
            ev_t[n_ev] = c0
            ev_a[n_ev] = a[j]
            n_ev += 1
        else:
            continue
        if c1 < t_hi:
            ev_t[n_ev] = c1
            ev_a[n_ev] = -a[j]
            n_ev += 1
    order = np.argsort(ev_t[:n_ev])
    t = t_lo
    t_end = t_hi
    for e in range(n_ev):
        idx = order[e]
        te = ev_t[idx]
        if n_sat + te * s_int - gamma * n_int >= k:
            t_end = te
            break
        t = te
        w = ev_a[idx]
        if w > 0.0:
            n_int += 1.0
        else:
            n_int -= 1.0
            n_sat += 1.0
        # The running sum loses ~1e-16 of the largest coordinate at each
        # removal; what is left may be a coordinate many orders smaller
        # (1e-68 beside 570), whose sum must not turn negative: f would then
        # decrease and the sweep step past the root.
        s_int = max(s_int + w, 0.0) if n_int > 0.0 else 0.0
    # the running sum lost accuracy to cancellations: recount the final
    # piece (t, t_end) exactly at an interior point
    tm = 0.5 * (t + t_end) if t_end < np.inf else 2.0 * t + 1.0
    n_sat = n_sat0
    n_int = n_int0
    s_int = s_int0
    for j in range(nu):
        if b1[j] <= tm:
            n_sat += 1.0
        elif b0[j] < tm:
            n_int += 1.0
            s_int += a[j]
    if s_int > 0.0:
        tr = (k - n_sat + gamma * n_int) / s_int
        return min(max(tr, t), t_end)
    # flat piece at level k (or f jumps when 1 + γ == γ in floating point)
    return t


@njit(inline="always", cache=True)
def _xorshift(state):
    state ^= state << np.uint64(13)
    state ^= state >> np.uint64(7)
    state ^= state << np.uint64(17)
    return state


@njit(cache=True)
def _pivot(b0, b1, nu, t_lo, t_hi, default, state):
    """Median of three random breakpoints of ``b0/b1[:nu]`` inside ``(t_lo, t_hi)``.

    A breakpoint drawn from the working set splits it in expectation, so
    alternating such pivots with Newton points bounds the number of passes
    by O(log d) in expectation. Returns ``default`` if no draw lands in the
    bracket (deterministic xorshift stream, so results are reproducible).
    """
    c = np.empty(3)
    got = 0
    for _ in range(12):
        state = _xorshift(state)
        j = int(state % np.uint64(nu))
        if t_lo < b0[j] < t_hi:
            c[got] = b0[j]
        elif t_lo < b1[j] < t_hi:
            c[got] = b1[j]
        else:
            continue
        got += 1
        if got == 3:
            break
    if got == 0:
        return default, state
    if got < 3:
        return c[0], state
    return max(min(c[0], c[1]), min(max(c[0], c[1]), c[2])), state


@njit(cache=True)
def _solve_t(a, b0, b1, nnz, gamma, k, method):
    """Root ``t*`` of ``f(t) = Σ_i clip(a_i t - γ, 0, 1) = k`` (``inf`` if nnz <= k).

    Reorders ``a``, ``b0``, ``b1`` in place (they are work buffers).

    ``method == _SORT``: :func:`_sweep` on the full bracket, O(d log d).

    Otherwise a bracketing search that shrinks a working set. Each pass
    (i) drops from ``a[:nu]`` the coordinates whose state is fixed on the
    current bracket ``(t_lo, t_hi)``, folding them into counts/sums, and
    (ii) evaluates ``f`` and the linear pieces just left and right of the
    trial point ``t``. If the linear root of the piece on the root's side
    lies in that piece it is exact and returned; otherwise the bracket moves
    past the whole piece. Trial points are semismooth Newton points, which
    usually land in the root's piece within a few passes, interleaved (after
    ``_NEWTON_FIRST`` passes, and only for γ > 0: for γ = 0 ``f`` is concave
    and Newton is monotone) with a median-of-3 random breakpoint of the
    working set, which shrinks it geometrically even where ``f`` is
    step-like (large γ) and Newton creeps. A working set of at most
    ``_SWEEP_MIN`` coordinates is finished by :func:`_sweep`. Expected
    O(d) per row; never worse than O(d log d) plus ``_MAX_PASSES`` passes.
    """
    if nnz < 0:
        return np.nan  # NaN input
    if nnz <= k:
        return np.inf
    if method == _SORT:
        return _sweep(a, b0, b1, nnz, gamma, k, 0.0, np.inf, 0.0, 0.0, 0.0)
    t_lo = 0.0
    f_lo = 0.0
    t_hi = np.inf
    f_hi = float(nnz)
    o_sat = 0.0  # dropped coordinates saturated on the whole bracket
    o_int = 0.0  # ... interior on the whole bracket
    o_s = 0.0  # their ℓ1 sum
    nu = nnz
    rng = np.uint64(nnz) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(k)
    a_max = 0.0
    for j in range(nnz):
        a_max = max(a_max, a[j])
    # start where the largest coordinate just saturates
    t = _bp_sat(a_max, gamma)
    for it in range(_MAX_PASSES):
        n_sat = o_sat  # b1 < t
        n_int = o_int  # b0 < t < b1
        s_int = o_s
        n_eq1 = 0.0  # b1 == t
        n_eq0 = 0.0  # b0 == t
        s_eq1 = 0.0
        s_eq0 = 0.0
        lbp = t_lo  # largest breakpoint < t inside the bracket
        rbp = t_hi  # smallest breakpoint > t inside the bracket
        w = 0
        for j in range(nu):
            c0 = b0[j]
            c1 = b1[j]
            x = a[j]
            # (i) state fixed on the bracket: fold and drop
            if c1 <= t_lo:
                o_sat += 1.0
                n_sat += 1.0
                continue
            if c0 >= t_hi:
                continue
            if c0 <= t_lo and c1 >= t_hi:
                o_int += 1.0
                o_s += x
                n_int += 1.0
                s_int += x
                continue
            a[w] = x
            b0[w] = c0
            b1[w] = c1
            w += 1
            # (ii) classify at t
            if c1 < t:
                n_sat += 1.0
                lbp = max(lbp, c1)
            elif c1 == t:
                n_eq1 += 1.0
                s_eq1 += x
                lbp = max(lbp, c0)
            elif c0 < t:
                n_int += 1.0
                s_int += x
                lbp = max(lbp, c0)
                rbp = min(rbp, c1)
            elif c0 == t:
                n_eq0 += 1.0
                s_eq0 += x
                rbp = min(rbp, c1)
            else:
                rbp = min(rbp, c0)
        nu = w
        # pieces (lbp, t) and (t, rbp): f = P + t S - γ I on each
        p_r = n_sat + n_eq1
        i_r = n_int + n_eq0
        s_r = s_int + s_eq0
        p_l = n_sat
        i_l = n_int + n_eq1
        s_l = s_int + s_eq1
        f = p_r + t * s_r - gamma * i_r
        if f < k:
            if s_r > 0.0:
                tn = (k - p_r + gamma * i_r) / s_r
                if tn <= rbp:
                    return max(tn, t)
                t_lo = rbp
                f_lo = p_r + rbp * s_r - gamma * i_r
            else:
                t_lo = t
                f_lo = f
                tn = rbp  # flat piece: step onto the next breakpoint
        elif f > k:
            if s_l > 0.0:
                tn = (k - p_l + gamma * i_l) / s_l
                if tn >= lbp:
                    return min(tn, t)
                t_hi = lbp
                f_hi = p_l + lbp * s_l - gamma * i_l
            else:
                t_hi = t
                f_hi = f
                tn = lbp
        elif s_l > 0.0:
            # f(t) == k in floating point, but right of the root f can stay
            # at k to rounding when the interior sum is tiny next to the
            # saturated count (7 + 1e-68 t == 7): the root is the left
            # piece's, else further left.
            tn = (k - p_l + gamma * i_l) / s_l
            if tn >= lbp:
                return min(tn, t)
            t_hi = lbp
            f_hi = p_l + lbp * s_l - gamma * i_l
        else:
            return t  # f is constant at k left of t: no interior coordinate
        if nu <= _SWEEP_MIN:
            break
        # γ = 0 (norms): f is concave, Newton from the left is monotone and
        # needs no pivots
        if gamma > 0.0 and it >= _NEWTON_FIRST and (it - _NEWTON_FIRST) % 2 == 0:
            tn, rng = _pivot(b0, b1, nu, t_lo, t_hi, tn, rng)
        if not (t_lo < tn < t_hi):
            if t_hi == np.inf:
                tn = 2.0 * max(t, t_lo)
            else:
                tn = t_lo + (k - f_lo) * (t_hi - t_lo) / (f_hi - f_lo)
                if not (t_lo < tn < t_hi):
                    tn = 0.5 * (t_lo + t_hi)
        if not (t_lo < tn < t_hi):
            break  # bracket collapsed in floating point
        t = tn
    return _sweep(a, b0, b1, nu, gamma, k, t_lo, t_hi, o_sat, o_int, o_s)


# --------------------------------------------------------------------------
# k-overlap: outputs from t*
# --------------------------------------------------------------------------


@njit(cache=True)
def _prox_row(z, gamma, t, out):
    # u_i = sign z_i · {a_i/(1+γ) saturated; a_i - γ/t interior; 0}
    if t != t:
        out[:] = np.nan
        return
    for i in range(z.shape[0]):
        x = np.float64(z[i])
        a = abs(x)
        v = 0.0
        if a > 0.0:
            if _bp_sat(a, gamma) <= t:
                v = a / (1.0 + gamma)
            elif _bp_enter(a, gamma) < t:
                v = a - gamma / t
        # +0 rather than -0 on the zeroed coordinates
        out[i] = math.copysign(v, x) if v > 0.0 else 0.0


@njit(inline="always", cache=True)
def _sq_norm_term(a, t):
    # a² if saturated, a/t if interior (γ = 0: every non-zero is one of them)
    if _bp_sat(a, 0.0) <= t:
        return a * a
    return a / t


@njit(cache=True)
def _sq_norm_row(v, t):
    # Σ_sat a_i² + Σ_int a_i / t, from the original row (the solver's work
    # buffers were reordered and truncated)
    if t != t:
        return np.nan
    acc = 0.0
    for i in range(v.shape[0]):
        a = abs(np.float64(v[i]))
        if a > 0.0:
            acc += _sq_norm_term(a, t)
    return acc


@njit(cache=True)
def _sq_norm_diff(x, y, t):
    # as _sq_norm_row for v = x - y
    if t != t:
        return np.nan
    acc = 0.0
    for i in range(x.shape[0]):
        a = abs(np.float64(x[i]) - np.float64(y[i]))
        if a > 0.0:
            acc += _sq_norm_term(a, t)
    return acc


@njit(cache=True)
def _grad_row_acc(v, t, w, out):
    # out += w · ∇(½‖·‖²_ovk)(v): v_i saturated, sign(v_i)/t otherwise
    if t != t:
        out[:] = np.nan
        return
    for i in range(v.shape[0]):
        x = v[i]
        a = abs(x)
        if a > 0.0:
            if _bp_sat(a, 0.0) <= t:
                out[i] += w * x
            else:
                out[i] += w * math.copysign(1.0 / t, x)


@njit(parallel=True, cache=True)
def _kovlp_prox_kernel(Z, gamma, k, method, out):
    n, d = Z.shape
    for i in prange(n):
        a = np.empty(d)
        b0 = np.empty(d)
        b1 = np.empty(d)
        nnz = _load_abs(Z[i], a, b0, b1, gamma)
        t = _solve_t(a, b0, b1, nnz, gamma, k, method)
        _prox_row(Z[i], gamma, t, out[i])


@njit(parallel=True, cache=True)
def _kovlp_sq_norm_kernel(Z, k, method, out):
    n, d = Z.shape
    for i in prange(n):
        a = np.empty(d)
        b0 = np.empty(d)
        b1 = np.empty(d)
        nnz = _load_abs(Z[i], a, b0, b1, 0.0)
        t = _solve_t(a, b0, b1, nnz, 0.0, k, method)
        out[i] = _sq_norm_row(Z[i], t)


@njit(parallel=True, cache=True)
def _kovlp_grad_kernel(Z, k, method, out):
    n, d = Z.shape
    for i in prange(n):
        a = np.empty(d)
        b0 = np.empty(d)
        b1 = np.empty(d)
        v = np.empty(d)
        for c in range(d):
            v[c] = np.float64(Z[i, c])
            out[i, c] = 0.0
        nnz = _load_abs(v, a, b0, b1, 0.0)
        t = _solve_t(a, b0, b1, nnz, 0.0, k, method)
        _grad_row_acc(v, t, 1.0, out[i])


@njit(parallel=True, cache=True)
def _kovlp_pairwise_kernel(X, Y, k, out):
    n, d = X.shape
    m = Y.shape[0]
    for i in prange(n):
        # per-row work buffers, reused for every j
        a = np.empty(d)
        b0 = np.empty(d)
        b1 = np.empty(d)
        for j in range(m):
            nnz = _load_abs_diff(X[i], Y[j], a, b0, b1, 0.0)
            t = _solve_t(a, b0, b1, nnz, 0.0, k, _NEWTON)
            out[i, j] = _sq_norm_diff(X[i], Y[j], t)


@njit(parallel=True, cache=True)
def _kovlp_grad_aggregate_kernel(X, Y, P, k, skip_rel, out):
    n, d = X.shape
    m = Y.shape[0]
    for i in prange(n):
        a = np.empty(d)
        b0 = np.empty(d)
        b1 = np.empty(d)
        v = np.empty(d)
        acc = np.zeros(d)
        pmax = 0.0
        for j in range(m):
            pmax = max(pmax, abs(np.float64(P[i, j])))
        thr = skip_rel * pmax
        for j in range(m):
            w = np.float64(P[i, j])
            # negligible weights cost a full O(d) solve: skip them
            if abs(w) <= thr:
                continue
            for c in range(d):
                v[c] = np.float64(X[i, c]) - np.float64(Y[j, c])
            nnz = _load_abs(v, a, b0, b1, 0.0)
            t = _solve_t(a, b0, b1, nnz, 0.0, k, _NEWTON)
            _grad_row_acc(v, t, w, acc)
        for c in range(d):
            out[i, c] = acc[c]


# --------------------------------------------------------------------------
# public wrappers
# --------------------------------------------------------------------------


def kovlp_prox(Z, gamma, k):
    r"""Row-wise prox of :math:`(γ/2)‖·‖²_{ovk}`.

    .. math:: \operatorname{prox}(z) = \operatorname*{argmin}_u
              ½‖u - z‖² + \frac{γ}{2}‖u‖²_{ovk}

    With ``t*`` the root of ``Σ_i clip(|z_i| t - γ, 0, 1) = k`` (module
    docstring), ``u_i = z_i/(1+γ)`` where ``|z_i| t* >= 1+γ``,
    ``u_i = sign(z_i)(|z_i| - γ/t*)`` where ``γ < |z_i| t* < 1+γ`` and 0
    elsewhere (Argyriou et al. 2012, Algorithm 1, ``β = 1/γ``). Rows with at
    most ``k`` non-zeros give ``z/(1+γ)``. Cost O(d) per Newton pass,
    typically a few passes; worst case O(d log d).

    Parameters
    ----------
    Z : array-like of shape (n, d)
    gamma : float
        Weight ``γ >= 0``.
    k : int
        Support size ``>= 1`` (``k >= d`` is the ℓ2 case).

    Returns
    -------
    U : ndarray of shape (n, d)
        New array of the dtype of ``Z``; ``Z`` is not modified.
    """
    Z = as_float_2d(Z)
    gamma = _check_gamma(gamma)
    k = _check_k(k)
    Z64 = _f64(Z)
    out = np.empty_like(Z64)
    _kovlp_prox_kernel(Z64, gamma, k, _NEWTON, out)
    return out.astype(Z.dtype, copy=False)


def kovlp_sq_norm(Z, k):
    r"""Squared k-overlap norm of each row.

    With :math:`|z|^↓` sorted decreasingly (Argyriou et al. 2012, Prop. 2.1),

    .. math:: ‖z‖²_{ovk} = \sum_{i=1}^{k-r-1} (|z|^↓_i)²
              + \frac{1}{r+1}\Big(\sum_{i=k-r}^{d} |z|^↓_i\Big)²

    where ``r ∈ {0, ..., k-1}`` is the integer with
    :math:`|z|^↓_{k-r-1} > \frac{1}{r+1}\sum_{i \ge k-r}|z|^↓_i \ge |z|^↓_{k-r}`
    (:math:`|z|^↓_0 = +∞`). ``k = 1`` gives ``‖z‖₁²``, ``k >= d`` ``‖z‖₂²``.

    Parameters
    ----------
    Z : array-like of shape (n, d)
    k : int

    Returns
    -------
    sq_norm : ndarray of shape (n,)
        Dtype of ``Z``.
    """
    Z = as_float_2d(Z)
    k = _check_k(k)
    out = np.empty(Z.shape[0])
    _kovlp_sq_norm_kernel(_f64(Z), k, _NEWTON, out)
    return out.astype(Z.dtype, copy=False)


def kovlp_grad_half_sq(Z, k):
    r"""Gradient of :math:`½‖z‖²_{ovk}`, row-wise.

    .. math:: g_i = z_i \ (i \text{ among the top } k-r-1), \qquad
              g_i = \operatorname{sign}(z_i) \frac{T}{r+1} \text{ otherwise},

    with ``T`` the ℓ1 norm of the tail ``|z|^↓_{k-r..d}`` (see
    :func:`kovlp_sq_norm`). Zero coordinates get 0 (a valid subgradient).

    Parameters
    ----------
    Z : array-like of shape (n, d)
    k : int

    Returns
    -------
    G : ndarray of shape (n, d)
        Dtype of ``Z``.
    """
    Z = as_float_2d(Z)
    k = _check_k(k)
    Z64 = _f64(Z)
    out = np.empty_like(Z64)
    _kovlp_grad_kernel(Z64, k, _NEWTON, out)
    return out.astype(Z.dtype, copy=False)


def kovlp_sq_norm_pairwise(X, Y, k):
    r"""Matrix of squared k-overlap norms :math:`M_{ij} = ‖x_i - y_j‖²_{ovk}`.

    Parallel over rows of ``X``; O(n m d) typical, O(n m d log d) worst case.

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d)
    k : int

    Returns
    -------
    M : ndarray of shape (n, m)
        Dtype ``result_type(X, Y)``.
    """
    X, Y = _pair(X, Y)
    k = _check_k(k)
    out = np.empty((X.shape[0], Y.shape[0]))
    _kovlp_pairwise_kernel(_f64(X), _f64(Y), k, out)
    return out.astype(X.dtype, copy=False)


def kovlp_grad_aggregate(X, Y, P, k):
    r"""Plan-weighted gradients :math:`G_i = \sum_j P_{ij} ∇(½‖·‖²_{ovk})(x_i - y_j)`.

    Parallel over ``i`` with O(d) work buffers per row (no n × m × d array).
    Entries with :math:`|P_{ij}| \le 10^{-300} \max_j |P_{ij}|` (exact zeros
    and underflowed weights) are skipped, which saves their O(d) solve.

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d)
    P : array-like of shape (n, m)
        Weights (e.g. a transport plan or its row-normalised version).
    k : int

    Returns
    -------
    G : ndarray of shape (n, d)
        Dtype ``result_type(X, Y)`` (accumulated in float64).
    """
    X, Y = _pair(X, Y)
    k = _check_k(k)
    P = as_float_2d(P, "P")
    if P.shape != (X.shape[0], Y.shape[0]):
        raise ValueError(
            f"P must have shape {(X.shape[0], Y.shape[0])}, got {P.shape}."
        )
    out = np.empty(X.shape)
    _kovlp_grad_aggregate_kernel(_f64(X), _f64(Y), _f64(P), k, _AGG_SKIP_REL, out)
    return out.astype(X.dtype, copy=False)
