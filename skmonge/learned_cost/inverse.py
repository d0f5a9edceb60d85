r"""Inverse gradient of a strongly convex cost, with implicit derivatives.

For an α-strongly convex, twice differentiable :math:`h_θ` (Proposition 3.1 of
Howard et al.),

.. math:: (∇h_θ)^{-1}(w) = \arg\min_z \; φ(z) := h_θ(z) - \langle z, w\rangle ,

a strongly convex problem solved here, for a batch of ``w`` at once, by
damped Newton steps (Armijo backtracking on :math:`φ`), warm-started from a
given guess.

Derivatives are *implicit*, never unrolled through the iterations: the
solution :math:`z^\star(w, θ)` satisfies :math:`F = ∇h_θ(z^\star) - w = 0`, so

.. math:: \frac{∂z^\star}{∂w} = H^{-1}, \qquad
          \frac{∂z^\star}{∂θ} = -H^{-1}\,∂_θ ∇h_θ(z^\star), \qquad
          H = ∇^2 h_θ(z^\star) ⪰ 2αI ,

and the backward pass of a cotangent :math:`v` solves :math:`H u = v` (one
small symmetric system per row, assembled from Hessian-vector products),
returning :math:`\bar w = u` and :math:`\bar θ = -∂_θ\langle ∇h_θ(z^\star), u\rangle`
(a mixed second derivative, one more backward pass).
"""

from __future__ import annotations

from .._torch import import_torch

torch = import_torch()

__all__ = ["solve_inverse_gradient", "inverse_gradient", "hessian_rows"]

# Armijo constant and the step sizes 1, 1/2, ..., 1/2**(_N_STEPS - 1) tried
# by the backtracking line search, all evaluated in one batched call so that
# choosing a step needs no host synchronisation.
_ARMIJO = 1e-4
_N_STEPS = 12


def _value_and_gradient(h, z):
    """``(h(z), ∇h(z))`` of a row-wise scalar function ``h``, detached."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = h(z)
        (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


def hessian_rows(h, z):
    r"""Row-wise Hessians :math:`∇^2h(z_k)`, shape (n, d, d), from ``d`` HVPs.

    Rows are independent, so the Hessian-vector product with the ``t``-th
    basis vector for every row at once is one backward pass of
    :math:`\sum_k ∂_t h(z_k)`.
    """
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(h(z).sum(), z, create_graph=True)
        rows = [
            torch.autograd.grad(grad[:, t].sum(), z, retain_graph=True)[0]
            for t in range(z.shape[1])
        ]
    return torch.stack(rows, dim=1).detach()


def _spd_solve(H, b):
    """Solve ``H x = b`` row-wise for symmetric positive definite ``H`` (Cholesky).

    ``H ⪰ 2αI`` here; a batched Cholesky solve is several times faster than
    the LU of ``torch.linalg.solve`` for these small systems.
    """
    L = torch.linalg.cholesky(H)
    return torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1)


def _residual_ok(grad_minus_w, w, tol):
    """Rows where ``‖∇h(z) - w‖ <= tol (1 + ‖w‖)``."""
    return grad_minus_w.norm(dim=1) <= tol * (1.0 + w.norm(dim=1))


def solve_inverse_gradient(cost, w, z0=None, tol=1e-8, max_iter=50):
    r"""Solve :math:`∇h(z) = w` row-wise by damped Newton (no autograd graph).

    Each iteration takes the Newton direction
    :math:`Δ = -∇^2h(z)^{-1}(∇h(z) - w)` and the largest step
    :math:`t \in \{1, ½, …\}` satisfying Armijo's condition
    :math:`φ(z + tΔ) \le φ(z) + 10^{-4}\, t\, \langle ∇φ(z), Δ\rangle`; rows
    that have converged are frozen, so every row's result does not depend on
    the other rows of the batch.

    Parameters
    ----------
    cost : ConvexCost
        The strongly convex :math:`h`.
    w : tensor of shape (n, d)
        Right-hand sides.
    z0 : tensor of shape (n, d), default=None
        Warm start; ``w / (2α)`` (exact for the quadratic part) when None.
    tol : float, default=1e-8
        Stop a row when :math:`\|∇h(z) - w\| \le \mathrm{tol}\,(1 + \|w\|)`.
    max_iter : int, default=50
        Maximum Newton iterations.

    Returns
    -------
    z : tensor of shape (n, d)
        Detached solution.
    converged : bool
        Whether every row met the tolerance.
    """
    w = w.detach()
    z = (w / (2.0 * cost.alpha) if z0 is None else z0.detach()).clone()
    if w.shape[0] == 0:
        return z, True
    steps = 0.5 ** torch.arange(_N_STEPS, dtype=w.dtype, device=w.device)
    converged = False
    for _ in range(max_iter):
        value, grad = _value_and_gradient(cost, z)
        residual = grad - w
        done = _residual_ok(residual, w, tol)
        # One host sync per Newton iteration (a handful per solve).
        if bool(done.all()):
            converged = True
            break
        H = hessian_rows(cost, z)
        direction = -_spd_solve(H, residual)
        phi = value - (z * w).sum(1)
        slope = (residual * direction).sum(1)
        # Armijo backtracking for all rows and all candidate steps at once.
        trial = z[:, None, :] + steps[None, :, None] * direction[:, None, :]
        flat = trial.reshape(-1, z.shape[1])
        with torch.no_grad():
            phi_trial = cost(flat) - (flat * w.repeat_interleave(_N_STEPS, 0)).sum(1)
        phi_trial = phi_trial.reshape(-1, _N_STEPS)
        accept = phi_trial <= phi[:, None] + _ARMIJO * steps[None, :] * slope[:, None]
        # first accepted (largest) step; the smallest one when none is
        first = accept.to(w.dtype).argmax(1)
        first = torch.where(accept.any(1), first, torch.full_like(first, _N_STEPS - 1))
        t = steps[first]
        step = t[:, None] * direction
        z = torch.where(done[:, None], z, z + step)
        # Rows whose step no longer changes z (rounding level) are as
        # accurate as this precision allows: stop counting on them.
        tiny = step.norm(dim=1) <= 4 * torch.finfo(z.dtype).eps * (1 + z.norm(dim=1))
        if bool((done | tiny).all()):
            converged = bool(done.all()) or bool(
                _residual_ok(_value_and_gradient(cost, z)[1] - w, w, 1e3 * tol).all()
            )
            break
    return z.detach(), converged


class _InverseGradient(torch.autograd.Function):
    """:math:`z^\\star = (∇h_θ)^{-1}(w)` with implicit backward (see module doc)."""

    @staticmethod
    def forward(ctx, w, z0, cost, names, tol, max_iter, info, *params):
        z, converged = solve_inverse_gradient(cost, w, z0, tol, max_iter)
        info["converged"] = converged
        ctx.cost = cost
        ctx.names = names
        ctx.save_for_backward(z, *params)
        return z

    @staticmethod
    def backward(ctx, grad_z):
        from torch.func import functional_call

        z, *params = ctx.saved_tensors
        n_lead = 7  # inputs before *params
        wanted = [i for i in range(len(params)) if ctx.needs_input_grad[n_lead + i]]
        with torch.enable_grad():
            # Evaluate h with the parameters saved at forward time (not the
            # module's current ones), as a function of the leaves below.
            leaves = [
                p.detach().requires_grad_(i in wanted) for i, p in enumerate(params)
            ]
            state = dict(zip(ctx.names, leaves, strict=True))

            def h(x):
                return functional_call(ctx.cost, state, (x,))

            H = hessian_rows(h, z)
            u = _spd_solve(H, grad_z)
            grad_params = [None] * len(params)
            if wanted:
                zz = z.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(h(zz).sum(), zz, create_graph=True)
                mixed = torch.autograd.grad(
                    (g * u.detach()).sum(),
                    [leaves[i] for i in wanted],
                    allow_unused=True,
                )
                for i, grad in zip(wanted, mixed, strict=True):
                    grad_params[i] = None if grad is None else -grad
        grad_w = u if ctx.needs_input_grad[0] else None
        return (grad_w, None, None, None, None, None, None, *grad_params)


def inverse_gradient(cost, w, z0=None, tol=1e-8, max_iter=50, info=None):
    r"""Differentiable :math:`(∇h_θ)^{-1}(w)`, row-wise.

    The forward pass is :func:`solve_inverse_gradient`; gradients with
    respect to ``w`` and to the parameters of ``cost`` come from the implicit
    function theorem at the solution (never from unrolling the solver).

    Parameters
    ----------
    cost : ConvexCost
    w : tensor of shape (n, d)
    z0 : tensor of shape (n, d), default=None
        Warm start (detached).
    tol, max_iter
        See :func:`solve_inverse_gradient`.
    info : dict, default=None
        Receives ``info["converged"]`` (a bool).

    Returns
    -------
    z : tensor of shape (n, d)
    """
    info = {} if info is None else info
    named = [(name, p) for name, p in cost.named_parameters() if p.requires_grad]
    names = [name for name, _ in named]
    return _InverseGradient.apply(
        w,
        None if z0 is None else z0.detach(),
        cost,
        names,
        tol,
        max_iter,
        info,
        *[p for _, p in named],
    )
