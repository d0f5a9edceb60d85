"""skmonge: displacement-sparse optimal-transport (Monge) maps for scikit-learn.

Public estimators
-----------------
EntropicSparseMap
    Entropic Monge maps for elastic costs ``½‖·‖² + γτ`` (ℓ1, STVS,
    k-overlap), Cuturi, Klein & Ablin (2023).
"""

from .entropic import EntropicSparseMap

__version__ = "0.1.0"

__all__ = ["EntropicSparseMap", "__version__"]
