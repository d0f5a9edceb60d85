"""Synthetic transport tasks with a known sparse Monge map.

The generators of §5.1 of Cuturi, Klein & Ablin (2023). Each returns the two
populations pooled as ``(X, y)`` (``y = 0`` source, ``y = 1`` target), the
layout every skmonge estimator fits on, plus the ground-truth map.
"""

from __future__ import annotations

import numbers
import os
import pathlib

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_sparse_monge", "SparseMongeMap", "load_kang2018"]


class SparseMongeMap:
    r"""Ground-truth map of :func:`make_sparse_monge`.

    ``pattern="constant"``:
    :math:`T^*(x) = [e^{x_1}, …, e^{x_s}, x_{s+1}, …, x_d]`.

    ``pattern="x_dependent"``: with :math:`n_1 = \sum_{i \le s} x_i^2` and
    :math:`n_2 = \sum_{s < i \le 2s} x_i^2`, the exponential is applied to the
    first group when :math:`n_1 > n_2` and to the second group otherwise.

    Calling the object maps the rows of an array; :meth:`support` returns the
    boolean mask of the coordinates each point moves along.
    """

    def __init__(self, n_active, pattern):
        self.n_active = n_active
        self.pattern = pattern

    def support(self, X):
        """Boolean mask (n_samples, n_features) of the displaced coordinates."""
        X = np.asarray(X)
        s = self.n_active
        mask = np.zeros(X.shape, dtype=bool)
        if self.pattern == "constant":
            mask[:, :s] = True
        else:
            first = np.sum(X[:, :s] ** 2, axis=1) > np.sum(X[:, s : 2 * s] ** 2, axis=1)
            mask[first, :s] = True
            mask[~first, s : 2 * s] = True
        return mask

    def __call__(self, X):
        X = np.asarray(X)
        return np.where(self.support(X), np.exp(X), X)

    def __repr__(self):
        return f"SparseMongeMap(n_active={self.n_active}, pattern={self.pattern!r})"


def make_sparse_monge(
    n_samples=1000,
    n_features=10,
    n_active=2,
    pattern="constant",
    n_target=None,
    random_state=None,
):
    """Source ``U[0,1]^d`` and its image under a sparse ground-truth map.

    Source points ``x_i`` and fresh points ``x̃_j`` are drawn i.i.d. from
    ``U[0, 1]^d``; the target sample is ``y_j = T^*(x̃_j)`` (the protocol of
    §5.1, so that source and target are independent samples).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of source points.
    n_features : int, default=10
        Dimension ``d``.
    n_active : int, default=2
        Number ``s`` of displaced coordinates (``2 s <= d`` for the
        x-dependent pattern).
    pattern : {"constant", "x_dependent"}, default="constant"
        Sparsity pattern of the displacement.
    n_target : int, default=None
        Number of target points (``n_samples`` when None).
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples + n_target, n_features)
        Source rows first, then target rows.
    y : ndarray of shape (n_samples + n_target,)
        0 for source rows, 1 for target rows.
    true_map : SparseMongeMap
        The ground-truth map ``T^*`` (callable on arrays; ``.support(X)`` gives
        the true displacement support).
    """
    for name, value in (
        ("n_samples", n_samples),
        ("n_features", n_features),
        ("n_active", n_active),
    ):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if pattern not in ("constant", "x_dependent"):
        raise ValueError(
            f"pattern must be 'constant' or 'x_dependent', got {pattern!r}."
        )
    needed = n_active if pattern == "constant" else 2 * n_active
    if needed > n_features:
        raise ValueError(
            f"pattern={pattern!r} with n_active={n_active} needs at least "
            f"{needed} features, got n_features={n_features}."
        )
    n_target = n_samples if n_target is None else int(n_target)
    rng = check_random_state(random_state)
    true_map = SparseMongeMap(int(n_active), pattern)
    source = rng.uniform(size=(n_samples, n_features))
    target = true_map(rng.uniform(size=(n_target, n_features)))
    X = np.vstack([source, target])
    y = np.concatenate([np.zeros(n_samples, dtype=int), np.ones(n_target, dtype=int)])
    return X, y, true_map


_KANG_SUBSETS = {"harmony": "kang2018_harmony.npz", "liger": "kang2018_liger.npz"}


def load_kang2018(subset="harmony", lognorm=True, as_frame=False, return_X_y=False):
    """Kang et al. 2018 PBMCs, control vs IFN-β stimulated (bundled subsets).

    Real 10x single-cell RNA-seq (doi:10.1038/nbt.4042, GEO GSE96583); see
    ``skmonge/data/README.md`` for provenance, licences and caveats.

    Parameters
    ----------
    subset : {"harmony", "liger"} or path-like, default="harmony"
        ``"harmony"``: 1000 + 1000 cells × 9015 genes, with inferred cell
        types; ``"liger"``: 300 + 300 cells × 249 genes. A path reads another
        ``.npz`` of the same layout (e.g. the scGen subset used by the
        benchmarks).
    lognorm : bool, default=True
        For files holding raw counts (``layer == "counts"``), normalise each
        cell to 10,000 total counts and apply ``log1p`` (what
        ``sc.pp.normalize_total(target_sum=1e4); sc.pp.log1p`` does); else
        return the counts. Files that are already log-normalised are
        returned as stored.
    as_frame : bool, default=False
        Return ``data`` as a pandas DataFrame (sparse columns) indexed by
        barcode with gene names as columns, and ``target`` as a Series.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``data`` (CSR float32, cells × genes), ``target`` (``"control"`` /
        ``"stimulated"``), ``feature_names`` (gene symbols), ``cell_names``
        (barcodes), ``cell_type`` (or None), ``DESCR``.
    (X, y) : tuple if ``return_X_y``
    """
    from importlib import resources

    import scipy.sparse as sp
    from sklearn.utils import Bunch

    package_data = resources.files("skmonge") / "data"
    if isinstance(subset, str) and subset in _KANG_SUBSETS:
        source = package_data / _KANG_SUBSETS[subset]
    elif isinstance(subset, (str, os.PathLike)) and os.path.isfile(subset):
        source = pathlib.Path(subset)
    else:
        raise ValueError(
            f"subset must be one of {sorted(_KANG_SUBSETS)} or the path of an "
            f".npz file, got {subset!r}."
        )
    with source.open("rb") as handle:
        arrays = dict(np.load(handle, allow_pickle=False))
    X = sp.csr_matrix(
        (arrays["X_data"], arrays["X_indices"], arrays["X_indptr"]),
        shape=tuple(arrays["X_shape"]),
    )
    if lognorm and str(arrays["layer"]) == "counts":
        library_size = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        X = (sp.diags(1e4 / library_size) @ X.astype(np.float64)).tocsr()
        X.data = np.log1p(X.data)
    X = X.astype(np.float32)
    y = arrays["condition"].astype(object)
    genes = arrays["genes"].astype(object)
    cells = arrays["cells"].astype(object)
    cell_type = arrays.get("cell_type_inferred", arrays.get("cell_type"))
    if as_frame:
        import pandas as pd

        X = pd.DataFrame.sparse.from_spmatrix(X, index=cells, columns=genes)
        y = pd.Series(y, index=cells, name="condition")
    if return_X_y:
        return X, y
    descr = (package_data / "README.md").read_text(encoding="utf-8")
    return Bunch(
        data=X,
        target=y,
        feature_names=genes,
        cell_names=cells,
        cell_type=None if cell_type is None else cell_type.astype(object),
        DESCR=descr,
    )
