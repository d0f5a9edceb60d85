r"""Choosing the entropic regularisation ε from the data: the perplexity rule.

The entropic map sends a point to a weighted mean of target points, with the
weights of the plan's row, :math:`p_j(x_i) = P_{ij} / a_i`. ε sets how many
target points that mean is effectively taken over. We fix that number instead
of ε itself: the default ε is the one at which the plan's rows have median
*perplexity* :math:`\exp H(p(x_i))` equal to a target (as t-SNE fixes the
perplexity of its affinities rather than a bandwidth),

.. math:: \operatorname{median}_i \exp\Big(-\sum_j p_{ij} \log p_{ij}\Big)
          = \text{perplexity}, \qquad p_{ij} = P^ε_{ij} / a_i .

Unlike ``relative_epsilon * mean(C)``, the rule does not move when a constant
is added to the cost (which changes neither the plan nor the map), and it
adapts to structure: on clustered single-cell data it picks an ε an order of
magnitude below ``0.1 * mean(C)``, on the smooth synthetic tasks of
Cuturi et al. (2023, §5.1) one close to it (see the user guide's table).

The search runs loose Sinkhorn solves (marginal error ``1e-3``), each
warm-started from the previous one: halving (or doubling) ε from the spread of
the costs until the target is bracketed, then narrowing the bracket of
:math:`\log ε` by regula falsi and interpolating log-linearly in the final
bracket.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._arrays import evenly_spaced
from ._kernels.fastmath import _fexp
from ._kernels.sinkhorn import _exact_row_weights, _row_max_logit, _row_spread
from .sinkhorn import _check_cost, sinkhorn

__all__ = [
    "WarmStart",
    "perplexity_epsilon",
    "plan_perplexity",
    "search_epsilon",
    "search_inputs",
]


class WarmStart(NamedTuple):
    """Potentials that start a search solve (either may be None)."""

    f: np.ndarray | None
    g: np.ndarray | None


# Marginal error of the search solves: the perplexity moves by far less than
# its own spread over rows between this and a converged plan.
_SEARCH_TOL = 1e-3
_SEARCH_MAX_ITER = 1000
# the factor-2 bracket of log ε is narrowed (regula falsi) until the target
# is met to within 0.2 % of perplexity or the bracket is within 2 ** (1 / 64)
_ROOT_TOL = 2e-3
_BRACKET_WIDTH = math.log(2.0) / 64
_MAX_REFINE = 8
_MAX_ROWS = 4096  # rows whose perplexity is evaluated (evenly spaced)
_PLATEAU = 0.02  # relative decrease per halving of ε below which we stop
_MAX_STEPS = 40  # the search stays within spread * 2**[-40, 40]


@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")
def _row_entropy(C, rows, beta, inv_eps, out):
    r"""Shannon entropy of the rows ``rows`` of
    :math:`\mathrm{softmax}_j(β_j - C_{ij}/ε)` (indices into ``C``, so that
    no copy of the selected rows is made).

    With :math:`z_j = β_j - C_{ij}/ε - \max_k(\cdot)` and
    :math:`Z = \sum_j e^{z_j}`: :math:`H_i = \log Z - \sum_j e^{z_j} z_j / Z`.
    """
    m = C.shape[1]
    for r in prange(rows.size):
        i = rows[r]
        mx = _row_max_logit(C, beta, inv_eps, i)
        total = 0.0
        weighted = 0.0
        for j in range(m):
            z = beta[j] - C[i, j] * inv_eps - mx
            e = _fexp(z)
            total += e
            weighted += e * z
        if not total >= 0.5:  # the largest term is 1 up to rounding
            buf = np.empty(m)
            mx = _exact_row_weights(C, beta, inv_eps, i, buf)
            total = 0.0
            weighted = 0.0
            for j in range(m):
                if buf[j] > 0.0:
                    total += buf[j]
                    weighted += buf[j] * math.log(buf[j])
        out[r] = math.log(total) - weighted / total


def plan_perplexity(C, g, epsilon, b=None, rows=None):
    r"""Perplexity :math:`\exp H(p_{i\cdot})` of each row of the entropic plan.

    The row :math:`p_{ij} \propto b_j \exp((g_j - C_{ij})/ε)` depends on the
    target potential only (the source potential is the row's normaliser).

    Parameters
    ----------
    C : ndarray of shape (n, m)
    g : ndarray of shape (m,)
        Target potential.
    epsilon : float
    b : ndarray of shape (m,), default=None
        Target weights (uniform when None); zero weights drop out.
    rows : ndarray of int, default=None
        Rows of ``C`` to evaluate (all when None).

    Returns
    -------
    perplexity : ndarray of shape (n,) or (len(rows),)
        Between 1 (one target point) and the number of target points.
    """
    m = C.shape[1]
    b = np.full(m, 1.0 / m) if b is None else np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore"):
        beta = np.asarray(g, dtype=np.float64) / epsilon + np.log(b)
    rows = np.arange(C.shape[0]) if rows is None else np.asarray(rows, dtype=np.intp)
    out = np.empty(rows.size)
    _row_entropy(C, rows, beta, 1.0 / epsilon, out)
    return np.exp(out)


def perplexity_epsilon(
    C, perplexity, a=None, b=None, *, dtype=None, start=None, g_init=None
):
    r"""ε at which the entropic plan's rows have median perplexity ``perplexity``.

    Parameters
    ----------
    C : ndarray of shape (n, m)
        Cost matrix.
    perplexity : float
        Target effective number of target points per source point. Capped at
        half the number of target points with positive weight, so that small
        samples still get a plan that is not uniform.
    a, b : ndarray, default=None
        Source and target weights (uniform when None).
    dtype : {None, float32, float64}, default=None
        Kernel precision of the search solves (see :func:`sinkhorn`).
    start : float, default=None
        A guess, e.g. the ε of a nearby cost (the previous γ of a path). The
        search steps by factors of 2 on the lattice ``spread * 2**k``; it
        then starts from the lattice point nearest to ``start``, which
        brackets the same factor-2 interval as a search from ``spread`` (the
        perplexity increases with ε) in fewer solves, and so chooses the same
        ε up to the rounding of the loose solves.
    g_init : ndarray of shape (m,), default=None
        Target potential that warm-starts the first solve, e.g. the
        converged potential of the previous γ of a path (which ``start``
        comes with). Like every warm start of the search, it shortens the
        solve without moving the ε chosen beyond the loose solves' rounding.

    Returns
    -------
    epsilon : float
        Positive, rounded to 3 significant digits; ``nan`` is never returned.
    result : SinkhornResult
        The loose solve at (the bracket end nearest to) ``epsilon``: its
        potentials can warm-start a solve at ``epsilon``.

    Raises
    ------
    ValueError
        If all costs of a row equal each other for every row (for instance
        identical constant samples): no ε is singled out.
    """
    b_arr = None if b is None else np.asarray(b, dtype=np.float64)
    n_support = C.shape[1] if b_arr is None else int(np.count_nonzero(b_arr))
    if n_support < 2:
        # one target point: every ε gives the same plan and map
        scale = float(np.abs(C).mean(dtype=np.float64))
        eps = scale if scale > 0 else 1.0
        return eps, sinkhorn(C, eps, a, b, tol=_SEARCH_TOL, dtype=dtype, warn=False)
    # checked once here (one pass), not again by each solve of the search
    C, largest_cost = _check_cost(C, return_scale=True)
    spread = float(_row_spread(C))
    target, rows = search_inputs(
        spread, largest_cost, perplexity, n_support, C.shape[0]
    )

    def solve(eps, warm):
        f_init, g_init = (None, None) if warm is None else (warm.f, warm.g)
        res = sinkhorn(
            C,
            eps,
            a,
            b,
            tol=_SEARCH_TOL,
            max_iter=_SEARCH_MAX_ITER,
            f_init=f_init,
            g_init=g_init,
            dtype=dtype,
            warn=False,
            cost_scale=largest_cost,
        )
        return res, float(np.median(plan_perplexity(C, res.g, eps, b_arr, rows)))

    warm = None if g_init is None else WarmStart(None, np.asarray(g_init))
    return search_epsilon(solve, spread, target, start, warm)


def search_inputs(spread, largest_cost, perplexity, n_support, n_rows):
    """Checked inputs of :func:`search_epsilon`: the perplexity target
    (capped at half the target support) and the evenly spaced rows whose
    perplexity is measured."""
    # relative test: fastmath sums leave rounding-level spreads on equal rows
    if not spread > 1e-12 * largest_cost:
        raise ValueError(
            "Every source point is at the same cost from all target points "
            "(constant samples?): the perplexity rule cannot choose epsilon; "
            "pass an absolute epsilon."
        )
    target = min(float(perplexity), 1.0 + 0.5 * (n_support - 1))
    return target, evenly_spaced(n_rows, _MAX_ROWS)


def search_epsilon(solve, spread, target, start=None, warm=None):
    """The search of :func:`perplexity_epsilon`, for any solver.

    ``solve(eps, warm)`` returns a loose Sinkhorn result at ``eps``
    (warm-started from the potentials ``warm.f``, ``warm.g`` of a result or
    a :class:`WarmStart` unless it is None) and the median perplexity of its
    plan's rows; ``spread`` is the mean row spread of the costs and
    ``target`` the (capped) perplexity. ``warm`` starts the first solve (the
    one at the lattice point nearest to ``start``). The torch backend
    (:mod:`skmonge._torch_ot`) runs the same search on its own solver.
    """
    step = 0
    if start is not None and start > 0 and math.isfinite(start):
        step = int(min(_MAX_STEPS, max(-_MAX_STEPS, round(math.log2(start / spread)))))
    eps, (res, value) = spread * 2.0**step, solve(spread * 2.0**step, warm)
    factor = 0.5 if value > target else 2.0
    # ε far outside [spread * 2**-40, spread * 2**40] would mean a degenerate
    # cost; stop there rather than loop.
    while abs(step) < _MAX_STEPS:
        step += 1 if factor > 1 else -1
        eps_next = eps * factor
        res_next, value_next = solve(eps_next, res)
        if (value_next > target) != (value > target):
            break
        if factor < 1 and value_next > (1.0 - _PLATEAU) * value:
            # Ties (e.g. repeated all-zero cells) put a floor under the
            # perplexity: a smaller ε would not sharpen the plan, only slow
            # Sinkhorn down. Keep the ε where the plateau starts, which a
            # search started inside the plateau would miss.
            if start is not None:
                return search_epsilon(solve, spread, target)
            return _rounded(eps), res
        eps, res, value = eps_next, res_next, value_next
    else:
        return _rounded(eps), res
    # bracket: log ε in [lo, hi] with perplexity(lo) <= target < perplexity(hi)
    if factor < 1:
        lo, hi = (eps_next, res_next, value_next), (eps, res, value)
    else:
        lo, hi = (eps, res, value), (eps_next, res_next, value_next)
    return _refine(solve, lo, hi, target)


def _refine(solve, lo, hi, target):
    r"""Narrow the bracket ``lo = (ε, result, perplexity)``, ``hi`` (with
    perplexity(lo) <= target < perplexity(hi)) and return the ε of the
    target and the solve nearest to it.

    The root of :math:`φ(\log ε) = \log \text{perplexity} - \log
    \text{target}` is found by the Illinois variant of regula falsi:
    :math:`φ` is nearly linear in :math:`\log ε` over a factor-2 bracket, so
    the secant point is usually within a few per mille of the root. When the
    same end is kept twice, its :math:`φ` is halved, so the bracket
    shrinks from both sides. It stops once :math:`|φ| \le` ``_ROOT_TOL``
    at a new point or the bracket is narrower than :math:`2^{1/64}`. The ε
    is then interpolated log-linearly in the final bracket, so it moves
    continuously with the data. Each solve warm-starts from the bracket end
    nearest in :math:`\log ε`.
    """
    log_target = math.log(target)
    phi_lo = math.log(lo[2]) - log_target
    phi_hi = math.log(hi[2]) - log_target
    kept = None  # which end the previous step kept
    for _ in range(_MAX_REFINE):
        if math.log(hi[0] / lo[0]) <= _BRACKET_WIDTH:
            break
        span = phi_hi - phi_lo
        w = -phi_lo / span if span > 0 else 0.5
        # stay inside the bracket, away from its ends
        w = min(max(w, 0.02), 0.98)
        mid = math.exp((1.0 - w) * math.log(lo[0]) + w * math.log(hi[0]))
        near = lo if w < 0.5 else hi
        res_mid, value_mid = solve(mid, near[1])
        phi_mid = math.log(value_mid) - log_target
        if value_mid > target:
            hi, phi_hi = (mid, res_mid, value_mid), phi_mid
            if kept == "lo":
                phi_lo *= 0.5
            kept = "lo"
        else:
            lo, phi_lo = (mid, res_mid, value_mid), phi_mid
            if kept == "hi":
                phi_hi *= 0.5
            kept = "hi"
        if abs(phi_mid) <= _ROOT_TOL:
            break
    # the interpolation uses the measured perplexities, not Illinois' halved φ
    span = math.log(hi[2]) - math.log(lo[2])
    w = (log_target - math.log(lo[2])) / span if span > 0 else 0.5
    w = min(max(w, 0.0), 1.0)
    eps = math.exp((1.0 - w) * math.log(lo[0]) + w * math.log(hi[0]))
    return _rounded(eps), (lo if w < 0.5 else hi)[1]


def _rounded(eps):
    """ε to 3 significant digits.

    The loose search solves stop at an iteration that rounding-level changes
    of ``C`` (sparse against dense kernels, another thread count) can move by
    one, which moves the interpolated ε in its 8th digit. Rounding makes the
    fitted map reproducible across those; the perplexity is only needed to a
    few percent.
    """
    return float(f"{eps:.3g}")
