"""Array coercion shared by the numerical modules (costs, kernels, proxes, Sinkhorn)."""

import numpy as np
import scipy.sparse as sp
from numba import njit, prange


@njit(parallel=True, cache=True, error_model="numpy")
def max_abs(A):
    """Largest :math:`|a_{ij}|` of the 2-d array ``A`` (inf or NaN if one is).

    One parallel pass, no temporaries; 0 for an empty array.
    """
    n = A.shape[0]
    row = np.zeros(n)
    for i in prange(n):
        top = 0.0
        for j in range(A.shape[1]):
            x = abs(np.float64(A[i, j]))
            # NaN must win the max: comparisons with NaN are false
            if not x <= top:
                top = x
                if x != x:
                    break
        row[i] = top
    top = 0.0
    for i in range(n):
        if not row[i] <= top:
            top = row[i]
            if top != top:
                break
    return top


def evenly_spaced(n, k):
    """At most ``k`` evenly spaced indices in ``range(n)`` (all of them when
    ``n <= k``): a deterministic subsample that samples every stretch of
    rows sorted by, say, cell type."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).astype(np.intp))


def all_finite(A):
    """``True`` when every entry of the 2-d array ``A`` is finite."""
    return bool(np.isfinite(max_abs(A)))


def check_real_dense(A, name):
    """``A`` as an ndarray, refusing sparse matrices and complex numbers by name.

    ``np.asarray`` of a sparse matrix is a 0-d object array and a complex
    array cast to float silently drops the imaginary part: both would give a
    misleading error or a wrong result further down.
    """
    if sp.issparse(A):
        raise ValueError(
            f"{name} is a scipy.sparse matrix; this function needs a dense "
            f"array (pass {name}.toarray())."
        )
    A = np.asarray(A)
    if np.iscomplexobj(A):
        raise ValueError(f"{name} must be real, got complex dtype {A.dtype}.")
    if A.dtype == object:
        try:
            A = A.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric, got an object array.") from None
    elif not (np.issubdtype(A.dtype, np.number) or A.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {A.dtype}.")
    return A


def as_float_2d(A, name="Z", dtype=None, finite=True):
    """C-contiguous 2-d float32/float64 view or copy of ``A`` (never in place).

    float32 and float64 are kept, anything else becomes float64, unless
    ``dtype`` forces one. Sparse, complex, non-numeric and (with ``finite``)
    NaN or infinite input raise a ``ValueError`` naming ``name``.
    """
    A = check_real_dense(A, name)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {A.shape}.")
    if dtype is None:
        dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.float64
    A = np.ascontiguousarray(A, dtype=dtype)
    if finite and not all_finite(A):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return A


def common_float_dtype(*arrays):
    """float32 if every array is float32, else float64."""
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays])
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)
