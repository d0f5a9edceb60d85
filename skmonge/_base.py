"""Shared machinery of the map estimators: labels, validation, scoring.

Every estimator takes the two populations pooled in one matrix ``X`` with a
label vector ``y`` (the layout of ``adata.X`` / ``adata.obs["condition"]``),
so that ``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` can split and
pass the data unchanged. This module is the one place that turns ``(X, y)``
into a source and a target sample.

Sparse input (``scipy.sparse``, any format; validated to CSR) is accepted
everywhere. The fitted source and target samples stay sparse; new points are
densified a chunk of rows at a time (see :func:`dense_rows`), so a large
sparse ``adata.X`` is never densified whole.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dask import accepts_dask

__all__ = ["BaseMonge"]


def dense_rows(X, start, stop, dtype):
    """Rows ``start:stop`` of ``X`` as a C-contiguous dense array of ``dtype``.

    ``X`` is a validated ndarray or CSR matrix. For CSR only the requested
    rows are densified: this is the one place where new (sparse) points are
    turned dense, and map evaluation calls it once per chunk of rows so that
    the memory used is bounded by the chunk, not by ``X``.
    """
    rows = X[start:stop]
    if sp.issparse(rows):
        # toarray() builds a fresh C-ordered array; the cast is then free
        # when the dtypes already agree.
        return rows.toarray().astype(dtype, copy=False)
    return np.ascontiguousarray(rows, dtype=dtype)


def _dense(X):
    """``X`` (ndarray or CSR) as a dense array, keeping its dtype."""
    return X.toarray() if sp.issparse(X) else X


def check_finite_rows(out, why):
    """Raise a ``ValueError`` naming the rows of a map's output that are not finite.

    ``why`` completes the sentence "... map to non-finite values: <why>" with
    what the estimator knows about the cause (for instance how far the rows
    lie from the training data). A map never returns NaN rows silently.
    """
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} row(s) of X (first: row {int(np.flatnonzero(bad)[0])}) "
            f"map to non-finite values: {why} Give X in the units and range of "
            "the training data."
        )


_CV_HINT = (
    "In cross-validation, split with StratifiedKFold(shuffle=True) so that "
    "every fold holds both populations."
)


def _labels_present(y):
    """The distinct labels of ``y``, sorted when they are mutually comparable.

    ``np.unique`` sorts, which fails on an object array mixing types (ints and
    strings, or ``None`` beside strings); such labels are legal (rows with
    other labels are ignored), so they are then listed in order of first
    appearance instead.
    """
    y = np.asarray(y)
    try:
        return np.unique(y)
    except TypeError:
        return np.array(list(dict.fromkeys(y.tolist())), dtype=object)


def resolve_labels(y, source, target):
    """Return the (source, target) labels to use for the label vector ``y``.

    ``source=None`` and ``target=None`` are accepted only when the labels are
    exactly ``{0, 1}`` or ``{False, True}`` (0/False is the source). Labels
    that are not in ``y`` raise a ``ValueError`` naming them.
    """
    present = _labels_present(y)
    present_set = set(present.tolist())
    if source is None and target is None:
        if present_set == {0, 1} and all(
            isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating))
            for v in present
        ):
            return present[0], present[1]
        if present_set and present_set < {0, 1}:
            raise ValueError(
                f"y holds only the label {sorted(present_set)}: both source (0) "
                f"and target (1) rows are needed. {_CV_HINT}"
            )
        raise ValueError(
            "source and target are None, which is only allowed when y holds "
            f"exactly the labels {{0, 1}} or {{False, True}}; got labels "
            f"{sorted(map(str, present_set))}. Pass source=<label> and "
            "target=<label> to say which rows are which."
        )
    if source is None or target is None:
        raise ValueError(
            "Give both source and target labels (or neither, with 0/1 labels); "
            f"got source={source!r}, target={target!r}."
        )
    if source == target:
        raise ValueError(f"source and target must differ, both are {source!r}.")
    for name, label in (("source", source), ("target", target)):
        if label not in present_set:
            raise ValueError(
                f"The {name} label {label!r} does not occur in y (labels "
                f"present: {sorted(map(str, present_set))}). {_CV_HINT}"
            )
    return source, target


class BaseMonge(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of the skmonge map estimators.

    Subclasses implement ``fit``, ``_transform_array`` (the forward map on a
    validated array) and ``inverse_transform``; this class handles the labels,
    input validation, ``score`` and the feature-name plumbing
    (``get_feature_names_out`` returns the input names: a map keeps the
    feature space).

    ``X`` may be a ``scipy.sparse`` matrix or array of any format (converted
    to CSR by the validation, never modified in place). ``_transform_array``
    then receives either an ndarray or a CSR matrix and must densify it
    chunk by chunk with :func:`dense_rows`.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Sparse X is accepted (and densified per chunk); this also makes
        # sklearn's check_estimator_sparse_* checks fit on sparse data.
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        tags.target_tags.one_d_labels = True
        return tags

    # ----------------------------------------------------------- validation
    def _validate_fit_input(self, X, y):
        """Validate ``(X, y)`` and split ``X`` into source and target rows.

        ``X`` may be sparse: the two selected samples are then returned as
        CSR matrices (the point clouds the fitted map stores; the cost
        kernels visit only their non-zeros).

        Returns
        -------
        X_source, X_target : ndarray or CSR matrix
            Copies-on-need of the rows labelled ``source`` / ``target``;
            the caller's arrays are never written to.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None: y gives the population (source or target) of each row."
            )
        X, y = validate_data(
            self,
            X,
            y,
            reset=True,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            y_numeric=False,
            multi_output=False,
        )
        source, target = resolve_labels(y, self.source, self.target)
        self.source_label_, self.target_label_ = source, target
        # Sparse input stays sparse: the cost kernels only visit non-zeros.
        X_source, X_target = X[y == source], X[y == target]
        for name, part in (("source", X_source), ("target", X_target)):
            if part.shape[0] < 2:
                raise ValueError(
                    f"The {name} population has {part.shape[0]} row(s); at "
                    "least 2 are needed to estimate a map."
                )
        return X_source, X_target

    def _validate_transform_input(self, X):
        """Validated ``X``: a float ndarray, or a CSR matrix (left sparse)."""
        check_is_fitted(self)
        return validate_data(
            self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32]
        )

    def _split_held_out(self, X, y):
        """Rows of ``(X, y)`` with the fitted source and target labels (dense).

        Both returned samples are dense arrays, also for sparse ``X`` (only
        the selected rows are densified): the Sinkhorn divergence that scores
        them works on dense point clouds. Either may have fewer than 2 rows.
        """
        check_is_fitted(self)
        if y is None:
            raise ValueError("Scoring needs y, the population label of each row.")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != np.shape(X)[0]:
            raise ValueError(
                f"X has {np.shape(X)[0]} rows but y has shape {y.shape}; give one "
                "population label per row."
            )
        X = self._validate_transform_input(X)
        X_source = _dense(X[y == self.source_label_])
        X_target = _dense(X[y == self.target_label_])
        return X_source, X_target

    def _split_fitted_labels(self, X, y):
        """Split ``(X, y)`` with the labels resolved at fit time, 2+ rows each.

        As :meth:`_split_held_out`, and a ``ValueError`` when either side has
        fewer than 2 rows.
        """
        X_source, X_target = self._split_held_out(X, y)
        for name, part in (("source", X_source), ("target", X_target)):
            if part.shape[0] < 2:
                raise ValueError(
                    f"Scoring needs at least 2 {name} rows, got {part.shape[0]}."
                )
        return X_source, X_target

    def _fitted_sample(self, which):
        """The fitted ``source_`` / ``target_`` sample, dense float64.

        Raises a ``ValueError`` pointing to stratified folds when the estimator
        stores no such sample (e.g. a neural map keeps only its networks).
        """
        sample = getattr(self, f"{which}_", None)
        if sample is None or np.ndim(sample) != 2:
            raise ValueError(
                f"The held-out rows hold fewer than 2 {which} rows, and "
                f"{type(self).__name__} stores no fitted {which} sample to score "
                f"against instead. {_CV_HINT}"
            )
        return np.asarray(_dense(sample), dtype=np.float64)

    @accepts_dask
    def transform(self, X):
        """Map every row of ``X`` as a source point, ``x -> T(x)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Sparse input is densified one chunk of rows at a time. A
            ``dask.array`` is mapped block by block of rows
            (``map_blocks``, the fitted map shipped to each worker once).

        Returns
        -------
        X_mapped : ndarray of shape (n_samples, n_features)
            Dense (the image of a sparse point is dense in general), with the
            floating dtype of ``X`` (float32 stays float32); a lazy
            ``dask.array`` for dask input.
        """
        return self._transform_array(self._validate_transform_input(X))

    def _held_out_images(self, X, y):
        """Source rows, target rows and mapped source rows to score (float64).

        The one path from labelled held-out ``(X, y)`` to what ``score`` and
        the scorers of :mod:`skmonge.metrics` compare. A side with fewer than
        2 held-out rows (a fold of unshuffled ``KFold`` on rows sorted by
        condition) is replaced by the fitted sample of that population,
        ``source_`` or ``target_``; the other side must have at least 2
        held-out rows. Estimators that store no fitted sample raise a
        ``ValueError`` instead.
        """
        X_source, X_target = self._split_held_out(X, y)
        n_source, n_target = X_source.shape[0], X_target.shape[0]
        if n_source < 2 and n_target < 2:
            raise ValueError(
                "Scoring needs at least 2 held-out rows of the source or of the "
                f"target population, got {n_source} source and {n_target} "
                f"target rows (labels {self.source_label_!r} and "
                f"{self.target_label_!r}). {_CV_HINT}"
            )
        if n_source < 2:
            X_source = self._fitted_sample("source")
        else:
            X_source = X_source.astype(np.float64)
        if n_target < 2:
            X_target = self._fitted_sample("target")
        else:
            X_target = X_target.astype(np.float64)
        mapped = np.asarray(self._transform_array(X_source), dtype=np.float64)
        return X_source, X_target, mapped

    # -------------------------------------------------------------- scoring
    def score(self, X, y, sample_weight=None):
        r"""Negative Sinkhorn divergence between mapped source rows and target rows.

        .. math:: \operatorname{score} = -S_ε\big(T_\sharp \hat μ, \hat ν\big)

        with the ½ℓ2² ground cost and ε = 10 % of the mean ½ℓ2² cost among the
        target rows (the evaluation protocol of Cuturi, Klein & Ablin 2023).
        Higher is better, 0 is a perfect fit.

        **Folds holding one population.** ``cross_val_score(est, X, y, cv=5)``
        and ``GridSearchCV`` use an unshuffled ``KFold`` for these estimators,
        and on rows sorted by condition (control cells first, the way AnnData
        files come) most test folds then hold a single population. A side
        with fewer than 2 held-out rows is replaced by the *fitted* sample of
        that population, so that every such fold still measures
        generalisation:

        .. math::
            \text{only source rows held out:}\quad
                -S_ε\big(T_\sharp \hat μ_{\text{held-out}},
                         \hat ν_{\text{fit}}\big), \qquad
            \text{only target rows held out:}\quad
                -S_ε\big(T_\sharp \hat μ_{\text{fit}},
                         \hat ν_{\text{held-out}}\big),

        with :math:`\hat μ_{\text{fit}}` / :math:`\hat ν_{\text{fit}}` the
        stored ``source_`` / ``target_``. An estimator that stores no fitted
        sample (:class:`~skmonge.NeuralSparseMap`) raises a ``ValueError``
        instead, as does a fold with fewer than 2 rows of both populations.
        Scores of such folds are not on the same footing as scores of folds
        holding both populations (part of the comparison is with training
        rows); ``StratifiedKFold(shuffle=True)`` avoids the question.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Pooled held-out rows. For sparse ``X`` the scored source and
            target rows are densified (the divergence compares dense clouds).
        y : array-like of shape (n_samples,)
            Labels; rows labelled with the fitted ``source`` label are mapped,
            rows with the ``target`` label are the reference, others ignored.
        sample_weight : None
            Not supported; present for API compatibility.

        Returns
        -------
        score : float
            :math:`-S_ε \le 0`.

        Raises
        ------
        ValueError
            If ``y`` does not have one label per row, if fewer than 2 rows of
            both populations are held out, or if one side has fewer than 2
            held-out rows and the estimator stores no fitted sample for it.
        """
        from .sinkhorn import sinkhorn_divergence

        if sample_weight is not None:
            raise ValueError("score does not support sample_weight.")
        _, X_target, mapped = self._held_out_images(X, y)
        return -float(sinkhorn_divergence(mapped, X_target))
