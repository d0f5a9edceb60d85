"""AnnData front end: fit a map between two conditions and write its results back.

The estimators take the pooled matrix and a label per row, which is how an
:class:`anndata.AnnData` stores cells (``adata.X`` or a layer, and
``adata.obs[key]``). :func:`fit_map` fits a copy of an estimator from an
AnnData object, carrying the gene names over; :func:`predict` maps a set of
cells and stores the mapped expression and the per-gene displacement
statistics of :mod:`skmonge.inspection` in the object.

``anndata`` is an optional dependency (``pip install "skmonge[anndata]"``);
it is imported when a function here is called, not when this module is.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from .inspection import _check_atol, _DisplacementStats, _map_in_chunks

__all__ = ["fit_map", "predict"]


def _require_anndata(adata):
    try:
        import anndata
    except ImportError as exc:
        raise ImportError(
            'skmonge.sc needs anndata; install it with pip install "skmonge[anndata]".'
        ) from exc
    if not isinstance(adata, anndata.AnnData):
        raise TypeError(f"Expected an anndata.AnnData, got {type(adata).__name__}.")


def _matrix(adata, layer):
    """``adata.X`` or ``adata.layers[layer]`` (the object itself, never a copy)."""
    if layer is None:
        X = adata.X
        if X is None:
            raise ValueError("adata.X is None; pass layer=<name of a layer>.")
        return X
    if layer not in adata.layers:
        raise ValueError(
            f"adata has no layer {layer!r} (layers: {sorted(adata.layers.keys())})."
        )
    return adata.layers[layer]


def _gene_positions(adata, genes):
    """Column positions of ``genes`` (names or boolean mask); ``None`` = all."""
    n_vars = adata.n_vars
    if genes is None:
        return np.arange(n_vars)
    if isinstance(genes, str):
        raise TypeError("genes must be a list of gene names or a boolean mask.")
    mask = np.asarray(genes)
    if mask.dtype == bool:
        if mask.shape != (n_vars,):
            raise ValueError(
                f"A boolean genes mask must have shape ({n_vars},), got {mask.shape}."
            )
        positions = np.flatnonzero(mask)
    else:
        genes = list(genes)
        positions = adata.var_names.get_indexer(genes)
        missing = [g for g, p in zip(genes, positions, strict=True) if p < 0]
        if missing:
            raise ValueError(f"Genes not in adata.var_names: {missing[:10]}.")
        if np.unique(positions).size != positions.size:
            raise ValueError("genes contains duplicate names.")
    if positions.size == 0:
        raise ValueError("The gene selection is empty.")
    return positions


def _columns(X, positions, n_vars):
    """The selected columns of ``X`` (``X`` itself when all are selected)."""
    if positions.size == n_vars and np.array_equal(positions, np.arange(n_vars)):
        return X
    return X[:, positions]


def _labels(adata, key):
    if key not in adata.obs:
        raise ValueError(
            f"{key!r} is not a column of adata.obs "
            f"(columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    # The values, not categorical codes: they are what source/target name.
    return np.asarray(column.astype(object)), column.isna().to_numpy()


def fit_map(
    adata,
    estimator,
    *,
    key="condition",
    source=None,
    target=None,
    layer=None,
    genes=None,
):
    """Fit a clone of ``estimator`` on the source and target cells of ``adata``.

    The expression matrix (``adata.X`` or ``adata.layers[layer]``, dense or
    sparse) and the labels ``adata.obs[key]`` are passed to ``fit`` as the
    pooled ``(X, y)`` the estimators take: cells with other labels are ignored
    by the estimator, cells with a missing label are left out here. With
    sparse data only the source and target cells are densified (they are the
    fitted model).

    The gene names (``adata.var_names`` of the selected genes) are recorded as
    the fitted estimator's ``feature_names_in_``, as if it had been fitted on a
    DataFrame: ``get_feature_names_out()`` and the reports of
    :mod:`skmonge.inspection` return them, and :func:`predict` uses them to
    select the columns. Calling ``transform`` directly on a plain array then
    gives scikit-learn's usual "X does not have valid feature names" warning.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes. Not modified.
    estimator : estimator
        An unfitted map estimator, e.g. ``EntropicSparseMap(gamma=1.0)``. It
        is cloned, never modified.
    key : str, default="condition"
        Column of ``adata.obs`` with the population of every cell.
    source, target : label, default=None
        Labels of the source and target cells in ``adata.obs[key]``, set on
        the clone; ``None`` keeps the estimator's own ``source`` / ``target``.
    layer : str, default=None
        Use ``adata.layers[layer]`` instead of ``adata.X``.
    genes : list of str or boolean mask of shape (n_vars,), default=None
        Genes to fit on (all when None).

    Returns
    -------
    estimator : fitted clone of ``estimator``
    """
    _require_anndata(adata)
    y, missing = _labels(adata, key)
    positions = _gene_positions(adata, genes)
    X = _columns(_matrix(adata, layer), positions, adata.n_vars)
    if missing.any():
        # A missing label is neither population; dropping these rows also
        # keeps NaN out of the label comparison.
        keep = ~missing
        X, y = X[keep], y[keep]
    fitted = clone(estimator)
    labels = {"source": source, "target": target}
    fitted.set_params(**{name: v for name, v in labels.items() if v is not None})
    fitted.fit(X, y)
    try:
        fitted.feature_names_in_ = np.asarray(adata.var_names[positions], dtype=object)
    except AttributeError:
        # e.g. a Pipeline, whose feature_names_in_ is a read-only view of its
        # first step: it keeps the default names.
        pass
    return fitted


def _cell_mask(adata, estimator, key, cells):
    n_obs = adata.n_obs
    if cells is None or np.ndim(cells) == 0:
        label = getattr(estimator, "source_label_", None) if cells is None else cells
        if label is None:
            raise ValueError(
                "cells=None maps the source cells, but the estimator has no "
                "source_label_; pass cells=<label> or a boolean mask."
            )
        y, missing = _labels(adata, key)
        mask = np.zeros(n_obs, dtype=bool)
        mask[~missing] = y[~missing] == label
    else:
        mask = np.asarray(cells)
        if mask.dtype != bool or mask.shape != (n_obs,):
            raise ValueError(
                f"cells must be a label or a boolean mask of shape ({n_obs},)."
            )
    if not mask.any():
        raise ValueError(f"No cell selected by cells={cells!r}.")
    return mask


class _BlockWriter:
    """A copy of ``base`` whose ``(rows, cols)`` block is filled chunk by chunk.

    ``add(start, stop, values)`` gives the dense replacement of the rows
    ``rows[start:stop]``; the chunk is consumed at once, so only one chunk
    of mapped cells is ever dense. Dense ``base`` is copied and written into;
    sparse ``base`` keeps its entries outside the block and the non-zeros of
    each chunk, and :meth:`result` assembles them into a CSR matrix.
    """

    def __init__(self, base, rows, cols):
        self.base, self.rows, self.cols = base, rows, cols
        self.out = None

    def _start(self, dtype):
        # Input and map output dtypes together: float32 data mapped by a
        # float32 fit stays float32, integer counts become float.
        self.dtype = np.result_type(self.base.dtype, dtype)
        if not sp.issparse(self.base):
            self.out = np.array(self.base, dtype=self.dtype, copy=True)
            return
        coo = self.base.tocoo()
        row_in = np.zeros(self.base.shape[0], dtype=bool)
        row_in[self.rows] = True
        col_in = np.zeros(self.base.shape[1], dtype=bool)
        col_in[self.cols] = True
        # Entries of base outside the replaced block are kept as they are ...
        keep = ~(row_in[coo.row] & col_in[coo.col])
        self.out = ([coo.data[keep]], [coo.row[keep]], [coo.col[keep]])

    def add(self, start, stop, values):
        if self.out is None:
            self._start(values.dtype)
        rows = self.rows[start:stop]
        if isinstance(self.out, np.ndarray):
            self.out[np.ix_(rows, self.cols)] = values
            return
        # ... and the block's non-zeros added: the two sets of positions are
        # disjoint, so building the CSR sums nothing and stores every value
        # exactly.
        r, c = np.nonzero(values)
        data, row_ix, col_ix = self.out
        data.append(values[r, c].astype(self.dtype, copy=False))
        row_ix.append(rows[r])
        col_ix.append(self.cols[c])

    def result(self):
        if isinstance(self.out, np.ndarray):
            return self.out
        data, row_ix, col_ix = (np.concatenate(part) for part in self.out)
        # keep the caller's flavour: sparse array (scipy >= 1.11) or matrix
        is_array = isinstance(self.base, getattr(sp, "sparray", ()))
        container = sp.csr_array if is_array else sp.csr_matrix
        return container(
            (data.astype(self.dtype, copy=False), (row_ix, col_ix)),
            shape=self.base.shape,
        )


def predict(
    adata,
    estimator,
    *,
    key="condition",
    cells=None,
    layer=None,
    genes=None,
    layer_added="skmonge_mapped",
    obsm_key=None,
    key_added="skmonge",
    atol=1e-8,
    batch_size=None,
    copy=False,
):
    r"""Map cells of ``adata`` with a fitted map and store the results in it.

    The selected cells ``x`` are replaced by their images :math:`T(x)` and
    the displacement :math:`Δ = T(x) - x` is summarised per gene with
    :func:`skmonge.inspection.displacement_report`'s statistics. The cells
    are mapped ``batch_size`` at a time, so sparse expression is never
    densified whole. ``adata.X`` (and the input layer) are only read.

    Written to ``adata``:

    - ``adata.layers[layer_added]`` (default), shape ``(n_obs, n_vars)``: the
      input matrix with the mapped cells' model genes replaced by
      :math:`T(x)`. Cells that are not mapped and genes the map does not use
      keep their original values (not NaN, so the layer stays usable by
      downstream tools; ``adata.obs[f"{key_added}_mapped"]`` says which
      cells were mapped). Sparse input gives a CSR layer storing the
      non-zeros of :math:`T(x)` (few extra entries for an elastic map), dense
      input a dense one.
    - or, when ``obsm_key`` is given (instead of the layer),
      ``adata.obsm[obsm_key]`` of shape ``(n_obs, n_genes_of_the_map)`` with
      the same convention, restricted to the map's genes.
    - ``adata.var[f"{key_added}_mean_abs_disp"]``,
      ``[f"{key_added}_mean_disp"]`` and ``[f"{key_added}_frac_moved"]``:
      :math:`\frac1n\sum_i|Δ_{ig}|`, :math:`\frac1n\sum_iΔ_{ig}` and
      :math:`\frac1n\#\{i : |Δ_{ig}| > \text{atol}\}` over the ``n`` mapped
      cells; NaN for genes the map does not use.
    - ``adata.obs[f"{key_added}_mapped"]``: boolean, the mapped cells.

    Parameters
    ----------
    adata : anndata.AnnData
    estimator : fitted map estimator
        E.g. the result of :func:`fit_map`. When it has ``feature_names_in_``
        its genes are looked up by name in ``adata.var_names`` (so ``adata``
        may hold more genes, in another order).
    key : str, default="condition"
        Column of ``adata.obs`` with the populations (used when ``cells`` is
        a label or None).
    cells : label or boolean mask of shape (n_obs,), default=None
        Cells to map: those whose ``adata.obs[key]`` equals the label, or the
        mask. ``None`` maps the estimator's source cells
        (``estimator.source_label_``).
    layer : str, default=None
        Read ``adata.layers[layer]`` instead of ``adata.X``.
    genes : list of str or boolean mask, default=None
        Genes the map was fitted on, for an estimator without
        ``feature_names_in_``; all genes when None.
    layer_added : str or None, default="skmonge_mapped"
        Layer to write; None writes no layer.
    obsm_key : str, default=None
        Write the mapped cells to ``adata.obsm[obsm_key]`` instead of a layer.
    key_added : str, default="skmonge"
        Prefix of the ``var`` and ``obs`` columns written.
    atol : float, default=1e-8
        Threshold of ``frac_moved``.
    batch_size : int, default=None
        Cells per chunk (None: about 64 MiB of dense temporaries per chunk).
    copy : bool, default=False
        Work on and return a copy of ``adata`` instead of modifying it.

    Returns
    -------
    adata : anndata.AnnData or None
        The modified copy when ``copy=True``, else None.
    """
    _require_anndata(adata)
    check_is_fitted(estimator)
    atol = _check_atol(atol)
    if copy:
        adata = adata.copy()
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and genes is None:
        genes = list(names)
    cols = _gene_positions(adata, genes)
    mask = _cell_mask(adata, estimator, key, cells)
    rows = np.flatnonzero(mask)
    X = _matrix(adata, layer)
    selected = _columns(X[rows], cols, adata.n_vars)

    if obsm_key is not None:
        writer = _BlockWriter(
            _columns(X, cols, adata.n_vars), rows, np.arange(cols.size)
        )
    elif layer_added is not None:
        writer = _BlockWriter(X, rows, cols)
    else:
        writer = None
    stats = _DisplacementStats(cols.size, atol)
    with warnings.catch_warnings():
        # The columns were matched to feature_names_in_ by name above; the
        # chunks are plain arrays, which sklearn would warn about.
        warnings.filterwarnings(
            "ignore",
            message="X does not have valid feature names",
            category=UserWarning,
        )
        for start, stop, chunk, mapped in _map_in_chunks(
            estimator, selected, batch_size
        ):
            stats.update(mapped - chunk)
            if writer is not None:
                writer.add(start, stop, mapped)
    if obsm_key is not None:
        adata.obsm[obsm_key] = writer.result()
    elif layer_added is not None:
        adata.layers[layer_added] = writer.result()

    columns = stats.columns()
    for suffix, name in (
        ("mean_abs_disp", "mean_abs_displacement"),
        ("mean_disp", "mean_displacement"),
        ("frac_moved", "fraction_moved"),
    ):
        values = np.full(adata.n_vars, np.nan)
        values[cols] = columns[name]
        adata.var[f"{key_added}_{suffix}"] = values
    adata.obs[f"{key_added}_mapped"] = mask
    return adata if copy else None
