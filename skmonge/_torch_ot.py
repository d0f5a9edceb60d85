r"""The torch backend of :class:`~skmonge.EntropicSparseMap` (CPU or CUDA).

``EntropicSparseMap(backend="torch", device=...)`` runs the same algorithm as
the numba backend on torch tensors:

* the cost matrix :math:`C_{ij} = ½‖x_i - y_j‖^2 + τ(x_i - y_j)` from the
  cost object's tensor methods (a matrix product for the quadratic part,
  pairwise blocks of bounded size for ``τ``;
  :meth:`~skmonge.costs.TranslationInvariantCost.cost_matrix_tensor`);
* log-domain Sinkhorn with the same ε schedule and stopping rule as
  :func:`skmonge.sinkhorn.sinkhorn`,

  .. math:: f_i = -ε \log \sum_j b_j e^{(g_j - C_{ij})/ε}, \qquad
            g_j = -ε \log \sum_i a_i e^{(f_i - C_{ij})/ε},

  stopped when the row marginal error
  :math:`\sum_i |a_i e^{(f_i - f^+_i)/ε} - a_i|` (:math:`f^+` the next
  update, so the test costs nothing) is at most ``tol``; the error reaches
  the host every ``_CHECK_EVERY`` iterations only;
* the perplexity rule for ε (:func:`skmonge._epsilon.search_epsilon`);
* the entropic map :math:`x - \operatorname{prox}_τ(\sum_j p_j(x) ∇h(x -
  y_j) - \sum_i q_i(x) ∇h(x - x_i))` by chunks of rows (the second sum
  with debiasing only).

The fixed point is the numba backend's, so both give the same map up to the
tolerance (tested on CPU torch). Fitted attributes stay NumPy arrays: a model
fitted on a GPU pickles and loads on a machine without one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from ._epsilon import (
    _SEARCH_MAX_ITER,
    _SEARCH_TOL,
    WarmStart,
    search_epsilon,
    search_inputs,
)
from ._progress import Progress
from ._self_transport import never_cost
from ._torch import import_torch, resolve_device
from .sinkhorn import (
    _STAGE_TOL,
    SinkhornResult,
    _averaged_steps,
    _epsilon_schedule,
    _Relaxation,
    _symmetric_rounds,
    _warn_symmetric,
)

__all__ = ["TorchBackend"]

# Bytes of one (rows, points, features) block of a pairwise regulariser, and
# of the row blocks of the Sinkhorn updates' n x m temporaries.
_BLOCK_BYTES = {"cpu": 64 * 2**20, "cuda": 512 * 2**20}
# Iterations between two reads of the marginal error on the host.
_CHECK_EVERY = 10


class TorchBackend:
    """Tensors, cost matrices, Sinkhorn and maps of one fit on one device.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or any torch device.
    dtype : numpy dtype
        float32 or float64: the precision of the tensors.
    """

    def __init__(self, device, dtype):
        self.torch = import_torch()
        self.device = resolve_device(device)
        if device == "auto" and self.device.type == "cpu":
            warnings.warn(
                "backend='torch' with device='auto' found no CUDA device and runs "
                "on the CPU, where the default backend='numba' is faster.",
                UserWarning,
                stacklevel=4,
            )
        self.dtype = np.dtype(dtype)
        self.block_bytes = _BLOCK_BYTES.get(self.device.type, _BLOCK_BYTES["cuda"])

    # -------------------------------------------------------------- tensors
    def tensor(self, Z):
        """A dense tensor of ``Z`` (ndarray or sparse; densified) on the device."""
        if sp.issparse(Z):
            Z = Z.toarray()
        return self.torch.as_tensor(
            np.ascontiguousarray(Z, dtype=self.dtype), device=self.device
        )

    def pairs(self, n_features):
        """(row, point) pairs of one pairwise block of ``n_features`` features."""
        return max(1, self.block_bytes // (max(1, n_features) * self.dtype.itemsize))

    def row_step(self, m):
        """Rows of an n x m block of the Sinkhorn updates (float64)."""
        return max(1, self.block_bytes // (max(1, m) * 8))

    def cost_matrix(self, cost, X, Y):
        """``cost`` between the rows of two tensors (n x m tensor)."""
        return cost.cost_matrix_tensor(X, Y, self.pairs(X.shape[1]))

    # ------------------------------------------------------------- sinkhorn
    def _lse_rows(self, C, beta, epsilon):
        r""":math:`\log \sum_j e^{β_j - C_{ij}/ε}` for every row, by row blocks.

        Evaluated in float64 whatever the dtype of ``C``, as the numba
        backend accumulates: in float32 the rounding of :math:`C_{ij}/ε`
        alone would stall the marginal error above common tolerances.
        """
        torch = self.torch
        out = torch.empty(C.shape[0], dtype=torch.float64, device=C.device)
        step = self.row_step(C.shape[1])
        for i in range(0, C.shape[0], step):
            block = C[i : i + step].to(torch.float64) / -epsilon
            block += beta
            out[i : i + step] = torch.logsumexp(block, dim=1)
        return out

    def _lse_cols(self, C, alpha, epsilon):
        r""":math:`\log \sum_i e^{α_i - C_{ij}/ε}` for every column, by row
        blocks combined with ``logaddexp`` (float64, as :meth:`_lse_rows`)."""
        torch = self.torch
        total = None
        step = self.row_step(C.shape[1])
        for i in range(0, C.shape[0], step):
            block = C[i : i + step].to(torch.float64) / -epsilon
            block += alpha[i : i + step, None]
            part = torch.logsumexp(block, dim=0)
            total = part if total is None else torch.logaddexp(total, part)
        return total

    def symmetric_potential(
        self, C, epsilon, *, tol, max_iter, f_init=None, verbose=False, warn=True
    ):
        """The symmetric potential (float64 NumPy) of the symmetric ``C``
        with uniform weights, as :func:`skmonge.sinkhorn.symmetric_sinkhorn`
        finds it (``_symmetric_rounds`` over :meth:`sinkhorn`), with its
        :class:`~sklearn.exceptions.ConvergenceWarning` (``warn``)."""
        torch = self.torch
        n = C.shape[0]
        a = np.full(n, 1.0 / n)

        def solve(budget, f, g, first):
            return self.sinkhorn(
                C,
                epsilon,
                tol=tol,
                max_iter=budget,
                g_init=g,
                verbose=verbose if first else False,
            )

        def c_transform(f):
            f = torch.as_tensor(f, device=C.device)
            lse = self._lse_rows(C, f / epsilon - math.log(n), epsilon)
            return (-epsilon * lse).cpu().numpy()

        def averaged(f, budget):
            return _averaged_steps(c_transform, a, epsilon, tol, f, budget)

        f, result = _symmetric_rounds(
            solve, c_transform, averaged, a, epsilon, tol, max_iter, f_init
        )
        if warn:
            _warn_symmetric(result, tol, stacklevel=4)
        return f

    def row_spread(self, C):
        r"""Mean over rows of :math:`\bar C_i - \min_j C_{ij}`."""
        return float((C.mean(1, dtype=self.torch.float64) - C.amin(1)).mean())

    def sinkhorn(
        self,
        C,
        epsilon,
        *,
        tol,
        max_iter,
        g_init=None,
        verbose=False,
        decay=0.5,
        relaxation=True,
        warn=False,
    ):
        """Balanced log-domain Sinkhorn on ``C`` with uniform weights.

        The ε schedule (:func:`skmonge.sinkhorn._epsilon_schedule`, decay
        ``decay``, skipped for a warm start), the per-stage tolerances and
        budgets, and the adaptive over-relaxation
        (:class:`skmonge.sinkhorn._Relaxation`, fed the error every
        ``_CHECK_EVERY`` iterations; the last steps are plain, so the fixed
        point and the stopping test are those of plain Sinkhorn) are those
        of :func:`skmonge.sinkhorn.sinkhorn`, and so is the
        :class:`~sklearn.exceptions.ConvergenceWarning` (with ``warn``) when
        ``tol`` is not reached. Returns a
        :class:`~skmonge.sinkhorn.SinkhornResult` with float64 NumPy
        potentials.
        """
        torch = self.torch
        n, m = C.shape
        log_a, log_b = -math.log(n), -math.log(m)
        if g_init is not None:
            schedule = [float(epsilon)]
            g = torch.as_tensor(np.asarray(g_init, dtype=np.float64), device=C.device)
        else:
            spread = self.row_spread(C)
            schedule = _epsilon_schedule(None, float(epsilon), decay, spread)
            g = torch.zeros(m, dtype=torch.float64, device=C.device)
        relax = _Relaxation(relaxation, stride=_CHECK_EVERY)
        n_iter = 0
        err = math.inf
        plain_last = True
        progress = Progress(max_iter, "sinkhorn", verbose, every=_CHECK_EVERY)
        for stage, eps_k in enumerate(schedule):
            last = stage == len(schedule) - 1
            stage_tol = tol if last else max(tol, _STAGE_TOL)
            stage_cap = max_iter if last else n_iter + (max_iter - n_iter) // 2
            relax.reset()
            omega = relax.omega
            f = -eps_k * self._lse_rows(C, g / eps_k + log_b, eps_k)
            while True:
                g_plain = -eps_k * self._lse_cols(C, f / eps_k + log_a, eps_k)
                g = g_plain if omega == 1.0 else torch.lerp(g, g_plain, omega)
                plain_last = omega == 1.0  # the column marginal is then exact
                f_plain = -eps_k * self._lse_rows(C, g / eps_k + log_b, eps_k)
                n_iter += 1
                done = n_iter >= stage_cap
                if n_iter % _CHECK_EVERY == 0 or done:
                    # the row sums of the plan of (f, g) are a_i e^{(f - T(g))/ε}
                    ratio = ((f - f_plain) / eps_k).exp_()
                    err = float(ratio.sub_(1.0).abs_().sum() / n)
                    if not math.isfinite(err):
                        raise FloatingPointError(
                            "torch Sinkhorn produced non-finite potentials; "
                            "please report this with the inputs."
                        )
                    if progress.active:
                        progress.step(
                            _CHECK_EVERY,
                            eps=f"{eps_k:.3g}",
                            **{"marginal error": f"{err:.2e}"},
                        )
                    if done or (err <= stage_tol and (plain_last or not last)):
                        break
                    if err <= stage_tol:
                        # within tolerance with a relaxed g: finish plainly
                        relax.off = True
                        omega = 1.0
                    else:
                        omega = relax.update(err)
                f = f_plain if omega == 1.0 else torch.lerp(f, f_plain, omega)
            if n_iter >= max_iter:
                break
        progress.close(n_iter, **{"marginal error": f"{err:.2e}"})
        converged = bool(err <= tol and plain_last and eps_k == schedule[-1])
        if warn and not converged:
            warnings.warn(
                f"Sinkhorn did not converge: marginal error {err:.3e} > "
                f"tol={tol:.1e} after {n_iter} iterations (epsilon={eps_k:.4g}). "
                "Increase max_iter, or use a larger epsilon.",
                ConvergenceWarning,
                stacklevel=5,
            )
        return SinkhornResult(
            f=f.cpu().numpy(),
            g=g.cpu().numpy(),
            n_iter=n_iter,
            converged=converged,
            marginal_error=err,
            epsilon=float(eps_k),
            a=np.full(n, 1.0 / n),
            b=np.full(m, 1.0 / m),
        )

    def perplexity_epsilon(self, C, perplexity, start=None, g_init=None):
        """The perplexity rule of :func:`skmonge._epsilon.perplexity_epsilon`
        on a tensor cost matrix (uniform weights; the estimators fit at
        least two target points), its first solve warm-started from the
        target potential ``g_init`` when given."""
        torch = self.torch
        m = C.shape[1]
        spread = self.row_spread(C)
        target, rows = search_inputs(
            spread, float(C.abs().max()), perplexity, m, C.shape[0]
        )
        C_rows = C[torch.as_tensor(rows, device=C.device)]

        def solve(eps, warm):
            res = self.sinkhorn(
                C,
                eps,
                tol=_SEARCH_TOL,
                max_iter=_SEARCH_MAX_ITER,
                g_init=None if warm is None else warm.g,
            )
            g = torch.as_tensor(res.g, device=C.device)
            logits = (g / eps - math.log(m)).to(C.dtype) - C_rows / eps
            log_p = torch.log_softmax(logits, dim=1)
            entropy = -(log_p.exp() * log_p).sum(1)
            return res, float(np.median(entropy.exp().cpu().numpy()))

        warm = None if g_init is None else WarmStart(None, np.asarray(g_init))
        return search_epsilon(solve, spread, target, start, warm)

    # ----------------------------------------------------------------- maps
    def gradient_average(self, cost, rows, cloud, epsilon, exclude=None):
        r""":math:`\sum_j p_j(x) ∇h(x - s_j)` for the tensor ``rows``, with
        :math:`p_j(x) ∝ e^{(φ_j - h(x - s_j))/ε}` over ``cloud = (s, φ)``; the
        ``(row, point)`` index pairs ``exclude`` get zero weight."""
        support, potential = cloud
        C = self.cost_matrix(cost, rows, support)
        if exclude is not None and exclude[0].size:
            rows_t, cols_t = (self.torch.as_tensor(e, device=C.device) for e in exclude)
            scale = float(self.torch.maximum(C.max(), -C.min()))
            C[rows_t, cols_t] = never_cost(scale, epsilon)
        logits = (potential / epsilon).to(C.dtype) - C / epsilon
        P = self.torch.softmax(logits, dim=1)
        del C, logits
        return cost.grad_h_aggregate_tensor(rows, support, P, self.pairs(rows.shape[1]))

    def map_rows(self, cost, rows, towards, epsilon, centre=None, exclude=None):
        r""":math:`x - \operatorname{prox}_τ(\bar∇_{towards}(x) -
        \bar∇_{centre}(x))` for the tensor ``rows``, each
        :math:`\bar∇` a :meth:`gradient_average` (the second only with a
        ``centre``, the debiased map's, without the pairs ``exclude``)."""
        grad = self.gradient_average(cost, rows, towards, epsilon)
        if centre is not None:
            grad -= self.gradient_average(cost, rows, centre, epsilon, exclude)
        return rows - cost.prox_tensor(grad)
