"""Entropic Monge maps for learned convex costs (Howard et al.): convex cost
networks, differentiable Sinkhorn, implicit inverse gradients, flows, losses
and the :class:`LearnedCostMap` estimator. Needs torch (and zuko for flows)."""

from .estimator import LearnedCostMap

__all__ = ["LearnedCostMap"]
