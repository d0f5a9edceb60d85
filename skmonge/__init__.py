"""skmonge: displacement-sparse optimal-transport (Monge) maps for scikit-learn.

Public estimators
-----------------
EntropicSparseMap
    Entropic Monge maps for elastic costs ``½‖·‖² + γτ`` (ℓ1, STVS,
    k-overlap), Cuturi, Klein & Ablin (2023).
NeuralSparseMap
    ICNN (Makkuva minimax) maps with a displacement-sparsity penalty and
    simulated-annealing control of λ, Chen, Xie & Zhang (torch).
LearnedCostMap
    Entropic map for a learned convex cost (ICNN, optional flows), Howard,
    Deligiannidis, Rebeschini & Thornton (torch).
EntropicSparseMapCV
    EntropicSparseMap with γ chosen by cross-validation (``LassoCV``).
sparsity_path
    EntropicSparseMap along a warm-started γ grid derived from the data
    (the analogue of ``lasso_path``).

Submodules: :mod:`skmonge.costs`, :mod:`skmonge.sinkhorn`,
:mod:`skmonge.metrics`, :mod:`skmonge.datasets`, :mod:`skmonge.inspection`
(per-gene displacement reports), :mod:`skmonge.plotting`, :mod:`skmonge.sc`
(AnnData), :mod:`skmonge.path` (γ paths).

Estimators are imported on first access: scikit-learn alone takes about 2 s
to import on a small machine, and ``import skmonge`` should stay instant
(and never import torch).
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "EntropicSparseMap": "skmonge.entropic",
    "NeuralSparseMap": "skmonge.neural.estimator",
    "LearnedCostMap": "skmonge.learned_cost.estimator",
    "sparsity_path": "skmonge.path",
    "EntropicSparseMapCV": "skmonge.path",
}
_SUBMODULES = {
    "costs",
    "sinkhorn",
    "metrics",
    "datasets",
    "inspection",
    "plotting",
    "sc",
    "path",
}

__all__ = [
    "EntropicSparseMap",
    "NeuralSparseMap",
    "LearnedCostMap",
    "EntropicSparseMapCV",
    "sparsity_path",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"skmonge.{name}")
    raise AttributeError(f"module 'skmonge' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
