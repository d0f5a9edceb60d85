r"""Simulated-annealing control of the sparsity intensity λ (Chen, Xie & Zhang, §4.2).

Two schedules, written against two callbacks so that they can be run (and
tested) independently of any network:

``train(lam, n_steps)``
    trains the potentials for ``n_steps`` iterations with intensity ``lam``;
``evaluate()``
    returns the current map's ``{"sparsity", "residue", "dimension"}``.

:func:`anneal_tradeoff` is Algorithm 1 (low-dimensional tasks): it minimises
:math:`\mathrm{Eval} = a\,\mathrm{Spa} + (1 - a)\,\mathrm{Res}` over λ by
Metropolis moves. :func:`anneal_target_dim` is Algorithm 4 (high-dimensional
tasks): it raises λ until the mean displacement dimension meets the target,
then lowers it while the target still holds. Both use the proposal of
Algorithm 2 with radius :math:`R = \max(R_{low}, e^{-r(1 - \mathrm{Tem})})`.

Two places where the paper's pseudo-code contradicts its text are resolved
from first principles (and documented where they apply): Algorithm 3 accepts
when ``Eval_new - Eval > 0``, but Eval is *minimised* ("we accept λ if it
improves Eval"), so a move is accepted when it lowers Eval or with
probability :math:`\exp(-(\mathrm{Eval}_{new} - \mathrm{Eval})/\mathrm{Tem})`;
and Algorithm 4's second phase keeps a lowered λ only if the dimension
constraint still holds (the text: "decrease λ ... while the constraint holds").
"""

from __future__ import annotations

import math

__all__ = [
    "train_constant",
    "proposal_radius",
    "propose_intensity",
    "metropolis_accept",
    "anneal_tradeoff",
    "anneal_target_dim",
    "AnnealingHistory",
]


def proposal_radius(temperature, radius=3.0, min_radius=0.01):
    r"""Relative search radius :math:`R = \max(R_{low}, \exp(-r (1 - \mathrm{Tem})))`.

    ``R = 1`` at ``Tem = 1`` (λ may double or vanish) and shrinks
    geometrically as the temperature falls, never below ``min_radius``.
    """
    return max(min_radius, math.exp(-radius * (1.0 - temperature)))


def propose_intensity(
    lam, temperature, rng, direction="both", radius=3.0, min_radius=0.01
):
    r"""Algorithm 2: a new intensity :math:`λ (1 + U)`.

    ``U`` is uniform on ``(-R, R)`` (``direction="both"``, Algorithm 1),
    ``(0, R)`` (``"up"``) or ``(-R, 0)`` (``"down"``, the two phases of
    Algorithm 4), with ``R`` from :func:`proposal_radius`.
    """
    R = proposal_radius(temperature, radius, min_radius)
    low, high = {"both": (-R, R), "up": (0.0, R), "down": (-R, 0.0)}[direction]
    return lam * (1.0 + rng.uniform(low, high))


def metropolis_accept(eval_new, eval_current, temperature, rng):
    r"""Algorithm 3 for a minimised Eval: accept an improvement, or a worsening
    :math:`δ = \mathrm{Eval}_{new} - \mathrm{Eval} > 0` with probability
    :math:`e^{-δ/\mathrm{Tem}}`.

    A uniform number is drawn on every call, so the random stream does not
    depend on the outcome.
    """
    delta = eval_new - eval_current
    u = rng.uniform()
    return bool(delta < 0 or u < math.exp(-delta / temperature))


class AnnealingHistory:
    """Trajectory of a fit: one row per evaluation of the map.

    Columns: ``iteration`` (training iterations so far), ``lam`` (intensity used
    in the training just done), ``temperature``, ``phase`` (``"init"``,
    ``"constant"``, ``"propose"``, ``"rollback"``, ``"increase"`` or
    ``"decrease"``), ``accepted`` (for proposals; None otherwise),
    ``sparsity`` (mean τ of the displacements), ``residue`` (sliced
    Wasserstein distance to the target) and ``dimension`` (mean number of
    moved coordinates). :meth:`as_dict` gives lists, ready for
    ``pandas.DataFrame``.
    """

    columns = (
        "iteration",
        "lam",
        "temperature",
        "phase",
        "accepted",
        "sparsity",
        "residue",
        "dimension",
    )

    def __init__(self):
        self.rows = []
        self.step = 0

    def add_steps(self, n_steps):
        self.step += int(n_steps)

    def record(self, phase, lam, temperature, metrics, accepted=None):
        row = {
            "iteration": self.step,
            "lam": float(lam),
            "temperature": None if temperature is None else float(temperature),
            "phase": phase,
            "accepted": accepted,
        }
        row.update({k: float(metrics[k]) for k in ("sparsity", "residue", "dimension")})
        self.rows.append(row)

    def as_dict(self):
        return {c: [row[c] for row in self.rows] for c in self.columns}


def _counting(train, history):
    def run(lam, n_steps):
        train(lam, n_steps)
        history.add_steps(n_steps)

    return run


class _Rollback:
    """Return the model to the kept λ after a rejected proposal.

    With ``snapshot``/``restore`` callbacks the model state saved when λ was
    last kept is restored (the Markov chain then really moves between
    (λ, model) states); without them the model is trained ``n_rollback``
    iterations at the kept λ, the paper's "rollback steps", and evaluated.
    """

    def __init__(self, train, evaluate, n_rollback, snapshot, restore):
        self.train, self.evaluate = train, evaluate
        self.n_rollback = n_rollback
        self.snapshot, self.restore = snapshot, restore
        self.saved = None

    def keep(self, metrics):
        if self.snapshot is not None:
            self.saved = (self.snapshot(), metrics)

    def __call__(self, lam):
        if self.saved is not None:
            state, metrics = self.saved
            self.restore(state)
            return metrics
        self.train(lam, self.n_rollback)
        return self.evaluate()


def _temperatures(temperature, min_temperature, decay):
    """The temperatures of the annealing rounds: ``Tem_0 d^k > Tem_min``."""
    while temperature > min_temperature:
        yield temperature
        temperature *= decay


class _RangeNormaliser:
    """Min-max normalisation of Spa and Res over every evaluation so far.

    The paper normalises both to a common scale "according to their minimum
    and maximum attainable ranges"; the ranges seen during the fit are the
    ones attainable by this map, and both Evals of a comparison are computed
    with the same (current) ranges.
    """

    def __init__(self):
        self.low = {}
        self.high = {}

    def update(self, metrics):
        for key in ("sparsity", "residue"):
            v = metrics[key]
            self.low[key] = min(self.low.get(key, v), v)
            self.high[key] = max(self.high.get(key, v), v)

    def __call__(self, key, value):
        span = self.high[key] - self.low[key]
        return 0.0 if span <= 0 else (value - self.low[key]) / span


def train_constant(train, evaluate, lam, *, n_iter, n_eval_every, history=None):
    """Train ``n_iter`` iterations at a fixed λ, evaluating every ``n_eval_every``.

    Returns
    -------
    lam : float
    history : AnnealingHistory
        One ``"constant"`` row per evaluation.
    """
    history = AnnealingHistory() if history is None else history
    train = _counting(train, history)
    done = 0
    while done < n_iter:
        n_steps = min(n_eval_every, n_iter - done)
        train(lam, n_steps)
        done += n_steps
        history.record("constant", lam, None, evaluate())
    return lam, history


def anneal_tradeoff(
    train,
    evaluate,
    lam,
    *,
    tradeoff,
    rng,
    n_init,
    n_train,
    n_rollback,
    temperature=1.0,
    min_temperature=0.15,
    decay=0.95,
    radius=3.0,
    min_radius=0.01,
    patience=None,
    history=None,
    on_round=None,
    snapshot=None,
    restore=None,
):
    r"""Algorithm 1: anneal λ to minimise :math:`a\,\mathrm{Spa} + (1-a)\,\mathrm{Res}`.

    After ``n_init`` iterations at the initial λ, each round proposes λ'
    (Algorithm 2), trains ``n_train`` iterations with it and evaluates. An
    accepted λ' becomes the current intensity; a rejected one is followed by
    ``n_rollback`` iterations at the current λ so the potentials return to
    it (the map is then evaluated again, so the next comparison is against
    the state the model is really in); with ``snapshot()`` / ``restore(state)``
    callbacks the model saved at the last accepted λ is restored instead. The
    temperature decays by ``decay`` each round until it reaches
    ``min_temperature``, or until ``patience`` proposals in a row have been
    rejected (λ has settled; ``None`` never stops early).

    Returns
    -------
    lam : float
        The intensity in effect at the end.
    history : AnnealingHistory
    """
    history = AnnealingHistory() if history is None else history
    train = _counting(train, history)
    norm = _RangeNormaliser()

    def objective(metrics):
        return tradeoff * norm("sparsity", metrics["sparsity"]) + (1 - tradeoff) * norm(
            "residue", metrics["residue"]
        )

    rollback = _Rollback(train, evaluate, n_rollback, snapshot, restore)
    train(lam, n_init)
    current = evaluate()
    norm.update(current)
    history.record("init", lam, temperature, current)
    rollback.keep(current)
    settled = _Patience(patience)
    for tem in _temperatures(temperature, min_temperature, decay):
        candidate = propose_intensity(lam, tem, rng, "both", radius, min_radius)
        train(candidate, n_train)
        proposed = evaluate()
        norm.update(proposed)
        accepted = metropolis_accept(objective(proposed), objective(current), tem, rng)
        history.record("propose", candidate, tem, proposed, accepted)
        if accepted:
            lam, current = candidate, proposed
            rollback.keep(current)
        else:
            current = rollback(lam)
            norm.update(current)
            history.record("rollback", lam, tem, current)
        if on_round is not None:
            on_round(lam, current)
        if settled(accepted):
            break
    return lam, history


def anneal_target_dim(
    train,
    evaluate,
    lam,
    *,
    target_dim,
    rng,
    n_init,
    n_train,
    n_rollback,
    temperature=1.0,
    min_temperature=0.15,
    decay=0.95,
    radius=3.0,
    min_radius=0.01,
    patience=None,
    history=None,
    on_round=None,
    snapshot=None,
    restore=None,
):
    r"""Algorithm 4: meet a displacement-dimension target, then relax λ.

    Phase 1 (``"increase"``): while the mean dimension exceeds
    ``target_dim``, λ is raised by ``λ (1 + U(0, R))`` and trained
    ``n_train`` iterations. Phase 2 (``"decrease"``): for the remaining
    temperatures λ is lowered by ``λ (1 + U(-R, 0))``; the lower λ is kept
    when the dimension stays within the target, otherwise the model returns
    to the kept λ: restored from the state saved when the constraint last
    held (``snapshot`` / ``restore`` callbacks), or trained ``n_rollback``
    iterations at it (as in Algorithm 1). Restoring guarantees that the final
    map meets the constraint whenever phase 1 did. Phase 2 ends early once
    ``patience`` lower λ in a row have broken the constraint: λ has settled
    at the smallest intensity that meets it (``None``: run every
    temperature).

    Returns
    -------
    lam : float
    history : AnnealingHistory
    """
    history = AnnealingHistory() if history is None else history
    train = _counting(train, history)
    rollback = _Rollback(train, evaluate, n_rollback, snapshot, restore)
    temperatures = _temperatures(temperature, min_temperature, decay)

    train(lam, n_init)
    current = evaluate()
    history.record("init", lam, temperature, current)
    tem = None
    for tem in temperatures:
        if current["dimension"] <= target_dim:
            break
        lam = propose_intensity(lam, tem, rng, "up", radius, min_radius)
        train(lam, n_train)
        current = evaluate()
        history.record("increase", lam, tem, current)
        if on_round is not None:
            on_round(lam, current)
        tem = None  # consumed
    if current["dimension"] <= target_dim:
        rollback.keep(current)
    rest = temperatures if tem is None else _chain(tem, temperatures)
    settled = _Patience(patience)
    for tem in rest:
        candidate = propose_intensity(lam, tem, rng, "down", radius, min_radius)
        train(candidate, n_train)
        proposed = evaluate()
        accepted = proposed["dimension"] <= target_dim
        history.record("decrease", candidate, tem, proposed, accepted)
        if accepted:
            lam, current = candidate, proposed
            rollback.keep(current)
        else:
            current = rollback(lam)
            history.record("rollback", lam, tem, current)
        if on_round is not None:
            on_round(lam, current)
        if settled(accepted):
            break
    return lam, history


class _Patience:
    """Counts rejected proposals in a row; true once ``patience`` is reached."""

    def __init__(self, patience):
        self.patience = patience
        self.rejected = 0

    def __call__(self, accepted):
        self.rejected = 0 if accepted else self.rejected + 1
        return self.patience is not None and self.rejected >= self.patience


def _chain(first, rest):
    yield first
    yield from rest
