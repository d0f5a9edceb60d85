"""Metrics for displacement-sparse maps.

Sparsity and support recovery of displacements ``Δ = T(x) - x`` (Cuturi,
Klein & Ablin 2023, §5.1 and Fig. 7), the normalized MSE against a ground-truth
map, and a scorer for ``GridSearchCV`` that trades sparsity against fit.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "displacement_sparsity",
    "displacement_dimension",
    "support_error",
    "perturbed_gene_recall",
    "sliced_wasserstein",
    "nmse",
    "sinkhorn_divergence_score",
    "displacement_sparsity_score",
    "make_sparsity_fit_scorer",
    "rank_biased_overlap",
    "wilcoxon_scores",
    "r2_marker_means",
    "sinkhorn_divergence_pca",
    "pair_rmse",
    "incorrect_mass",
]


def _displacement(X, X_mapped):
    X = np.asarray(X, dtype=np.float64)
    X_mapped = np.asarray(X_mapped, dtype=np.float64)
    if X.shape != X_mapped.shape or X.ndim != 2:
        raise ValueError(
            "X and X_mapped must be 2-d arrays of the same shape, got "
            f"{X.shape} and {X_mapped.shape}."
        )
    return X_mapped - X


def displacement_sparsity(X, X_mapped, atol=1e-8):
    r"""Fraction of displacement coordinates that are non-zero.

    .. math:: \frac{1}{n d} \#\{(i, t) : |T(x_i)_t - x_{it}| > \text{atol}\}

    The paper's Fig. 7 reports this with ``atol = 1e-8``.

    Parameters
    ----------
    X, X_mapped : array-like of shape (n_samples, n_features)
        Points and their images.
    atol : float, default=1e-8
        Coordinates that move by at most ``atol`` count as not moved.

    Returns
    -------
    float in [0, 1]
    """
    delta = _displacement(X, X_mapped)
    return float(np.mean(np.abs(delta) > atol))


def displacement_dimension(X, X_mapped, atol=1e-2):
    r"""Mean number of coordinates a point moves along.

    .. math:: \frac{1}{n} \sum_i \#\{t : |T(x_i)_t - x_{it}| > \text{atol}\}

    The displacement dimension of Chen, Xie & Zhang (2025), with their
    default threshold ``atol = 1e-2``.
    """
    delta = _displacement(X, X_mapped)
    return float(np.mean(np.sum(np.abs(delta) > atol, axis=1)))


def perturbed_gene_recall(X, X_mapped, true_features, atol=1e-2):
    r"""Share of the truly perturbed genes that the map moves, averaged over cells.

    .. math:: \frac{1}{n} \sum_i
        \frac{\#\{t ∈ S^* : |T(x_i)_t - x_{it}| > \text{atol}\}}{|S^*|}

    The gene-overlap accuracy of Chen, Xie & Zhang (Appendix D.2): with a
    mean displacement dimension close to ``|S*|`` (see
    :func:`displacement_dimension`), a recall near 1 means the moved genes
    are the true ones.

    Parameters
    ----------
    X, X_mapped : array-like of shape (n_samples, n_features)
        Points and their images.
    true_features : array-like of int
        Indices of the truly perturbed features ``S*``.
    atol : float, default=1e-2
        Coordinates that move by at most ``atol`` count as not moved.
    """
    delta = _displacement(X, X_mapped)
    true_features = np.asarray(true_features, dtype=np.intp).ravel()
    if true_features.size == 0:
        raise ValueError("true_features is empty.")
    if true_features.min() < 0 or true_features.max() >= delta.shape[1]:
        raise ValueError(
            f"true_features must index the {delta.shape[1]} features of X."
        )
    return float(np.mean(np.abs(delta[:, true_features]) > atol))


def sliced_wasserstein(X, Y, n_projections=200, random_state=0):
    r"""Sliced 2-Wasserstein distance between two point clouds (uniform weights).

    .. math:: SW_2(μ, ν) = \Big(\mathbb{E}_{θ ∼ U(S^{d-1})}
        W_2^2(θ_\sharp μ, θ_\sharp ν)\Big)^{1/2}

    estimated with ``n_projections`` random directions by POT's
    ``ot.sliced_wasserstein_distance``. This is the residue ``Res`` of Chen,
    Xie & Zhang's Algorithm 1; a fixed ``random_state`` makes successive
    values comparable.
    """
    import ot

    # torch tensors stay on their device (POT dispatches on the array type);
    # this is how NeuralSparseMap evaluates its map during training.
    if not (hasattr(X, "detach") and hasattr(Y, "detach")):
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must be 2-d with the same number of columns, got {X.shape} "
            f"and {Y.shape}."
        )
    return float(
        ot.sliced_wasserstein_distance(
            X, Y, n_projections=n_projections, seed=random_state
        )
    )


def support_error(X, X_mapped, support):
    r"""Share of squared displacement that falls outside the true support.

    .. math:: \frac{1}{n} \sum_i
              \frac{\sum_{t \notin S_i} Δ_{it}^2}{\sum_t Δ_{it}^2},
              \qquad Δ = T(X) - X

    (§5.1 of Cuturi, Klein & Ablin 2023). It lies in [0, 1] and is 0 exactly
    when every point moves only on its true support. Rows that do not move at
    all contribute 0.

    Parameters
    ----------
    X, X_mapped : array-like of shape (n_samples, n_features)
    support : array-like
        True support: indices of the moved features, a boolean mask of shape
        ``(n_features,)``, or a per-point boolean mask of shape
        ``(n_samples, n_features)``.
    """
    delta2 = _displacement(X, X_mapped) ** 2
    n, d = delta2.shape
    support = np.asarray(support)
    if support.dtype == bool:
        if support.shape not in ((d,), (n, d)):
            raise ValueError(
                f"A boolean support must have shape ({d},) or ({n}, {d}), got "
                f"{support.shape}."
            )
        mask = np.broadcast_to(support, (n, d))
    else:
        mask = np.zeros(d, dtype=bool)
        mask[support.astype(np.intp).ravel()] = True
        mask = np.broadcast_to(mask, (n, d))
    total = delta2.sum(axis=1)
    outside = np.where(mask, 0.0, delta2).sum(axis=1)
    ratio = np.divide(outside, total, out=np.zeros(n), where=total > 0)
    return float(ratio.mean())


def nmse(X_true, X_pred):
    r"""Normalized mean squared error :math:`\frac{1}{n d}\sum_i ‖T^*(x_i) - T(x_i)‖²`.

    The §5.1 error of a map estimate against the ground-truth images.
    """
    return float(np.mean(_displacement(X_true, X_pred) ** 2))


def sinkhorn_divergence_score(estimator, X, y):
    """Scorer: ``estimator.score(X, y)``, the negative held-out Sinkhorn divergence.

    Parameters
    ----------
    estimator : fitted skmonge estimator
    X, y : array-like
        Pooled held-out rows and their population labels.

    Returns
    -------
    float
        Higher is better; 0 is a perfect fit.
    """
    return estimator.score(X, y)


def displacement_sparsity_score(estimator, X, y, atol=1e-8):
    """Scorer-style callable: sparsity of the map on held-out source rows.

    The :func:`displacement_sparsity` of the rows of ``X`` labelled with the
    fitted source label. It is a fraction of moved coordinates, so *lower*
    means sparser: report it next to a fit scorer in a multi-metric
    ``GridSearchCV(scoring={"fit": ..., "sparsity": ...}, refit="fit")``
    (its ``rank_test_sparsity`` column then ranks the densest maps first).

    Parameters
    ----------
    estimator : fitted skmonge estimator
    X, y : array-like
        Pooled held-out rows and their population labels.
    atol : float, default=1e-8
        Threshold below which a coordinate counts as not displaced.

    Returns
    -------
    float in [0, 1]
    """
    X_source, _, mapped = estimator._held_out_images(X, y)
    return displacement_sparsity(X_source, mapped, atol=atol)


class _SparsityFitScorer:
    def __init__(self, tradeoff, atol):
        if not 0.0 <= tradeoff <= 1.0:
            raise ValueError(f"tradeoff must be in [0, 1], got {tradeoff}.")
        self.tradeoff = tradeoff
        self.atol = atol

    def __call__(self, estimator, X, y):
        from .sinkhorn import sinkhorn_divergence

        X_source, X_target, mapped = estimator._held_out_images(X, y)
        baseline = sinkhorn_divergence(X_source, X_target)
        residual = sinkhorn_divergence(mapped, X_target) / max(baseline, 1e-300)
        sparsity = displacement_sparsity(X_source, mapped, atol=self.atol)
        return -((1.0 - self.tradeoff) * residual + self.tradeoff * sparsity)

    def __repr__(self):
        return f"make_sparsity_fit_scorer(tradeoff={self.tradeoff}, atol={self.atol})"


def make_sparsity_fit_scorer(tradeoff=0.5, atol=1e-8):
    r"""Scorer for ``GridSearchCV`` trading displacement sparsity against fit.

    .. math:: \operatorname{score} = -\Big((1 - a)\,
              \frac{S_ε(T_\sharp \hat μ, \hat ν)}{S_ε(\hat μ, \hat ν)}
              + a \cdot \text{displacement\_sparsity}\Big)

    on held-out rows: the Sinkhorn divergence left after mapping, relative to
    the divergence before mapping (1 = the map did nothing, 0 = perfect), and
    the fraction of non-zero displacement coordinates, weighted by the
    ``tradeoff`` ``a`` (the same trade-off as the "Eval" criterion of Chen,
    Xie & Zhang). Higher is better.

    Parameters
    ----------
    tradeoff : float in [0, 1], default=0.5
        Weight ``a`` of sparsity; 0 scores fit only.
    atol : float, default=1e-8
        Threshold below which a coordinate counts as not displaced.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.metrics import make_sparsity_fit_scorer
    >>> search = GridSearchCV(EntropicSparseMap(), {"gamma": [0.1, 1.0]},
    ...                       scoring=make_sparsity_fit_scorer(0.3))
    """
    return _SparsityFitScorer(float(tradeoff), float(atol))


def rank_biased_overlap(ranking, reference, p=0.9, depth=None):
    r"""Rank-biased overlap (Webber, Moffat & Zobel 2010) of two rankings.

    .. math:: \operatorname{RBO}@D = (1 - p) \sum_{t=1}^{D} p^{t-1}
              \frac{|S_{1:t} \cap R_{1:t}|}{t}

    the truncated (lower-bound) form evaluated to depth ``D``, by default
    the length of the shorter list. 1 means identical prefixes; the MBO paper
    uses ``p = 0.9`` against 50 marker genes. Since the weights sum to
    :math:`1 - p^D`, identical lists of length 50 score :math:`1 - 0.9^{50}
    ≈ 0.995`.

    Parameters
    ----------
    ranking, reference : sequence
        Items (e.g. gene names), best first; duplicates are not allowed.
    p : float in (0, 1), default=0.9
        Persistence: weight of deeper ranks.
    depth : int, default=None
        Evaluation depth ``D``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}.")
    ranking, reference = list(ranking), list(reference)
    for name, items in (("ranking", ranking), ("reference", reference)):
        if len(set(items)) != len(items):
            raise ValueError(f"{name} contains duplicate items.")
    depth = min(len(ranking), len(reference)) if depth is None else int(depth)
    seen_a, seen_b = set(), set()
    overlap, total = 0, 0.0
    for t in range(depth):
        a, b = ranking[t], reference[t]
        if a == b:
            overlap += 1
        else:
            overlap += (a in seen_b) + (b in seen_a)
        seen_a.add(a)
        seen_b.add(b)
        total += p**t * overlap / (t + 1)
    return float((1.0 - p) * total)


def wilcoxon_scores(X, y, group, reference):
    r"""Wilcoxon rank-sum z-score of every feature, ``group`` versus ``reference``.

    .. math:: z_t = \frac{R_t - n_1 (n + 1)/2}{\sqrt{n_1 n_2 (n + 1) / 12}}

    with :math:`R_t` the sum of the ranks of the ``group`` rows among the
    pooled rows for feature ``t`` (ties get average ranks, no tie correction
    of the variance: scanpy's ``rank_genes_groups(method="wilcoxon")``
    default). Sorting by decreasing ``z`` gives the marker ranking of
    up-regulated features used as the RBO reference.

    Parameters
    ----------
    X : array-like or sparse matrix of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    group, reference : label
        Labels of the two groups compared.

    Returns
    -------
    z : ndarray of shape (n_features,)
    """
    from scipy.stats import rankdata

    y = np.asarray(y)
    keep = (y == group) | (y == reference)
    X = X[keep]
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    in_group = y[keep] == group
    n1, n2 = int(in_group.sum()), int((~in_group).sum())
    if n1 == 0 or n2 == 0:
        raise ValueError("Both groups need at least one row.")
    n = n1 + n2
    ranks = rankdata(X, axis=0)
    rank_sum = ranks[in_group].sum(axis=0)
    return (rank_sum - n1 * (n + 1) / 2.0) / np.sqrt(n1 * n2 * (n + 1) / 12.0)


def _column_means(X, name):
    """Mean of every column, in float64, without densifying sparse ``X``."""
    if sp.issparse(X):
        n = X.shape[0]
        means = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / max(n, 1)
    else:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-d, got shape {X.shape}.")
        n = X.shape[0]
        means = X.mean(axis=0) if n else np.zeros(X.shape[1])
    if n == 0:
        raise ValueError(f"{name} has no rows.")
    return means


def r2_marker_means(X_pred, X_obs, markers, *, feature_names=None):
    r"""R² of the predicted against the observed mean expression of marker genes.

    With :math:`\hat μ_g` and :math:`μ_g` the mean of gene ``g`` over the rows
    of ``X_pred`` and of ``X_obs``, and :math:`M` the markers,

    .. math:: R^2 = 1 - \frac{\sum_{g \in M} (\hat μ_g - μ_g)^2}
                             {\sum_{g \in M} (μ_g - \bar μ)^2},
              \qquad \bar μ = \frac{1}{|M|} \sum_{g \in M} μ_g

    (the coefficient of determination of the evaluation of Cuturi, Klein &
    Ablin 2023, §5.2, after Lotfollahi et al. 2019), computed with
    :func:`sklearn.metrics.r2_score`. It is 1 for exact means and can be
    negative. scGen itself reports the squared Pearson correlation of a
    regression of the means, which ignores a common bias; this is the
    stricter coefficient of determination.

    Parameters
    ----------
    X_pred : {array-like, sparse matrix, DataFrame} of shape (n_pred, n_features)
        Predicted cells, e.g. ``est.transform(X_control)``.
    X_obs : {array-like, sparse matrix, DataFrame} of shape (n_obs, n_features)
        Observed cells of the target population (the row counts may differ).
    markers : array-like
        Boolean mask of shape ``(n_features,)``, integer positions, or names
        (with ``feature_names``, or a DataFrame ``X_obs`` / ``X_pred``). At
        least 2 markers.
    feature_names : sequence of str, default=None
        Names of the columns, to look ``markers`` up by name.

    Returns
    -------
    r2 : float
    """
    from sklearn.metrics import r2_score

    if feature_names is None:
        for X in (X_obs, X_pred):
            if hasattr(X, "columns"):
                feature_names = X.columns
                break
    mean_pred = _column_means(X_pred, "X_pred")
    mean_obs = _column_means(X_obs, "X_obs")
    if mean_pred.shape != mean_obs.shape:
        raise ValueError(
            f"X_pred has {mean_pred.size} features but X_obs has {mean_obs.size}."
        )
    index = _marker_positions(markers, mean_obs.size, feature_names)
    if index.size < 2:
        raise ValueError(f"R² needs at least 2 markers, got {index.size}.")
    return float(r2_score(mean_obs[index], mean_pred[index]))


def _marker_positions(markers, n_features, feature_names):
    markers = np.asarray(markers)
    if markers.dtype == bool:
        if markers.shape != (n_features,):
            raise ValueError(
                f"A boolean markers mask must have shape ({n_features},), got "
                f"{markers.shape}."
            )
        return np.flatnonzero(markers)
    if markers.ndim != 1:
        raise ValueError("markers must be a 1-d mask, positions or names.")
    if np.issubdtype(markers.dtype, np.integer):
        if markers.size and (
            markers.min() < -n_features or markers.max() >= n_features
        ):
            raise ValueError(
                f"Marker positions out of range for {n_features} features."
            )
        return markers % n_features
    if feature_names is None:
        raise ValueError(
            "markers given by name need feature_names (or DataFrame inputs)."
        )
    lookup = {name: i for i, name in enumerate(np.asarray(feature_names, dtype=object))}
    missing = [m for m in markers.tolist() if m not in lookup]
    if missing:
        raise ValueError(f"Unknown marker names: {missing[:10]}.")
    return np.asarray([lookup[m] for m in markers.tolist()], dtype=np.intp)


def sinkhorn_divergence_pca(X_pred, X_obs, pca, **kwargs):
    r"""Sinkhorn divergence between predicted and observed cells in PCA space.

    .. math:: S_ε\big(P_\sharp \hat μ_{\text{pred}}, P_\sharp \hat μ_{\text{obs}}\big),
              \qquad P(x) = W^\top (x - m)

    with ``P`` the projection of a fitted PCA (``pca.transform``) and
    :math:`S_ε` :func:`skmonge.sinkhorn.sinkhorn_divergence` with its
    defaults: the ½ℓ2² cost and ε = 10 % of the mean cost among the observed
    (projected) cells, the protocol of §5.2 of Cuturi, Klein & Ablin (2023)
    for methods evaluated in a 50-d PCA space. Lower is better, 0 for
    identical clouds.

    Parameters
    ----------
    X_pred, X_obs : {array-like, sparse matrix} of shape (n, n_features)
        Predicted and observed cells (sparse input is projected by the PCA
        without being densified).
    pca : fitted transformer
        A fitted :class:`sklearn.decomposition.PCA` (any fitted transformer
        with ``transform`` works, e.g. ``TruncatedSVD``).
    **kwargs
        Passed to :func:`~skmonge.sinkhorn.sinkhorn_divergence` (``epsilon``,
        ``relative_epsilon``, ``tol``, ...).

    Returns
    -------
    divergence : float
    """
    from .sinkhorn import sinkhorn_divergence

    if not hasattr(pca, "transform"):
        raise TypeError(f"pca must be a fitted transformer, got {pca!r}.")
    check_is_fitted(pca)
    Z_pred = np.asarray(pca.transform(X_pred), dtype=np.float64)
    Z_obs = np.asarray(pca.transform(X_obs), dtype=np.float64)
    return float(sinkhorn_divergence(Z_pred, Z_obs, **kwargs))


# --- inverse-OT tasks of Howard et al. (LearnedCostMap)


def pair_rmse(X_pred, X_true):
    r"""Root mean squared error over known pairs (Howard et al., Table 1).

    .. math:: \mathrm{RMSE} = \Big(\frac1N\sum_{k=1}^N
              \|T(x_k) - y_k\|^2\Big)^{1/2}

    Parameters
    ----------
    X_pred : array-like of shape (n_pairs, n_features)
        Predicted partners :math:`T(x_k)`.
    X_true : array-like of shape (n_pairs, n_features)
        Known partners :math:`y_k`.

    Returns
    -------
    float
    """
    delta = _displacement(X_true, X_pred)
    if delta.shape[0] == 0:
        raise ValueError("pair_rmse needs at least one pair.")
    return float(np.sqrt(np.mean(np.sum(delta**2, axis=1))))


def incorrect_mass(plan, source_pair_id, target_pair_id):
    r"""Mass a transport plan moves against known pairs (Appendix C of Howard et al.).

    .. math:: \langle M, π\rangle, \qquad M_{ij} = 1 \text{ if } x_i
              \text{ is paired with some } y_{j'},\ j' \ne j, \text{ or }
              y_j \text{ is paired with some } x_{i'},\ i' \ne i,

    and 0 otherwise (mass between two unpaired points is never counted).
    With the plan's total mass 1 this lies in [0, 1]; a cost that puts the
    paired points' mass on their partners scores 0.

    Parameters
    ----------
    plan : array-like of shape (n_source, n_target)
        Transport plan, e.g. :meth:`skmonge.LearnedCostMap.transport_plan`.
    source_pair_id, target_pair_id : array-like of int
        Pair id of each source / target row, ``-1`` for unpaired rows; a
        source and a target row with the same id are a known pair.

    Returns
    -------
    float
    """
    P = np.asarray(plan, dtype=np.float64)
    ids_s = np.asarray(source_pair_id)
    ids_t = np.asarray(target_pair_id)
    if P.ndim != 2 or P.shape != (ids_s.shape[0], ids_t.shape[0]):
        raise ValueError(
            f"plan must have shape (len(source_pair_id), len(target_pair_id)) = "
            f"({ids_s.shape[0]}, {ids_t.shape[0]}), got {P.shape}."
        )
    common = np.intersect1d(ids_s[ids_s >= 0], ids_t[ids_t >= 0])
    paired_s = np.isin(ids_s, common)
    paired_t = np.isin(ids_t, common)
    same = (ids_s[:, None] == ids_t[None, :]) & paired_s[:, None]
    M = (paired_s[:, None] | paired_t[None, :]) & ~same
    return float(np.sum(P[M]))
