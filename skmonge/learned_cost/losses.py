r"""Training losses on the learned map and the cost regulariser (Appendix A.2-A.3).

Every loss is written for one direction; the estimator averages the forward
and reverse versions, :math:`½\mathcal L(T) + ½\mathcal L(T^{-1})` (A.2.3).
"""

from __future__ import annotations

from .._torch import import_torch
from .sinkhorn import differentiable_sinkhorn_divergence

torch = import_torch()
F = torch.nn.functional

__all__ = [
    "pairs_loss",
    "subsets_loss",
    "low_rank_loss",
    "k_directional_loss",
    "coupling_loss",
    "cost_matrix_penalty",
    "cosine_distance",
]


def pairs_loss(mapped, partners):
    r"""Known pairs: :math:`\frac1N\sum_k \|T(x_k) - y_k\|^2`."""
    return ((mapped - partners) ** 2).sum(1).mean()


def subsets_loss(mapped, partners, groups, epsilon, states):
    r"""Subset correspondences: :math:`\frac1S\sum_s S_ε(T_\sharp\hat μ_s, \hat ν_s)`.

    Parameters
    ----------
    mapped : tensor of shape (n, d)
        Images of the points of the mapped side.
    partners : tensor of shape (m, d)
        Points of the other side.
    groups : list of (index tensor, index tensor)
        Rows of ``mapped`` and of ``partners`` in each known subset pair.
    epsilon : float
        Absolute ε of the divergences.
    states : list of dict
        Sinkhorn warm starts, one per subset pair (updated in place).
    """
    total = mapped.new_zeros(())
    for (rows, cols), state in zip(groups, states, strict=True):
        total = total + differentiable_sinkhorn_divergence(
            mapped[rows], partners[cols], epsilon, state=state
        )
    return total / max(1, len(groups))


def low_rank_loss(displacements, rank):
    r"""Trailing singular values :math:`\frac1n\sum_{i > p} σ_i^2` of the displacements.

    Divided by ``n`` so that it reads as the mean squared displacement outside
    the best rank-``p`` subspace (Eckart-Young).
    """
    sigma = torch.linalg.svdvals(displacements)
    return (sigma[rank:] ** 2).sum() / displacements.shape[0]


def cosine_distance(U, V, eps=1e-12):
    r"""Cosine distances, shape (n, k).

    .. math:: d_{\cos}(u_i, v_j) = 1 - \frac{u_i\cdot v_j}{\|u_i\|\|v_j\|}
    """
    return 1.0 - F.normalize(U, dim=1, eps=eps) @ F.normalize(V, dim=1, eps=eps).T


def k_directional_loss(displacements, directions):
    r"""Smoothed minimum cosine distance to ``k`` learned directions.

    .. math:: \frac1n\sum_i -\operatorname{LogSumExp}_j
              \big[-d_{\cos}(T(x_i) - x_i, v_j)\big]
    """
    d = cosine_distance(displacements, directions)
    return (-torch.logsumexp(-d, dim=1)).mean()


def coupling_loss(plan, rows, cols):
    r"""Baseline "optimise the coupling": minus the mass on the known pairs.

    .. math:: \mathcal L = -\langle M, π\rangle

    :math:`M_{ij} = 1` on the known pairs. Normalised by the largest
    attainable correct mass :math:`\sum_k \min(a_{i_k}, b_{j_k})`, so the
    loss lies in :math:`[-1, 0]`.
    """
    n, m = plan.shape
    best = rows.shape[0] / max(n, m)
    return -plan[rows, cols].sum() / best


def cost_matrix_penalty(C):
    r"""Squared soft maximum of the absolute cost (A.3).

    .. math:: \operatorname{LogSumExp}_{ij}(|C_{ij}|)^2
    """
    return torch.logsumexp(C.abs().reshape(-1), dim=0) ** 2
