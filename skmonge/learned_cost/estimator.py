r"""LearnedCostMap: entropic Monge maps for a learned convex cost.

Implements Howard, Deligiannidis, Rebeschini & Thornton, "Differentiable
Cost-Parameterized Monge Map Estimators" (Algorithm 1). The cost is
:math:`c(x, y) = h_θ(Φ_μ(x) - Φ_ν(y))` with :math:`h_θ` an α-strongly convex
input convex network (optionally symmetric) and :math:`Φ_μ, Φ_ν` optional
normalizing flows (identity by default). Each training step

1. builds :math:`C_{ij} = h_θ(Φ_μ(x_i) - Φ_ν(y_j))` and solves entropic OT
   with :math:`ε = \tilde ε \cdot \operatorname{mean}(C)` (log-domain Sinkhorn,
   warm-started from the previous step);
2. forms the entropic map (eqs. 9-10, and Theorem 3.2 with flows)

   .. math:: T_θ(x) = Φ_ν^{-1}\Big[Φ_μ(x) - (∇h_θ)^{-1}\Big(
             \sum_j p_j(x)\,∇h_θ(Φ_μ(x) - Φ_ν(y_j))\Big)\Big]

   and its reverse :math:`T_θ^{-1}` (A.2.3);
3. updates θ (and the flows) by Adam on a loss on the maps plus
   regularisers, differentiating through Sinkhorn and :math:`(∇h_θ)^{-1}`
   implicitly.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import BaseMonge, _dense, check_finite_rows, dense_rows
from .._dask import accepts_dask
from .._progress import Progress, show_progress
from .._torch import import_torch, resolve_device, seed_from, to_numpy, to_tensor
from ._training import LOSSES

__all__ = ["LearnedCostMap"]

# The valid loss names: the keys of the registry of training.py.
_LOSSES = set(LOSSES)
# What each loss needs besides (X, y) (its ``requires`` in LOSSES), for the
# error of a fit without it.
_LOSS_NEEDS = (
    "The losses need: 'pairs' and 'coupling' the fit parameter pair_id, "
    "'subsets' subset_id; 'low_rank' and 'k_directional' fit on (X, y) alone."
)


def _data_spread(X_source, X_target):
    r"""Largest ``|value|`` and RMS source-target distance of two float64 samples.

    The distance is :math:`\sqrt{\operatorname{mean}_{ij}\|x_i - y_j\|^2}
    = \sqrt{\|m_x - m_y\|^2 + \operatorname{tr}Σ_x + \operatorname{tr}Σ_y}`,
    the typical size of the arguments ``x - y`` of the cost, computed on the
    samples divided by their largest absolute value so that it neither
    overflows nor underflows in float64.
    """
    peak = float(max(np.abs(X_source).max(), np.abs(X_target).max()))
    if not peak > 0:
        return peak, 0.0
    a, b = X_source / peak, X_target / peak
    sq = ((a.mean(0) - b.mean(0)) ** 2).sum() + a.var(0).sum() + b.var(0).sum()
    return peak, peak * math.sqrt(sq)


def _check_data_range(X_source, X_target, dtype):
    r"""A ValueError, before training, for data the learned cost can't handle.

    The cost :math:`h_θ(x - y)` is not scale-equivariant and is computed in
    ``dtype``:

    * all source and target rows equal: the cost matrix is 0, so is ε, and
      there is no transport to learn;
    * an RMS source-target distance ``s`` below ``10 sqrt(eps)`` of ``dtype``
      (``1.5e-7`` for float64, ``3.5e-3`` for float32): the cancellation in
      :math:`\tilde h(z) + \tilde h(-z) - 2\tilde h(0)` leaves a relative
      error of about ``eps / s**2`` in :math:`h(z) ≈ α\|z\|^2` (1 % at the
      bound), and below ``sqrt(eps)`` the cost matrix is rounding noise
      (measured: the map degrades at 1e-8 in float64 and 1e-4 in float32,
      with non-positive costs or a ``LinAlgError`` further below);
    * ``s`` or a value above ``max(dtype)**(1/4)`` (``1.2e77`` for float64,
      ``4.3e9`` for float32): the cost regulariser is the squared cost,
      of order ``s**4``, and overflows (measured: the loss curve turns
      infinite just above, and training fails a few decades higher).
    """
    info = np.finfo(dtype)
    name = info.dtype.name
    if np.all(X_source == X_source[0]) and np.all(X_target == X_source[0]):
        raise ValueError(
            "All source and target rows of X are the same point: the cost "
            "between them is 0 and there is no transport to learn."
        )
    peak, spread = _data_spread(X_source, X_target)
    low = 10.0 * math.sqrt(float(info.eps))
    high = float(info.max) ** 0.25
    hint = "Rescale X (e.g. multiply it by a constant)" + (
        " or use dtype='float64'." if name == "float32" else "."
    )
    if max(peak, spread) > high:
        raise ValueError(
            f"X is too large for LearnedCostMap in {name}: its largest "
            f"absolute value is {peak:.3g} and the root-mean-square distance "
            f"between source and target rows is {spread:.3g}, while both must "
            f"stay below {high:.3g} (the training loss grows like the fourth "
            f"power of the distances and would overflow {name}). {hint}"
        )
    if spread < low:
        raise ValueError(
            f"The source and target rows of X are too close together for "
            f"LearnedCostMap in {name}: their root-mean-square distance is "
            f"{spread:.3g}, below {low:.3g}, where rounding errors dominate "
            f"the learned cost. {hint}"
        )


def _check_ids(ids, n_samples, name):
    """Integer ids of length ``n_samples`` (``-1`` = none), or a ValueError."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.shape[0] != n_samples:
        raise ValueError(
            f"{name} must be a 1-d array with one entry per row of X "
            f"({n_samples}), got shape {ids.shape}."
        )
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise ValueError(f"{name} must hold integers (-1 for none).")
        ids = ids.astype(np.int64)
    elif ids.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers (-1 for none), got {ids.dtype}.")
    ids = ids.astype(np.int64)
    if np.any(ids < -1):
        raise ValueError(f"{name} must be >= -1 (-1 marks rows without an id).")
    return ids


def _match_pairs(ids_source, ids_target):
    """Row indices ``(i, j)`` of the known pairs: ids present on both sides."""
    for side, ids in (("source", ids_source), ("target", ids_target)):
        known = ids[ids >= 0]
        if np.unique(known).size != known.size:
            raise ValueError(
                f"pair_id repeats an id among the {side} rows; each pair id "
                "must mark at most one source and one target row."
            )
    common = np.intersect1d(ids_source[ids_source >= 0], ids_target[ids_target >= 0])
    rows = np.array([np.flatnonzero(ids_source == k)[0] for k in common], dtype=int)
    cols = np.array([np.flatnonzero(ids_target == k)[0] for k in common], dtype=int)
    return rows, cols


class LearnedCostMap(BaseMonge):
    r"""Entropic Monge map for a learned convex cost (Howard et al.).

    The ground cost is :math:`c(x, y) = h_θ(Φ_μ(x) - Φ_ν(y))` with

    .. math:: h_θ(z) = \tilde h_θ(z) \;[+\; \tilde h_θ(-z)] + α\|z\|^2,

    :math:`\tilde h_θ` an input convex network with CELU activations and
    :math:`Φ_μ, Φ_ν` optional normalizing flows (identity when
    ``flows=None``). θ is trained so that the *entropic map* of this cost,

    .. math:: T_θ(x) = Φ_ν^{-1}\big[Φ_μ(x) - (∇h_θ)^{-1}(∇\hat f_θ(Φ_μ(x)))\big],
              \qquad ∇\hat f_θ(u) = \sum_j p_j(u)\,∇h_θ(u - Φ_ν(y_j)),

    with Gibbs weights :math:`p_j(u) ∝ e^{(g_j - h_θ(u - Φ_ν(y_j)))/ε}` from
    the Sinkhorn potential ``g``, agrees with what is known about the
    transport. Forward and reverse maps are trained jointly,
    :math:`\mathcal L = ½\mathcal L(T_θ) + ½\mathcal L(T_θ^{-1})`, with
    ``loss``:

    ``"pairs"``
        Known pairs (fit parameter ``pair_id``):
        :math:`\frac1N\sum_k\|T_θ(x_k) - y_k\|^2`.
    ``"subsets"``
        Known subset correspondences (fit parameter ``subset_id``): mean over
        subsets of the Sinkhorn divergence :math:`S_ε(T_{θ\sharp}\hat μ_s, \hat ν_s)`.
    ``"low_rank"``
        :math:`\frac1n\sum_{i > p}σ_i^2` of the displacement matrix
        :math:`(T_θ(x_i) - x_i)_i`, with :math:`p` = ``rank``.
    ``"k_directional"``
        :math:`\frac1n\sum_i -\operatorname{LSE}_l[-d_{\cos}(T_θ(x_i) - x_i, v_l)]`
        with ``n_directions`` learned directions :math:`v_l`.
    ``"coupling"``
        Baseline of the paper: maximise the plan's mass on the known pairs,
        :math:`-\langle M, π_θ\rangle` (the cost is learned from the coupling,
        not the map).

    plus ``fit_weight`` times the Sinkhorn divergences
    :math:`S_ε(T_{θ\sharp}\hat μ, \hat ν)` and
    :math:`S_ε(T^{-1}_{θ\sharp}\hat ν, \hat μ)`, and the regularisers
    ``cost_reg`` times :math:`\operatorname{LSE}(|C_{ij}|)^2`, ``symmetry_reg``
    (separate flows kept close) and ``dirichlet_reg`` (flow Dirichlet energy).

    Sinkhorn is differentiated implicitly at its fixed point and
    :math:`(∇h_θ)^{-1}(w) = \arg\min_z h_θ(z) - \langle z, w\rangle` by the
    implicit function theorem (Hessian-vector products); both are
    warm-started across steps. Meant for low-dimensional data (a few to a few
    tens of features, e.g. principal components): every step evaluates the
    network on all ``n m`` pairwise differences.

    Parameters
    ----------
    loss : str, default="pairs"
        Training objective: ``"pairs"``, ``"subsets"``, ``"low_rank"``,
        ``"k_directional"`` or ``"coupling"`` (see above).
    hidden_sizes : sequence of int, default=(32, 32)
        Hidden widths of the ICNN :math:`\tilde h_θ`. Empty: :math:`h = α\|z\|^2`
        (only the flows, if any, are learned). Integers only: floats
        (``8.7`` and ``8.0`` alike), bools and strings are a ``ValueError``.
    alpha : float, default=0.01
        Weight of the strongly convex term :math:`α\|z\|^2` (> 0).
    symmetric : bool, default=True
        Use :math:`\tilde h_θ(z) + \tilde h_θ(-z)`, so that :math:`h(-z) = h(z)`.
    flows : {None, "shared", "separate"}, default=None
        No flows, one flow :math:`Φ_μ = Φ_ν` (keeps a symmetric cost
        symmetric), or two flows.
    flow_transforms : int, default=3
        Autoregressive layers per flow (``zuko.flows.MAF``).
    flow_hidden_sizes : sequence of int, default=(32, 32)
        Hidden widths of each flow layer's conditioner.
    relative_epsilon : float, default=0.01
        ε as a fraction of the mean of the current cost matrix, used at the
        end of training and by the fitted map.
    relative_epsilon_init : float, default=None
        When set, the relative ε decays geometrically from this value to
        ``relative_epsilon`` over training (the paper's T-shape schedule).
    rank : int, default=1
        Subspace dimension ``p`` of ``loss="low_rank"``.
    n_directions : int, default=2
        Number of learned directions of ``loss="k_directional"``.
    fit_weight : float, default=0.0
        Weight of the Sinkhorn-divergence fit term (needs the map at every
        point; 0 disables it).
    divergence_epsilon : float, default=0.05
        ε of the training Sinkhorn divergences, relative to the mean ½ℓ2²
        cost among the target rows.
    cost_reg : float, default=1e-5
        :math:`λ_{max}`, weight of :math:`\operatorname{LSE}(|C_{ij}|)^2`.
    symmetry_reg : float, default=0.0
        Weight of :math:`\frac1n\sum\|Φ_μ(x_i) - Φ_ν(x_i)\|^2 + \frac1m\sum
        \|Φ_μ(y_j) - Φ_ν(y_j)\|^2` (``flows="separate"`` only).
    dirichlet_reg : float, default=0.0
        Weight of the flows' Dirichlet energy
        :math:`\frac1{2n}\sum\|∇Φ_μ(x_i)\|_F^2 + \frac1{2m}\sum\|∇Φ_ν(y_j)\|_F^2`.
    reverse : bool, default=True
        Train the reverse map jointly (A.2.3); else the forward map only.
    learning_rate : float, default=3e-3
        Adam step size of the cost network (and the directions).
    flow_learning_rate : float, default=1e-3
        Adam step size of the flows.
    n_iter : int, default=500
        Training steps, i.e. Adam updates of the cost (and flows); 0 keeps
        the initial cost, :math:`≈ α\|z\|^2`.
    sinkhorn_tol : float, default=1e-5
        Tolerance of the inner Sinkhorn solves (every training step, the
        final solve and ``transport_plan`` on new data) on the ℓ1 marginal
        error.
    sinkhorn_max_iter : int, default=5000
        Sinkhorn iterations of the final solve (the fitted potentials) and of
        ``transport_plan`` on new data.
    train_sinkhorn_iter : int, default=100
        Maximum Sinkhorn iterations per training step. Each step is
        warm-started from the previous one, so the potentials keep converging
        across steps while the cost changes; capping them keeps a step cheap
        when a sharp learned cost makes Sinkhorn slow (small ε), at the price
        of implicit gradients taken slightly off the fixed point.
    source, target : label, default=None
        Labels in ``y`` of the source and target rows (see :class:`EntropicSparseMap`).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the torch computations (float32 is faster on GPUs). The
        learned cost is not scale-equivariant: ``fit`` requires the
        root-mean-square distance between source and target rows to lie in
        ``[1.5e-7, 1.2e77]`` for float64 and ``[3.5e-3, 4.3e9]`` for float32
        (rounding noise below, overflow above), and raises a ``ValueError``
        otherwise. It does not set the output dtype: ``transform`` and
        ``inverse_transform`` return the floating dtype of their input
        (float32 or float64; float64 for any other input dtype).
    device : str, default="auto"
        Torch device; ``"auto"`` is CUDA when available.
    chunk_size : int, default=None
        Rows per chunk when mapping points with ``transform`` and
        ``inverse_transform`` (256 when None); bounds their memory, not the
        result.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation of the networks and directions.
    verbose : bool or "auto", default="auto"
        Progress bar with the training loss. ``"auto"`` shows it for 200
        training steps or more (the default 500); ``False`` never.

    Attributes
    ----------
    cost_ : LearnedCost
        The learned cost, callable as ``cost_(X, Y) -> (n, m)`` matrix, with
        ``h``, ``grad_h`` and ``inverse_grad_h``.
    epsilon_ : float
        Absolute ε of the fitted map.
    source_, target_ : ndarray of shape (n_source, n_features), (n_target, n_features)
        Fitted samples (float64).
    potential_source_ : ndarray of shape (n_source,)
        The entropic potential ``f`` on the fitted source points
        ``source_`` (float64), as in :class:`~skmonge.EntropicSparseMap`:
        with ``potential_target_``, the plan is
        ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / epsilon_)`` for the learned
        cost ``C = cost_(source_, target_)`` and uniform weights.
    potential_target_ : ndarray of shape (n_target,)
        The entropic potential ``g`` on the fitted target points
        ``target_`` (float64); ``transform`` uses it.
    directions_ : ndarray of shape (n_directions, n_features)
        Learned unit directions (``loss="k_directional"`` only).
    n_pairs_ : int
        Known pairs used (``pair_id``), 0 when none.
    loss_curve_ : ndarray of length ``n_iter_``
        Training loss at every step.
    n_iter_ : int
        Training steps actually run: ``n_iter``, or 0 when nothing is
        trainable (``hidden_sizes=()``, ``flows=None`` and no learned
        directions).
    converged_ : bool
        Whether the final Sinkhorn solve met ``sinkhorn_tol`` within
        ``sinkhorn_max_iter`` iterations and the inner solver of
        :math:`(∇h_θ)^{-1}` converged at the last training step (else a
        ``ConvergenceWarning`` is emitted too).
    device_ : str
        Device the model was fitted on (the resolved ``device``, e.g.
        ``"cpu"`` or ``"cuda"``).
    source_label_, target_label_ : label
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> from skmonge import LearnedCostMap
    >>> from skmonge.datasets import make_inverse_ot
    >>> X, y, pair_id = make_inverse_ot("t_shape", n_samples=64, random_state=0)
    >>> est = LearnedCostMap(n_iter=20, random_state=0)
    >>> est.fit(X, y, pair_id=pair_id).transform(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "loss": [StrOptions(_LOSSES)],
        "hidden_sizes": ["array-like"],
        "alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "symmetric": ["boolean"],
        "flows": [StrOptions({"shared", "separate"}), None],
        "flow_transforms": [Interval(numbers.Integral, 1, None, closed="left")],
        "flow_hidden_sizes": ["array-like"],
        "relative_epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "relative_epsilon_init": [
            Interval(numbers.Real, 0, None, closed="neither"),
            None,
        ],
        "rank": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_directions": [Interval(numbers.Integral, 1, None, closed="left")],
        "fit_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "divergence_epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "cost_reg": [Interval(numbers.Real, 0, None, closed="left")],
        "symmetry_reg": [Interval(numbers.Real, 0, None, closed="left")],
        "dirichlet_reg": [Interval(numbers.Real, 0, None, closed="left")],
        "reverse": ["boolean"],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "flow_learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "sinkhorn_tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "sinkhorn_max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "train_sinkhorn_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "source": "no_validation",
        "target": "no_validation",
        "dtype": [StrOptions({"float32", "float64"})],
        "device": [str],
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose", StrOptions({"auto"})],
    }

    def __init__(
        self,
        loss="pairs",
        hidden_sizes=(32, 32),
        alpha=0.01,
        symmetric=True,
        flows=None,
        flow_transforms=3,
        flow_hidden_sizes=(32, 32),
        relative_epsilon=0.01,
        relative_epsilon_init=None,
        rank=1,
        n_directions=2,
        fit_weight=0.0,
        divergence_epsilon=0.05,
        cost_reg=1e-5,
        symmetry_reg=0.0,
        dirichlet_reg=0.0,
        reverse=True,
        learning_rate=3e-3,
        flow_learning_rate=1e-3,
        n_iter=500,
        sinkhorn_tol=1e-5,
        sinkhorn_max_iter=5000,
        train_sinkhorn_iter=100,
        source=None,
        target=None,
        dtype="float64",
        device="auto",
        chunk_size=None,
        random_state=None,
        verbose="auto",
    ):
        self.loss = loss
        self.hidden_sizes = hidden_sizes
        self.alpha = alpha
        self.symmetric = symmetric
        self.flows = flows
        self.flow_transforms = flow_transforms
        self.flow_hidden_sizes = flow_hidden_sizes
        self.relative_epsilon = relative_epsilon
        self.relative_epsilon_init = relative_epsilon_init
        self.rank = rank
        self.n_directions = n_directions
        self.fit_weight = fit_weight
        self.divergence_epsilon = divergence_epsilon
        self.cost_reg = cost_reg
        self.symmetry_reg = symmetry_reg
        self.dirichlet_reg = dirichlet_reg
        self.reverse = reverse
        self.learning_rate = learning_rate
        self.flow_learning_rate = flow_learning_rate
        self.n_iter = n_iter
        self.sinkhorn_tol = sinkhorn_tol
        self.sinkhorn_max_iter = sinkhorn_max_iter
        self.train_sinkhorn_iter = train_sinkhorn_iter
        self.source = source
        self.target = target
        self.dtype = dtype
        self.device = device
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _known_structure(self, y, pair_id, subset_id):
        """Split ``pair_id`` / ``subset_id`` with the fit masks; check the loss."""
        y = np.asarray(y).reshape(-1)
        n_samples = y.shape[0]
        is_source = y == self.source_label_
        is_target = y == self.target_label_
        pairs = (np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        if pair_id is not None:
            ids = _check_ids(pair_id, n_samples, "pair_id")
            pairs = _match_pairs(ids[is_source], ids[is_target])
        groups = []
        if subset_id is not None:
            ids = _check_ids(subset_id, n_samples, "subset_id")
            src, tgt = ids[is_source], ids[is_target]
            for k in np.intersect1d(src[src >= 0], tgt[tgt >= 0]):
                groups.append((np.flatnonzero(src == k), np.flatnonzero(tgt == k)))
        requires = LOSSES[self.loss].requires
        if requires == "pair_id" and pairs[0].size == 0:
            raise ValueError(
                f"loss={self.loss!r} needs known pairs: pass pair_id (one id per "
                "row, -1 for unpaired rows) with at least one id shared by a "
                f"source row and a target row. {_LOSS_NEEDS}"
            )
        if requires == "subset_id" and not groups:
            raise ValueError(
                f"loss={self.loss!r} needs subset_id (one id per row, -1 for none) "
                "with at least one id present among both source and target "
                f"rows. {_LOSS_NEEDS}"
            )
        return pairs, groups

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, pair_id=None, subset_id=None):
        """Learn the cost (and flows) and the entropic map from source to target rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Both populations, pooled (sparse input is densified: the
            estimator is meant for low-dimensional data).
        y : array-like of shape (n_samples,)
            Population label of each row (see ``source`` / ``target``).
        pair_id : array-like of int of shape (n_samples,), default=None
            Known pairs: a source row and a target row with the same id
            ``>= 0`` are a pair; ``-1`` marks unpaired rows. Ids present on
            one side only (e.g. split by cross-validation) are ignored.
            Required by ``loss="pairs"`` and ``"coupling"``.
        subset_id : array-like of int of shape (n_samples,), default=None
            Source subset ``k`` is known to map to target subset ``k``;
            ``-1`` for rows in no subset. Required by ``loss="subsets"``.

        Returns
        -------
        self : LearnedCostMap

        Raises
        ------
        ValueError
            For invalid parameters or labels, and, before training, for data
            the learned cost cannot be computed on in ``dtype``: all source
            and target rows the same point; a root-mean-square distance
            between source and target rows below ``10 sqrt(eps)``
            (``1.5e-7`` in float64, ``3.5e-3`` in float32); a value or that
            distance above ``max**(1/4)`` (``1.2e77`` in float64, ``4.3e9``
            in float32).
        FloatingPointError
            If training nevertheless produced non-finite values.
        """
        # the widths check shared with the ICNN (imported here: torch stays
        # unloaded until a torch estimator is fitted)
        from ..neural.icnn import check_hidden_sizes

        X_source, X_target = self._validate_fit_input(X, y)
        hidden = check_hidden_sizes(self.hidden_sizes, allow_empty=True)
        flow_hidden = check_hidden_sizes(
            self.flow_hidden_sizes, name="flow_hidden_sizes"
        )
        pairs, groups = self._known_structure(y, pair_id, subset_id)
        X_source = np.asarray(_dense(X_source), dtype=np.float64)
        X_target = np.asarray(_dense(X_target), dtype=np.float64)
        _check_data_range(X_source, X_target, self.dtype)
        device = resolve_device(self.device)
        torch = import_torch()
        tdtype = getattr(torch, self.dtype)
        try:
            self._fit_torch(
                X_source, X_target, hidden, flow_hidden, pairs, groups, device, tdtype
            )
        except torch.linalg.LinAlgError as exc:
            # Safety net: a Cholesky of a non-finite Hessian means training
            # produced NaN/inf (the data checks above catch the known causes).
            raise FloatingPointError(
                "LearnedCostMap training produced non-finite values (the "
                "Hessian of the learned cost is not positive definite); lower "
                "learning_rate, raise alpha, or rescale X."
            ) from exc
        return self

    def _fit_torch(
        self, Xs_np, Yt_np, hidden, flow_hidden, pairs, groups, device, tdtype
    ):
        """Train the cost with :class:`._CostTrainer`; store the fitted map."""
        torch = import_torch()
        from ._training import _CostTrainer

        trainer = _CostTrainer(
            self,
            Xs_np,
            Yt_np,
            pairs,
            groups,
            hidden=hidden,
            flow_hidden=flow_hidden,
            seed=seed_from(self.random_state),
            device=device,
            dtype=tdtype,
        )
        progress = Progress(
            trainer.n_iter,
            "LearnedCostMap",
            show_progress(self.verbose, steps=trainer.n_iter),
        )
        trainer.train(progress)
        progress.close()
        final = trainer.final_solve()

        eps, err, directions = final.epsilon, final.error, trainer.directions
        sink_ok = err <= self.sinkhorn_tol
        self.device_ = str(device)
        self.cost_ = trainer.cost
        self.epsilon_ = eps
        self.source_ = Xs_np
        self.target_ = Yt_np
        self.potential_source_ = to_numpy(final.f, np.float64)
        self.potential_target_ = to_numpy(final.g, np.float64)
        self.directions_ = (
            None
            if directions is None
            else to_numpy(torch.nn.functional.normalize(directions.detach(), dim=1))
        )
        self.n_pairs_ = int(pairs[0].size)
        self.loss_curve_ = to_numpy(trainer.history, np.float64)
        self.n_iter_ = trainer.n_iter
        self.converged_ = bool(sink_ok and trainer.solver_ok)
        if not sink_ok:
            warnings.warn(
                f"Sinkhorn did not converge for the learned cost: marginal error "
                f"{err:.3e} > sinkhorn_tol={self.sinkhorn_tol:.1e} after "
                f"{final.n_iter} iterations (epsilon={eps:.4g}). Increase "
                "sinkhorn_max_iter, sinkhorn_tol or relative_epsilon.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if not trainer.solver_ok:
            warnings.warn(
                "The inner solver of (grad h)^{-1} did not converge at the last "
                "training step; increase alpha or lower the learning rate.",
                ConvergenceWarning,
                stacklevel=3,
            )

    # ----------------------------------------------------------------- maps
    def _map(self, X, reverse):
        """Forward (or reverse) map of the rows of a validated ``X``.

        Raises a ValueError rather than returning non-finite rows (points
        so far from the fitted samples that the cost overflows ``dtype``).
        """
        torch = import_torch()
        from .maps import map_points

        cost = self.cost_
        device, tdtype = cost.device, cost.dtype
        out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        chunk = 256 if self.chunk_size is None else int(self.chunk_size)
        out = np.empty(X.shape, dtype=out_dtype)
        info, converged = {}, True
        # forward: x -> Φ_ν^{-1}(Φ_μ(x) - z); reverse: y -> Φ_μ^{-1}(Φ_ν(y) + z),
        # with z = (∇h)^{-1} of the aggregated gradient against the other side
        if reverse:
            push, pull, sign = cost.push_target, cost.pull_source, 1.0
            support, potential = self.source_, self.potential_source_
            push_support = cost.push_source
        else:
            push, pull, sign = cost.push_source, cost.pull_target, -1.0
            support, potential = self.target_, self.potential_target_
            push_support = cost.push_target
        with torch.no_grad():
            support = push_support(to_tensor(support, device, tdtype))
            potential = to_tensor(potential / self.epsilon_, device, tdtype)
            n = support.shape[0]
            log_w = torch.full((n,), -math.log(n), dtype=tdtype, device=device)
            for start in range(0, X.shape[0], chunk):
                rows = to_tensor(
                    dense_rows(X, start, start + chunk, np.float64), device, tdtype
                )
                P = push(rows)
                try:
                    z = map_points(
                        cost.h_module,
                        P,
                        support,
                        potential,
                        log_w,
                        self.epsilon_,
                        reverse=reverse,
                        chunk_size=chunk,
                        info=info,
                    )
                except torch.linalg.LinAlgError:
                    # a non-finite Hessian: reported as non-finite rows below
                    z = torch.full_like(P, math.nan)
                    info["converged"] = True
                mapped = pull(P + sign * z)
                converged = converged and info["converged"]
                with np.errstate(over="ignore", invalid="ignore"):
                    out[start : start + chunk] = to_numpy(mapped, out_dtype)
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            check_finite_rows(
                out,
                f"their largest absolute value is {np.abs(X[bad]).max():.3g}, "
                "too far from the fitted samples for the learned cost in "
                f"{self.dtype}.",
            )
        if not converged:
            warnings.warn(
                "The inner solver of (grad h)^{-1} did not converge for some "
                "points; their images are approximate.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return out

    def _transform_array(self, X):
        return self._map(X, reverse=False)

    @accepts_dask
    def inverse_transform(self, X):
        r"""Map every row of ``X`` as a target point back to the source.

        The reverse entropic map (A.2.3) with the source potential ``f`` and
        :math:`\tilde h(z) = h(-z)`, pulled back through :math:`Φ_μ`:

        .. math:: T^{-1}(y) = Φ_μ^{-1}\Big[Φ_ν(y) + (∇h)^{-1}\Big(\sum_i q_i\,
                  ∇h(Φ_μ(x_i) - Φ_ν(y))\Big)\Big].

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        X_mapped : ndarray of shape (n_samples, n_features)
            With the floating dtype of ``X``.

        Raises
        ------
        ValueError
            If a row maps to non-finite values (a point too far from the
            fitted samples for the cost to be computed in ``dtype``).
        """
        return self._map(self._validate_transform_input(X), reverse=True)

    def transport_plan(self, X=None, y=None):
        r"""Entropic plan of the learned cost.

        Without arguments, the fitted plan between ``source_`` and ``target_``,
        :math:`P_{ij} = \frac1{nm}\exp((f_i + g_j - c(x_i, y_j))/ε)`. With
        held-out ``(X, y)``, Sinkhorn is solved for the learned cost between
        their source and target rows, with ε = ``relative_epsilon`` times the
        mean cost.

        Returns
        -------
        plan : ndarray of shape (n_source, n_target)
            Sums to one.
        """
        from ..sinkhorn import sinkhorn
        from ..sinkhorn import transport_plan as numpy_plan

        check_is_fitted(self)
        if X is None:
            C = self.cost_(self.source_, self.target_)
            return numpy_plan(
                C, self.potential_source_, self.potential_target_, self.epsilon_
            )
        X_source, X_target = self._split_fitted_labels(X, y)
        C = self.cost_(X_source, X_target)
        eps = float(self.relative_epsilon) * float(C.mean())
        result = sinkhorn(
            C, eps, tol=self.sinkhorn_tol, max_iter=self.sinkhorn_max_iter
        )
        return numpy_plan(C, result.f, result.g, eps)

    def __getstate__(self):
        state = super().__getstate__()
        if "cost_" in state:
            # CPU copies of the torch modules (LearnedCost.__getstate__): a
            # model fitted on a GPU unpickles on a CPU-only machine.
            from .costs import LearnedCost

            cpu = LearnedCost.__new__(LearnedCost)
            cpu.__dict__.update(state["cost_"].__getstate__())
            state = dict(state, cost_=cpu)
        return state
