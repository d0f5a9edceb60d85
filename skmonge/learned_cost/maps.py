r"""Entropic maps for a convex cost :math:`h` from Sinkhorn potentials.

With target points :math:`y_j`, weights :math:`b_j` and the dimensionless
potential :math:`\tilde g = g/ε`, the entropic potential (eq. 9)

.. math:: \hat f(x) = -ε\log\sum_j b_j\exp\big(\tilde g_j - h(x - y_j)/ε\big)

has gradient :math:`∇\hat f(x) = \sum_j p_j(x)\,∇h(x - y_j)` with the Gibbs
weights :math:`p_j(x) ∝ b_j e^{\tilde g_j - h(x - y_j)/ε}`, and the forward
map (eq. 10) is

.. math:: T(x) = x - (∇h)^{-1}\Big(\sum_j p_j(x)\,∇h(x - y_j)\Big).

The reverse map (A.2.3) uses :math:`\tilde h(z) = h(-z)` and the source
potential; since :math:`(∇\tilde h)^{-1}(w) = -(∇h)^{-1}(-w)`,

.. math:: T^{-1}(y) = y + (∇h)^{-1}\Big(\sum_i q_i(y)\,∇h(x_i - y)\Big),
          \qquad q_i(y) ∝ a_i e^{\tilde f_i - h(x_i - y)/ε}.

For :math:`h = ½\|\cdot\|^2` these are the barycentric projections
:math:`\sum_j p_j(x) y_j` and :math:`\sum_i q_i(y) x_i`.

Both only need the matrices :math:`C_{ij} = h(x_i - y_j)` and
:math:`G_{ij} = ∇h(x_i - y_j)`, shared with the Sinkhorn cost matrix during
training.
"""

from __future__ import annotations

from .._torch import import_torch
from .costs import pairwise_cost
from .inverse import solve_inverse_gradient

torch = import_torch()

__all__ = ["aggregated_gradient", "displacement_guess", "map_points"]


def aggregated_gradient(C, G, potential, log_weights, epsilon, reverse=False):
    r"""Gibbs-weighted gradients :math:`∇\hat f(x_i)` or :math:`-∇\hat g(y_j)`.

    Parameters
    ----------
    C : tensor of shape (n, m)
        :math:`h(x_i - y_j)`.
    G : tensor of shape (n, m, d)
        :math:`∇h(x_i - y_j)`.
    potential : tensor
        :math:`\tilde g` (shape (m,)) for the forward map, :math:`\tilde f`
        (shape (n,)) for the reverse map.
    log_weights : tensor
        :math:`\log b` or :math:`\log a`, matching ``potential``.
    epsilon : float or scalar tensor
    reverse : bool, default=False

    Returns
    -------
    W : tensor of shape (n, d) (forward) or (m, d) (reverse)
        :math:`\sum_j p_j(x_i) G_{ij}` or :math:`\sum_i q_i(y_j) G_{ij}`.
    """
    if reverse:
        P = torch.softmax((log_weights + potential)[:, None] - C / epsilon, dim=0)
        return torch.einsum("ij,ijd->jd", P, G)
    P = torch.softmax((log_weights + potential)[None, :] - C / epsilon, dim=1)
    return torch.einsum("ij,ijd->id", P, G)


def displacement_guess(C, X, Y, potential, log_weights, epsilon, reverse=False):
    r"""Starting point for :math:`(∇h)^{-1}`: the ½ℓ2² displacement, same weights.

    :math:`\sum_j p_j(x)(x - y_j)` (forward) or :math:`\sum_i q_i(y)(x_i - y)`
    (reverse), exact when :math:`h` is quadratic or the weights are a Dirac.
    """
    with torch.no_grad():
        if reverse:
            P = torch.softmax((log_weights + potential)[:, None] - C / epsilon, dim=0)
            return P.T @ X - Y
        P = torch.softmax((log_weights + potential)[None, :] - C / epsilon, dim=1)
        return X - P @ Y


def map_points(
    cost,
    points,
    support,
    potential,
    log_weights,
    epsilon,
    reverse=False,
    tol=1e-8,
    max_iter=50,
    chunk_size=256,
    info=None,
):
    r"""Displacement :math:`(∇h)^{-1}(\cdots)` of new points, chunk by chunk (no graph).

    Forward (``reverse=False``): ``points`` are (pushed) source points,
    ``support`` the (pushed) target sample and the result ``z`` gives
    :math:`T(x) = x - z`; reverse: ``points`` are target points, ``support``
    the source sample, and :math:`T^{-1}(y) = y + z`.

    ``info`` (a dict) receives ``converged`` (all rows of all chunks).
    """
    info = {} if info is None else info
    info["converged"] = True
    out = []
    for start in range(0, points.shape[0], chunk_size):
        P = points[start : start + chunk_size]
        if reverse:
            C, G = pairwise_cost(cost, support, P, with_gradient=True)
            W = aggregated_gradient(C, G, potential, log_weights, epsilon, True)
            z0 = displacement_guess(
                C, support, P, potential, log_weights, epsilon, True
            )
        else:
            C, G = pairwise_cost(cost, P, support, with_gradient=True)
            W = aggregated_gradient(C, G, potential, log_weights, epsilon)
            z0 = displacement_guess(C, P, support, potential, log_weights, epsilon)
        z, converged = solve_inverse_gradient(cost, W, z0, tol, max_iter)
        info["converged"] = info["converged"] and converged
        out.append(z)
    return torch.cat(out) if out else points.new_zeros(points.shape)
