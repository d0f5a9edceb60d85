r"""Diffeomorphisms :math:`Φ_μ, Φ_ν` as normalizing flows (zuko), with regularisers.

Theorem 3.2 of Howard et al.: for the cost
:math:`c(x, y) = h(Φ_μ(x) - Φ_ν(y))` with diffeomorphisms :math:`Φ_μ, Φ_ν`,

.. math:: T(x) = Φ_ν^{-1}\big[Φ_μ(x) - (∇h)^{-1}∘∇f∘Φ_μ(x)\big],

so the map is the cost-``h`` map between the pushed-forward samples, pulled
back through :math:`Φ_ν`. The flows are masked autoregressive flows
(``zuko.flows.MAF``, the MADE architecture of the paper) with smooth (ELU)
conditioners, initialised to the identity: the initial cost is then
:math:`h(x - y)`.

Regularisers (Appendix A.3), averaged over the points rather than summed so
that their weights do not depend on the sample sizes:

.. math:: R_{sym} = \frac1n\sum_i\|Φ_μ(x_i) - Φ_ν(x_i)\|^2
                    + \frac1m\sum_j\|Φ_μ(y_j) - Φ_ν(y_j)\|^2, \qquad
          R_{Dir} = \frac1{2n}\sum_i\|∇Φ_μ(x_i)\|_F^2
                    + \frac1{2m}\sum_j\|∇Φ_ν(y_j)\|_F^2 .
"""

from __future__ import annotations

from .._torch import import_torch
from ..neural.icnn import check_hidden_sizes

torch = import_torch()

__all__ = [
    "make_flow",
    "flow_forward",
    "flow_inverse",
    "dirichlet_energy",
    "symmetry_penalty",
]


def make_flow(n_features, n_transforms=3, hidden_sizes=(32, 32)):
    """A masked autoregressive flow on ``R^d`` that starts at the identity.

    The last layer of every conditioner is zeroed, so each autoregressive
    affine layer starts with shift 0 and log-scale 0.
    """
    import zuko

    flow = zuko.flows.MAF(
        features=int(n_features),
        context=0,
        transforms=int(n_transforms),
        hidden_features=check_hidden_sizes(hidden_sizes, "flow_hidden_sizes"),
        activation=torch.nn.ELU,
    )
    with torch.no_grad():
        for transform in flow.transform.transforms:
            last = transform.hyper[-1]
            last.weight.zero_()
            last.bias.zero_()
    return flow


def flow_forward(flow, X):
    """:math:`Φ(x)` row-wise (the flow's data-to-latent direction)."""
    return flow.transform()(X)


def flow_inverse(flow, Z):
    """:math:`Φ^{-1}(z)` row-wise (autoregressive inversion, differentiable)."""
    return flow.transform().inv(Z)


def dirichlet_energy(flow, X):
    r"""Mean of :math:`½\|∇Φ(x_i)\|_F^2`, differentiable in the flow's parameters.

    The Jacobian is assembled from ``d`` vector-Jacobian products (rows are
    independent, so one backward pass per output coordinate serves every
    point).
    """
    with torch.enable_grad():
        X = X.detach().requires_grad_(True)
        Z = flow_forward(flow, X)
        total = X.new_zeros(())
        for t in range(Z.shape[1]):
            (row,) = torch.autograd.grad(
                Z[:, t].sum(), X, create_graph=True, retain_graph=True
            )
            total = total + (row * row).sum()
    return 0.5 * total / X.shape[0]


def symmetry_penalty(flow_source, flow_target, X, Y):
    r""":math:`R_{sym}`: how far apart the two flows are on both samples."""
    penalty = X.new_zeros(())
    for P in (X, Y):
        diff = flow_forward(flow_source, P) - flow_forward(flow_target, P)
        penalty = penalty + (diff * diff).sum(1).mean()
    return penalty
