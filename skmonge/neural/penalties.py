r"""Displacement-sparsity penalties ``τ`` of the neural map (Chen, Xie & Zhang, §3.3).

The training objective adds :math:`λ\, \mathbb{E}_{x}[τ(∇g(x) - x)]` over
source mini-batches (their eq. 6-7). A penalty object has one method,
``value(Z)``, the row-wise ``τ`` of a torch tensor of displacements.

The ℓ1 and STVS penalties are the regularisers of the elastic costs of
:mod:`skmonge.costs` (``τ`` lives in the cost class, not here); the smoothed
ℓ0 penalty (Mohimani et al. 2007), which is non-convex and has no useful
proximal operator, is the one regulariser only the neural map can use:

.. math:: \|z\|_{0,σ} = \sum_t \big(1 - e^{-z_t^2 / 2σ^2}\big).
"""

from __future__ import annotations

import numpy as np

from ..costs import ElasticL1, ElasticSTVS

__all__ = ["CostPenalty", "SmoothedL0", "make_penalty"]


class CostPenalty:
    """The regulariser ``τ`` of an elastic cost, used as a penalty.

    Parameters
    ----------
    cost : TranslationInvariantCost
        A cost with a torch ``tau_tensor`` (:class:`~skmonge.costs.ElasticL1`,
        :class:`~skmonge.costs.ElasticSTVS`).
    """

    def __init__(self, cost):
        self.cost = cost

    def value(self, Z):
        """``τ(z)`` for every row of the tensor ``Z``."""
        return self.cost.tau_tensor(Z)

    def __repr__(self):
        return f"CostPenalty({self.cost!r})"


class SmoothedL0:
    r"""Smoothed ℓ0 norm :math:`\sum_t (1 - \exp(-z_t^2 / 2σ^2))`.

    Tends to the number of non-zero coordinates as ``σ → 0``; each coordinate
    contributes at most 1, so large displacements of the few genes that must
    move cost no more than small ones (unlike ℓ1).

    Parameters
    ----------
    sigma : float
        Width ``σ`` of the Gaussian (> 0), in the units of the data.
    """

    def __init__(self, sigma=1.0):
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a positive number, got {sigma!r}.")
        self.sigma = float(sigma)

    def value(self, Z):
        """``‖z‖_{0,σ}`` for every row of ``Z`` (tensor or ndarray)."""
        half_sq = -0.5 * (Z / self.sigma) ** 2
        if isinstance(Z, np.ndarray):
            return (1.0 - np.exp(half_sq)).sum(-1)
        return (1.0 - half_sq.exp()).sum(-1)

    def __repr__(self):
        return f"SmoothedL0(sigma={self.sigma!r})"


def make_penalty(penalty, gamma=1.0, sigma=1.0):
    """The penalty object for the estimator's ``penalty`` parameter.

    ``"l1"`` is ``‖z‖_1`` (``λ`` alone sets its strength), ``"stvs"`` the
    STVS regulariser with threshold scale ``gamma``, ``"smoothed_l0"`` the
    smoothed ℓ0 norm of width ``sigma``; ``None`` gives no penalty.
    """
    if penalty is None:
        return None
    if penalty == "l1":
        return CostPenalty(ElasticL1(1.0))
    if penalty == "stvs":
        return CostPenalty(ElasticSTVS(gamma))
    if penalty == "smoothed_l0":
        return SmoothedL0(sigma)
    raise ValueError(
        f"penalty must be 'l1', 'stvs', 'smoothed_l0' or None, got {penalty!r}."
    )
