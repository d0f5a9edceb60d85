"""Numba kernels behind the public modules (no public API here).

* :mod:`~skmonge._kernels.fastmath`: vectorisable exp/log polynomials, float
  bit casts and typed constants, shared by the other kernel modules.
* :mod:`~skmonge._kernels.separable`: the separable regularisers (ℓ1, STVS):
  τ, ∇τ, proxes, pairwise costs, plan-weighted gradients, CSR variants.
* :mod:`~skmonge._kernels.kovlp`: the k-overlap regulariser: prox, norm,
  gradient, pairwise kernels and their root solver.
* :mod:`~skmonge._kernels.sinkhorn`: the numba passes of the log-domain
  Sinkhorn solver of :mod:`skmonge.sinkhorn`.
"""
