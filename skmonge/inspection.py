"""Reading a fitted map feature by feature, and the single-cell evaluation metrics.

A displacement-sparse map is meant to be read gene by gene: which features
move, by how much and in what direction, over a population or for one cell.
These helpers evaluate ``Δ = T(x) - x`` with the estimator's own ``transform``
on chunks of rows, so that a large (sparse) cell-by-gene matrix is never
densified whole, and summarise it per feature.

``pandas`` is needed for :func:`displacement_report` and
:func:`cell_displacements` (it ships with the ``anndata`` and ``test``
extras).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._groups import encode_groups, observed_group_shift
from ._pipeline import map_and_displace, split_map

__all__ = [
    "displacement_report",
    "cell_displacements",
]

# Bound on one chunk's dense temporaries (rows, images, displacements),
# the same budget the entropic map uses for its own chunks.
_CHUNK_BYTES = 64 * 2**20


def _pandas():
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is in the test extra
        raise ImportError(
            "skmonge's reports and per-group metrics are pandas objects; "
            "install pandas "
            '(pip install pandas, or pip install "skmonge[anndata]").'
        ) from exc
    return pd


def _check_atol(atol):
    if (
        isinstance(atol, bool)
        or not isinstance(atol, numbers.Real)
        or not np.isfinite(atol)
        or atol < 0
    ):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}.")
    return float(atol)


def _as_rows(X):
    """``X`` in a row-sliceable form: DataFrame and sparse-CSR kept as such."""
    if hasattr(X, "iloc"):
        return X
    if sp.issparse(X):
        # CSR slices rows without copying the rest; tocsr() is a no-op on CSR.
        return X.tocsr()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d, got an array of shape {X.shape}.")
    return X


def _rows_per_chunk(n_features, chunk_size):
    if chunk_size is not None:
        if not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}.")
        return int(chunk_size)
    # three dense float64 n_rows x d arrays live at once: rows, image, delta
    return int(max(1, _CHUNK_BYTES // (3 * 8 * max(1, n_features))))


def _map_in_chunks(estimator, X, chunk_size=None):
    r"""Yield ``(start, stop, mapped, delta)`` over chunks of the rows of ``X``.

    ``mapped`` is the chunk's image :math:`T(x)` as an ndarray in the
    estimator's output dtype and ``delta`` the displacement in float64, both
    in the input feature space, also for a ``Pipeline`` ending in a map
    (:func:`skmonge._pipeline.map_and_displace`). Only one chunk is dense at
    a time. A DataFrame chunk is passed on as a DataFrame, so its column
    names are still checked against ``feature_names_in_``; sparse input is
    densified one chunk at a time.
    """
    X = _as_rows(X)
    n, d = X.shape
    step = _rows_per_chunk(d, chunk_size)
    for start in range(0, n, step):
        stop = min(n, start + step)
        part = X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]
        if sp.issparse(part):
            part = part.toarray()  # this chunk only
        mapped, delta = map_and_displace(estimator, part)
        yield start, stop, mapped, delta


class _DisplacementStats:
    r"""Running per-group, per-feature sums of a displacement :math:`Δ`.

    Fed one chunk of rows at a time with each row's group (code ``0`` for
    all rows by default). After all rows, with :math:`I_g` the rows of
    group ``g``,

    .. math:: \text{mean\_abs}_{gt} = \frac1{|I_g|} \sum_{i \in I_g} |Δ_{it}|,
              \quad \text{mean}_{gt} = \frac1{|I_g|} \sum_{i \in I_g} Δ_{it},
              \quad \text{frac}_{gt} = \frac{\#\{i \in I_g : |Δ_{it}| >
              \text{atol}\}}{|I_g|}.

    The threshold is strict, as in :func:`skmonge.metrics.displacement_sparsity`,
    whose value is the mean of ``frac`` over the features. This is the one
    accumulator behind :func:`displacement_report`, :func:`skmonge.sc.predict`
    and the per-group metrics and plots.
    """

    def __init__(self, n_features, atol, n_groups=1):
        self.atol = atol
        self.n_groups = n_groups
        self.sums = np.zeros((3, n_groups, n_features))
        self.counts = np.zeros(n_groups, dtype=np.int64)

    def update(self, delta, codes=None):
        """Add the rows of ``delta``; ``codes`` (default all 0) are their groups."""
        magnitude = np.abs(delta)
        parts = (delta, magnitude, magnitude > self.atol)
        if codes is None:
            for slot, values in enumerate(parts):
                self.sums[slot, 0] += values.sum(axis=0)
            self.counts[0] += delta.shape[0]
            return
        codes = np.asarray(codes, dtype=np.int64)
        indicator = sp.csr_matrix(
            (np.ones(codes.size), (codes, np.arange(codes.size))),
            shape=(self.n_groups, codes.size),
        )
        for slot, values in enumerate(parts):
            self.sums[slot] += indicator @ values.astype(np.float64, copy=False)
        self.counts += np.bincount(codes, minlength=self.n_groups)

    def means(self):
        """``mean, mean_abs, fraction`` (each ``(n_groups, n_features)``), counts.

        Groups without rows get rows of zeros.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(
                self.counts[:, None] > 0, self.sums / self.counts[:, None], 0.0
            )
        return values[0], values[1], values[2], self.counts.copy()

    def columns(self, group=0):
        """The three per-feature statistics of one group, as a dict."""
        if self.counts[group] == 0:
            raise ValueError("No rows to summarise: X has 0 rows.")
        mean, mean_abs, fraction, _ = self.means()
        return {
            "mean_abs_displacement": mean_abs[group],
            "mean_displacement": mean[group],
            "fraction_moved": fraction[group],
        }


def _feature_names(estimator, feature_names, n_features):
    """Names from ``feature_names``, else the estimator's, else ``x0, x1, …``."""
    if feature_names is None:
        if hasattr(estimator, "get_feature_names_out"):
            # A map keeps its feature space: this is feature_names_in_ when
            # the estimator has it and "x0", "x1", ... otherwise.
            names = np.asarray(estimator.get_feature_names_out(), dtype=object)
        else:
            names = np.asarray([f"x{i}" for i in range(n_features)], dtype=object)
    else:
        names = np.asarray(list(feature_names), dtype=object)
    if names.shape != (n_features,):
        raise ValueError(f"Got {names.size} feature names for {n_features} features.")
    return names


def displacement_report(
    estimator, X, feature_names=None, atol=1e-8, chunk_size=None, *, y=None, groups=None
):
    r"""Per-feature summary of the displacement of a fitted map on the rows of ``X``.

    With :math:`Δ_{it} = T(x_i)_t - x_{it}` over the :math:`n` mapped rows
    (all rows of ``X``, or its source rows when ``y`` is given):

    .. math:: \text{mean\_abs\_displacement}_t = \frac1n \sum_i |Δ_{it}|,\qquad
              \text{mean\_displacement}_t = \frac1n \sum_i Δ_{it},

    .. math:: \text{fraction\_moved}_t =
              \frac1n \#\{i : |Δ_{it}| > \text{atol}\}.

    The mean of ``fraction_moved`` over the features is
    :func:`skmonge.metrics.displacement_sparsity` of the same rows. With
    ``groups`` the same is computed over the rows of each group (e.g. per
    cell type); with ``y`` the report also gives the observed mean
    difference :math:`\bar y_t - \bar x_t` of the target and source rows
    (of each group), the quantity ``mean_displacement`` should be read
    against.

    For a ``Pipeline`` ending in a map, :math:`Δ` is reported in the
    pipeline's input features (:func:`skmonge._pipeline.map_and_displace`);
    a preprocessing step without ``inverse_transform`` raises a
    ``ValueError``.

    Parameters
    ----------
    estimator : fitted map estimator
        Anything whose ``transform`` maps ``X`` into the same feature space
        (e.g. a fitted :class:`~skmonge.EntropicSparseMap`), or a
        ``Pipeline`` ending in one.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Points to map, typically the source cells (or both populations with
        ``y``). Evaluated ``chunk_size`` rows at a time: only one chunk is
        ever dense.
    feature_names : sequence of str, default=None
        Row labels of the report. ``None`` uses
        ``estimator.get_feature_names_out()`` (``feature_names_in_`` when the
        estimator has it, else ``"x0", "x1", …``).
    atol : float, default=1e-8
        A coordinate moved when ``|Δ| > atol``.
    chunk_size : int, default=None
        Rows per chunk; ``None`` keeps one chunk's dense temporaries near
        64 MiB.
    y : array-like of shape (n_samples,), default=None
        Population labels of the rows of ``X``. When given, only the rows
        with the estimator's source label are mapped, and the column
        ``observed_difference`` (target mean minus source mean) is added.
    groups : array-like of shape (n_samples,), default=None
        Group of each row (e.g. ``adata.obs["cell_type"]``); missing values
        (None, NaN) belong to no group and are left out.

    Returns
    -------
    report : pandas.DataFrame
        Without ``groups``: indexed by feature name (index name
        ``"feature"``), columns ``mean_abs_displacement``,
        ``mean_displacement``, ``fraction_moved`` (and
        ``observed_difference``), sorted by ``mean_abs_displacement`` in
        decreasing order (ties keep the feature order). With ``groups``: a
        tidy table indexed by ``("group", "feature")``, with the number of
        mapped rows of the group in ``n_cells``, the groups in sorted order
        (groups without mapped rows are left out) and the features of each
        group sorted as above.

    Examples
    --------
    >>> import numpy as np
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.inspection import displacement_report
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 6))
    >>> y = np.repeat(["ctrl", "stim"], 60)
    >>> groups = np.tile(["B", "T"], 60)
    >>> X[(y == "stim") & (groups == "B"), 0] += 3.0  # B cells respond in x0
    >>> X[(y == "stim") & (groups == "T"), 1] += 3.0  # T cells in x1
    >>> est = EntropicSparseMap(source="ctrl", target="stim").fit(X, y)
    >>> report = displacement_report(est, X, y=y, groups=groups)
    >>> report.groupby("group").head(1).index.tolist()
    [('B', 'x0'), ('T', 'x1')]
    """
    pd = _pandas()
    atol = _check_atol(atol)
    check_is_fitted(estimator)
    X = _as_rows(X)
    n, d = X.shape
    names = _feature_names(estimator, feature_names, d)
    if groups is None:
        labels, codes = np.array([None], dtype=object), np.zeros(n, dtype=np.int64)
    else:
        labels, codes = encode_groups(groups, n)
        if labels.size == 0:
            raise ValueError("groups holds no group label (all missing).")
    mapped_rows = codes >= 0
    observed = None
    if y is not None:
        is_source, is_target = _populations(estimator, y, n)
        values = X.to_numpy() if hasattr(X, "iloc") else X
        observed = observed_group_shift(
            values, is_source, is_target, codes, labels.size
        )[0]
        mapped_rows &= is_source
    rows = np.flatnonzero(mapped_rows)
    subset = X if rows.size == n else (X.iloc[rows] if hasattr(X, "iloc") else X[rows])
    stats = _DisplacementStats(d, atol, labels.size)
    for start, stop, _, delta in _map_in_chunks(estimator, subset, chunk_size):
        stats.update(delta, codes[rows[start:stop]])
    if groups is None:
        columns = stats.columns()
        if observed is not None:
            columns["observed_difference"] = observed[0]
        report = pd.DataFrame(columns, index=pd.Index(names, name="feature"))
        return report.sort_values(
            "mean_abs_displacement", ascending=False, kind="stable"
        )
    mean, mean_abs, fraction, counts = stats.means()
    if not counts.any():
        raise ValueError("No rows to summarise: no row of X has a group.")
    return _group_table(pd, labels, names, mean, mean_abs, fraction, counts, observed)


def _populations(estimator, y, n):
    """Source and target masks of ``y`` under the estimator's fitted labels."""
    _, final = split_map(estimator)
    if not hasattr(final, "source_label_"):
        raise ValueError(
            "y needs a map with fitted source_label_ / target_label_ (a skmonge "
            f"estimator, or a Pipeline ending in one); got {type(final).__name__}."
        )
    y = np.asarray(y, dtype=object)
    if y.shape != (n,):
        raise ValueError(
            f"y must be 1-d with one population label per row ({n}), got shape "
            f"{y.shape}."
        )
    return y == final.source_label_, y == final.target_label_


def _group_table(pd, labels, names, mean, mean_abs, fraction, counts, observed):
    """Tidy per-group table indexed by ``(group, feature)``, rows of each group
    sorted by decreasing ``mean_abs_displacement``; groups with 0 rows dropped.
    """
    # one feature order for all groups, or (n_groups, n_features) names
    names = np.broadcast_to(np.asarray(names, dtype=object), mean_abs.shape)
    blocks = []
    for g in np.flatnonzero(counts > 0):
        order = np.argsort(-mean_abs[g], kind="stable")
        block = {
            "group": np.repeat(np.asarray([labels[g]], dtype=object), order.size),
            "feature": names[g][order],
            "n_cells": np.full(order.size, counts[g], dtype=np.int64),
            "mean_abs_displacement": mean_abs[g][order],
            "mean_displacement": mean[g][order],
            "fraction_moved": fraction[g][order],
        }
        if observed is not None:
            block["observed_difference"] = observed[g][order]
        blocks.append(pd.DataFrame(block))
    return pd.concat(blocks, ignore_index=True).set_index(["group", "feature"])


def cell_displacements(estimator, X, cell, feature_names=None, atol=1e-8):
    r"""The non-zero displacement :math:`T(x) - x` of one row of ``X``.

    Parameters
    ----------
    estimator : fitted map estimator
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Only the selected row is densified and mapped.
    cell : int or label
        Position of the row; for a DataFrame ``X`` a non-integer ``cell`` is
        looked up in ``X.index`` (e.g. a barcode).
    feature_names : sequence of str, default=None
        As in :func:`displacement_report`.
    atol : float, default=1e-8
        Coordinates with ``|Δ| <= atol`` are left out.

    Returns
    -------
    delta : pandas.Series
        Signed displacement of the features that move, indexed by feature
        name, sorted by ``|Δ|`` in decreasing order; named after ``cell``.
        Empty when the cell does not move.
    """
    pd = _pandas()
    atol = _check_atol(atol)
    check_is_fitted(estimator)
    X = _as_rows(X)
    if isinstance(cell, numbers.Integral) and not isinstance(cell, bool):
        position = int(cell)
        if not -X.shape[0] <= position < X.shape[0]:
            raise IndexError(f"cell {cell} is out of range for {X.shape[0]} rows.")
        position %= X.shape[0]
    elif hasattr(X, "index"):
        position = X.index.get_loc(cell)
        if not isinstance(position, numbers.Integral):
            raise ValueError(f"The label {cell!r} does not name a single row.")
    else:
        raise TypeError(
            "cell must be an integer row position (or an index label when X is "
            f"a DataFrame), got {cell!r}."
        )
    names = _feature_names(estimator, feature_names, X.shape[1])
    window = slice(position, position + 1)
    one_row = X.iloc[window] if hasattr(X, "iloc") else X[window]
    ((_, _, _, delta),) = _map_in_chunks(estimator, one_row, chunk_size=1)
    delta = delta[0]
    moved = np.flatnonzero(np.abs(delta) > atol)
    order = moved[np.argsort(-np.abs(delta[moved]), kind="stable")]
    return pd.Series(
        delta[order], index=pd.Index(names[order], name="feature"), name=cell
    )


# --------------------------------------------------------------------------
# Evaluation metrics (§5.2 of Cuturi, Klein & Ablin 2023)
# --------------------------------------------------------------------------
