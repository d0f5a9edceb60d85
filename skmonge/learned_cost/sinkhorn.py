r"""Differentiable log-domain Sinkhorn in torch (implicit differentiation).

For a cost matrix already divided by ε, :math:`K = C/ε`, and log-weights
:math:`\log a, \log b`, the dimensionless potentials :math:`\tilde f, \tilde g`
(:math:`f = ε\tilde f`, :math:`g = ε\tilde g`) are the fixed point of

.. math:: \tilde f_i = -\log\sum_j b_j e^{\tilde g_j - K_{ij}}, \qquad
          \tilde g_j = -\log\sum_i a_i e^{\tilde f_i - K_{ij}},

with plan :math:`P_{ij} = a_i b_j e^{\tilde f_i + \tilde g_j - K_{ij}}`.

Gradients with respect to :math:`K` come from the implicit function theorem at
the fixed point, not from unrolling. The optimality conditions
:math:`F = (a - P\mathbb 1,\; b - P^\top\mathbb 1) = 0` have Jacobian
:math:`-H` in :math:`(\tilde f, \tilde g)`,

.. math:: H = \begin{pmatrix} \operatorname{diag}(P\mathbb 1) & P \\
                              P^\top & \operatorname{diag}(P^\top\mathbb 1)
              \end{pmatrix},

positive semi-definite with the null vector :math:`(\mathbb 1, -\mathbb 1)`
(the potentials are defined up to :math:`(\tilde f + c, \tilde g - c)`), and
:math:`∂F/∂K_{ij}` contributes :math:`P_{ij}` to rows ``i`` and ``n + j``.
For a cotangent :math:`v = (\bar f, \bar g)` orthogonal to the null vector,
solving :math:`H u = v` gives

.. math:: \bar K_{ij} = P_{ij}\,(u_i + u_{n+j}),

invariant to the null direction. :math:`H u = v` is reduced to its Schur
complement :math:`S = \operatorname{diag}(P^\top\mathbb 1) - P^\top
\operatorname{diag}(P\mathbb 1)^{-1} P` on the smaller side (dense solve, or
conjugate gradients on large problems).

The module also provides the debiased Sinkhorn divergence of two point
clouds for the ½ℓ2² cost, differentiable in the points by the envelope
theorem (:math:`∂\mathrm{OT}_ε/∂C = P` at the optimum).
"""

from __future__ import annotations

import math

from .._torch import import_torch

torch = import_torch()

__all__ = [
    "sinkhorn_log",
    "sinkhorn_potentials",
    "differentiable_plan",
    "differentiable_sinkhorn_divergence",
]

# Sizes of the Schur complement above which conjugate gradients replace the
# dense solve (O(m^3) flops against O(n m) per CG iteration).
_DENSE_LIMIT = 1024
_CHECK_EVERY = 10


def sinkhorn_log(K, log_a, log_b, g_init=None, tol=1e-6, max_iter=1000):
    r"""Log-domain Sinkhorn on :math:`K = C/ε` (no autograd graph).

    The marginal error :math:`\sum_i |(P\mathbb 1)_i - a_i|` (the column
    marginal is exact after each :math:`\tilde g` update) is checked every 10
    iterations, the only host synchronisations.

    Parameters
    ----------
    K : tensor of shape (n, m)
        Cost matrix divided by ε.
    log_a, log_b : tensors of shape (n,) and (m,)
        Log-weights (each summing to one in the exponential).
    g_init : tensor of shape (m,), default=None
        Warm start for :math:`\tilde g` (zeros when None).
    tol : float, default=1e-6
    max_iter : int, default=1000

    Returns
    -------
    f, g : tensors of shape (n,), (m,)
        Dimensionless potentials.
    n_iter : int
    error : float
        Final marginal error.
    """
    with torch.no_grad():
        K = K.detach()
        g = K.new_zeros(K.shape[1]) if g_init is None else g_init.detach().clone()
        a = log_a.exp()
        f = -torch.logsumexp(log_b[None, :] + g[None, :] - K, dim=1)
        error = float("inf")
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            g = -torch.logsumexp(log_a[:, None] + f[:, None] - K, dim=0)
            f_next = -torch.logsumexp(log_b[None, :] + g[None, :] - K, dim=1)
            if n_iter % _CHECK_EVERY == 0 or n_iter == max_iter:
                # row marginal of the plan (f, g): a_i exp(f_i - f_next_i)
                error = float((a * torch.expm1(f - f_next).abs()).sum())
                if error <= tol:
                    break
            f = f_next
    return f, g, n_iter, error


def _cg(matvec, rhs, tol=1e-12, max_iter=500):
    """Conjugate gradients for a symmetric positive semi-definite system."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = r @ r
    stop = tol * tol * (rhs @ rhs)
    for _ in range(max_iter):
        if rr <= stop:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _solve_schur(P, r, c, v_f, v_g, dense_limit):
    r"""Solve :math:`H u = (v_f, v_g)` by the Schur complement on the ``g`` side."""
    rhs = v_g - P.T @ (v_f / r)

    def schur(x):
        return c * x - P.T @ ((P @ x) / r)

    m = c.shape[0]
    if m <= dense_limit:
        S = torch.diag(c) - P.T @ (P / r[:, None])
        # S 1 = 0: adding mean(c) 1 1^T / m removes the null direction without
        # changing the solution orthogonal to it (rhs is orthogonal to 1).
        S = S + c.mean() / m
        u_g = torch.linalg.solve(S, rhs)
    else:
        u_g = _cg(schur, rhs)
    u_f = (v_f - P @ u_g) / r
    return u_f, u_g


class _SinkhornImplicit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, K, log_a, log_b, g_init, tol, max_iter, info, dense_limit):
        f, g, n_iter, error = sinkhorn_log(K, log_a, log_b, g_init, tol, max_iter)
        info.update(n_iter=n_iter, error=error, converged=error <= tol)
        ctx.dense_limit = dense_limit
        ctx.save_for_backward(K, log_a, log_b, f, g)
        return f, g

    @staticmethod
    def backward(ctx, grad_f, grad_g):
        K, log_a, log_b, f, g = ctx.saved_tensors
        P = torch.exp(log_a[:, None] + log_b[None, :] + f[:, None] + g[None, :] - K)
        r, c = P.sum(1), P.sum(0)
        v_f = torch.zeros_like(f) if grad_f is None else grad_f
        v_g = torch.zeros_like(g) if grad_g is None else grad_g
        # Remove the component along the null vector (1, -1); a loss that only
        # depends on the plan or the map has none, up to rounding.
        shift = (v_f.sum() - v_g.sum()) / (f.shape[0] + g.shape[0])
        v_f, v_g = v_f - shift, v_g + shift
        if c.shape[0] <= r.shape[0]:
            u_f, u_g = _solve_schur(P, r, c, v_f, v_g, ctx.dense_limit)
        else:
            u_g, u_f = _solve_schur(P.T, c, r, v_g, v_f, ctx.dense_limit)
        grad_K = P * (u_f[:, None] + u_g[None, :])
        return grad_K, None, None, None, None, None, None, None


def sinkhorn_potentials(
    K, log_a, log_b, g_init=None, tol=1e-6, max_iter=1000, info=None, dense_limit=None
):
    r"""Dimensionless potentials :math:`(\tilde f, \tilde g)` of :math:`K = C/ε`.

    Differentiable with respect to ``K`` by implicit differentiation at the
    fixed point (see the module docstring). ``info`` (a dict) receives
    ``n_iter``, ``error`` and ``converged``.
    """
    info = {} if info is None else info
    limit = _DENSE_LIMIT if dense_limit is None else int(dense_limit)
    return _SinkhornImplicit.apply(
        K, log_a, log_b, g_init, float(tol), int(max_iter), info, limit
    )


def differentiable_plan(K, f, g, log_a, log_b):
    r"""Plan :math:`P_{ij} = a_i b_j e^{\tilde f_i + \tilde g_j - K_{ij}}`."""
    return torch.exp(log_a[:, None] + log_b[None, :] + f[:, None] + g[None, :] - K)


# ----------------------------------------------------------------------------
# Sinkhorn divergence between point clouds (½ℓ2² cost), envelope gradients
# ----------------------------------------------------------------------------
def half_sq_dist(X, Y):
    r""":math:`C_{ij} = ½\|x_i - y_j\|^2` (never negative, smooth in both)."""
    sq = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * X @ Y.T
    return 0.5 * sq.clamp_min(0.0)


def _uniform_log(n, like):
    return torch.full((n,), -math.log(n), dtype=like.dtype, device=like.device)


def _ot_cross(X, Y, epsilon, tol, max_iter, g_init):
    """:math:`\\mathrm{OT}_ε` between uniform clouds, differentiable (envelope)."""
    C = half_sq_dist(X, Y)
    log_a, log_b = _uniform_log(X.shape[0], X), _uniform_log(Y.shape[0], Y)
    _, g, _, _ = sinkhorn_log(C / epsilon, log_a, log_b, g_init, tol, max_iter)
    # one differentiable c-transform at the (detached) optimum: its gradient in
    # C is the plan, the envelope-theorem derivative of the OT value
    f = -epsilon * torch.logsumexp(log_b[None, :] + g[None, :] - C / epsilon, dim=1)
    value = (log_a.exp() * f).sum() + epsilon * (log_b.exp() * g).sum()
    return value, g


def _ot_self(X, epsilon, tol, max_iter, f_init):
    r""":math:`\mathrm{OT}_ε(α, α)` by averaged symmetric updates, differentiable."""
    C = half_sq_dist(X, X)
    log_a = _uniform_log(X.shape[0], X)
    a = log_a.exp()
    with torch.no_grad():
        K = C.detach() / epsilon
        f = K.new_zeros(K.shape[0]) if f_init is None else f_init.clone()
        for it in range(1, max_iter + 1):
            Tf = -torch.logsumexp(log_a[None, :] + f[None, :] - K, dim=1)
            if (
                it % _CHECK_EVERY == 0
                and float((a * torch.expm1(f - Tf).abs()).sum()) <= tol
            ):
                break
            f = 0.5 * (f + Tf)
    f_diff = -epsilon * torch.logsumexp(
        log_a[None, :] + f[None, :] - C / epsilon, dim=1
    )
    value = (a * f_diff).sum() + epsilon * (a * f).sum()
    return value, f


def differentiable_sinkhorn_divergence(
    X, Y, epsilon, tol=1e-5, max_iter=500, state=None
):
    r"""Debiased Sinkhorn divergence for the ½ℓ2² cost, differentiable in X and Y.

    .. math:: S_ε(α, β) = \mathrm{OT}_ε(α, β) - ½\mathrm{OT}_ε(α, α)
              - ½\mathrm{OT}_ε(β, β)

    with uniform weights on the rows of ``X`` and ``Y``.

    Parameters
    ----------
    X, Y : tensors of shape (n, d), (m, d)
    epsilon : float
        Absolute entropic regularisation.
    tol, max_iter
        Stopping rule of the three solves.
    state : dict, default=None
        Warm starts, read and updated in place (reuse it across training
        steps for the same pair of clouds).
    """
    state = {} if state is None else state
    xy, state["g"] = _ot_cross(X, Y, epsilon, tol, max_iter, state.get("g"))
    xx, state["fx"] = _ot_self(X, epsilon, tol, max_iter, state.get("fx"))
    yy, state["fy"] = _ot_self(Y, epsilon, tol, max_iter, state.get("fy"))
    return xy - 0.5 * (xx + yy)
