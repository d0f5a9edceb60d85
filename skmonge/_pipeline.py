r"""Maps inside a scikit-learn ``Pipeline``: where the map is and which space it is in.

A ``Pipeline(StandardScaler(), EntropicSparseMap())`` fits the map on
``z = pre(x)``, so its ``transform`` returns :math:`T(z)` in the *scaled*
space. Reports of a displacement must be in the space the user passed
(log-counts, not z-scores), so the helpers here bring the map's image back
through the preprocessing steps:

.. math:: Δ(x) = \operatorname{pre}^{-1}\big(T(z)\big) - \operatorname{pre}^{-1}(z),
          \qquad z = \operatorname{pre}(x).

For invertible preprocessing (scalers, centring) this is exactly
:math:`T_{\text{input}}(x) - x`; for a lossy linear step such as PCA it is the
displacement carried back by the decoder, without the reconstruction error of
``x`` itself. A preprocessing step without ``inverse_transform`` raises a
``ValueError`` naming it: a displacement in a space the user did not pass is
never reported silently.

Scoring (the Sinkhorn divergence of mapped against target rows) stays in the
map's own space, as ``Pipeline.score`` does; :func:`held_out_images` gives the
three clouds it compares.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

__all__ = ["split_map", "map_and_displace", "held_out_images"]


def split_map(estimator):
    """``(preprocessing, final_map)`` of ``estimator``.

    For a ``Pipeline`` the preprocessing is ``estimator[:-1]`` (``None`` when
    the pipeline has a single step or only ``"passthrough"`` steps before the
    map); for any other estimator it is ``None``.
    """
    steps = getattr(estimator, "steps", None)
    if steps is None or not hasattr(estimator, "__getitem__"):
        return None, estimator
    final = estimator[-1]
    pre_steps = [s for _, s in steps[:-1] if s is not None and s != "passthrough"]
    return (estimator[:-1] if pre_steps else None), final


def _require_inverse(pre):
    for name, step in pre.steps:
        if step is None or step == "passthrough":
            continue
        if not hasattr(step, "inverse_transform"):
            raise ValueError(
                f"The pipeline step {name!r} ({type(step).__name__}) has no "
                "inverse_transform, so the map's displacement (computed after "
                "that step) cannot be expressed in the input features. Fit the "
                "map on the features you want reported, or use invertible "
                "preprocessing (e.g. StandardScaler)."
            )


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def map_and_displace(estimator, X):
    r"""Image and displacement of the rows of ``X`` in the input feature space.

    For a plain map, ``T(x)`` and ``T(x) - x``. For a ``Pipeline`` ending in a
    map, :math:`\operatorname{pre}^{-1}(T(z))` and
    :math:`\operatorname{pre}^{-1}(T(z)) - \operatorname{pre}^{-1}(z)` with
    :math:`z = \operatorname{pre}(x)` (see the module docstring).

    Parameters
    ----------
    estimator : fitted map estimator or Pipeline ending in one
    X : array-like or sparse matrix of shape (n_samples, n_features)
        Rows in the input space (a DataFrame keeps its column names).

    Returns
    -------
    mapped, delta : ndarray of shape (n_samples, n_features)
        ``mapped`` in the dtype the estimator returns; ``delta`` in float64.

    Raises
    ------
    ValueError
        When a preprocessing step has no ``inverse_transform``, or the map
        does not keep the feature space.
    """
    with _positional_features():
        return _map_and_displace(estimator, X)


@contextmanager
def _positional_features():
    """Silence sklearn's "X does not have valid feature names" for our helpers.

    The reports take rows whose columns are the fitted features in order (an
    ``adata.X`` beside a map fitted on ``adata.to_df()`` by
    :func:`skmonge.sc.fit_map`); feature names are taken from the estimator,
    so sklearn's warning about the plain array would be noise about the
    package's own call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="X does not have valid feature names",
            category=UserWarning,
        )
        yield


def _map_and_displace(estimator, X):
    pre, final = split_map(estimator)
    if pre is None:
        mapped = np.asarray(_dense(estimator.transform(X)))
        rows = np.asarray(_dense(X), dtype=np.float64)
        if mapped.shape != rows.shape:
            raise ValueError(
                "The estimator must map the feature space onto itself: "
                f"transform gave shape {mapped.shape} for rows of shape "
                f"{rows.shape}."
            )
        return mapped, mapped - rows
    _require_inverse(pre)
    z = pre.transform(X)
    image = final.transform(z)
    mapped = np.asarray(_dense(pre.inverse_transform(image)))
    start = np.asarray(_dense(pre.inverse_transform(z)), dtype=np.float64)
    if mapped.shape != np.shape(X):
        raise ValueError(
            "The pipeline must map the feature space onto itself: it gave "
            f"shape {mapped.shape} for rows of shape {np.shape(X)}."
        )
    return mapped, mapped - start


def held_out_images(estimator, X, y):
    """Source rows, target rows and mapped source rows of held-out ``(X, y)``.

    In the space the map was fitted in (after a Pipeline's preprocessing),
    float64: what ``score`` and the scorers of :mod:`skmonge.metrics`
    compare. ``estimator`` is a fitted map or a Pipeline ending in one.
    """
    pre, final = split_map(estimator)
    if not hasattr(final, "_held_out_images"):
        raise ValueError(
            "This scorer needs a skmonge map estimator, or a Pipeline whose "
            f"last step is one; got {type(final).__name__}."
        )
    if pre is not None:
        X = pre.transform(X)
    return final._held_out_images(X, y)
