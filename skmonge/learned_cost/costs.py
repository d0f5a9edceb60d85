r"""Convex translation-invariant cost networks and the learned cost callable.

The cost of :class:`~skmonge.LearnedCostMap` is :math:`c(x, y) = h_θ(x - y)`
(or :math:`h_θ(Φ_μ(x) - Φ_ν(y))` with flows) with

.. math:: h_θ(z) = \tilde h_θ(z) \;[+\; \tilde h_θ(-z)] + α\|z\|^2 ,

:math:`\tilde h_θ` an input convex network with CELU activations (smooth, so
that :math:`∇h_θ` is differentiable and Newton's method applies to its
inversion), the reflected copy present when the cost is symmetric, and the
quadratic making :math:`h_θ` α-strongly convex (Appendix A.1.1 of Howard,
Deligiannidis, Rebeschini & Thornton). With no hidden layers the network is
absent and :math:`h = α\|z\|^2`, the squared Euclidean cost.
"""

from __future__ import annotations

import numpy as np

from .._torch import import_torch, module_state_to_cpu, to_numpy, to_tensor
from ..neural.icnn import ICNN, check_hidden_sizes

torch = import_torch()
nn = torch.nn

__all__ = ["ConvexCost", "LearnedCost", "pairwise_cost"]


class ConvexCost(nn.Module):
    r"""α-strongly convex function :math:`h_θ: \mathbb{R}^d → \mathbb{R}`.

    .. math:: h_θ(z) = \tilde h_θ(z) + \tilde h_θ(-z) - 2\tilde h_θ(0)
              + α\|z\|^2 \quad (\text{symmetric}),

    .. math:: h_θ(z) = \tilde h_θ(z) - \tilde h_θ(0)
              - \langle ∇\tilde h_θ(0), z\rangle + α\|z\|^2
              \quad (\text{otherwise}),

    normalised so that :math:`h(0) = 0` and :math:`∇h(0) = 0`, hence
    :math:`h ≥ α\|z\|^2 ≥ 0`. The removed affine part changes neither the
    transport plan nor the map (it adds :math:`\langle a, x\rangle - \langle
    a, y\rangle + b` to the cost), but it would shift the mean cost and so the
    relative ε, a degenerate direction for training.

    Parameters
    ----------
    n_features : int
        Dimension ``d``.
    hidden_sizes : sequence of int, default=(32, 32)
        Hidden widths of the ICNN :math:`\tilde h_θ`; empty for
        :math:`h = α\|z\|^2` (nothing to learn).
    alpha : float, default=0.01
        Strong-convexity modulus is ``2 α`` (Hessian :math:`⪰ 2αI`).
    symmetric : bool, default=True
        Make :math:`h` even, :math:`h(-z) = h(z)`.
    init_scale : float, default=1e-2
        Output scale of the ICNN at initialisation: the initial cost is
        :math:`α\|z\|^2` up to this scale, whose entropic map is the
        squared-Euclidean one.
    """

    def __init__(
        self,
        n_features,
        hidden_sizes=(32, 32),
        alpha=0.01,
        symmetric=True,
        init_scale=1e-2,
    ):
        super().__init__()
        self.n_features = int(n_features)
        self.alpha = float(alpha)
        self.symmetric = bool(symmetric)
        hidden_sizes = check_hidden_sizes(hidden_sizes, allow_empty=True)
        self.icnn = (
            ICNN(
                self.n_features,
                hidden_sizes,
                activation="celu",
                square_first=False,
                quadratic=False,
                init_scale=init_scale,
            )
            if hidden_sizes
            else None
        )

    def forward(self, z):
        """``h(z)`` for a batch ``z`` of shape (n, d); returns shape (n,)."""
        out = self.alpha * (z * z).sum(-1)
        if self.icnn is None:
            return out
        zero = z.new_zeros((1, z.shape[-1]))
        if self.symmetric:
            # h(0) = 0 (and ∇h(0) = 0 by symmetry)
            both = self.icnn(torch.cat([z, -z, zero]))
            n = z.shape[0]
            return out + both[:n] + both[n : 2 * n] - 2.0 * both[2 * n]
        # Remove the affine part at 0, h(z) -= h(0) + <∇h(0), z>: it changes
        # neither the plan nor the map, but would move the mean cost and hence
        # ε = relative_epsilon * mean(C) without changing anything else.
        outer = torch.is_grad_enabled()
        with torch.enable_grad():
            zero.requires_grad_(True)
            at_zero = self.icnn(zero)
            (slope,) = torch.autograd.grad(at_zero.sum(), zero, create_graph=outer)
        if not outer:
            at_zero = at_zero.detach()
        return out + self.icnn(z) - at_zero - z @ slope[0]

    def value_and_gradient(self, z, create_graph=False):
        """``(h(z), ∇h(z))`` row-wise; differentiable when ``create_graph``.

        ``z`` may be an intermediate tensor of a larger graph (e.g. pairwise
        differences of pushed-forward points); the gradient is taken with
        respect to ``z`` itself.
        """
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            value = self(z)
            (grad,) = torch.autograd.grad(value.sum(), z, create_graph=create_graph)
        if not create_graph:
            value = value.detach()
        return value, grad

    def gradient(self, z, create_graph=False):
        """``∇h(z)`` row-wise, shape (n, d)."""
        return self.value_and_gradient(z, create_graph)[1]

    def hessian(self, z):
        r"""Hessians :math:`∇^2 h(z_k)`, shape (n, d, d), from ``d`` HVPs."""
        from .inverse import hessian_rows

        return hessian_rows(self, z)

    def positive_parameters(self):
        """Weights that must stay non-negative for :math:`h` to be convex."""
        return [] if self.icnn is None else self.icnn.positive_parameters()

    @torch.no_grad()
    def clamp_weights_(self):
        """Project the constrained weights onto ``[0, ∞)`` (in place)."""
        if self.icnn is not None:
            self.icnn.clamp_weights_()
        return self


def pairwise_cost(cost, X, Y, with_gradient=False, create_graph=False):
    r"""Cost matrix :math:`C_{ij} = h(x_i - y_j)` and optionally :math:`∇h(x_i - y_j)`.

    These are ``n m`` evaluations of the network on the ``d``-dimensional
    differences, which is inherent to a learned cost; the differences are
    formed once, as an ``(n m, d)`` batch.

    Returns
    -------
    C : tensor of shape (n, m)
    G : tensor of shape (n, m, d), only when ``with_gradient``
    """
    n, m = X.shape[0], Y.shape[0]
    Z = (X[:, None, :] - Y[None, :, :]).reshape(n * m, -1)
    if not with_gradient:
        return cost(Z).reshape(n, m)
    value, grad = cost.value_and_gradient(Z, create_graph=create_graph)
    return value.reshape(n, m), grad.reshape(n, m, -1)


class LearnedCost:
    r"""The fitted cost :math:`c(x, y) = h(Φ_μ(x) - Φ_ν(y))` as a NumPy callable.

    ``cost(X, Y)`` returns the ``(n, m)`` matrix :math:`[c(x_i, y_j)]`, the
    signature :func:`skmonge.sinkhorn.sinkhorn_divergence` accepts, so the
    learned cost can be inspected, plotted or reused. The flows are the
    identity when the estimator was fitted without them.

    Parameters
    ----------
    h : ConvexCost
        The convex function :math:`h`.
    flow_source, flow_target : zuko flow or None
        :math:`Φ_μ` and :math:`Φ_ν` (the same object when shared).
    """

    def __init__(self, h, flow_source=None, flow_target=None):
        self.h_module = h
        self.flow_source = flow_source
        self.flow_target = flow_target

    # ------------------------------------------------------------ plumbing
    def _param(self):
        return next(self.h_module.parameters(), None)

    @property
    def device(self):
        """Device of the cost network (CPU after unpickling)."""
        p = self._param()
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self):
        """Floating dtype of the network's parameters."""
        p = self._param()
        return p.dtype if p is not None else torch.float64

    def _tensor(self, A):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2:
            raise ValueError(f"Expected a 2-d array, got shape {A.shape}.")
        return to_tensor(np.array(A), self.device, self.dtype)

    def push_source(self, X):
        """:math:`Φ_μ(x)` row-wise (tensor in, tensor out)."""
        from .flows import flow_forward

        return X if self.flow_source is None else flow_forward(self.flow_source, X)

    def push_target(self, Y):
        """:math:`Φ_ν(y)` row-wise (tensor in, tensor out)."""
        from .flows import flow_forward

        return Y if self.flow_target is None else flow_forward(self.flow_target, Y)

    def pull_source(self, Z):
        """:math:`Φ_μ^{-1}(z)` row-wise (tensor in, tensor out)."""
        from .flows import flow_inverse

        return Z if self.flow_source is None else flow_inverse(self.flow_source, Z)

    def pull_target(self, Z):
        """:math:`Φ_ν^{-1}(z)` row-wise (tensor in, tensor out)."""
        from .flows import flow_inverse

        return Z if self.flow_target is None else flow_inverse(self.flow_target, Z)

    # ------------------------------------------------------------ public
    def __call__(self, X, Y):
        """Cost matrix :math:`[h(Φ_μ(x_i) - Φ_ν(y_j))]_{ij}`, shape (n, m), float64."""
        with torch.no_grad():
            Xt = self.push_source(self._tensor(X))
            Yt = self.push_target(self._tensor(Y))
            rows = []
            step = max(1, 2**20 // max(1, Yt.shape[0]))
            for start in range(0, Xt.shape[0], step):
                rows.append(pairwise_cost(self.h_module, Xt[start : start + step], Yt))
            C = torch.cat(rows) if rows else Xt.new_zeros((0, Yt.shape[0]))
        return to_numpy(C, np.float64)

    def h(self, Z):
        """The convex function :math:`h` at the rows of ``Z``, shape (n,)."""
        with torch.no_grad():
            return to_numpy(self.h_module(self._tensor(Z)), np.float64)

    def grad_h(self, Z):
        r""":math:`∇h` at the rows of ``Z``, shape (n, d)."""
        return to_numpy(self.h_module.gradient(self._tensor(Z)), np.float64)

    def inverse_grad_h(self, W, tol=1e-10, max_iter=100):
        r""":math:`(∇h)^{-1}(w) = \arg\min_z h(z) - \langle z, w\rangle` row-wise."""
        from .inverse import solve_inverse_gradient

        z, _ = solve_inverse_gradient(
            self.h_module, self._tensor(W), tol=tol, max_iter=max_iter
        )
        return to_numpy(z, np.float64)

    def __getstate__(self):
        # CPU copies: a model fitted on a GPU unpickles on a CPU-only machine.
        state = self.__dict__.copy()
        shared = self.flow_source is self.flow_target
        for key in ("h_module", "flow_source", "flow_target"):
            if state[key] is not None:
                state[key] = module_state_to_cpu(state[key])
        if shared and state["flow_source"] is not None:
            state["flow_target"] = state["flow_source"]
        return state

    def __repr__(self):
        flows = (
            "none"
            if self.flow_source is None
            else ("shared" if self.flow_source is self.flow_target else "separate")
        )
        h = self.h_module
        return (
            f"LearnedCost(n_features={h.n_features}, alpha={h.alpha}, "
            f"symmetric={h.symmetric}, flows={flows!r})"
        )
