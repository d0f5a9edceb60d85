r"""Displacement-sparse neural OT maps (Chen, Xie & Zhang): :class:`NeuralSparseMap`.

Two ICNN potentials are trained with the minimax objective of Makkuva et al.
(2020) plus a sparsity penalty on the displacements of the source points,

.. math::

    \sup_f \inf_g\; \mathbb{E}_{y∼ν}[f(y)]
        + \mathbb{E}_{x∼μ}\big[\langle x, ∇g(x)\rangle - f(∇g(x))\big]
        + λ\, \mathbb{E}_{x∼μ}\big[τ(∇g(x) - x)\big]

(their eq. 6 with source and target named as in this package: ``∇g`` pushes
the source μ onto the target ν and ``∇f`` is its inverse). ``g`` takes
``n_inner`` Adam steps per step of ``f``; both stay convex by projecting
their non-negative weights after every step. λ is constant or adapted by
simulated annealing (:mod:`skmonge.neural.annealing`).

Squared-Euclidean OT maps are equivariant to separate translations of the
two samples and to a common scaling, :math:`T(x) = m_ν + s\,∇g((x - m_μ)/s)`,
so the networks see each sample centred at its own mean and divided by one
scalar ``s`` (the pooled within-sample standard deviation): well-conditioned
inputs even when a few genes shift by a hundred standard deviations. Both
networks start at the identity, i.e. the map starts at the translation
between the means (the analogue of the Gaussian initialisation of OTT-JAX's
ICNNs). The penalty is evaluated on the displacement in the original units,
:math:`Δ = m_ν - m_μ + s(∇g(\tilde x) - \tilde x)`, so ``sigma``, ``gamma``
and ``atol`` keep their meaning.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseMonge, check_finite_rows, dense_rows
from .._dask import accepts_dask
from .._progress import Progress, show_progress
from .._torch import (
    import_torch,
    module_state_to_cpu,
    resolve_device,
    seed_from,
    to_numpy,
    to_tensor,
    torch_seed,
)
from ..metrics import sliced_wasserstein
from . import annealing
from .icnn import ICNN, check_hidden_sizes
from .penalties import make_penalty

torch = import_torch()

__all__ = ["NeuralSparseMap"]

# rows per chunk when mapping new points, unless chunk_size says otherwise
# (bounded memory on any device)
_MAP_CHUNK_ROWS = 4096

# The networks train in float32 and the penalty sees displacements in data
# units (offset + scale * (∇g(x̃) - x̃), in float32 too). The headroom keeps
# those finite for normalised displacements up to 1e4 scales (largest |X|)
# and keeps displacements down to 1e-4 scales normal floats, not subnormal
# ones (smallest scale).
_FLOAT32 = np.finfo(np.float32)
_FLOAT32_HEADROOM = 1e4
_MAX_ABS_VALUE = float(_FLOAT32.max) / _FLOAT32_HEADROOM
_MIN_SCALE = float(_FLOAT32.tiny) * _FLOAT32_HEADROOM
_RESCALE_HINT = (
    f"NeuralSparseMap trains in float32 (largest value {_FLOAT32.max:.3g}, "
    f"smallest normal value {_FLOAT32.tiny:.3g}); rescale X, e.g. multiply it "
    "by a constant (the map is equivariant to a common scaling; scale sigma "
    "and atol with it)."
)


def _pooled_scale(X_source, X_target):
    """Pooled within-sample standard deviation ``s`` of two dense float64 samples.

    Computed as before on ordinary data; when it underflows to 0 (data of
    scale ~1e-160 or below square to 0 in float64) it is recomputed on the
    samples divided by their largest absolute value, so that tiny but
    non-constant data are told apart from constant data.
    """
    scale = math.sqrt(0.5 * (X_source.var(axis=0).mean() + X_target.var(axis=0).mean()))
    if scale > 0:
        return scale
    peak = max(np.abs(X_source).max(), np.abs(X_target).max())
    if not peak > 0:
        return 0.0
    a, b = X_source / peak, X_target / peak
    return peak * math.sqrt(0.5 * (a.var(axis=0).mean() + b.var(axis=0).mean()))


def _check_float32_range(X_source, X_target):
    """The scale ``s`` of the two samples, or a ValueError when float32 can't hold X.

    Raises
    ------
    ValueError
        If a value of X exceeds ``_MAX_ABS_VALUE`` in magnitude, if both
        samples are constant, or if ``s`` is below ``_MIN_SCALE``.
    """
    peak = max(np.abs(X_source).max(), np.abs(X_target).max())
    if peak > _MAX_ABS_VALUE:
        raise ValueError(
            f"X holds values up to {peak:.3g} in magnitude; NeuralSparseMap "
            f"accepts values up to {_MAX_ABS_VALUE:.3g} so that displacements "
            f"stay finite in float32. {_RESCALE_HINT}"
        )
    scale = _pooled_scale(X_source, X_target)
    if not scale > 0:
        raise ValueError("Both samples are constant; there is no map to learn.")
    if scale < _MIN_SCALE:
        raise ValueError(
            f"The scale of X (pooled within-population standard deviation) is "
            f"{scale:.3g}, below the {_MIN_SCALE:.3g} that NeuralSparseMap "
            f"needs to resolve displacements in float32. {_RESCALE_HINT}"
        )
    return scale


class NeuralSparseMap(BaseMonge):
    r"""ICNN Monge map with a displacement-sparsity penalty and adaptive λ.

    Implements Chen, Xie & Zhang, "Displacement-Sparse Neural Optimal
    Transport": neural OT (Makkuva et al. 2020) whose map ``∇g`` is
    penalised by ``λ τ(∇g(x) - x)``, with λ fixed or tuned during training by
    simulated annealing, either to balance sparsity against fit
    (Algorithm 1) or to meet a target displacement dimension (Algorithm 4).

    Parameters
    ----------
    penalty : {"smoothed_l0", "l1", "stvs"} or None, default="smoothed_l0"
        Sparsity penalty ``τ`` on displacements: the smoothed ℓ0 norm
        :math:`\sum_t 1 - e^{-z_t^2/2σ^2}`, the ℓ1 norm, or the STVS
        regulariser of :class:`~skmonge.costs.ElasticSTVS`. None trains
        plain ICNN OT (the paper's baseline).
    lam : float, default=1e4
        Sparsity intensity λ (the initial one for the annealing schedules),
        relative to the pooled within-population variance ``s²`` of the
        data: the objective is the transport term plus ``λ s² E[τ(Δ)]``, so
        that rescaling the data together with ``sigma`` leaves the fit
        unchanged. On the perturbation task (a) of
        ``benchmarks/reproduce_dsnot_synthetic.py`` (unit variance,
        ``sigma=1``) the smoothed ℓ0 penalty keeps the unmoved genes below
        ``atol`` through 600 iterations at λ = 1e4, while at λ = 1e3 they
        start moving again after 500; ℓ1 and STVS, whose value grows with
        the displacement, need far smaller λ.
    sigma : float, default=1.0
        Width σ of the smoothed ℓ0 norm, in data units.
    gamma : float, default=1.0
        Threshold scale γ of the STVS penalty.
    schedule : {"constant", "tradeoff", "target_dim"}, default="constant"
        ``"constant"``: λ fixed for ``n_iter`` iterations. ``"tradeoff"``:
        Algorithm 1, minimise ``a·Spa + (1-a)·Res`` (normalised mean penalty
        and sliced-Wasserstein residue). ``"target_dim"``: Algorithm 4, raise
        λ until the mean displacement dimension is at most ``target_dim``,
        then lower it while it stays there.
    tradeoff : float in [0, 1], default=0.5
        Weight ``a`` of sparsity in Algorithm 1.
    target_dim : float, default=None
        Dimension constraint ``l`` of Algorithm 4 (required for
        ``schedule="target_dim"``).
    hidden_sizes : tuple of int, default=(64, 64, 64, 64)
        Hidden widths of both ICNNs (Makkuva et al.'s default). Integers only:
        floats (``8.7`` and ``8.0`` alike), bools and strings are a
        ``ValueError``.
    n_iter : int or "auto", default="auto"
        Training iterations (one ``f`` step and ``n_inner`` ``g`` steps
        each): all of them for ``"constant"``, the initial ``n_ini`` ones for
        the annealing schedules, whose rounds train further. ``"auto"`` is
        2000 for ``"constant"`` and 200 for ``"tradeoff"`` and
        ``"target_dim"`` (the settings that reproduce the paper's task (a)
        in ``benchmarks/reproduce_dsnot_synthetic.py``).
    n_inner : int, default=10
        ``g`` steps per ``f`` step (Makkuva et al.'s default).
    n_iter_round : int, default=100
        Iterations per annealing round (``n_tr``); also the spacing of the
        evaluations recorded in ``history_`` for ``"constant"``.
    rollback : {"restore", "train"}, default="restore"
        What follows a rejected annealing proposal. ``"restore"``: the
        networks (and optimiser states) saved when λ was last kept are
        restored, so the chain moves between (λ, model) states and
        ``"target_dim"`` ends on a model that met the constraint.
        ``"train"``: the paper's rollback, ``n_iter_rollback`` iterations at
        the kept λ. The sparse state is fragile: on task (a) of
        ``benchmarks/reproduce_dsnot_synthetic.py``, 100 iterations at
        λ = 1767, just below the kept 1780, raised the mean dimension from
        20 to 32.
    n_iter_rollback : int, default=None
        Iterations at the kept λ after a rejected proposal (``n_sm``) when
        ``rollback="train"``; None means ``n_iter_round``.
    temperature, min_temperature, decay : float, default=1.0, 0.15, 0.9
        Annealing temperature: initial, final, and decay per round (the
        paper's Appendix E uses 0.95; 0.9 halves the number of rounds, 18,
        and reaches the same dimension on its synthetic tasks).
    patience : int or None, default=3
        End the annealing once this many proposals in a row were rejected:
        λ has settled (for ``"target_dim"``, at the smallest intensity that
        meets the target). ``None`` runs every temperature.
    radius, min_radius : float, default=3.0, 0.01
        Proposal radius ``max(min_radius, exp(-radius (1 - Tem)))``.
    batch_size : int, default=128
        Mini-batch size (the paper's choice).
    learning_rate : float, default=1e-4
        Adam step size of both networks (Makkuva et al.'s default). Larger
        steps train faster but their noise alone moves every coordinate by
        more than ``atol``.
    atol : float, default=1e-2
        A coordinate moves when ``|Δ| > atol`` (displacement dimension).
    n_eval : int, default=1000
        Source and target points (a fixed subsample) used to evaluate the
        map during training.
    device : str, default="auto"
        torch device; "auto" is CUDA when available.
    chunk_size : int, default=None
        Rows per chunk when evaluating the map (``transform``,
        ``inverse_transform``, ``displacement``); ``None`` is 4096. Sparse
        input is densified one chunk at a time.
    source, target : label, default=None
        Labels of the source and target rows of ``y``.
    random_state : int, RandomState instance or None, default=None
        Seeds network initialisation, mini-batches and the annealing; with a
        fixed seed a CPU fit is reproducible.
    verbose : bool or "auto", default="auto"
        Progress bar with the iteration, λ and current dimension. ``"auto"``
        shows it for 200 planned iterations or more (the default training);
        ``False`` never.

    Attributes
    ----------
    potential_source_ : ICNN
        The convex potential on the source space (``g`` of Makkuva et al.,
        in the internal coordinates): ``transform`` is its gradient. Its
        counterpart in :class:`~skmonge.EntropicSparseMap` is the array of
        the entropic potential on the fitted source points.
    potential_target_ : ICNN
        The convex potential on the target space (``f``):
        ``inverse_transform`` is its gradient.
    source_center_, target_center_, scale_ : ndarray, ndarray, float
        The networks' coordinates are ``(x - source_center_) / scale_`` for
        source points and ``(y - target_center_) / scale_`` for target ones.
    lam_ : float
        λ in effect at the end of training.
    history_ : dict of lists
        One entry per evaluation: ``iteration``, ``lam``, ``temperature``,
        ``phase``, ``accepted``, ``sparsity``, ``residue``, ``dimension``
        (``pandas.DataFrame(est.history_)``, or
        :func:`skmonge.plotting.plot_lambda_trajectory` to plot it).
    dimension_ : float
        Mean displacement dimension of the evaluation points at the end.
    n_iter_ : int
        Training iterations run.
    converged_ : bool
        Whether the fit met its goal: for ``schedule="target_dim"``, a final
        mean displacement dimension of at most ``target_dim`` (else a
        ``ConvergenceWarning`` is emitted too); for the other schedules,
        training ran to its end with finite losses (a diverging fit raises).
    device_ : str
        Device the model was fitted on.
    n_features_in_, feature_names_in_
        As in scikit-learn.

    Examples
    --------
    >>> from skmonge import NeuralSparseMap
    >>> from skmonge.datasets import make_perturbation
    >>> X, y, genes = make_perturbation(200, 30, 3, random_state=0)
    >>> est = NeuralSparseMap(lam=1.0, n_iter=200, random_state=0).fit(X, y)
    >>> est.transform(X[:5]).shape
    (5, 30)
    """

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"smoothed_l0", "l1", "stvs"}), None],
        "lam": [Interval(numbers.Real, 0, None, closed="left")],
        "sigma": [Interval(numbers.Real, 0, None, closed="neither")],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"constant", "tradeoff", "target_dim"})],
        "tradeoff": [Interval(numbers.Real, 0, 1, closed="both")],
        "target_dim": [Interval(numbers.Real, 0, None, closed="left"), None],
        "hidden_sizes": ["array-like"],
        "n_iter": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "n_inner": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_iter_round": [Interval(numbers.Integral, 1, None, closed="left")],
        "rollback": [StrOptions({"restore", "train"})],
        "n_iter_rollback": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "min_temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "decay": [Interval(numbers.Real, 0, 1, closed="neither")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "radius": [Interval(numbers.Real, 0, None, closed="left")],
        "min_radius": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "atol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_eval": [Interval(numbers.Integral, 2, None, closed="left")],
        "device": [str],
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "source": "no_validation",
        "target": "no_validation",
        "random_state": ["random_state"],
        "verbose": ["verbose", StrOptions({"auto"})],
    }

    def __init__(
        self,
        penalty="smoothed_l0",
        lam=1e4,
        sigma=1.0,
        gamma=1.0,
        schedule="constant",
        tradeoff=0.5,
        target_dim=None,
        hidden_sizes=(64, 64, 64, 64),
        n_iter="auto",
        n_inner=10,
        n_iter_round=100,
        rollback="restore",
        n_iter_rollback=None,
        temperature=1.0,
        min_temperature=0.15,
        decay=0.9,
        patience=3,
        radius=3.0,
        min_radius=0.01,
        batch_size=128,
        learning_rate=1e-4,
        atol=1e-2,
        n_eval=1000,
        device="auto",
        chunk_size=None,
        source=None,
        target=None,
        random_state=None,
        verbose="auto",
    ):
        self.penalty = penalty
        self.lam = lam
        self.sigma = sigma
        self.gamma = gamma
        self.schedule = schedule
        self.tradeoff = tradeoff
        self.target_dim = target_dim
        self.hidden_sizes = hidden_sizes
        self.n_iter = n_iter
        self.n_inner = n_inner
        self.n_iter_round = n_iter_round
        self.rollback = rollback
        self.n_iter_rollback = n_iter_rollback
        self.temperature = temperature
        self.min_temperature = min_temperature
        self.decay = decay
        self.patience = patience
        self.radius = radius
        self.min_radius = min_radius
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.atol = atol
        self.n_eval = n_eval
        self.device = device
        self.chunk_size = chunk_size
        self.source = source
        self.target = target
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_schedule(self):
        if self.schedule == "target_dim" and self.target_dim is None:
            raise ValueError(
                "schedule='target_dim' needs target_dim (the l of Alg. 4)."
            )
        if self.schedule != "constant" and self.penalty is None:
            raise ValueError(
                f"schedule={self.schedule!r} adapts the penalty's intensity; "
                "it needs a penalty (got penalty=None)."
            )
        if self.schedule != "constant" and self.lam <= 0:
            raise ValueError(
                "The annealing schedules scale λ multiplicatively; start from lam > 0."
            )
        if self.min_temperature >= self.temperature:
            raise ValueError(
                f"min_temperature={self.min_temperature} must be below "
                f"temperature={self.temperature}."
            )
        check_hidden_sizes(self.hidden_sizes)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the two ICNN potentials between the source and target rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Both populations, pooled (sparse input is densified: the
            networks see every gene).
        y : array-like of shape (n_samples,)
            Population label of each row (see ``source`` / ``target``).

        Returns
        -------
        self : NeuralSparseMap

        Raises
        ------
        ValueError
            If X cannot be trained on in float32: a value above ``3.4e34``
            in magnitude, or a pooled within-population standard deviation
            below ``1.2e-34`` (the float32 range with a margin of ``1e4``
            for the displacements, which are evaluated in data units), or
            both populations constant. Rescaling X by a constant fixes the
            first two.
        """
        self._check_schedule()
        X_source, X_target = self._validate_fit_input(X, y)
        X_source = dense_rows(X_source, 0, X_source.shape[0], np.float64)
        X_target = dense_rows(X_target, 0, X_target.shape[0], np.float64)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = seed_from(rng)

        # Separate translations and a common scaling leave the map equivariant.
        source_center = X_source.mean(axis=0)
        target_center = X_target.mean(axis=0)
        # Before any training: data that float32 cannot hold fail here, not
        # as a NaN map or a misleading "diverged" error later.
        scale = _check_float32_range(X_source, X_target)

        dtype = torch.float32
        source = to_tensor((X_source - source_center) / scale, device, dtype)
        target = to_tensor((X_target - target_center) / scale, device, dtype)
        d = source.shape[1]
        hidden = check_hidden_sizes(self.hidden_sizes)
        with torch_seed(seed):
            g = ICNN(d, hidden).to(device)
            f = ICNN(d, hidden).to(device)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        n_eval_src = min(self.n_eval, source.shape[0])
        n_eval_tgt = min(self.n_eval, target.shape[0])
        eval_source = source[rng.choice(source.shape[0], n_eval_src, replace=False)]
        eval_target = target[rng.choice(target.shape[0], n_eval_tgt, replace=False)]

        self.source_center_ = source_center
        self.target_center_ = target_center
        self.scale_ = float(scale)
        self.device_ = str(device)
        trainer = _MinimaxTrainer(
            g,
            f,
            source,
            target,
            penalty=make_penalty(self.penalty, gamma=self.gamma, sigma=self.sigma),
            scale=self.scale_,
            offset=to_tensor(target_center - source_center, device, dtype),
            batch_size=self.batch_size,
            n_inner=self.n_inner,
            learning_rate=self.learning_rate,
            generator=generator,
        )
        evaluate = _MapEvaluator(trainer, eval_source, eval_target, self.atol, seed)
        planned = self._planned_iterations()
        progress = Progress(
            planned, "NeuralSparseMap", show_progress(self.verbose, steps=planned)
        )
        progress.show(λ=f"{self.lam:.3g}")
        try:
            lam, history = self._run_schedule(trainer, evaluate, progress, rng)
        finally:
            progress.close()

        self.potential_source_ = g.eval()
        self.potential_target_ = f.eval()
        self.lam_ = float(lam)
        self.history_ = history.as_dict()
        self.dimension_ = self.history_["dimension"][-1]
        self.n_iter_ = int(history.step)
        self.converged_ = not (
            self.schedule == "target_dim" and self.dimension_ > self.target_dim
        )
        if not self.converged_:
            warnings.warn(
                f"The target dimension {self.target_dim} was not reached: the "
                f"final mean displacement dimension is {self.dimension_:.1f} "
                f"(λ = {self.lam_:.3g}). Raise lam or n_iter, or lower "
                "min_temperature.",
                ConvergenceWarning,
            )
        return self

    def _planned_iterations(self):
        if self.schedule == "constant":
            return self._n_iter()
        rounds = max(
            0,
            math.ceil(
                math.log(self.min_temperature / self.temperature) / math.log(self.decay)
            ),
        )
        rollback = 0 if self.rollback == "restore" else self._n_iter_rollback()
        return self._n_iter() + rounds * (self.n_iter_round + rollback)

    def _n_iter(self):
        """``n_iter``, with ``"auto"`` resolved for the schedule."""
        if self.n_iter == "auto":
            return 2000 if self.schedule == "constant" else 200
        return int(self.n_iter)

    def _n_iter_rollback(self):
        if self.n_iter_rollback is None:
            return self.n_iter_round
        return self.n_iter_rollback

    def _run_schedule(self, trainer, evaluate, progress, rng):
        history = annealing.AnnealingHistory()

        def train(lam, n_steps):
            progress.show(λ=f"{lam:.3g}")
            trainer.train(lam, n_steps, progress)

        def on_round(lam, metrics):
            progress.show(λ=f"{lam:.3g}", dim=f"{metrics['dimension']:.1f}")

        def checked_evaluate():
            metrics = evaluate()
            if not np.isfinite(metrics["residue"]):
                raise FloatingPointError(
                    "Training diverged (non-finite map); lower learning_rate or lam."
                )
            progress.show(dim=f"{metrics['dimension']:.1f}")
            return metrics

        common = dict(
            rng=rng,
            n_init=self._n_iter(),
            n_train=self.n_iter_round,
            n_rollback=self._n_iter_rollback(),
            temperature=self.temperature,
            min_temperature=self.min_temperature,
            decay=self.decay,
            patience=self.patience,
            radius=self.radius,
            min_radius=self.min_radius,
            history=history,
            on_round=on_round,
        )
        if self.rollback == "restore":
            common.update(snapshot=trainer.snapshot, restore=trainer.restore)
        lam = float(self.lam)
        if self.schedule == "tradeoff":
            return annealing.anneal_tradeoff(
                train, checked_evaluate, lam, tradeoff=self.tradeoff, **common
            )
        if self.schedule == "target_dim":
            return annealing.anneal_target_dim(
                train, checked_evaluate, lam, target_dim=self.target_dim, **common
            )
        return annealing.train_constant(
            train,
            checked_evaluate,
            lam,
            n_iter=self._n_iter(),
            n_eval_every=self.n_iter_round,
            history=history,
        )

    # ----------------------------------------------------------------- maps
    def _gradient_map(self, potential, X, center_in, center_out):
        """``center_out + scale · ∇potential((x - center_in) / scale)``, chunked.

        Raises a ValueError rather than returning non-finite rows: points far
        outside the training data (in units of ``scale_``) overflow the
        float32 networks.
        """
        device = torch.device(self._usable_device())
        potential = potential.to(device)
        out = np.empty(X.shape, dtype=X.dtype if X.dtype == np.float32 else np.float64)
        distance = 0.0  # largest |x - center_in| / scale_ over all rows
        step = _MAP_CHUNK_ROWS if self.chunk_size is None else int(self.chunk_size)
        for start in range(0, X.shape[0], step):
            stop = min(start + step, X.shape[0])
            rows = dense_rows(X, start, stop, np.float64)
            z = (rows - center_in) / self.scale_
            if z.size:
                distance = max(distance, float(np.abs(z).max()))
            grad = to_numpy(potential.gradient(to_tensor(z, device, torch.float32)))
            with np.errstate(over="ignore", invalid="ignore"):
                out[start:stop] = grad.astype(np.float64) * self.scale_ + center_out
        check_finite_rows(
            out,
            f"X lies up to {distance:.3g} fitted scales (scale_={self.scale_:.3g}) "
            "from the fitted mean, too far for the float32 networks or the "
            f"output dtype {out.dtype}.",
        )
        return out

    def _usable_device(self):
        if self.device_.startswith("cuda") and not torch.cuda.is_available():
            return "cpu"
        return self.device_

    def _transform_array(self, X):
        return self._gradient_map(
            self.potential_source_, X, self.source_center_, self.target_center_
        )

    @accepts_dask
    def inverse_transform(self, X):
        """Map target points back to the source, ``y -> ∇f(y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        X_source : ndarray of shape (n_samples, n_features)

        Raises
        ------
        ValueError
            If a row maps to non-finite values (a point far outside the
            range of the training data for the float32 networks).
        """
        # validate first: it raises NotFittedError before fitted attributes
        # such as potential_target_ are looked up
        X = self._validate_transform_input(X)
        return self._gradient_map(
            self.potential_target_, X, self.target_center_, self.source_center_
        )

    @accepts_dask
    def displacement(self, X):
        """Displacements ``T(x) - x`` of the rows of ``X`` (dense ndarray).

        Raises a ValueError, as :meth:`transform` does, for rows whose image
        is not finite.
        """
        X = self._validate_transform_input(X)
        mapped = self._transform_array(X)
        return mapped - dense_rows(X, 0, X.shape[0], mapped.dtype)

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        # CPU copies: a model fitted on a GPU unpickles on a CPU-only machine.
        for name in ("potential_source_", "potential_target_"):
            if name in state:
                state[name] = module_state_to_cpu(state[name])
        return state


class _MinimaxTrainer:
    """Alternating Adam updates of ``g`` (inner) and ``f`` (outer).

    One iteration is ``n_inner`` steps on

    .. math:: L_g = \\mathbb{E}_x[f(∇g(x)) - \\langle x, ∇g(x)\\rangle]
              + λ\\, \\mathbb{E}_x[τ(s(∇g(x) - x))]

    and one step on :math:`L_f = \\mathbb{E}_y[f(y)] - \\mathbb{E}_x[f(∇g(x))]`,
    in the networks' coordinates (each sample centred, divided by ``s``;
    ``offset`` is the difference of the means, so that
    :meth:`displacement` is in data units). The loop has no host
    synchronisation: batches are drawn by a device generator and λ is a
    Python float.
    """

    def __init__(
        self,
        g,
        f,
        source,
        target,
        *,
        penalty,
        scale,
        offset,
        batch_size,
        n_inner,
        learning_rate,
        generator,
    ):
        self.g, self.f = g, f
        self.source, self.target = source, target
        self.penalty = penalty
        self.scale = scale
        self.offset = offset
        self.batch_size = batch_size
        self.n_inner = n_inner
        self.generator = generator
        # betas of Makkuva et al.'s implementation
        self.g_params = list(g.parameters())
        self.opt_g = torch.optim.Adam(self.g_params, lr=learning_rate, betas=(0.5, 0.9))
        self.opt_f = torch.optim.Adam(
            f.parameters(), lr=learning_rate, betas=(0.5, 0.9)
        )

    def snapshot(self):
        """A copy of both networks and optimiser states."""
        return copy.deepcopy(
            (
                self.g.state_dict(),
                self.f.state_dict(),
                self.opt_g.state_dict(),
                self.opt_f.state_dict(),
            )
        )

    def restore(self, state):
        """Return to a :meth:`snapshot` (the state is copied, not consumed)."""
        g, f, opt_g, opt_f = copy.deepcopy(state)
        self.g.load_state_dict(g)
        self.f.load_state_dict(f)
        self.opt_g.load_state_dict(opt_g)
        self.opt_f.load_state_dict(opt_f)

    def _batch(self, data):
        idx = torch.randint(
            data.shape[0],
            (self.batch_size,),
            generator=self.generator,
            device=data.device,
        )
        return data[idx]

    def displacement(self, x, mapped):
        """``T(x) - x`` in data units for network coordinates ``x ↦ mapped``."""
        return self.offset + self.scale * (mapped - x)

    def g_loss(self, x, lam):
        mapped = self.g.gradient(x, create_graph=True)
        loss = (self.f(mapped) - (x * mapped).sum(1)).mean()
        if self.penalty is not None and lam > 0:
            penalty = self.penalty.value(self.displacement(x, mapped)).mean()
            loss = loss + lam * penalty
        return loss

    def train(self, lam, n_steps, progress=None):
        g, f = self.g.train(), self.f.train()
        for _ in range(n_steps):
            for _ in range(self.n_inner):
                loss_g = self.g_loss(self._batch(self.source), lam)
                # gradients for g only: backward() would also fill f's
                # (unused here), one more d x hidden GEMM per step
                grads = torch.autograd.grad(loss_g, self.g_params)
                for param, grad in zip(self.g_params, grads, strict=True):
                    param.grad = grad
                self.opt_g.step()
                g.clamp_weights_()
            mapped = g.gradient(self._batch(self.source)).detach()
            loss_f = f(self._batch(self.target)).mean() - f(mapped).mean()
            self.opt_f.zero_grad(set_to_none=True)
            loss_f.backward()
            self.opt_f.step()
            f.clamp_weights_()
            if progress is not None:
                progress.step()


class _MapEvaluator:
    """Spa, Res and the dimension of the current map on fixed evaluation points."""

    def __init__(self, trainer, source, target, atol, seed):
        self.trainer = trainer
        self.source, self.target = source, target
        self.atol = atol
        self.seed = seed % (2**31)

    def __call__(self):
        trainer = self.trainer
        mapped = trainer.g.gradient(self.source).detach()
        delta = trainer.displacement(self.source, mapped)
        sparsity = (
            float(trainer.penalty.value(delta).mean())
            if trainer.penalty is not None
            else float("nan")
        )
        dimension = float((delta.abs() > self.atol).sum(1, dtype=torch.float64).mean())
        # in data units, with the same projections at every evaluation
        residue = trainer.scale * sliced_wasserstein(
            mapped.double(), self.target.double(), random_state=self.seed
        )
        return {"sparsity": sparsity, "residue": residue, "dimension": dimension}
