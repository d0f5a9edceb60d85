"""Neural displacement-sparse maps (Chen, Xie & Zhang): ICNN potentials, penalties,
λ schedules and the :class:`NeuralSparseMap` estimator. Needs torch."""

from .estimator import NeuralSparseMap

__all__ = ["NeuralSparseMap"]
