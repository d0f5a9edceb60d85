r"""Input convex neural networks (Amos, Xu & Kolter 2017).

An :class:`ICNN` computes a function that is convex in its input,

.. math::

    z_1 &= σ_1(A_0 x + b_0), \qquad
    z_{l+1} = σ(W_l z_l + A_l x + b_l), \quad l = 1, …, L-1, \\
    φ(x) &= w_L^\top z_L + a_L^\top x + b_L + ½\, x^\top \operatorname{diag}(q)\, x ,

convex because every ``W_l`` and ``w_L`` is non-negative, ``σ`` is convex and
non-decreasing, and ``σ_1`` is convex (Makkuva et al. 2020 use a squared leaky
ReLU first layer). The optional diagonal quadratic term ``q = softplus(ρ) ≥ 0``
starts at the identity, so that ``∇φ`` starts at the identity map plus a
small perturbation: a displacement-sparse map then only has to grow the few
coordinates it moves, instead of learning ``x ↦ x`` on thousands of genes
from squared ReLUs. Non-negativity is kept by projection
(:meth:`ICNN.clamp_weights_`) after each optimiser step.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._torch import import_torch

torch = import_torch()
nn = torch.nn
F = torch.nn.functional

__all__ = ["ICNN", "check_hidden_sizes"]

_ACTIVATIONS = ("leaky_relu", "celu", "softplus")


def check_hidden_sizes(hidden_sizes, name="hidden_sizes", allow_empty=False):
    """``hidden_sizes`` as a tuple of ints ``>= 1``, or a ValueError.

    The one check of layer widths, shared by :class:`ICNN`,
    :class:`~skmonge.NeuralSparseMap` and :class:`~skmonge.LearnedCostMap`.

    Parameters
    ----------
    hidden_sizes : sequence of int
        Layer widths. Every entry must be an integer (Python or NumPy) ``>= 1``;
        floats are rejected, integral ones such as ``8.0`` included, since
        truncating ``8.7`` to 8 silently would hide a mistake, and bools and
        strings are rejected too (``True`` is not a width).
    name : str, default="hidden_sizes"
        Parameter name used in the error message.
    allow_empty : bool, default=False
        Accept an empty sequence (no hidden layer).

    Returns
    -------
    sizes : tuple of int

    Raises
    ------
    ValueError
        If ``hidden_sizes`` is not a sequence of positive integers (or is
        empty while ``allow_empty`` is False).
    """
    # a string is iterable but never a list of widths
    try:
        sizes = None if isinstance(hidden_sizes, str) else tuple(hidden_sizes)
    except TypeError:
        sizes = None
    valid = sizes is not None and (allow_empty or len(sizes) > 0)
    valid = valid and all(
        isinstance(h, numbers.Integral) and not isinstance(h, (bool, np.bool_))
        for h in sizes
    )
    if not valid or any(h < 1 for h in sizes):
        kind = "a sequence" if allow_empty else "a non-empty sequence"
        raise ValueError(
            f"{name} must be {kind} of positive integers such as (64, 64) "
            f"(floats, bools and strings are not accepted), got {hidden_sizes!r}."
        )
    return tuple(int(h) for h in sizes)


# softplus(_RHO_IDENTITY) == 1: the quadratic term starts at ½‖x‖².
_RHO_IDENTITY = math.log(math.e - 1.0)


class ICNN(nn.Module):
    """Input convex network ``φ: R^d → R`` with an optional diagonal quadratic term.

    Parameters
    ----------
    n_features : int
        Input dimension ``d``.
    hidden_sizes : sequence of int, default=(64, 64, 64, 64)
        Widths of the hidden layers ``z_1, …, z_L`` (Makkuva et al.'s default).
    activation : {"leaky_relu", "celu", "softplus"}, default="leaky_relu"
        Convex, non-decreasing activation ``σ`` of the layers after the first.
        Smooth ones (``"celu"``, ``"softplus"``) give a twice differentiable φ.
    square_first : bool, default=True
        Use ``σ_1(u) = σ(u)²`` on the first layer (Makkuva et al.); with
        ``"leaky_relu"`` this makes φ strongly convex along the first layer's
        directions and its gradient continuous. Not with ``"celu"``, whose
        square is not convex.
    quadratic : bool, default=True
        Add ``½ xᵀ diag(softplus(ρ)) x`` with ``ρ`` initialised so that the
        term starts at ``½‖x‖²``.
    negative_slope : float, default=0.2
        Slope of the leaky ReLU for negative inputs.
    init_scale : float, default=1e-2
        Scale of the output layer at initialisation; with ``quadratic=True``
        the initial gradient map is the identity up to this scale.
    """

    def __init__(
        self,
        n_features,
        hidden_sizes=(64, 64, 64, 64),
        activation="leaky_relu",
        square_first=True,
        quadratic=True,
        negative_slope=0.2,
        init_scale=1e-2,
    ):
        super().__init__()
        hidden_sizes = check_hidden_sizes(hidden_sizes)
        self.n_features = int(n_features)
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.square_first = bool(square_first)
        self.negative_slope = float(negative_slope)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {_ACTIVATIONS}, got {activation!r}."
            )
        if self.square_first and activation == "celu":
            # celu(u)^2 = (e^u - 1)^2 is concave for u < -log 2: the first layer
            # would not be convex. leaky_relu^2 (piecewise quadratic) and
            # softplus^2 (square of a non-negative convex function) are.
            raise ValueError(
                "square_first=True needs activation 'leaky_relu' or 'softplus'; "
                "celu(u)^2 is not convex."
            )

        # All the input ("skip") layers A_l x + b_l and the linear term
        # a_L^T x + b_L stacked in one unconstrained matrix: a single GEMM
        # per pass instead of L + 1; in high dimension these d x hidden
        # products are most of the cost of a training step.
        self._splits = hidden_sizes + (1,)
        self.input_layer = nn.Linear(self.n_features, sum(self._splits))
        # hidden-to-hidden layers W_l z_l: non-negative, no bias (A_l has it)
        self.hidden_layers = nn.ModuleList(
            [
                nn.Linear(a, b, bias=False)
                for a, b in zip(hidden_sizes[:-1], hidden_sizes[1:], strict=True)
            ]
        )
        self.output_layer = nn.Linear(hidden_sizes[-1], 1, bias=False)
        self.rho = (
            nn.Parameter(torch.full((self.n_features,), _RHO_IDENTITY))
            if quadratic
            else None
        )
        self.reset_parameters(init_scale)

    @property
    def quadratic(self):
        return self.rho is not None

    def reset_parameters(self, init_scale=1e-2):
        """Initialise: non-negative layers uniform in ``[0, 1/fan_in]``.

        A uniform ``[0, 1/fan_in]`` start keeps the pre-activations of the
        positive layers at the scale of their inputs (a default Kaiming start
        clamped at zero would be biased and half dead).
        """
        with torch.no_grad():
            for layer in self.hidden_layers:
                layer.weight.uniform_(0.0, 1.0 / layer.in_features)
            self.output_layer.weight.uniform_(0.0, init_scale / self.hidden_sizes[-1])
            self.input_layer.weight[-1].mul_(init_scale)
            self.input_layer.bias[-1] = 0.0
            if self.rho is not None:
                self.rho.fill_(_RHO_IDENTITY)

    def positive_parameters(self):
        """The weights that must stay non-negative for φ to be convex."""
        return [layer.weight for layer in self.hidden_layers] + [
            self.output_layer.weight
        ]

    @torch.no_grad()
    def clamp_weights_(self):
        """Project the constrained weights onto ``[0, ∞)`` (in place)."""
        for weight in self.positive_parameters():
            weight.clamp_(min=0.0)
        return self

    def _sigma(self, u):
        """The convex, non-decreasing activation σ."""
        if self.activation == "leaky_relu":
            return F.leaky_relu(u, self.negative_slope)
        if self.activation == "celu":
            return F.celu(u)
        return F.softplus(u)

    def forward(self, x):
        """``φ(x)`` for a batch ``x`` of shape (n, d); returns shape (n,)."""
        *skips, linear = self.input_layer(x).split(self._splits, dim=-1)
        z = self._sigma(skips[0])
        if self.square_first:
            z = z * z
        for hidden, skip in zip(self.hidden_layers, skips[1:], strict=True):
            z = self._sigma(hidden(z) + skip)
        out = (self.output_layer(z) + linear).squeeze(-1)
        if self.rho is not None:
            out = out + 0.5 * (x * x) @ F.softplus(self.rho)
        return out

    def gradient(self, x, create_graph=False):
        """``∇φ(x)`` row-wise, shape (n, d).

        With ``create_graph=True`` the result stays differentiable with respect
        to the parameters (training through the map ``∇φ``).
        """
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(x).sum(), x, create_graph=create_graph)
        return grad
