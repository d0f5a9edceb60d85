"""AnnData front end: fit a map between two conditions and write its results back.

The estimators take the pooled matrix and a label per row, which is how an
:class:`anndata.AnnData` stores cells (``adata.X`` or a layer, and
``adata.obs[key]``). :func:`fit_map` fits a copy of an estimator from an
AnnData object, carrying the gene names over; :func:`predict` maps a set of
cells and stores the mapped expression and the per-gene displacement
statistics of :mod:`skmonge.inspection` in the object.

Per group (``groupby="cell_type"``): :func:`predict` summarises the map per
group in ``adata.uns[key_added]``, in the layout of ``sc.tl.rank_genes_groups``
(read it back as a tidy table with :func:`get_group_report`), and
:func:`fit_map` fits one map per group (conditional maps), reporting the
groups too small to fit instead of failing on them.

``anndata`` is an optional dependency (``pip install "skmonge[anndata]"``);
it is imported when a function here is called, not when this module is.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ._groups import encode_groups, observed_group_shift
from ._pipeline import split_map
from ._progress import Progress, show_progress
from .inspection import (
    _check_atol,
    _DisplacementStats,
    _group_table,
    _map_in_chunks,
    _pandas,
    _rows_per_chunk,
)

__all__ = ["fit_map", "predict", "get_group_report", "GroupedMaps"]


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


def _in_memory(X):
    """Whether ``X`` is an in-memory array (not a backed AnnData's dataset)."""
    return isinstance(X, np.ndarray) or sp.issparse(X)


def _read_rows(X, rows):
    """Rows ``rows`` (increasing positions) of ``X`` as an in-memory array.

    For a backed AnnData (``read_h5ad(..., backed="r")``) this reads those
    rows from disk and nothing else: an h5py dataset gives an ndarray, a
    backed sparse dataset a CSR matrix.
    """
    block = X[rows]
    if hasattr(block, "compute"):  # a dask-backed AnnData
        block = block.compute()
    return block if sp.issparse(block) else np.asarray(block)


def _mapping_work(estimator, n_cells, n_genes):
    """The work of mapping ``n_cells``, in the units of ``verbose="auto"``.

    An entropic map compares each cell with its ``n_target`` fitted points
    over every gene; a network's cost per cell does not grow with a sample,
    and is counted as a million operations per cell (20,000 cells reach the
    threshold).
    """
    _, final = split_map(estimator)
    target = getattr(final, "target_", None)
    per_cell = n_genes * target.shape[0] if target is not None else 1e6
    return n_cells * per_cell


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


class GroupedMaps(Mapping):
    """One fitted map per group, as returned by ``fit_map(..., groupby=...)``.

    A read-only mapping ``group label -> fitted estimator`` (iterate it,
    index it, ``len`` it like a dict) that also records which groups could
    not be fitted. :func:`predict` maps the cells of each group with that
    group's map.

    Attributes
    ----------
    groupby : str
        The ``adata.obs`` column the groups come from.
    skipped : dict
        ``group label -> reason`` for every group that has no map (too few
        source or target cells).
    """

    def __init__(self, maps, groupby, skipped):
        self._maps = dict(maps)
        self.groupby = groupby
        self.skipped = dict(skipped)

    def __getitem__(self, group):
        return self._maps[group]

    def __iter__(self):
        return iter(self._maps)

    def __len__(self):
        return len(self._maps)

    def __repr__(self):
        return (
            f"GroupedMaps(groupby={self.groupby!r}, groups={list(self._maps)}, "
            f"skipped={list(self.skipped)})"
        )


def _check_min_cells(min_cells):
    if (
        isinstance(min_cells, bool)
        or not isinstance(min_cells, numbers.Integral)
        or min_cells < 1
    ):
        raise ValueError(f"min_cells must be a positive integer, got {min_cells!r}.")
    return int(min_cells)


def _population_labels(estimator, source, target, y, missing):
    """The source and target labels a clone of ``estimator`` will resolve."""
    params = estimator.get_params(deep=False)
    src = params.get("source") if source is None else source
    tgt = params.get("target") if target is None else target
    if src is None and tgt is None:
        present = set(np.unique(y[~missing]).tolist())
        if not present <= {0, 1}:
            raise ValueError(
                f"The labels {sorted(map(str, present))} are not 0/1: pass "
                "source= and target= (the labels of the two populations)."
            )
        src, tgt = 0, 1
    return src, tgt


def fit_map(
    adata,
    estimator,
    *,
    key="condition",
    source=None,
    target=None,
    layer=None,
    genes=None,
    groupby=None,
    min_cells=15,
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

    With ``groupby``, one clone is fitted per group of ``adata.obs[groupby]``
    (e.g. per cell type) on that group's source and target cells only: a
    conditional map, which cannot send the cells of one type onto another
    type. Groups with fewer than ``min_cells`` source or target cells are
    not fitted; they are listed in the result's ``skipped`` and in a
    ``UserWarning``.

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
    groupby : str, default=None
        Column of ``adata.obs`` with the groups to fit one map each.
    min_cells : int, default=15
        With ``groupby``: the fewest source and the fewest target cells a
        group needs to be fitted.

    Returns
    -------
    estimator : fitted clone of ``estimator``, or GroupedMaps
        A :class:`GroupedMaps` (group label -> fitted clone) with
        ``groupby``.

    Raises
    ------
    ValueError
        With ``groupby``, when no group has ``min_cells`` cells of both
        populations.
    """
    _require_anndata(adata)
    if groupby is not None:
        return _fit_per_group(
            adata, estimator, key, source, target, layer, genes, groupby, min_cells
        )
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


def _fit_per_group(
    adata, estimator, key, source, target, layer, genes, groupby, min_cells
):
    min_cells = _check_min_cells(min_cells)
    y, missing = _labels(adata, key)
    group_values, _ = _labels(adata, groupby)
    labels, codes = encode_groups(group_values, adata.n_obs, name=f"obs[{groupby!r}]")
    src, tgt = _population_labels(estimator, source, target, y, missing)
    is_source = ~missing & (y == src)
    is_target = ~missing & (y == tgt)
    maps, skipped = {}, {}
    for g, label in enumerate(labels.tolist()):
        n_source = int(np.count_nonzero(is_source & (codes == g)))
        n_target = int(np.count_nonzero(is_target & (codes == g)))
        if n_source < min_cells or n_target < min_cells:
            skipped[label] = (
                f"{n_source} source and {n_target} target cells (min_cells={min_cells})"
            )
            continue
        cells = (codes == g) & (is_source | is_target)
        maps[label] = fit_map(
            adata[cells],
            estimator,
            key=key,
            source=source,
            target=target,
            layer=layer,
            genes=genes,
        )
    if not maps:
        raise ValueError(
            f"No group of obs[{groupby!r}] has min_cells={min_cells} source and "
            f"target cells: {skipped}. Lower min_cells or fit one pooled map."
        )
    if skipped:
        warnings.warn(
            f"fit_map: {len(skipped)} group(s) of obs[{groupby!r}] not fitted, "
            f"too few cells: {skipped}. Their cells are not mapped by predict.",
            UserWarning,
            stacklevel=3,
        )
    return GroupedMaps(maps, groupby, skipped)


def _cell_mask(adata, estimator, key, cells):
    n_obs = adata.n_obs
    if cells is None or np.ndim(cells) == 0:
        final = split_map(estimator)[1]
        label = getattr(final, "source_label_", None) if cells is None else cells
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

    ``add(rows, values)`` gives the dense replacement of the rows ``rows``
    (a subset of the block's rows); the chunk is consumed at once, so only one chunk
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

    def add(self, rows, values):
        if self.out is None:
            self._start(values.dtype)
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


def _map_plan(adata, estimator, mask, groupby):
    """``(reference map, [(map, rows, codes)], labels, mask)`` of a predict call.

    ``rows`` are the cells each map sends (positions in ``adata``), ``codes``
    their group (``-1``: none) among ``labels``. A GroupedMaps maps each
    group's cells with its own map; cells without a map are taken out of
    ``mask``.
    """
    if isinstance(estimator, GroupedMaps):
        if groupby is None:
            groupby = estimator.groupby
        elif groupby != estimator.groupby:
            raise ValueError(
                f"These maps were fitted per obs[{estimator.groupby!r}]; "
                f"groupby={groupby!r} cannot select them."
            )
    if groupby is None:
        rows = np.flatnonzero(mask)
        return estimator, [(estimator, rows, np.full(rows.size, -1))], None, mask
    values, _ = _labels(adata, groupby)
    labels, codes = encode_groups(values, adata.n_obs, name=f"obs[{groupby!r}]")
    if not isinstance(estimator, GroupedMaps):
        rows = np.flatnonzero(mask)
        return estimator, [(estimator, rows, codes[rows])], labels, mask
    position = {label: g for g, label in enumerate(labels.tolist())}
    plan = []
    covered = np.zeros(adata.n_obs, dtype=bool)
    for label, fitted in estimator.items():
        g = position.get(label)
        if g is None:
            continue
        rows = np.flatnonzero(mask & (codes == g))
        if rows.size:
            plan.append((fitted, rows, np.full(rows.size, g)))
            covered[rows] = True
    left = mask & ~covered
    if left.any():
        warnings.warn(
            f"predict: {int(left.sum())} selected cell(s) are in groups of "
            f"obs[{groupby!r}] without a map (skipped at fit, or no group) and "
            "are not mapped.",
            UserWarning,
            stacklevel=3,
        )
    if not plan:
        raise ValueError("No selected cell is in a group that has a map.")
    reference = next(iter(estimator.values()))
    return reference, plan, labels, mask & covered


def predict(
    adata,
    estimator,
    *,
    key="condition",
    cells=None,
    layer=None,
    genes=None,
    groupby=None,
    layer_added="skmonge_mapped",
    obsm_key=None,
    key_added="skmonge",
    atol=1e-8,
    chunk_size=None,
    verbose="auto",
    copy=False,
):
    r"""Map cells of ``adata`` with a fitted map and store the results in it.

    The selected cells ``x`` are replaced by their images :math:`T(x)` and
    the displacement :math:`Δ = T(x) - x` is summarised per gene with
    :func:`skmonge.inspection.displacement_report`'s statistics, over all
    mapped cells and, with ``groupby``, per group. The cells are mapped
    ``chunk_size`` at a time, so sparse expression is never densified whole.
    ``adata.X`` (and the input layer) are only read. For a ``Pipeline``
    ending in a map, :math:`T(x)` and :math:`Δ` are in the input genes
    (:func:`skmonge._pipeline.map_and_displace`), or a ``ValueError`` names
    the step that cannot be inverted.

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
    - with ``groupby``, ``adata.uns[key_added]``, laid out like
      ``sc.tl.rank_genes_groups``' result: ``"params"`` (a dict:
      ``groupby``, ``key``, ``source``, ``target``, ``layer``, ``atol``,
      ``per_group_maps``), ``"n_cells"`` (a dict: mapped cells per group),
      and the record arrays ``"names"``, ``"mean_abs_displacement"``,
      ``"mean_displacement"``, ``"fraction_moved"`` and
      ``"observed_difference"``, of shape ``(n_genes_of_the_map,)`` with one
      field per group (its label as a string). Field ``g`` of ``"names"``
      lists the genes by decreasing mean :math:`|Δ|` over the mapped cells
      of group ``g``, and the other arrays give the statistics of those
      genes in that order; ``observed_difference`` is the mean of the
      group's target cells minus that of its source cells (all cells of
      ``adata`` with these labels in ``obs[key]``; NaN when the group lacks
      one population). Groups without mapped cells are left out.
      :func:`get_group_report` returns it as a tidy table.

    Parameters
    ----------
    adata : anndata.AnnData
    estimator : fitted map estimator, or GroupedMaps
        E.g. the result of :func:`fit_map` (with or without ``groupby``).
        When it has ``feature_names_in_`` its genes are looked up by name in
        ``adata.var_names`` (so ``adata`` may hold more genes, in another
        order). A :class:`GroupedMaps` maps each group's cells with that
        group's map; cells of groups without a map are not mapped (a
        ``UserWarning`` says how many).
    key : str, default="condition"
        Column of ``adata.obs`` with the populations (used when ``cells`` is
        a label or None, and for ``observed_difference``).
    cells : label or boolean mask of shape (n_obs,), default=None
        Cells to map: those whose ``adata.obs[key]`` equals the label, or the
        mask. ``None`` maps the estimator's source cells
        (``estimator.source_label_``).
    layer : str, default=None
        Read ``adata.layers[layer]`` instead of ``adata.X``.
    genes : list of str or boolean mask, default=None
        Genes the map was fitted on, for an estimator without
        ``feature_names_in_``; all genes when None.
    groupby : str, default=None
        Column of ``adata.obs`` to summarise per group (for a GroupedMaps,
        its own ``groupby`` by default).
    layer_added : str or None, default="skmonge_mapped"
        Layer to write; None writes no layer.
    obsm_key : str, default=None
        Write the mapped cells to ``adata.obsm[obsm_key]`` instead of a layer.
    key_added : str, default="skmonge"
        Prefix of the ``var`` and ``obs`` columns written, and the ``uns``
        key of the per-group report.
    atol : float, default=1e-8
        Threshold of ``frac_moved``.
    chunk_size : int, default=None
        Cells per chunk (None: about 64 MiB of dense temporaries per chunk).
    verbose : bool or "auto", default="auto"
        A progress bar over the mapped cells (the estimator's own bars stay
        off: it is called chunk by chunk). ``"auto"`` shows it when the
        mapping takes seconds: for an entropic map, at least 2e10 mapped
        cells x fitted target cells x genes; for a neural map, at least
        20,000 cells.
    copy : bool, default=False
        Work on and return a copy of ``adata`` instead of modifying it.

    Returns
    -------
    adata : anndata.AnnData or None
        The modified copy when ``copy=True``, else None.

    Examples
    --------
    >>> sc.predict(adata, sc.fit_map(adata, EntropicSparseMap()),
    ...            groupby="cell_type")                      # doctest: +SKIP
    >>> get_group_report(adata, group="B").head()            # doctest: +SKIP
    """
    _require_anndata(adata)
    grouped = isinstance(estimator, GroupedMaps)
    for fitted in estimator.values() if grouped else (estimator,):
        check_is_fitted(fitted)
    atol = _check_atol(atol)
    if copy:
        adata = adata.copy()
    first = next(iter(estimator.values())) if grouped else estimator
    names = getattr(first, "feature_names_in_", None)
    if names is not None and genes is None:
        genes = list(names)
    cols = _gene_positions(adata, genes)
    mask = _cell_mask(adata, first, key, cells)
    if grouped and groupby is None:
        groupby = estimator.groupby
    reference, plan, labels, mask = _map_plan(adata, estimator, mask, groupby)
    X = _matrix(adata, layer)
    if not _in_memory(X) and (obsm_key is not None or layer_added is not None):
        raise ValueError(
            "adata is backed (its matrix is read from disk): writing "
            + (
                f"obsm[{obsm_key!r}]"
                if obsm_key is not None
                else f"layer {layer_added!r}"
            )
            + " would hold a matrix of every cell in memory. Pass "
            "layer_added=None for the per-gene and per-group summaries only "
            "(the cells are then read and mapped chunk by chunk), or load "
            "the AnnData into memory (adata.to_memory())."
        )

    if obsm_key is not None:
        writer = _BlockWriter(
            _columns(X, cols, adata.n_vars), np.flatnonzero(mask), np.arange(cols.size)
        )
    elif layer_added is not None:
        writer = _BlockWriter(X, np.flatnonzero(mask), cols)
    else:
        writer = None
    pooled = _DisplacementStats(cols.size, atol)
    per_group = (
        None if labels is None else _DisplacementStats(cols.size, atol, labels.size)
    )
    with warnings.catch_warnings():
        # The columns were matched to feature_names_in_ by name above; the
        # chunks are plain arrays, which sklearn would warn about.
        warnings.filterwarnings(
            "ignore",
            message="X does not have valid feature names",
            category=UserWarning,
        )
        # cells are read a block at a time (from disk for a backed AnnData)
        # and mapped in the map's own chunks
        step = _rows_per_chunk(adata.n_vars, chunk_size)
        n_cells = sum(rows.size for _, rows, _ in plan)
        progress = Progress(
            n_cells,
            "predict",
            show_progress(verbose, _mapping_work(reference, n_cells, cols.size)),
            unit="cell",
        )
        for fitted, rows, codes in plan:
            for first in range(0, rows.size, step):
                block = slice(first, first + step)
                selected = _columns(_read_rows(X, rows[block]), cols, adata.n_vars)
                block_rows, block_codes = rows[block], codes[block]
                for start, stop, mapped, delta in _map_in_chunks(
                    fitted, selected, chunk_size
                ):
                    pooled.update(delta)
                    if per_group is not None:
                        part = block_codes[start:stop]
                        in_group = part >= 0
                        per_group.update(delta[in_group], part[in_group])
                    if writer is not None:
                        writer.add(block_rows[start:stop], mapped)
                    progress.step(stop - start)
        progress.close()
    if obsm_key is not None:
        adata.obsm[obsm_key] = writer.result()
    elif layer_added is not None:
        adata.layers[layer_added] = writer.result()

    columns = pooled.columns()
    for suffix, name in (
        ("mean_abs_disp", "mean_abs_displacement"),
        ("mean_disp", "mean_displacement"),
        ("frac_moved", "fraction_moved"),
    ):
        values = np.full(adata.n_vars, np.nan)
        values[cols] = columns[name]
        adata.var[f"{key_added}_{suffix}"] = values
    adata.obs[f"{key_added}_mapped"] = mask
    if per_group is not None:
        params = {"groupby": groupby, "key": key, "layer": layer, "atol": atol}
        adata.uns[key_added] = _group_uns(
            adata, reference, per_group, labels, cols, X, params, grouped
        )
    return adata if copy else None


_REPORT_FIELDS = (
    "mean_abs_displacement",
    "mean_displacement",
    "fraction_moved",
    "observed_difference",
)


def _group_uns(adata, reference, stats, labels, cols, X, params, grouped):
    """The ``rank_genes_groups``-like dict of per-group statistics."""
    key, groupby = params["key"], params["groupby"]
    mean, mean_abs, fraction, counts = stats.means()
    y, missing = _labels(adata, key)
    _, final = split_map(reference)
    source, target = final.source_label_, final.target_label_
    values, _ = _labels(adata, groupby)
    _, codes = encode_groups(values, adata.n_obs, name=f"obs[{groupby!r}]")
    observed = observed_group_shift(
        _columns(X, cols, adata.n_vars),
        ~missing & (y == source),
        ~missing & (y == target),
        codes,
        labels.size,
    )[0]
    gene_names = np.asarray(adata.var_names[cols], dtype=object)
    kept = np.flatnonzero(counts > 0)
    fields = [str(labels[g]) for g in kept]
    orders = [np.argsort(-mean_abs[g], kind="stable") for g in kept]
    by_field = {
        "mean_abs_displacement": mean_abs,
        "mean_displacement": mean,
        "fraction_moved": fraction,
        "observed_difference": observed,
    }
    uns = {
        "params": {
            "groupby": groupby,
            "key": key,
            "source": str(source),
            "target": str(target),
            "layer": "X" if params["layer"] is None else params["layer"],
            "atol": params["atol"],
            "per_group_maps": grouped,
        },
        "n_cells": {
            field: int(counts[g]) for field, g in zip(fields, kept, strict=True)
        },
        "names": np.rec.fromarrays(
            [gene_names[order].astype(str) for order in orders], names=fields
        ),
    }
    for name in _REPORT_FIELDS:
        uns[name] = np.rec.fromarrays(
            [by_field[name][g][order] for g, order in zip(kept, orders, strict=True)],
            names=fields,
        )
    return uns


def get_group_report(adata, group=None, *, key="skmonge"):
    """The per-group report of :func:`predict` as a tidy DataFrame.

    Like ``sc.get.rank_genes_groups_df``: one row per (group, gene), genes of
    each group by decreasing mean :math:`|Δ|`.

    Parameters
    ----------
    adata : anndata.AnnData
        After ``predict(adata, ..., groupby=...)``.
    group : str or list of str, default=None
        Group(s) to return; all when None.
    key : str, default="skmonge"
        The ``key_added`` of that ``predict`` call.

    Returns
    -------
    report : pandas.DataFrame
        Indexed by ``("group", "feature")``, columns ``n_cells``,
        ``mean_abs_displacement``, ``mean_displacement``,
        ``fraction_moved``, ``observed_difference``: the layout of
        :func:`skmonge.inspection.displacement_report` with ``groups``.
    """
    _require_anndata(adata)
    pd = _pandas()
    uns = adata.uns.get(key)
    if not isinstance(uns, Mapping) or "names" not in uns:
        raise ValueError(
            f"adata.uns[{key!r}] holds no per-group report; run "
            f"skmonge.sc.predict(adata, estimator, groupby=..., key_added={key!r})."
        )
    fields = list(uns["names"].dtype.names)
    if group is not None:
        wanted = [group] if isinstance(group, str) else list(group)
        unknown = [g for g in wanted if g not in fields]
        if unknown:
            raise ValueError(f"No group {unknown} in the report (groups: {fields}).")
        fields = [str(g) for g in wanted]

    def table(name, dtype=np.float64):
        return np.stack([np.asarray(uns[name][f], dtype=dtype) for f in fields])

    # the stored order is already by decreasing mean |Δ|: the stable sort of
    # _group_table keeps it, ties included
    return _group_table(
        pd,
        np.asarray(fields, dtype=object),
        table("names", object),
        table("mean_displacement"),
        table("mean_abs_displacement"),
        table("fraction_moved"),
        np.asarray([int(uns["n_cells"][f]) for f in fields], dtype=np.int64),
        table("observed_difference"),
    )
