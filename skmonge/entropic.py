"""Entropic Monge maps for elastic costs (Cuturi, Klein & Ablin 2023).

Given source points ``x_i`` and target points ``y_j``, the estimator solves the
entropic OT problem for the cost ``c(x, y) = h(x - y)`` with Sinkhorn, and
extends the dual potential ``g`` to new points with the Gibbs weights

.. math:: p_j(x) = \\frac{b_j \\exp((g_j - h(x - y_j))/ε)}
                        {\\sum_k b_k \\exp((g_k - h(x - y_k))/ε)} .

The generalized entropic map (Prop. 4.1, with the sign fixed from first
principles since ``∇h* = prox_τ`` for ``h = ½‖·‖² + τ``) is

.. math:: T(x) = x - \\operatorname{prox}_τ\\Big(\\sum_j p_j(x) ∇h(x - y_j)\\Big),

and its displacement is exactly zero on the coordinates that ``prox_τ``
thresholds.

By default the map is *debiased*: the gradient of the source's entropic
transport onto itself is subtracted inside the prox,

.. math:: T(x) = x - \\operatorname{prox}_τ\\Big(\\sum_j p_j(x) ∇h(x - y_j)
          - \\sum_i q_i(x) ∇h(x - x_i)\\Big),

with :math:`q_i(x) ∝ a_i \\exp((f^{s}_i - h(x - x_i))/ε)` and :math:`f^{s}`
the symmetric potential of the source with itself at the same ε
(:func:`~skmonge.sinkhorn.symmetric_sinkhorn`). The argument of the prox is
then the gradient in ``x`` of a Sinkhorn divergence rather than of an
entropic OT cost, whose entropic bias cancels: for ``½‖·‖²`` the map is the
centred map :math:`x + \\bar y(x) - \\bar x(x)` of Pooladian, Cuturi &
Niles-Weed (2022). The bias it removes is the pull of every point towards
the mean of the target, which grows with ε; debiased, the map stays
faithful at the larger ε that averages out single-cell noise. The
self-transport leaves each point out of its own coupling, in the solve and
when a fitted point is mapped (``skmonge._self_transport``): otherwise,
at any ε below the cost between distinct cells, it would couple every cell
with itself and centre nothing.

Sparse input (``scipy.sparse``, e.g. ``adata.X``) is accepted by ``fit`` and by
every map method. Fitted clouds (``source_``, ``target_``) with few
non-zeros are stored CSR, whether ``X`` was sparse or dense; the separable
cost kernels visit only their non-zeros where that is faster, and run on
densified blocks of rows otherwise. The map methods densify new points one
chunk of ``chunk_size`` rows at a time and return dense arrays.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse as sp
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._arrays import all_finite, evenly_spaced, max_abs
from ._base import BaseMonge, dense_rows
from ._dask import accepts_dask
from ._epsilon import perplexity_epsilon
from ._kernels.separable import ROW_BLOCK
from ._progress import progress_over, show_progress
from ._self_transport import RowDigests, never_cost
from .costs import TranslationInvariantCost, make_cost
from .sinkhorn import gibbs_weights, sinkhorn, symmetric_sinkhorn

__all__ = ["EntropicSparseMap"]

# Bound on the temporaries of one map-evaluation chunk: the chunk's n_c x m
# cost/weight matrices plus its n_c x d gradient and output.
_CHUNK_BYTES = 64 * 2**20
# A chunk of at least one block of rows of the parallel pairwise kernels
# (ROW_BLOCK, their unit of work) per thread is rounded down to whole
# rounds of blocks, so that no thread idles while another computes a last
# block. With 34,000 genes the budget gives 158 rows, 5 blocks on 2
# threads: the chunks' cost rows took 3.55 s for 3,072 cells against 2.9 s
# in chunks of 192.


class _Cloud(NamedTuple):
    """A fitted cloud as map evaluation reads it: its points and the potential
    on them (tensors on the torch backend), and for the numba kernels its
    non-zeros by feature (``support_columns``) and its cost operand."""

    points: object
    potential: object
    columns: object = None
    operand: object = None
    digests: RowDigests | None = None  # the centring cloud's (leave-one-out)


# Points of each sample in the centring of the debiased map (evenly spaced
# rows beyond it). Its self-transport solve costs (n_centre / n)² of the
# cross solve's: +12 % of a fit at n = m = 20,000 cells, instead of +200 %
# with every cell, while the centring average at perplexity 500 is still
# taken over tens of cells.
_MAX_CENTRE_POINTS = 5_000


# |x| beyond which ½‖x - y‖² overflows float64 (1e308), and below which the
# squared part of every cost underflows to 0 (1e-308)
_MAX_SCALE = 1e150
_MIN_SCALE = 1e-150


def _max_abs(Z):
    """Largest |entry| of an ndarray or CSR matrix (0 for an empty one)."""
    values = Z.data if sp.issparse(Z) else Z
    if values.size == 0:
        return 0.0
    return float(max(values.max(), -values.min()))


def _check_data_scale(X_source, X_target):
    """Refuse data whose squared differences over- or underflow float64."""
    scale = max(_max_abs(X_source), _max_abs(X_target))
    if scale > _MAX_SCALE or 0 < scale < _MIN_SCALE:
        raise ValueError(
            f"X has entries of magnitude up to {scale:.3g}: squared differences "
            f"of such numbers {'overflow' if scale > 1 else 'underflow'} float64, "
            "so the cost cannot be computed. Rescale the data (for instance "
            "with sklearn.preprocessing.StandardScaler) to magnitudes between "
            f"{_MIN_SCALE:.0e} and {_MAX_SCALE:.0e}."
        )


def _check_costs_finite(C, between, finite=None):
    """A clear error when the costs between two clouds overflowed to inf
    (``finite``: whether they are finite, when already known, e.g. from a
    tensor of the torch backend)."""
    if not (all_finite(C) if finite is None else finite):
        raise ValueError(
            f"The costs between the {between} overflow {C.dtype}: the data are "
            "too large in magnitude for their squared differences. Rescale "
            "the data (for instance with sklearn.preprocessing.StandardScaler), "
            "and transform data on the scale the map was fitted on."
        )


class EntropicSparseMap(BaseMonge):
    r"""Entropic Monge map for an elastic cost ``h = ½‖·‖² + γτ``.

    Implements the generalized entropic map estimator of Cuturi, Klein & Ablin,
    "Monge, Bregman and Occam: Interpretable Optimal Transport in
    High-Dimensions with Feature-Sparse Maps" (ICML 2023). With a
    sparsity-inducing ``τ`` the displacement ``T(x) - x`` of each point is
    sparse, with a support that adapts to ``x``.

    Parameters
    ----------
    cost : str or TranslationInvariantCost, default="elastic_l1"
        Ground cost ``h``: ``"elastic_l1"``, ``"elastic_stvs"``,
        ``"elastic_kovlp"``, ``"sqeuclidean"``, or a cost object, used as
        given (``gamma`` and ``k`` are then ignored).
    gamma : float, default=0.5
        Strength of the sparsifying regulariser (> 0). Larger values give
        sparser (eventually null) displacements. With ``target_dim`` it is
        only the starting point of the search for γ.
    target_dim : float, default=None
        Choose γ instead: the mean number of moved features per training
        source cell (:math:`|Δ| > 10^{-8}`, measured on at most 512 evenly
        spaced source cells) is brought within 10 % of
        ``target_dim`` by a search on a warm-started γ path (bracketing by
        factors of 4, then secant steps in log γ; at most 16 fits). The same
        meaning as :class:`~skmonge.NeuralSparseMap`'s ``target_dim``. The
        chosen γ is ``gamma_``, the fits of the search ``path_``. Needs an
        elastic cost.
    k : int, default=None
        Support size of the k-overlap norm; required for
        ``cost="elastic_kovlp"``, ignored otherwise.
    epsilon : float, default=None
        Absolute entropic regularisation. ``None`` chooses ε from the data:
        ``relative_epsilon * mean(C)`` when ``relative_epsilon`` is given,
        otherwise the perplexity rule (below), ``C`` being the cost matrix
        between the fitted source and target samples.
    relative_epsilon : float, default=None
        ε relative to ``mean(C)``; ``0.1`` is the paper's rule, kept for
        reproducing its figures. On single-cell data it pulls every cell
        towards the global target mean (see the user guide).
    perplexity : float, default=500
        The default rule: ε is the value at which each source point's row of
        the entropic plan has median perplexity ``exp(H)`` equal to this
        number, i.e. each point is mapped to a weighted mean over about
        ``perplexity`` target points (capped at half the target sample).
        Chosen, with ``gamma`` and ``debias``, by measuring per-cell-type
        fidelity on the Kang et al. 2018 subsets and the paper's §5.1 tasks
        (table in the user guide); without debiasing, 50 measured best.
    debias : bool, default=True
        Subtract the gradient average of the source transported onto itself
        (leaving each cell out of its own coupling) inside the prox (module
        docstring; ``inverse_transform`` likewise with the target's): the
        displacement is then free of the entropic pull towards the target
        mean, and ε can be large. ``False`` is the paper's estimator (with
        ``relative_epsilon=0.1`` its ε rule). The fit solves the two
        self-transport problems at ``epsilon_`` (an n x n and an m x m
        solve; 163 iterations on 1,000 harmony cells), and map
        evaluation costs about twice as much. A fitted cell is mapped as
        if it had been held out. Samples of more than 5,000 points are
        centred on 5,000 evenly spaced ones, so the two solves never exceed
        that size (at 5,000 x 5,000 cells the fit takes 3.3 times the
        plain one, at 10,000 1.6 times; see the user guide).
    max_iter : int, default=10000
        Maximum number of Sinkhorn iterations.
    tol : float, default=1e-6
        Tolerance on the ℓ1 marginal violation ``‖P 1 - a‖₁``.
    source, target : label, default=None
        Labels in ``y`` of the source and target rows. ``None`` for both is
        allowed only when ``y`` holds exactly ``{0, 1}`` or ``{False, True}``
        (0/False is the source).
    chunk_size : int, default=None
        Rows per chunk when evaluating the map; ``None`` picks a chunk that
        keeps the temporaries around 64 MiB. Sparse input is densified one
        such chunk at a time.
    verbose : bool or "auto", default="auto"
        Progress bars of the Sinkhorn solve and of map evaluation (by chunks
        of rows). ``"auto"`` shows them for problems of at least 2e10
        (rows x fitted points x features), which take seconds on 2 cores
        (about 1,500 x 1,500 cells at 9,000 genes); ``False`` never.
    backend : {"numba", "torch"}, default="numba"
        Where the cost matrix, Sinkhorn and the map run: parallel numba
        kernels on the CPU, or torch tensors on ``device`` (a GPU for large
        problems; :mod:`skmonge._torch_ot`). Both solve the same problem
        with the same ε rule, ε schedule and stopping test, so their maps
        agree up to the tolerance. The torch backend runs every built-in
        cost (and cost objects with the tensor methods of
        :class:`~skmonge.costs.TranslationInvariantCost`); sparse input is
        densified on the device. On a CPU the numba backend is faster.
    device : str, default="auto"
        torch device of the torch backend (ignored by numba): ``"auto"`` is
        CUDA when available and the CPU otherwise; asking for ``"cuda"``
        without CUDA is a ``ValueError``. Fitted attributes are NumPy
        arrays whatever the device, so a model fitted on a GPU pickles and
        loads anywhere (set ``device="cpu"`` there to use it without a GPU).

    Attributes
    ----------
    cost_ : TranslationInvariantCost
        The cost object used.
    gamma_ : float or None
        γ of the fitted cost: ``gamma``, the one ``target_dim`` chose, or a
        cost object's own; ``None`` for ``"sqeuclidean"``.
    path_ : SparsityPath
        Only with ``target_dim``: the fits of the γ search
        (:class:`skmonge.path.SparsityPath`, largest γ first).
    epsilon_ : float
        Entropic regularisation actually used (absolute, in cost units).
    source_ : ndarray or CSR matrix of shape (n_source, n_features)
        Fitted source sample (needed by ``inverse_transform``); CSR when
        its density is below the cost's ``sparse_density_cutoff`` (25 % for
        ℓ1 and STVS, 1 % for ½ℓ2², never for k-overlap), whether ``X`` was
        sparse or dense, dense otherwise. Single-cell data (5-10 %
        non-zeros) are then stored in about a third of the dense memory.
    target_ : ndarray or CSR matrix of shape (n_target, n_features)
        Fitted target sample (needed by ``transform``); stored like
        ``source_``.
    potential_source_, potential_target_ : ndarray
        Dual potentials ``f`` (on ``source_``) and ``g`` (on ``target_``),
        float64, with the plan ``P_ij = a_i b_j exp((f_i + g_j - C_ij)/ε)``.
    potential_source_self_, potential_target_self_ : ndarray or None
        With ``debias``: the symmetric potentials of the source and of the
        target transported onto themselves at ``epsilon_``
        (:func:`~skmonge.sinkhorn.symmetric_sinkhorn`), each point left out
        of its own coupling; None otherwise.
    n_iter_ : int
        Sinkhorn iterations run.
    converged_ : bool
        Whether the marginal tolerance was reached.
    source_label_, target_label_ : label
        The labels resolved at fit time.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from skmonge import EntropicSparseMap
    >>> rng = np.random.default_rng(0)
    >>> X_ctrl = rng.normal(size=(200, 20))
    >>> X_drug = X_ctrl.copy(); X_drug[:, :2] += 3.0     # only 2 genes move
    >>> X = np.vstack([X_ctrl, X_drug]); y = np.repeat([0, 1], 200)
    >>> est = EntropicSparseMap(gamma=1.0).fit(X, y)
    >>> est.transform(X_ctrl[:5]).shape
    (5, 20)
    """

    _parameter_constraints: dict = {
        "cost": [
            StrOptions({"sqeuclidean", "elastic_l1", "elastic_stvs", "elastic_kovlp"}),
            TranslationInvariantCost,
        ],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither")],
        "k": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "relative_epsilon": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "perplexity": [Interval(numbers.Real, 1, None, closed="left")],
        "debias": ["boolean"],
        "target_dim": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "source": "no_validation",
        "target": "no_validation",
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "verbose": ["verbose", StrOptions({"auto"})],
        "backend": [StrOptions({"numba", "torch"})],
        "device": [str],
    }

    def __init__(
        self,
        cost="elastic_l1",
        gamma=0.5,
        k=None,
        epsilon=None,
        relative_epsilon=None,
        perplexity=500,
        debias=True,
        target_dim=None,
        max_iter=10_000,
        tol=1e-6,
        source=None,
        target=None,
        chunk_size=None,
        verbose="auto",
        backend="numba",
        device="auto",
    ):
        self.cost = cost
        self.gamma = gamma
        self.k = k
        self.epsilon = epsilon
        self.relative_epsilon = relative_epsilon
        self.perplexity = perplexity
        self.debias = debias
        self.target_dim = target_dim
        self.max_iter = max_iter
        self.tol = tol
        self.source = source
        self.target = target
        self.chunk_size = chunk_size
        self.verbose = verbose
        self.backend = backend
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the entropic potentials between the source and target rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Both populations, pooled. Sparse ``X`` is never densified whole.
            The cost matrix is computed from the samples as given; then
            samples with few non-zeros are stored CSR (see ``source_``),
            and the kernels that are faster on dense rows run on densified
            blocks of them.
        y : array-like of shape (n_samples,)
            Population label of each row (see ``source`` / ``target``).

        Returns
        -------
        self : EntropicSparseMap
        """
        if self.target_dim is not None:
            from .path import fit_to_target_dim  # path builds on this module

            return fit_to_target_dim(self, X, y)
        return self._fit(X, y)

    def _fit(self, X, y, **warm):
        """Validate ``(X, y)``, then :meth:`_fit_clouds` (``warm``: its options)."""
        X_source, X_target = self._validate_fit_input(X, y)
        _check_data_scale(X_source, X_target)
        cost = make_cost(self.cost, gamma=self.gamma, k=self.k)
        C = None
        if self.backend == "numba":
            # the costs from the samples as split (dense rows where X is
            # dense): the fastest kernels, before the storage format is chosen
            C = self._fit_cost_matrix(cost, X_source, X_target)
        # Rebinding the names drops the split copies where the storage is
        # CSR, before Sinkhorn allocates its kernel.
        X_source, X_target = cost.prepare_cloud(X_source), cost.prepare_cloud(X_target)
        self._fit_clouds(X_source, X_target, cost_matrix=C, **warm)
        del C  # before the self-transport solves allocate theirs
        return self._fit_self_potentials()

    def _fit_clouds(
        self, X_source, X_target, g_init=None, cost_matrix=None, epsilon_start=None
    ):
        """The fit on validated source and target samples, in their storage
        format (the cost's ``prepare_cloud``) and with their scale checked by
        :func:`_check_data_scale`.

        :func:`skmonge.sparsity_path` fits many γ on the same samples, each
        warm-started from its neighbour: ``g_init`` starts Sinkhorn (and the
        perplexity search's first solve) from a target potential, and
        ``epsilon_start`` starts the perplexity search near the neighbour's ε
        (:func:`~skmonge._epsilon.perplexity_epsilon`).
        Neither changes the fixed point, hence the fitted map, beyond the
        tolerance. ``cost_matrix`` is the cost matrix between the samples,
        when already computed, or a callable ``cost -> C`` (the path reuses
        the parts of costs linear in γ); None computes it here.
        """
        cost = make_cost(self.cost, gamma=self.gamma, k=self.k)
        if self.backend == "torch":
            return self._fit_clouds_torch(
                cost, X_source, X_target, g_init, epsilon_start
            )
        if cost_matrix is None:
            C = self._fit_cost_matrix(cost, X_source, X_target)
        elif callable(cost_matrix):
            C = cost_matrix(cost)
        else:
            C = cost_matrix
        _check_costs_finite(C, "source and target rows of X")
        if g_init is not None and np.shape(g_init) != (C.shape[1],):
            g_init = None  # another target sample: no warm start
        epsilon, search = self._resolve_epsilon(
            lambda: C.mean(dtype=np.float64),
            lambda: perplexity_epsilon(
                C, self.perplexity, start=epsilon_start, g_init=g_init
            ),
        )
        if search is not None:
            g_init = search.g
        result = sinkhorn(
            C,
            epsilon,
            tol=self.tol,
            max_iter=self.max_iter,
            verbose=show_progress(self.verbose, C.size * X_source.shape[1]),
            g_init=g_init,
        )
        return self._set_fitted(cost, epsilon, X_source, X_target, result)

    def _set_fitted(self, cost, epsilon, X_source, X_target, result):
        self.cost_ = cost
        self.gamma_ = getattr(cost, "gamma", None)
        self.epsilon_ = epsilon
        self.source_ = X_source
        self.target_ = X_target
        self.potential_source_ = result.f
        self.potential_target_ = result.g
        self.potential_source_self_ = self.potential_target_self_ = None
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        return self

    def _fit_self_potentials(self, self_costs=None, warm=None):
        """With ``debias``: the symmetric potential of each fitted cloud
        transported onto itself at ``epsilon_``, leaving each point out of its
        own coupling (``skmonge._self_transport``), on the fit's backend
        (after :meth:`_fit_clouds`, once the cross cost matrix is freed).

        :func:`skmonge.sparsity_path` passes ``self_costs(name, cost, cloud)``,
        its cost matrix of the centring cloud ``name`` with itself (the
        parts linear in γ cached), and ``warm``, the fitted neighbour whose
        self potentials start the solves.
        """
        self._digests_source_ = self._digests_target_ = None
        self._centre_source_ = self._centre_target_ = None
        if not self.debias:
            return self
        for name in ("source", "target"):
            cloud = getattr(self, f"{name}_")
            index = evenly_spaced(cloud.shape[0], _MAX_CENTRE_POINTS)
            if index.size < cloud.shape[0]:
                cloud = cloud[index]
                setattr(self, f"_centre_{name}_", index)
            f_init = getattr(warm, f"potential_{name}_self_", None)
            if f_init is not None and f_init.shape != (cloud.shape[0],):
                f_init = None
            verbose = show_progress(self.verbose, cloud.shape[0] ** 2 * cloud.shape[1])
            if self.backend == "torch":
                backend = self._torch_backend(cloud.dtype)
                points = backend.tensor(cloud)
                C = backend.cost_matrix(self.cost_, points, points)
                scale = float(backend.torch.maximum(C.max(), -C.min()))
                C.fill_diagonal_(never_cost(scale, self.epsilon_))
                potential = backend.symmetric_potential(
                    C,
                    self.epsilon_,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    f_init=f_init,
                    verbose=verbose,
                )
            else:
                if self_costs is None:
                    C = self._fit_cost_matrix(self.cost_, cloud, cloud)
                else:
                    C = self_costs(name, self.cost_, cloud)
                np.fill_diagonal(C, never_cost(max_abs(C), self.epsilon_))
                potential = symmetric_sinkhorn(
                    C,
                    self.epsilon_,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    f_init=f_init,
                    verbose=verbose,
                ).f
            del C
            setattr(self, f"potential_{name}_self_", potential)
            setattr(self, f"_digests_{name}_", RowDigests(cloud))
        return self

    def _torch_backend(self, dtype):
        from ._torch_ot import TorchBackend  # torch is an optional dependency

        return TorchBackend(self.device, dtype)

    def _fit_clouds_torch(self, cost, X_source, X_target, g_init, epsilon_start):
        """:meth:`_fit_clouds` on the torch backend (same ε rule, same
        Sinkhorn fixed point); the fitted state is stored as NumPy arrays."""
        if not cost.has_tensor_methods():
            raise ValueError(
                f"backend='torch' does not support the cost {cost!r} yet; use "
                "backend='numba'."
            )
        dtype = np.result_type(X_source.dtype, X_target.dtype)
        backend = self._torch_backend(dtype)
        C = backend.cost_matrix(
            cost, backend.tensor(X_source), backend.tensor(X_target)
        )
        _check_costs_finite(
            C, "source and target rows of X", bool(backend.torch.isfinite(C).all())
        )
        if g_init is not None and np.shape(g_init) != (C.shape[1],):
            g_init = None  # another target sample: no warm start
        epsilon, search = self._resolve_epsilon(
            lambda: float(C.mean(dtype=backend.torch.float64)),
            lambda: backend.perplexity_epsilon(
                C, self.perplexity, epsilon_start, g_init
            ),
        )
        if search is not None:
            g_init = search.g
        result = backend.sinkhorn(
            C,
            epsilon,
            tol=self.tol,
            max_iter=self.max_iter,
            g_init=g_init,
            verbose=show_progress(self.verbose, C.numel() * X_source.shape[1]),
            warn=True,
        )
        return self._set_fitted(cost, epsilon, X_source, X_target, result)

    def _resolve_epsilon(self, mean_cost, perplexity_rule):
        """ε of the fit, and the search solve that warm-starts the final one.

        ε is absolute, relative to ``mean_cost()``, or chosen by
        ``perplexity_rule()`` (the backend's perplexity search, started near
        the neighbour's ε on a γ path), which returns ``(ε, result)``: the
        loose solve at (the bracket end nearest to) ε. The final solve starts
        from that solve's target potential: it is at ε to within the search's
        tolerance, so the solve needs a fraction of a cold start's
        iterations (54 against 198 on the Kang harmony cells, 99 against 323
        on 20,000 x 20,000 resampled ones), and it reaches the same fixed
        point to the tolerance. The price: where the loose solves stop one
        iteration apart (costs equal up to rounding, e.g. sparse against
        dense kernels), two fits agree to the tolerance rather than to
        rounding. The second value is None for the other two rules.
        """
        if self.epsilon is not None:
            return float(self.epsilon), None
        if self.relative_epsilon is not None:
            epsilon = float(self.relative_epsilon * mean_cost())
            if not epsilon > 0:
                raise ValueError(
                    "The mean cost between source and target is 0 (identical "
                    "constant samples?); pass an absolute epsilon."
                )
            return epsilon, None
        return perplexity_rule()

    # --------------------------------------------------------------- maps
    def _chunk_rows(self, n_other, n_features, itemsize):
        if self.chunk_size is not None:
            return int(self.chunk_size)
        per_row = itemsize * (2 * n_other + 3 * n_features)
        rows = int(max(1, min(4096, _CHUNK_BYTES // per_row)))
        unit = ROW_BLOCK * numba.get_num_threads()
        return rows - rows % unit if rows >= unit else rows

    def _fit_cost_matrix(self, cost, X_source, X_target):
        """Source x target cost matrix (:meth:`_pairwise_matrix`)."""
        return self._pairwise_matrix(
            cost.cost_matrix, X_source, X_target, cost.cost_operand
        )

    def _pairwise_matrix(self, pairwise, X_source, X_target, operand=None):
        """``pairwise(rows, X_target)`` for all source rows, by chunks of
        densified rows when ``X_source`` is sparse (a ``pairwise`` that
        returns a tuple of matrices gives a tuple).

        ``operand`` (the cost's
        :meth:`~skmonge.costs.TranslationInvariantCost.cost_operand`)
        densifies a CSR target cloud once, up to the size of the matrix
        itself, where the kernels would otherwise densify it for every
        chunk; with very few non-zeros it stays CSR, and the separable
        kernels visit only its non-zeros.
        """
        if not sp.issparse(X_source):
            return pairwise(X_source, X_target)
        dtype = np.result_type(X_source.dtype, X_target.dtype)
        n = X_source.shape[0]
        m, d = X_target.shape
        if operand is not None:
            X_target = operand(X_target, n * m * dtype.itemsize)
        step = self._chunk_rows(m, d, dtype.itemsize)
        if self.chunk_size is None:
            # Every chunk validates the target cloud and takes its norms (a
            # few passes over it): chunks of up to an eighth of the matrix's
            # own size amortise them when the cloud is large.
            per_row = dtype.itemsize * (2 * m + 3 * d)
            step = max(step, n * m * dtype.itemsize // (8 * per_row))
        parts = None
        for start in range(0, n, step):
            rows = dense_rows(X_source, start, start + step, dtype)
            blocks = pairwise(rows, X_target)
            single = not isinstance(blocks, tuple)
            blocks = (blocks,) if single else blocks
            if parts is None:
                parts = tuple(np.empty((n, m), dtype=b.dtype) for b in blocks)
            for part, block in zip(parts, blocks, strict=True):
                part[start : start + step] = block
        return parts[0] if single else parts

    def _map_chunk_rows(self, X):
        """Rows per chunk for map evaluation of ``X`` (ndarray or CSR)."""
        dtype = np.result_type(X.dtype, self.target_.dtype)
        return self._chunk_rows(self.target_.shape[0], X.shape[1], dtype.itemsize)

    def _map_clouds(self, inverse=False):
        """``(towards, centre)``: the cloud and potential the map (``inverse``:
        the backward map) averages over, and with debiasing the cloud it
        starts from with its self-transport potential (None without)."""
        # the fitted state decides (a fit with debias=False, or one pickled
        # before debiasing existed, has no self-transport potentials)
        if inverse:
            towards = (self.source_, self.potential_source_)
            centre = ("target", self.target_)
        else:
            towards = (self.target_, self.potential_target_)
            centre = ("source", self.source_)
        name, cloud = centre
        potential = getattr(self, f"potential_{name}_self_", None)
        if potential is None:
            return towards, None
        index = getattr(self, f"_centre_{name}_", None)
        if index is not None:  # a large sample: its evenly spaced rows
            cloud = cloud[index]
        return towards, (cloud, potential, getattr(self, f"_digests_{name}_"))

    def _prepare_cloud(self, cloud, potential, dtype, digests=None, backend=None):
        """A :class:`_Cloud` for map evaluation in ``dtype``: on the torch
        ``backend``, tensors on its device (sent once per call); for the
        numba kernels, the cloud's non-zeros by feature for the aggregate and
        the cloud as the cost kernels run fastest, found once for all
        chunks. ``digests`` (a centring cloud's) find new rows equal to its
        points."""
        cloud = cloud.astype(dtype, copy=False)
        if backend is not None:
            return _Cloud(
                backend.tensor(cloud),
                backend.torch.as_tensor(potential, device=backend.device),
                digests=digests,
            )
        return _Cloud(
            cloud,
            potential,
            self.cost_.support_columns(cloud),
            self.cost_.cost_operand(cloud),
            digests,
        )

    def _entropic_map(self, X, desc, inverse=False, displacement=False):
        r"""The entropic map (``inverse``: the backward map) of every row of
        ``X``, by chunks of rows.

        Evaluates, chunk by chunk,
        :math:`x - \operatorname{prox}_τ(\sum_j p_j(x) ∇h(x - s_j)
        - \sum_i q_i(x) ∇h(x - r_i))`, with
        :math:`p_j(x) ∝ \exp((φ_j - h(x - s_j))/ε)` over the cloud ``s`` the
        map goes to and its potential ``φ``, and (with debiasing) ``q`` the
        same weights over the cloud ``r`` it starts from, with its
        self-transport potential. All built-in costs are even,
        ``h(-z) = h(z)``, so the same expression gives the backward map from
        the other potentials.

        ``X`` is an ndarray or a CSR matrix; each chunk of rows is densified
        on its own, so sparse ``X`` is never densified whole (the dense
        output is). With ``displacement=True`` the chunk's
        ``T(x) - x`` is returned instead of ``T(x)``, computed from the
        densified chunk so that no dense copy of ``X`` is needed.
        """
        towards, centre = self._map_clouds(inverse)
        # computed in the wider of the two dtypes, returned in the input's
        dtype = np.result_type(X.dtype, towards[0].dtype)
        out = np.empty(X.shape, dtype=X.dtype)
        # the two averages run one after the other: the larger cloud bounds
        # the chunk's temporaries
        n_other = max(c[0].shape[0] for c in (towards, centre) if c is not None)
        step = self._chunk_rows(n_other, X.shape[1], dtype.itemsize)
        work = X.shape[0] * X.shape[1] * towards[0].shape[0]
        if centre is not None:
            work += X.shape[0] * X.shape[1] * centre[0].shape[0]
        verbose = show_progress(self.verbose, work)
        backend = None
        if self.backend == "torch":
            backend = self._torch_backend(dtype)
        towards = self._prepare_cloud(*towards, dtype, backend=backend)
        if centre is not None:
            cloud, potential, digests = centre
            centre = self._prepare_cloud(cloud, potential, dtype, digests, backend)
        for start in progress_over(range(0, X.shape[0], step), desc, verbose):
            rows = dense_rows(X, start, start + step, dtype)
            self._map_rows(
                rows,
                towards,
                out.dtype,
                centre=centre,
                displacement=displacement,
                backend=backend,
                out=out[start : start + step],
            )
        return out

    def _gradient_average(self, rows, cloud, C=None, exclude=None):
        r""":math:`\sum_j p_j(x) ∇h(x - s_j)` for dense ``rows`` (numba), with
        the Gibbs weights of the :class:`_Cloud` ``cloud``; ``C``, the costs
        between ``rows`` and its points, is computed unless given. The
        ``(row, point)`` pairs ``exclude`` get zero weight (a row left out of
        its own centring average)."""
        cost = self.cost_
        if C is None:
            # rows (dense_rows) and the fitted cloud are validated and of one
            # dtype: no per-chunk validation pass over the cloud
            C = cost._validated_cost_matrix(
                rows,
                cloud.points if cloud.operand is None else cloud.operand,
                columns=cloud.columns,
            )
            _check_costs_finite(C, "rows of X and the fitted points")
        if exclude is not None and exclude[0].size:
            C[exclude] = never_cost(max_abs(C), self.epsilon_)
        P, _ = gibbs_weights(C, cloud.potential, self.epsilon_)
        del C
        return cost._validated_grad_h_aggregate(
            rows, cloud.points, P.astype(rows.dtype, copy=False), cloud.columns
        )

    def _map_rows(
        self,
        rows,
        towards,
        out_dtype,
        C=None,
        centre=None,
        C_centre=None,
        displacement=False,
        backend=None,
        out=None,
    ):
        """The entropic map (or displacement) of dense ``rows``, in ``out_dtype``
        (written into ``out`` when given, and returned).

        ``towards`` and ``centre`` are the :class:`_Cloud` tuples of
        :meth:`_entropic_map` (``centre`` None without debiasing). ``C``,
        the costs between ``rows`` and ``towards``, and ``C_centre``, those
        between ``rows`` and ``centre`` (a fresh array: the rows that are
        centring points are masked in it), are computed unless given
        (:func:`skmonge.sparsity_path` holds them for training rows). With a
        torch ``backend`` (:class:`skmonge._torch_ot.TorchBackend`) the
        clouds hold its tensors and the map runs there.
        """
        cost = self.cost_
        exclude = None
        if centre is not None and centre.digests is not None:
            # rows that are points of the centring cloud leave them out
            exclude = centre.digests.matches(rows)
        if backend is not None:
            mapped = backend.map_rows(
                cost,
                backend.tensor(rows),
                towards[:2],
                self.epsilon_,
                centre=None if centre is None else centre[:2],
                exclude=exclude,
            )
            finite = bool(backend.torch.isfinite(mapped).all())
            _check_costs_finite(mapped, "rows of X and the fitted points", finite)
            mapped = mapped.cpu().numpy()
        else:
            grad = self._gradient_average(rows, towards, C)
            if centre is not None:
                grad -= self._gradient_average(rows, centre, C_centre, exclude)
            # The gradient is ours, so the prox may overwrite it; x - prox
            # goes straight to the output when that has the computation's
            # dtype: no further chunk-sized array.
            mapped = cost._validated_prox(grad)
            if out is not None and out.dtype == mapped.dtype:
                mapped = np.subtract(rows, mapped, out=out)
            else:
                np.subtract(rows, mapped, out=mapped)
        # (x - prox) - x rather than -prox: the displacement is then
        # exactly T(x) - x as transform returns it, bit for bit.
        if displacement:
            # in the output dtype, as transform(X) - X would be computed
            mapped = mapped.astype(out_dtype, copy=False)
            mapped -= rows.astype(out_dtype, copy=False)
        if out is None:
            return mapped
        if mapped is not out:
            out[...] = mapped
        return out

    def _transform_array(self, X):
        return self._entropic_map(X, "transform")

    @accepts_dask
    def inverse_transform(self, X):
        """Map every row of ``X`` as a target point back to the source.

        Uses the backward entropic map built from the source potential ``f``
        and ``h(-z)`` (equal to ``h(z)`` for the built-in even costs), with
        debiasing centred by the target's self-transport.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Sparse input is densified one chunk of rows at a time.

        Returns
        -------
        X_mapped : ndarray of shape (n_samples, n_features)
            Dense, with the floating dtype of ``X``.
        """
        X = self._validate_transform_input(X)
        return self._entropic_map(X, "inverse_transform", inverse=True)

    def interpolate(self, X, t):
        r"""Bregman interpolation between ``x`` and ``T(x)`` (eq. 17 of the paper).

        .. math:: x_t = ∇h^*\big((1 - t)\,∇h(x) + t\,∇h(T(x))\big),
                  \qquad ∇h^* = \operatorname{prox}_τ

        ``t = 0`` returns ``x`` (where ``∇h`` is invertible, i.e. away from
        the kinks of ``τ``), ``t = 1`` returns ``T(x)``; for ``½‖·‖²`` the path
        is the straight line. With elastic costs the coordinates start moving
        at different times, which is what the paper's Figure 4 draws.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Source points; sparse input is densified one chunk of rows at a
            time (the output is dense).
        t : float or array-like of floats in [0, 1]
            Interpolation time(s).

        Returns
        -------
        X_t : ndarray
            Shape ``(n_samples, n_features)`` for a scalar ``t``, else
            ``(len(t), n_samples, n_features)``.
        """
        check_is_fitted(self)
        X = self._validate_transform_input(X)
        times = np.asarray(t, dtype=np.float64)
        if (
            times.ndim > 1
            or np.any(~np.isfinite(times))
            or np.any(times < 0)
            or np.any(times > 1)
        ):
            raise ValueError("t must be a scalar or 1-d array of times in [0, 1].")
        steps = np.atleast_1d(times)
        paths = np.empty((steps.size,) + X.shape, dtype=X.dtype)
        # Same chunks as the map itself: every row's path only depends on the
        # row, and sparse X is densified one chunk at a time.
        chunk = self._map_chunk_rows(X)
        for start in range(0, X.shape[0], chunk):
            rows = dense_rows(X, start, start + chunk, X.dtype)
            grad_start = self.cost_.grad_h(rows)
            grad_end = self.cost_.grad_h(self._transform_array(rows))
            for i, s in enumerate(steps):
                paths[i, start : start + chunk] = self.cost_.prox(
                    (1.0 - s) * grad_start + s * grad_end
                )
        return paths[0] if times.ndim == 0 else paths

    @accepts_dask
    def displacement(self, X):
        """Displacement ``T(x) - x`` of every row of ``X`` (sparse for elastic h).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Source points; sparse input is densified one chunk of rows at a
            time.

        Returns
        -------
        delta : ndarray of shape (n_samples, n_features)
            Dense array (most entries are exact zeros for elastic costs),
            equal to ``transform(X) - X``.
        """
        X = self._validate_transform_input(X)
        return self._entropic_map(X, "displacement", displacement=True)
