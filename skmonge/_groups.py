r"""Group labels (cell types) and per-group means: the one place they are computed.

Per-group answers (reports, the group overlap metric, the AnnData front end)
all need the same two things: a validated vector of group labels aligned
with the rows of ``X``, and the mean of the rows of each group,

.. math:: \bar x_g = \frac{1}{|I_g|} \sum_{i \in I_g} x_i ,

for dense or sparse ``X``, without densifying a sparse matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["encode_groups", "group_means", "observed_group_shift"]


def encode_groups(groups, n_rows, name="groups"):
    """Validate group labels; return ``(labels, codes)``.

    Parameters
    ----------
    groups : array-like of shape (n_rows,)
        One label per row (strings, integers, a pandas Categorical, ...).
        Missing values (``None``, NaN) get code ``-1``: the row belongs to
        no group.
    n_rows : int
        Expected length.
    name : str
        Name used in error messages.

    Returns
    -------
    labels : ndarray of object, shape (n_groups,)
        Distinct non-missing labels, sorted (by their string form when the
        labels mix types, so that ``[1, "a"]`` does not raise).
    codes : ndarray of int64, shape (n_rows,)
        Index into ``labels`` of each row's group, ``-1`` for missing.
    """
    values = np.asarray(groups, dtype=object)
    if values.ndim != 1 or values.shape[0] != n_rows:
        raise ValueError(
            f"{name} must be 1-d with one label per row ({n_rows}), got shape "
            f"{values.shape}."
        )
    missing = np.array(
        [v is None or (isinstance(v, float) and v != v) for v in values], dtype=bool
    )
    present = values[~missing]
    distinct = list(dict.fromkeys(present.tolist()))
    try:
        distinct.sort()
    except TypeError:  # mixed types: a deterministic order all the same
        distinct.sort(key=lambda v: (type(v).__name__, str(v)))
    labels = np.empty(len(distinct), dtype=object)
    labels[:] = distinct
    index = {label: i for i, label in enumerate(distinct)}
    codes = np.full(n_rows, -1, dtype=np.int64)
    codes[~missing] = [index[v] for v in present.tolist()]
    return labels, codes


# values per block when group means read a backed matrix (8 MiB of float64)
_BLOCK_VALUES = 2**20


def group_means(X, codes, n_groups):
    r"""Mean row of each group: :math:`\bar x_g`, shape ``(n_groups, n_features)``.

    ``X`` is a dense array or a sparse matrix (never densified: the sum is a
    sparse indicator product), or a backed AnnData's matrix, read a block of
    rows at a time. Rows with code ``-1`` are ignored; an empty
    group gets a row of NaN and count 0.

    Returns
    -------
    means : ndarray of float64, shape (n_groups, n_features)
    counts : ndarray of int64, shape (n_groups,)
    """
    codes = np.asarray(codes)
    keep = np.flatnonzero(codes >= 0)
    counts = np.bincount(codes[keep], minlength=n_groups).astype(np.int64)
    indicator = sp.csr_matrix(
        (np.ones(keep.size), (codes[keep], keep)), shape=(n_groups, X.shape[0])
    )
    if sp.issparse(X):
        sums = np.asarray((indicator @ X.astype(np.float64)).todense())
    elif isinstance(X, np.ndarray):
        sums = indicator @ np.asarray(X, dtype=np.float64)
    else:
        # read from disk (a backed AnnData), a block of rows at a time
        sums = np.zeros((n_groups, X.shape[1]))
        step = max(1, _BLOCK_VALUES // max(1, X.shape[1]))
        for start in range(0, X.shape[0], step):
            block = X[start : start + step]
            block = block.astype(np.float64) if sp.issparse(block) else block
            part = indicator[:, start : start + step] @ block
            sums += part.toarray() if sp.issparse(part) else np.asarray(part)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return np.asarray(means), counts


def observed_group_shift(X, is_source, is_target, codes, n_groups):
    r"""Observed mean difference of each group, target minus source.

    .. math:: s_g = \bar y_g - \bar x_g

    with :math:`\bar x_g` the mean of the source rows of group ``g`` and
    :math:`\bar y_g` that of its target rows (e.g. stimulated minus control
    cells of one cell type).

    Returns
    -------
    shift : ndarray of float64, shape (n_groups, n_features)
        NaN rows for groups missing from either population.
    n_source, n_target : ndarray of int64, shape (n_groups,)
    """
    codes = np.asarray(codes)
    source_codes = np.where(is_source, codes, -1)
    target_codes = np.where(is_target, codes, -1)
    mean_source, n_source = group_means(X, source_codes, n_groups)
    mean_target, n_target = group_means(X, target_codes, n_groups)
    return mean_target - mean_source, n_source, n_target
