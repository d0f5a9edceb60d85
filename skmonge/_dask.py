"""Row-wise map methods on ``dask.array`` input, block by block.

A fitted map sends each row on its own, so ``transform``, ``inverse_transform``
and ``displacement`` of a ``dask.array`` are ``map_blocks`` over blocks of
whole rows. The fitted estimator enters the graph once, as a single key that
every block task depends on: a distributed scheduler sends it to each worker
once, not once per block. The result is a lazy ``dask.array`` with the row
chunks of the input (all features in one chunk) and the dtype the method
would return on one block (float32 stays float32, other types become
float64).

dask is an optional dependency (``pip install skmonge[dask]``); this module
imports it only when it is given a dask collection.
"""

from __future__ import annotations

import functools
import uuid

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["accepts_dask"]


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask)."""
    module = type(X).__module__ or ""
    return module.startswith("dask.") and hasattr(X, "map_blocks")


def accepts_dask(method):
    """Let a row-wise map method ``method(self, X)`` take a ``dask.array``.

    For a dask ``X`` the decorated method returns a lazy ``dask.array``; for
    anything else it is the method itself.
    """

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_dask_array(X):
            return _map_dask_blocks(self, method.__name__, X, args, kwargs)
        return method(self, X, *args, **kwargs)

    return wrapper


def _output_dtype(dtype):
    """The dtype a map method returns for input of ``dtype``."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _map_dask_blocks(estimator, name, X, args, kwargs):
    import dask
    import dask.array as da

    check_is_fitted(estimator)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-d dask array of shape (n_samples, n_features), got "
            f"{X.ndim} dimension(s)."
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {n_features} features as input."
        )
    dtype = _output_dtype(X.dtype)
    # every block holds whole rows: a row's image needs all its features
    X = X.rechunk({1: -1})
    # one key for the fitted state, named rather than hashed (tokenising a
    # fitted map would pickle all of it)
    fitted = dask.delayed(estimator, name=f"skmonge-{name}-{uuid.uuid4().hex}")
    return da.map_blocks(
        _apply,
        X,
        fitted,
        name,
        args,
        kwargs,
        dtype=dtype,
        chunks=X.chunks,
        meta=np.empty((0, 0), dtype=dtype),
    )


def _apply(block, estimator, name, args, kwargs):
    """``estimator.<name>(block)``: the method on one in-memory block."""
    return getattr(estimator, name)(block, *args, **kwargs)
