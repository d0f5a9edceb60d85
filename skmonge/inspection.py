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


def _chunk_size(n_features, batch_size):
    if batch_size is not None:
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        return int(batch_size)
    # three dense float64 n_rows x d arrays live at once: rows, image, delta
    return int(max(1, _CHUNK_BYTES // (3 * 8 * max(1, n_features))))


def _map_in_chunks(estimator, X, batch_size=None):
    r"""Yield ``(start, stop, rows, mapped)`` over chunks of the rows of ``X``.

    ``rows`` is the chunk densified to float64 and ``mapped`` its image
    :math:`T(x)` by ``estimator.transform`` as an ndarray in the estimator's
    output dtype, so ``mapped - rows`` is the displacement, in float64. Only
    one chunk is dense at a time. A DataFrame chunk is passed to ``transform``
    as a DataFrame, so its column names are still checked against
    ``feature_names_in_``; other input is passed densified.
    """
    X = _as_rows(X)
    n, d = X.shape
    step = _chunk_size(d, batch_size)
    for start in range(0, n, step):
        stop = min(n, start + step)
        part = X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]
        if sp.issparse(part):
            part = part.toarray()  # this chunk only
        rows = np.asarray(part, dtype=np.float64)
        mapped = np.asarray(estimator.transform(part))
        if mapped.shape != rows.shape:
            raise ValueError(
                "The estimator must map the feature space onto itself: "
                f"transform gave shape {mapped.shape} for rows of shape "
                f"{rows.shape}."
            )
        yield start, stop, rows, mapped


class _DisplacementStats:
    r"""Running per-feature sums of a displacement :math:`Δ`, one chunk at a time.

    After all rows, with :math:`n` rows seen,

    .. math:: \text{mean\_abs}_t = \frac1n \sum_i |Δ_{it}|, \quad
              \text{mean}_t = \frac1n \sum_i Δ_{it}, \quad
              \text{frac}_t = \frac1n \#\{i : |Δ_{it}| > \text{atol}\}.

    The threshold is strict, as in :func:`skmonge.metrics.displacement_sparsity`,
    whose value is the mean of ``frac`` over the features.
    """

    def __init__(self, n_features, atol):
        self.atol = atol
        self.abs_sum = np.zeros(n_features)
        self.sum = np.zeros(n_features)
        self.moved = np.zeros(n_features, dtype=np.int64)
        self.n_rows = 0

    def update(self, delta):
        magnitude = np.abs(delta)
        self.abs_sum += magnitude.sum(axis=0)
        self.sum += delta.sum(axis=0)
        self.moved += np.count_nonzero(magnitude > self.atol, axis=0)
        self.n_rows += delta.shape[0]

    def columns(self):
        """The three per-feature statistics, as a dict of float arrays."""
        if self.n_rows == 0:
            raise ValueError("No rows to summarise: X has 0 rows.")
        return {
            "mean_abs_displacement": self.abs_sum / self.n_rows,
            "mean_displacement": self.sum / self.n_rows,
            "fraction_moved": self.moved / self.n_rows,
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


def displacement_report(estimator, X, feature_names=None, atol=1e-8, batch_size=None):
    r"""Per-feature summary of the displacement of a fitted map on the rows of ``X``.

    With :math:`Δ_{it} = T(x_i)_t - x_{it}` over the :math:`n` rows of ``X``:

    .. math:: \text{mean\_abs\_displacement}_t = \frac1n \sum_i |Δ_{it}|,\qquad
              \text{mean\_displacement}_t = \frac1n \sum_i Δ_{it},

    .. math:: \text{fraction\_moved}_t =
              \frac1n \#\{i : |Δ_{it}| > \text{atol}\}.

    The mean of ``fraction_moved`` over the features is
    :func:`skmonge.metrics.displacement_sparsity` of the same rows.

    Parameters
    ----------
    estimator : fitted map estimator
        Anything whose ``transform`` maps ``X`` into the same feature space
        (e.g. a fitted :class:`~skmonge.EntropicSparseMap`).
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Points to map, typically the source cells. Evaluated ``batch_size``
        rows at a time: only one chunk is ever dense.
    feature_names : sequence of str, default=None
        Row labels of the report. ``None`` uses
        ``estimator.get_feature_names_out()`` (``feature_names_in_`` when the
        estimator has it, else ``"x0", "x1", …``).
    atol : float, default=1e-8
        A coordinate moved when ``|Δ| > atol``.
    batch_size : int, default=None
        Rows per chunk; ``None`` keeps one chunk's dense temporaries near
        64 MiB.

    Returns
    -------
    report : pandas.DataFrame
        Indexed by feature name (index name ``"feature"``), columns
        ``mean_abs_displacement``, ``mean_displacement``, ``fraction_moved``,
        sorted by ``mean_abs_displacement`` in decreasing order (ties keep the
        feature order).
    """
    pd = _pandas()
    atol = _check_atol(atol)
    check_is_fitted(estimator)
    X = _as_rows(X)
    names = _feature_names(estimator, feature_names, X.shape[1])
    stats = _DisplacementStats(X.shape[1], atol)
    for _, _, rows, mapped in _map_in_chunks(estimator, X, batch_size):
        stats.update(mapped - rows)
    report = pd.DataFrame(stats.columns(), index=pd.Index(names, name="feature"))
    return report.sort_values("mean_abs_displacement", ascending=False, kind="stable")


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
    ((_, _, rows, mapped),) = _map_in_chunks(estimator, one_row, batch_size=1)
    delta = (mapped - rows)[0]
    moved = np.flatnonzero(np.abs(delta) > atol)
    order = moved[np.argsort(-np.abs(delta[moved]), kind="stable")]
    return pd.Series(
        delta[order], index=pd.Index(names[order], name="feature"), name=cell
    )


# --------------------------------------------------------------------------
# Evaluation metrics (§5.2 of Cuturi, Klein & Ablin 2023)
# --------------------------------------------------------------------------
