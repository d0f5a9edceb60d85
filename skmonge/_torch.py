"""torch plumbing shared by the neural estimators: import, device, seeds, tensors.

torch is an optional dependency (extra ``neural``); every torch-backed module
imports it through :func:`import_torch`, so that a missing install fails with
the command that fixes it, and ``import skmonge`` never loads torch.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "import_torch",
    "resolve_device",
    "seed_from",
    "torch_seed",
    "to_tensor",
    "to_numpy",
    "module_state_to_cpu",
]

_INSTALL_HINT = (
    "The neural estimators need PyTorch. Install it with "
    "`pip install 'skmonge[neural]'` (on a CPU-only machine, first "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu` "
    "to avoid the multi-GB CUDA build)."
)


def import_torch():
    """Return the ``torch`` module, or raise an ImportError saying how to get it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised with torch hidden
        raise ImportError(_INSTALL_HINT) from exc
    return torch


def resolve_device(device):
    """The ``torch.device`` for a user's ``device`` parameter.

    ``"auto"`` is CUDA when a GPU is visible and the CPU otherwise; any other
    value is passed to ``torch.device``. Asking for CUDA on a machine without
    one is a ValueError (rather than a crash deep inside the fit).
    """
    torch = import_torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available here; "
            "use device='auto' or 'cpu'."
        )
    return resolved


def seed_from(random_state):
    """An integer seed for torch drawn from a sklearn-style ``random_state``."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextlib.contextmanager
def torch_seed(seed):
    """Seed torch's global generators inside the block and restore them after.

    Network initialisation draws from the global generator; forking it keeps
    the user's own torch random state untouched by ``fit``.
    """
    torch = import_torch()
    devices = (
        list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def to_tensor(X, device, dtype):
    """``X`` (ndarray) as a contiguous tensor on ``device`` (always a copy-on-need)."""
    torch = import_torch()
    return torch.as_tensor(np.ascontiguousarray(X), dtype=dtype, device=device)


def to_numpy(T, dtype=None):
    """A tensor as an ndarray on the host, detached from any graph."""
    A = T.detach().cpu().numpy()
    return A if dtype is None else A.astype(dtype, copy=False)


def module_state_to_cpu(module):
    """A CPU copy of ``module`` (for pickling: a GPU-fitted model loads anywhere)."""
    return copy.deepcopy(module).to("cpu")
