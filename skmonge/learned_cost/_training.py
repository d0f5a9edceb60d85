r"""Training loop of :class:`~skmonge.LearnedCostMap` and its registry of losses.

:class:`_CostTrainer` owns the cost network, the flows, the learned
directions, the optimizer, the ε schedule and the warm starts carried from
one step to the next. One step (Algorithm 1 of Howard et al.)

1. solves entropic OT for :math:`C_{ij} = h_θ(Φ_μ(x_i) - Φ_ν(y_j))` with
   :math:`ε = \tilde ε_t \operatorname{mean}(C)`;
2. forms the entropic maps :math:`T_θ` and :math:`T_θ^{-1}` where the loss
   needs them;
3. takes an Adam step on

   .. math:: \mathcal L = ½\mathcal L(T_θ) + ½\mathcal L(T_θ^{-1})
             + w_{fit}\big[½S_ε(T_{θ\sharp}\hat μ, \hat ν)
             + ½S_ε(T^{-1}_{θ\sharp}\hat ν, \hat μ)\big] + \text{regularisers}.

The loss :math:`\mathcal L(T)` is looked up by name in :data:`LOSSES`; each
entry adapts one function of :mod:`.losses`, so adding a loss is adding an
entry there: the estimator takes its valid names from the registry keys and
checks the fit parameter an entry ``requires`` (its docstring and the
``_LOSS_NEEDS`` message are prose, to be updated by hand).

Importing this module does not load torch (the estimator reads
:data:`LOSSES` at import): the torch-backed modules are imported inside the
functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._torch import import_torch, to_tensor, torch_seed

__all__ = ["LOSSES"]

# Refresh the progress bar's loss (a host sync) every this many steps.
_BAR_EVERY = 10


class _Side(NamedTuple):
    """One direction of the learned map at a training step.

    The forward side maps source rows onto the target sample, the reverse
    side target rows onto the source sample (A.2.3). ``mapped`` and
    ``points`` change every step; the other fields are fixed at build time.
    """

    mapped: Any  # T(p) for the rows p of ``points``, shape (k, d)
    points: Any  # the points mapped (source rows forward, target rows reverse)
    other: Any  # the whole sample mapped onto
    pair_rows: Any  # rows of ``mapped`` holding the known pairs...
    partners: Any  # ...and the rows of their partners in ``other``
    groups: list  # (rows of ``mapped``, rows of ``other``) per known subset pair
    subset_states: list  # Sinkhorn warm starts of the subset divergences
    fit_state: dict  # Sinkhorn warm start of the fit divergence
    reverse: bool


class _Step(NamedTuple):
    """What a loss on the plan gets: :math:`K = C/ε` and the potentials."""

    K: Any
    f: Any  # dimensionless potentials f/ε and g/ε
    g: Any
    sides: list  # the _Side of each direction (empty without the maps)


@dataclass(frozen=True)
class _Loss:
    r"""An entry of :data:`LOSSES`: how to compute a loss and what it needs.

    Attributes
    ----------
    compute : callable
        ``compute(trainer, side)`` with a :class:`_Side` when
        ``per_direction``: the loss of one direction; the trainer adds
        :math:`½\mathcal L(T_θ) + ½\mathcal L(T_θ^{-1})` (only
        :math:`\mathcal L(T_θ)` with ``reverse=False``). Otherwise
        ``compute(trainer, step)`` with a :class:`_Step`, added once.
    requires : {None, "pair_id", "subset_id"}
        The fit parameter it needs (``fit`` raises a ValueError without it).
    per_direction : bool
        A loss on the maps (else on the plan: the maps are not formed
        unless the fit term needs them).
    all_points : bool
        Needs the maps at every point, not only at the known pairs.
    learns_directions : bool
        Trains ``n_directions`` directions :math:`v_l` with the cost.
    """

    compute: Callable
    requires: str | None = None
    per_direction: bool = True
    all_points: bool = True
    learns_directions: bool = False


def _pairs(trainer, side):
    r""":math:`\frac1N\sum_k\|T_θ(x_k) - y_k\|^2` on the known pairs."""
    from .losses import pairs_loss

    return pairs_loss(side.mapped[side.pair_rows], side.other[side.partners])


def _subsets(trainer, side):
    r"""Known subsets: :math:`\frac1S\sum_s S_ε(T_{θ\sharp}\hat μ_s, \hat ν_s)`."""
    from .losses import subsets_loss

    return subsets_loss(
        side.mapped, side.other, side.groups, trainer.div_eps, side.subset_states
    )


def _low_rank(trainer, side):
    r""":math:`\frac1n\sum_{i > p}σ_i^2` of the displacements :math:`T_θ(x_i) - x_i`."""
    from .losses import low_rank_loss

    return low_rank_loss(side.mapped - side.points, trainer.params.rank)


def _k_directional(trainer, side):
    r""":math:`\frac1n\sum_i -\operatorname{LSE}_l[-d_{\cos}(T_θ(x_i) - x_i, v_l)]`."""
    from .losses import k_directional_loss

    # reverse displacements point the other way: the directions are shared
    if side.reverse:
        delta = side.points - side.mapped
    else:
        delta = side.mapped - side.points
    return k_directional_loss(delta, trainer.directions)


def _coupling(trainer, step):
    r""":math:`-\langle M, π_θ\rangle`: minus the plan's mass on the known pairs."""
    from .losses import coupling_loss
    from .sinkhorn import differentiable_plan

    plan = differentiable_plan(step.K, step.f, step.g, trainer.log_a, trainer.log_b)
    return coupling_loss(plan, trainer.rows_pair, trainer.cols_pair)


#: The losses of ``LearnedCostMap(loss=...)``, by name.
LOSSES = {
    "pairs": _Loss(_pairs, requires="pair_id", all_points=False),
    "subsets": _Loss(_subsets, requires="subset_id"),
    "low_rank": _Loss(_low_rank),
    "k_directional": _Loss(_k_directional, learns_directions=True),
    "coupling": _Loss(
        _coupling, requires="pair_id", per_direction=False, all_points=False
    ),
}


class _FinalSolve(NamedTuple):
    """Sinkhorn at the end of training: absolute potentials and diagnostics."""

    f: Any  # tensor of shape (n,), f = ε f~
    g: Any  # tensor of shape (m,)
    epsilon: float
    n_iter: int
    error: float


class _CostTrainer:
    r"""Adam on the learned cost (and flows, and directions) of LearnedCostMap.

    Parameters
    ----------
    params : LearnedCostMap
        The estimator, for its (validated) hyper-parameters; only read.
    X_source, X_target : ndarray of shape (n, d), (m, d)
        The samples (float64).
    pairs : tuple of two int ndarrays
        Source and target rows of the known pairs.
    groups : list of (int ndarray, int ndarray)
        Source and target rows of each known subset pair.
    hidden, flow_hidden : tuple of int
        Checked widths of the ICNN and of the flows' conditioners.
    seed : int
        Seeds the initialisation of the networks and directions.
    device, dtype
        Torch device and floating dtype.

    Attributes
    ----------
    params : LearnedCostMap
    source, target : tensor of shape (n, d), (m, d)
    log_a, log_b : tensor of shape (n,), (m,)
        Log of the uniform weights.
    rows_pair, cols_pair : tensor of int
        Source and target rows of the known pairs.
    div_eps : float
        Absolute ε of the Sinkhorn divergences (subsets and fit term).
    cost : LearnedCost
        :math:`c(x, y) = h_θ(Φ_μ(x) - Φ_ν(y))`, trained in place.
    directions : torch.nn.Parameter or None
        The learned directions (``learns_directions`` losses).
    n_iter : int
        Steps to run: ``n_iter``, or 0 when nothing is trainable.
    history : tensor of shape (n_iter,)
        The objective at every step (on the device: no host sync).
    solver_ok : bool
        Whether :math:`(∇h_θ)^{-1}` converged at the last step.
    """

    def __init__(
        self,
        params,
        X_source,
        X_target,
        pairs,
        groups,
        *,
        hidden,
        flow_hidden,
        seed,
        device,
        dtype,
    ):
        torch = import_torch()
        self.params = params
        self.loss = LOSSES[params.loss]
        n, m = X_source.shape[0], X_target.shape[0]
        self.source = to_tensor(np.array(X_source), device, dtype)
        self.target = to_tensor(np.array(X_target), device, dtype)
        self.log_a = torch.full((n,), -math.log(n), dtype=dtype, device=device)
        self.log_b = torch.full((m,), -math.log(m), dtype=dtype, device=device)
        self._build_modules(X_source.shape[1], hidden, flow_hidden, seed, device, dtype)
        self._build_loss_inputs(pairs, groups)
        self.rel_eps = self.relative_epsilons()
        self.history = torch.zeros(self.n_iter, dtype=dtype, device=device)
        self.optimizer = torch.optim.Adam(self._param_groups) if self.n_iter else None
        # warm starts carried across steps (detached): Sinkhorn's g in
        # absolute units (ε changes with the cost) and z = (∇h)^{-1}(W)
        self.g_abs = None
        self.z_prev = None
        self.solver_ok = True

    # ------------------------------------------------------------ build
    def _build_modules(self, d, hidden, flow_hidden, seed, device, dtype):
        """The cost network, the flows and the directions; the Adam groups.

        Everything random is drawn inside one seeded block, in a fixed order
        (``h``, the flows, the directions), so that a ``random_state`` gives
        the same initialisation on every device.
        """
        torch = import_torch()
        from .costs import ConvexCost, LearnedCost
        from .flows import make_flow

        p = self.params
        with torch_seed(seed):
            h = ConvexCost(d, hidden, p.alpha, p.symmetric)
            flow_s = flow_t = None
            if p.flows is not None:
                flow_s = make_flow(d, p.flow_transforms, flow_hidden)
                flow_t = (
                    flow_s
                    if p.flows == "shared"
                    else make_flow(d, p.flow_transforms, flow_hidden)
                )
            directions = None
            if self.loss.learns_directions:
                directions = torch.nn.Parameter(torch.randn(p.n_directions, d))
        h = h.to(device=device, dtype=dtype)
        flow_list = []
        if flow_s is not None:
            flow_s = flow_s.to(device=device, dtype=dtype)
            flow_list.append(flow_s)
            if flow_t is not flow_s:
                flow_t = flow_t.to(device=device, dtype=dtype)
                flow_list.append(flow_t)
            else:
                flow_t = flow_s
        if directions is not None:
            directions = torch.nn.Parameter(directions.data.to(device, dtype))
        self.h, self.flow_source, self.flow_target = h, flow_s, flow_t
        self.flow_list = flow_list
        self.cost = LearnedCost(h, flow_s, flow_t)
        self.directions = directions

        groups = [{"params": list(h.parameters()), "lr": p.learning_rate}]
        if directions is not None:
            groups.append({"params": [directions], "lr": p.learning_rate})
        flow_params = [q for flow in flow_list for q in flow.parameters()]
        if flow_params:
            groups.append({"params": flow_params, "lr": p.flow_learning_rate})
        self._param_groups = groups
        n_trainable = sum(q.numel() for g in groups for q in g["params"])
        self.n_iter = int(p.n_iter) if n_trainable else 0

    def _build_loss_inputs(self, pairs, groups):
        """Index tensors, the divergences' ε and the fixed part of each side.

        The maps are formed at every point when the loss or the fit term
        needs them there, else only at the paired rows (``"pairs"``,
        ``"coupling"`` with ``fit_weight=0``: much cheaper when few points
        are paired).
        """
        torch = import_torch()
        from .sinkhorn import half_sq_dist

        p = self.params
        device = self.source.device
        Xs, Yt = self.source, self.target
        n, m = Xs.shape[0], Yt.shape[0]
        self.rows_pair = torch.as_tensor(pairs[0], device=device, dtype=torch.long)
        self.cols_pair = torch.as_tensor(pairs[1], device=device, dtype=torch.long)
        all_points = self.loss.all_points or p.fit_weight > 0
        self.needs_map = self.loss.per_direction or p.fit_weight > 0
        self.rows_f = torch.arange(n, device=device) if all_points else self.rows_pair
        cols_r = torch.arange(m, device=device) if all_points else self.cols_pair
        pair_pos = torch.arange(self.rows_pair.shape[0], device=device)
        self.use_reverse = bool(p.reverse)
        if not self.use_reverse:
            cols_r = cols_r[:0]
        self.cols_r = cols_r
        # ½ L(T) + ½ L(T^{-1}), or L(T) alone
        self.half = 0.5 if self.use_reverse else 1.0
        with torch.no_grad():
            div_eps = float(p.divergence_epsilon) * float(half_sq_dist(Yt, Yt).mean())
        if not div_eps > 0:
            div_eps = float(p.divergence_epsilon)
        self.div_eps = div_eps
        group_idx = [
            (
                torch.as_tensor(r, device=device, dtype=torch.long),
                torch.as_tensor(c, device=device, dtype=torch.long),
            )
            for r, c in groups
        ]
        self._forward = _Side(
            mapped=None,
            points=None,
            other=Yt,
            # rows of T_f: every source row, or the paired ones in pair order
            pair_rows=self.rows_pair if all_points else pair_pos,
            partners=self.cols_pair,
            groups=group_idx,
            subset_states=[{} for _ in groups],
            fit_state={},
            reverse=False,
        )
        self._reverse = _Side(
            mapped=None,
            points=None,
            other=Xs,
            pair_rows=self.cols_pair if all_points else pair_pos,
            partners=self.rows_pair,
            groups=[(c, r) for r, c in group_idx],
            subset_states=[{} for _ in groups],
            fit_state={},
            reverse=True,
        )

    def relative_epsilons(self):
        r"""Relative ε :math:`\tilde ε_t` of every step.

        ``relative_epsilon`` throughout, or with ``relative_epsilon_init`` a
        geometric decay :math:`\tilde ε_t = \tilde ε_0 (\tilde ε/\tilde ε_0)
        ^{t/(T-1)}` to it (the paper's T-shape schedule).
        """
        p = self.params
        steps = max(1, p.n_iter)
        if p.relative_epsilon_init is None or steps == 1:
            return np.full(steps, float(p.relative_epsilon))
        return np.geomspace(
            float(p.relative_epsilon_init), float(p.relative_epsilon), steps
        )

    # ------------------------------------------------------------ train
    def _push(self):
        """:math:`Φ_μ(x_i)` and :math:`Φ_ν(y_j)`."""
        return self.cost.push_source(self.source), self.cost.push_target(self.target)

    def _maps(self, C, G, Xp, Yp, f, g, eps):
        r"""The forward and reverse :class:`_Side` of this step.

        .. math:: T_θ(x) = Φ_ν^{-1}\big[Φ_μ(x) - (∇h_θ)^{-1}(W(x))\big],
                  \qquad W(x) = \sum_j p_j(x)\,∇h_θ(Φ_μ(x) - Φ_ν(y_j)),

        and :math:`T_θ^{-1}(y) = Φ_μ^{-1}[Φ_ν(y) + (∇h_θ)^{-1}(W'(y))]`, with
        one batched, warm-started inverse-gradient solve for both.
        """
        from .inverse import inverse_gradient
        from .maps import aggregated_gradient, displacement_guess

        torch = import_torch()
        h, cost = self.h, self.cost
        log_a, log_b = self.log_a, self.log_b
        rows_f, cols_r = self.rows_f, self.cols_r
        W_f = aggregated_gradient(C[rows_f], G[rows_f], g, log_b, eps)
        W_r = aggregated_gradient(
            C[:, cols_r], G[:, cols_r], f, log_a, eps, reverse=True
        )
        W = torch.cat([W_f, W_r])
        if self.z_prev is None:
            # first step: start the solver at the barycentric displacements
            with torch.no_grad():
                self.z_prev = torch.cat(
                    [
                        displacement_guess(C[rows_f], Xp[rows_f], Yp, g, log_b, eps),
                        displacement_guess(
                            C[:, cols_r], Xp, Yp[cols_r], f, log_a, eps, True
                        ),
                    ]
                )
        info = {}
        z = inverse_gradient(h, W, self.z_prev, info=info)
        self.solver_ok = info.get("converged", True)
        self.z_prev = z.detach()
        z_f, z_r = z[: rows_f.shape[0]], z[rows_f.shape[0] :]
        T_f = cost.pull_target(Xp[rows_f] - z_f)
        T_r = cost.pull_source(Yp[cols_r] + z_r)
        X_f, Y_r = self.source[rows_f], self.target[cols_r]
        sides = [self._forward._replace(mapped=T_f, points=X_f)]
        if self.use_reverse:
            sides.append(self._reverse._replace(mapped=T_r, points=Y_r))
        return sides

    def _fit_term(self, sides):
        r"""The fit term of the sides (the maps at every point).

        .. math:: ½S_ε(T_{θ\sharp}\hat μ, \hat ν) + ½S_ε(T^{-1}_{θ\sharp}\hat ν, \hat μ)

        (:math:`S_ε(T_{θ\sharp}\hat μ, \hat ν)` alone with ``reverse=False``).
        """
        from .sinkhorn import differentiable_sinkhorn_divergence

        fit = None
        for side in sides:
            term = self.half * differentiable_sinkhorn_divergence(
                side.mapped, side.other, self.div_eps, state=side.fit_state
            )
            fit = term if fit is None else fit + term
        return fit

    def _regularised(self, objective, C):
        r"""``objective`` plus the regularisers of the cost and the flows.

        ``cost_reg`` :math:`\operatorname{LSE}_{ij}(|C_{ij}|)^2`,
        ``symmetry_reg`` :math:`\frac1n\sum\|Φ_μ(x_i) - Φ_ν(x_i)\|^2 +
        \frac1m\sum\|Φ_μ(y_j) - Φ_ν(y_j)\|^2` (two flows only) and
        ``dirichlet_reg`` :math:`\frac1{2n}\sum\|∇Φ_μ(x_i)\|_F^2 +
        \frac1{2m}\sum\|∇Φ_ν(y_j)\|_F^2`.
        """
        from .flows import dirichlet_energy, symmetry_penalty
        from .losses import cost_matrix_penalty

        p = self.params
        flow_list, flow_s, flow_t = self.flow_list, self.flow_source, self.flow_target
        Xs, Yt = self.source, self.target
        if p.cost_reg > 0:
            objective = objective + p.cost_reg * cost_matrix_penalty(C)
        if flow_list and p.symmetry_reg > 0 and len(flow_list) == 2:
            objective = objective + p.symmetry_reg * symmetry_penalty(
                flow_s, flow_t, Xs, Yt
            )
        if flow_list and p.dirichlet_reg > 0:
            objective = objective + p.dirichlet_reg * (
                dirichlet_energy(flow_s, Xs) + dirichlet_energy(flow_t, Yt)
            )
        return objective

    def objective(self, step):
        r"""The training objective at step ``step`` (a scalar tensor with a graph).

        Sinkhorn on :math:`K = C/ε`, :math:`ε = \tilde ε_t\operatorname{mean}(C)`
        (differentiable in θ through ``mean(C)`` too), warm-started from the
        previous step's potential; then the loss, the fit term and the
        regularisers, added in this order.
        """
        from .costs import pairwise_cost
        from .sinkhorn import sinkhorn_potentials

        p = self.params
        Xp, Yp = self._push()
        if self.needs_map:
            C, G = pairwise_cost(self.h, Xp, Yp, with_gradient=True, create_graph=True)
        else:
            C, G = pairwise_cost(self.h, Xp, Yp), None
        eps = float(self.rel_eps[step]) * C.mean()
        K = C / eps
        g_init = None if self.g_abs is None else self.g_abs / eps.detach()
        f_t, g_t = sinkhorn_potentials(
            K, self.log_a, self.log_b, g_init, p.sinkhorn_tol, p.train_sinkhorn_iter
        )
        self.g_abs = (g_t * eps).detach()
        objective = C.new_zeros(())
        sides = self._maps(C, G, Xp, Yp, f_t, g_t, eps) if self.needs_map else []
        if self.loss.per_direction:
            for side in sides:
                objective = objective + self.half * self.loss.compute(self, side)
        else:
            objective = objective + self.loss.compute(self, _Step(K, f_t, g_t, sides))
        if p.fit_weight > 0:
            objective = objective + p.fit_weight * self._fit_term(sides)
        return self._regularised(objective, C)

    def step(self, step):
        """One Adam update; returns the (detached) objective before it."""
        objective = self.objective(step)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()
        # keep the ICNN convex: its constrained weights stay non-negative
        self.h.clamp_weights_()
        return objective.detach()

    def train(self, progress):
        """Run the ``n_iter`` steps, recording the objective in ``history``."""
        n_iter = self.n_iter
        for step in range(n_iter):
            objective = self.step(step)
            self.history[step] = objective
            if progress.active and (step % _BAR_EVERY == 0 or step == n_iter - 1):
                # a host sync: only every _BAR_EVERY steps, and only verbose
                progress.show(loss=f"{float(objective):.4g}")
            progress.step()

    # ------------------------------------------------------------ final
    def final_solve(self):
        r"""Sinkhorn for the trained cost at the final ``relative_epsilon``.

        Up to ``sinkhorn_max_iter`` iterations, warm-started from the last
        training step: the fitted potentials :math:`(f, g)` of
        :math:`ε = \tilde ε\operatorname{mean}(C)`.

        Raises
        ------
        ValueError
            If the mean learned cost is not positive.
        """
        torch = import_torch()
        from .costs import pairwise_cost
        from .sinkhorn import sinkhorn_log

        p = self.params
        with torch.no_grad():
            Xp, Yp = self._push()
            C = pairwise_cost(self.h, Xp, Yp)
            mean_cost = float(C.mean())
            if not mean_cost > 0:
                raise ValueError(
                    "The mean learned cost between source and target is not "
                    "positive (identical constant samples?)."
                )
            eps = float(p.relative_epsilon) * mean_cost
            g_init = None if self.g_abs is None else self.g_abs / eps
            f_t, g_t, n_sink, err = sinkhorn_log(
                C / eps,
                self.log_a,
                self.log_b,
                g_init,
                p.sinkhorn_tol,
                p.sinkhorn_max_iter,
            )
        return _FinalSolve(f_t * eps, g_t * eps, eps, n_sink, err)
