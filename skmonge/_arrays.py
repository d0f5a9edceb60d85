"""Array coercion shared by the numerical modules (costs, kernels, proxes)."""

import numpy as np


def as_float_2d(A, name="Z", dtype=None):
    """C-contiguous 2-d float32/float64 view or copy of ``A`` (never in place).

    float32 and float64 are kept, anything else becomes float64, unless
    ``dtype`` forces one.
    """
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {A.shape}.")
    if dtype is None:
        dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(A, dtype=dtype)


def common_float_dtype(*arrays):
    """float32 if every array is float32, else float64."""
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays])
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)
