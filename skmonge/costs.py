"""Translation-invariant costs of elastic type, ``h(z) = ½‖z‖² + τ(z)``.

A cost object is the single place where a regulariser ``τ`` lives: its value,
(sub)gradient and proximal operator, and the pairwise cost matrix that the
Sinkhorn solver consumes. The entropic map, the metrics and the neural
penalties all call these methods instead of re-deriving them.

For ``h = ½‖·‖² + τ`` the convex conjugate satisfies ``∇h* = prox_τ``
(Cuturi, Klein & Ablin 2023, Prop. 4.1), which is what makes the generalized
entropic map

.. math:: T(x) = x - \\operatorname{prox}_τ\\Big(\\sum_j p_j(x)\\, ∇h(x - y_j)\\Big)

cheap to evaluate. All methods work on the rows of 2-d arrays and keep the
floating dtype of their input.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ._arrays import as_float_2d, common_float_dtype
from ._kernels import kovlp, separable

__all__ = [
    "TranslationInvariantCost",
    "SqEuclidean",
    "ElasticL1",
    "ElasticSTVS",
    "ElasticKOverlap",
    "make_cost",
]


# Largest dense copy of a sparse fitted cloud that map evaluation makes once
# per call (cost_operand) rather than densifying it for every chunk of rows.
_DENSE_OPERAND_BYTES = 2**30


def _dense_rows_and_cloud(X, Y):
    """Dense rows ``X`` and a dense or CSR cloud ``Y`` in their common dtype,
    of the same width."""
    if sp.issparse(Y):
        dtype = common_float_dtype(X, Y.data)
        X, Y = as_float_2d(X, "X", dtype), sp.csr_matrix(Y, dtype=dtype)
    else:
        dtype = common_float_dtype(X, Y)
        X, Y = as_float_2d(X, "X", dtype), as_float_2d(Y, "Y", dtype)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got {X.shape[1]} "
            f"and {Y.shape[1]}."
        )
    return X, Y, dtype


def _pair_blocks(n, m, pairs):
    """Row and column slices covering an n x m grid by blocks of <= ``pairs``."""
    width = max(1, min(m, int(pairs)))
    height = max(1, int(pairs) // width)
    for i in range(0, n, height):
        for j in range(0, m, width):
            yield slice(i, i + height), slice(j, j + width)


class TranslationInvariantCost:
    """Base class for costs ``c(x, y) = h(x - y)`` with ``h = ½‖·‖² + τ``.

    Subclasses define the regulariser ``τ`` through :meth:`tau`,
    :meth:`grad_tau`, :meth:`prox`, and the pairwise parts
    :meth:`tau_matrix` and :meth:`grad_tau_aggregate`. Everything else
    (``h``, ``∇h``, the cost matrix, the aggregated gradient of the entropic
    potential) is derived here once.
    """

    #: whether ``τ`` is identically zero (then the map is the barycentric one)
    is_quadratic = False

    #: density below which a fitted point cloud is stored CSR, whether ``X``
    #: was sparse or dense: less memory (a float32 non-zero costs 8 bytes in
    #: CSR, an entry 4 dense), and the kernels lose nothing, since those
    #: faster on dense rows run on densified blocks of the cloud
    #: (:func:`skmonge._kernels.separable.dense_row_blocks`). ½ℓ2², whose
    #: aggregate is a (serial) sparse matrix product, is stored sparse only
    #: when very sparse. 0 = always dense.
    sparse_density_cutoff = 0.0
    #: Whether τ is γ times a fixed function, so that the cost matrix is
    #: ``Q + γ L`` with ``Q = ½‖x - y‖²`` and ``L`` the ``tau_matrix`` at
    #: γ = 1: a γ path (:func:`skmonge.sparsity_path`) computes both once.
    linear_in_gamma = False

    # ------------------------------------------------------------------ τ
    def tau(self, Z):
        """Value of the regulariser ``τ(z)`` for every row ``z`` of ``Z``."""
        raise NotImplementedError

    def grad_tau(self, Z):
        """A (sub)gradient of ``τ`` at every row of ``Z`` (0 at kinks)."""
        raise NotImplementedError

    def tau_tensor(self, Z):
        """``τ`` row-wise on a torch tensor, differentiable by autograd.

        The penalty of :class:`~skmonge.NeuralSparseMap` calls this on the
        displacements of a mini-batch; it uses tensor methods only, so it
        runs on the tensor's device and this module never imports torch.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no torch implementation of tau."
        )

    def prox(self, Z):
        r"""Proximal operator of ``τ``, row-wise; equals ``∇h*``.

        .. math:: \operatorname{prox}_τ(w) = \arg\min_z ½‖z - w‖² + τ(z)
        """
        raise NotImplementedError

    def _validated_prox(self, Z):
        """:meth:`prox` of a validated ``Z`` (C-contiguous, finite, float32 or
        float64) that the caller no longer needs. Costs with an element-wise
        prox override it to overwrite ``Z``: map evaluation then neither
        validates its gradient again nor allocates a second chunk-sized
        array."""
        return self.prox(Z)

    def tau_matrix(self, X, Y):
        """Pairwise regulariser ``[τ(x_i - y_j)]_{ij}``."""
        raise NotImplementedError

    def grad_tau_aggregate(self, X, Y, P):
        r"""``[\sum_j P_{ij} ∇τ(x_i - y_j)]_i`` without forming an n×m×d array."""
        raise NotImplementedError

    # ------------------------------------------------------------- derived
    def prepare_cloud(self, Y):
        """Storage for a fitted point cloud: CSR if sparse enough, else dense.

        A ``Y`` (sparse or dense) with fewer than :attr:`sparse_density_cutoff`
        non-zeros is returned as CSR, anything else as a dense array; a ``Y``
        already in its storage format is returned as is.
        """
        size = max(1, Y.shape[0] * Y.shape[1])
        if sp.issparse(Y):
            if Y.nnz < self.sparse_density_cutoff * size:
                return sp.csr_matrix(Y)
            return Y.toarray()
        if self.sparse_density_cutoff > 0 and (
            np.count_nonzero(Y) < self.sparse_density_cutoff * size
        ):
            return sp.csr_matrix(Y)
        return Y

    def h(self, Z):
        r"""Cost of a displacement, :math:`h(z) = ½‖z‖² + τ(z)`, row-wise."""
        Z = as_float_2d(Z)
        return 0.5 * np.einsum("ij,ij->i", Z, Z) + self.tau(Z)

    def grad_h(self, Z):
        r""":math:`∇h(z) = z + ∇τ(z)`, row-wise."""
        Z = as_float_2d(Z)
        return Z + self.grad_tau(Z)

    def __call__(self, x, y):
        """Cost ``h(x - y)`` between two vectors (or rows of two arrays)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        y = np.atleast_2d(np.asarray(y, dtype=float))
        out = self.h(x - y)
        return float(out[0]) if out.shape == (1,) else out

    def cost_matrix(self, X, Y):
        r"""Cost matrix :math:`C_{ij} = h(x_i - y_j) = ½‖x_i - y_j‖² + τ(x_i - y_j)`.

        The quadratic part goes through BLAS, the regulariser through a
        parallel numba kernel (for elastic ℓ1 on a dense cloud, one kernel
        sums both); no n×m×d temporary is formed. ``Y`` may be a
        sparse matrix (the rows ``X`` are dense): separable regularisers then
        only visit the non-zeros of each ``y_j``.
        """
        X, Y, _ = _dense_rows_and_cloud(X, Y)
        # validated once here, not again in each kernel (a pass over Y each)
        return self._validated_cost_matrix(X, Y)

    def quadratic_matrix(self, X, Y):
        r"""The quadratic part :math:`½‖x_i - y_j‖^2` of :meth:`cost_matrix`,
        computed as :meth:`cost_matrix` computes it (so that
        ``quadratic_matrix + tau_matrix`` equals ``cost_matrix`` to rounding,
        not to BLAS's cancellation, where the cost sums both in one pass)."""
        X, Y, _ = _dense_rows_and_cloud(X, Y)
        return self._validated_quadratic_matrix(X, Y)

    def _validated_quadratic_matrix(self, X, Y):
        return separable.sqeuclidean_half(X, Y, check_input=False)

    def linear_parts(self, X, Y):
        r"""``(Q, L)`` with :math:`C(γ) = Q + γ L` for a cost linear in γ.

        :math:`Q = ½‖x_i - y_j‖^2` as :meth:`quadratic_matrix` computes it
        and :math:`L` the :meth:`tau_matrix` at γ = 1; a γ path computes
        them once and each γ's cost matrix in one n×m update.

        Raises
        ------
        ValueError
            If τ is not γ times a fixed function (``linear_in_gamma``).
        """
        if not self.linear_in_gamma:
            raise ValueError(
                f"{type(self).__name__}'s regulariser is not linear in gamma."
            )
        X, Y, _ = _dense_rows_and_cloud(X, Y)
        return self._validated_linear_parts(X, Y)

    def _validated_linear_parts(self, X, Y):
        """:meth:`linear_parts` of inputs validated as by :meth:`cost_matrix`;
        costs with a kernel for both parts override it."""
        unit = type(self)(**{**self._params(), "gamma": 1.0})
        return self._validated_quadratic_matrix(X, Y), unit.tau_matrix(X, Y)

    def _validated_cost_matrix(self, X, Y, columns=None):
        """:meth:`cost_matrix` of inputs as it validates them (dense
        C-contiguous finite ``X``, dense or CSR ``Y`` of the same float dtype
        and width); costs with a kernel for the whole cost override it.
        ``columns``: :meth:`support_columns` of ``Y``, for kernels that visit
        its non-zeros by feature (unused here)."""
        C = self._validated_quadratic_matrix(X, Y)
        if not self.is_quadratic:
            self._add_tau_matrix(X, Y, C)
        return C

    def _add_tau_matrix(self, X, Y, C):
        """``C += [τ(x_i - y_j)]_{ij}`` for inputs validated by
        :meth:`cost_matrix`; costs whose kernels add in place override it so
        that no second n×m array is allocated."""
        C += self.tau_matrix(X, Y)

    def cost_operand(self, Y, max_bytes=None):
        """``Y`` in the form :meth:`cost_matrix` evaluates fastest, for callers
        that evaluate many chunks of rows against the same cloud.

        The kernels run on dense blocks of a CSR cloud wherever dense rows
        are faster (:meth:`_densifies`), which for every chunk means
        densifying the whole cloud again; such a cloud is densified once
        here instead, when its dense form takes at most 1 GiB
        (``_DENSE_OPERAND_BYTES``), or ``max_bytes`` where that is more (a
        caller that holds an n×m matrix anyway). Anything else is returned
        as is.
        """
        if not sp.issparse(Y) or not self._densifies(Y):
            return Y
        max_bytes = max(_DENSE_OPERAND_BYTES, max_bytes or 0)
        itemsize = np.result_type(Y.dtype, np.float32).itemsize
        if Y.shape[0] * Y.shape[1] * itemsize > max_bytes:
            return Y
        return Y.toarray()

    def _densifies(self, Y):
        """Whether :meth:`cost_matrix` runs on dense blocks of the sparse ``Y``
        (BLAS does for the quadratic part, and a non-separable τ densifies)."""
        return True

    def support_columns(self, Y):
        """What :meth:`grad_h_aggregate` can reuse across calls on the same
        cloud ``Y``: its non-zeros by feature for separable costs on sparse
        clouds, False where ``Y`` is known to be too dense for them, None
        where the cost has nothing to reuse."""
        return None

    def grad_h_aggregate(self, X, Y, P, columns=None):
        r"""Gradient of the entropic potential at the rows of ``X``.

        .. math:: ∇f_ε(x_i) = \sum_j P_{ij} ∇h(x_i - y_j)
                  = x_i \sum_j P_{ij} - P_{i:} Y + \sum_j P_{ij} ∇τ(x_i - y_j)

        with ``P`` the Gibbs weights :math:`p_j(x_i)` (rows sum to one).
        ``Y`` may be sparse, as in :meth:`cost_matrix`; ``columns`` is
        :meth:`support_columns` of ``Y``, when the caller maps many chunks
        of rows to the same cloud.
        """
        X, Y, dtype = _dense_rows_and_cloud(X, Y)
        P = as_float_2d(P, "P", dtype)
        if P.shape != (X.shape[0], Y.shape[0]):
            raise ValueError(
                f"P must have shape (rows of X, rows of Y) = "
                f"{(X.shape[0], Y.shape[0])}, got {P.shape}."
            )
        return self._validated_grad_h_aggregate(X, Y, P, columns)

    def _validated_grad_h_aggregate(self, X, Y, P, columns=None):
        """:meth:`grad_h_aggregate` of inputs as it validates them: dense
        C-contiguous finite ``X`` and ``P`` and a dense or CSR ``Y``, all of
        one float dtype, with matching shapes. Map evaluation calls this (and
        :meth:`_validated_cost_matrix`) for each chunk of rows, the fitted
        cloud having been validated once."""
        G = self._grad_h_aggregate_sparse(X, Y, P, columns)
        if G is not None:
            return G
        # (Y^T P^T)^T is P Y without densifying a sparse Y
        G = X * P.sum(axis=1, dtype=X.dtype)[:, None] - np.asarray((Y.T @ P.T).T)
        if not self.is_quadratic:
            G += self.grad_tau_aggregate(X, Y, P)
        return G

    def _grad_h_aggregate_sparse(self, X, Y, P, columns):
        """:meth:`grad_h_aggregate` in one pass over the non-zeros of ``Y``
        (validated inputs), or None where the cost has no such kernel or
        ``Y`` is too dense for it to pay."""
        return None

    # -------------------------------------------------------------- torch
    # The torch backend of EntropicSparseMap (skmonge._torch_ot) needs the
    # same quantities on tensors, on the tensors' device. Like tau_tensor,
    # these use tensor methods only, so this module never imports torch.
    # Pairwise terms are evaluated on (rows, points, features) blocks of at
    # most ``pairs`` (row, point) pairs, so memory stays bounded.
    def has_tensor_methods(self):
        """Whether the torch backend can run this cost (τ, ∇τ and prox on tensors)."""
        base = TranslationInvariantCost
        return all(
            getattr(type(self), name) is not getattr(base, name)
            for name in ("tau_tensor", "grad_tau_tensor", "prox_tensor")
        )

    def grad_tau_tensor(self, Z):
        """``∇τ`` row-wise on a torch tensor (0 at kinks, as :meth:`grad_tau`)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch implementation of grad_tau."
        )

    def prox_tensor(self, Z):
        """:meth:`prox` row-wise on a torch tensor."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch implementation of prox."
        )

    def tau_matrix_tensor(self, X, Y, pairs):
        """:meth:`tau_matrix` on tensors, by blocks of at most ``pairs`` pairs."""
        out = X.new_empty((X.shape[0], Y.shape[0]))
        for rows, cols in _pair_blocks(X.shape[0], Y.shape[0], pairs):
            out[rows, cols] = self.tau_tensor(X[rows, None, :] - Y[None, cols, :])
        return out

    def grad_tau_aggregate_tensor(self, X, Y, P, pairs):
        """:meth:`grad_tau_aggregate` on tensors, by blocks of ``pairs`` pairs."""
        G = X.new_zeros(X.shape)
        for rows, cols in _pair_blocks(X.shape[0], Y.shape[0], pairs):
            grad = self.grad_tau_tensor(X[rows, None, :] - Y[None, cols, :])
            # (rows, 1, points) @ (rows, points, features): no third block
            G[rows] += (P[rows, None, cols] @ grad)[:, 0]
        return G

    def cost_matrix_tensor(self, X, Y, pairs):
        r""":meth:`cost_matrix` on tensors: :math:`½‖x_i - y_j‖^2` by a matrix
        product, clipped at 0 against cancellation, plus the regulariser."""
        C = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :]
        C.addmm_(X, Y.T, alpha=-2.0).clamp_(min=0.0).mul_(0.5)
        if not self.is_quadratic:
            C += self.tau_matrix_tensor(X, Y, pairs)
        return C

    def grad_h_aggregate_tensor(self, X, Y, P, pairs):
        r""":meth:`grad_h_aggregate` on tensors,
        :math:`x_i \sum_j P_{ij} - P_{i:} Y + \sum_j P_{ij} ∇τ(x_i - y_j)`."""
        G = X * P.sum(1, keepdim=True) - P @ Y
        if not self.is_quadratic:
            G += self.grad_tau_aggregate_tensor(X, Y, P, pairs)
        return G

    # ------------------------------------------------------------- helpers
    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self):
        return {}

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self._params().items()))))


class SqEuclidean(TranslationInvariantCost):
    r"""Squared Euclidean cost :math:`h(z) = ½‖z‖²` (``τ = 0``).

    Its entropic map is the barycentric projection :math:`\sum_j p_j(x) y_j`.
    """

    is_quadratic = True
    sparse_density_cutoff = 0.01

    def tau(self, Z):
        Z = as_float_2d(Z)
        return np.zeros(Z.shape[0], dtype=Z.dtype)

    def tau_tensor(self, Z):
        return Z.sum(-1) * 0.0

    def grad_tau_tensor(self, Z):
        return Z.new_zeros(Z.shape)

    def prox_tensor(self, Z):
        return Z.clone()

    def grad_tau(self, Z):
        return np.zeros_like(as_float_2d(Z))

    def prox(self, Z):
        return as_float_2d(Z).copy()

    def _validated_prox(self, Z):
        return Z

    def tau_matrix(self, X, Y):
        X, Y, dtype = _dense_rows_and_cloud(X, Y)
        return np.zeros((X.shape[0], Y.shape[0]), dtype=dtype)

    def grad_tau_aggregate(self, X, Y, P):
        X, Y, dtype = _dense_rows_and_cloud(X, Y)
        return np.zeros(X.shape, dtype=dtype)


def _check_gamma(gamma):
    if (
        not isinstance(gamma, numbers.Real)
        or isinstance(gamma, bool)
        or not np.isfinite(gamma)
        or gamma <= 0
    ):
        raise ValueError(f"gamma must be a positive finite number, got {gamma!r}.")
    return float(gamma)


class _SeparableElastic(TranslationInvariantCost):
    """Elastic cost whose regulariser acts coordinate-wise (ℓ1, STVS)."""

    _kind: int

    def __init__(self, gamma=1.0):
        self.gamma = _check_gamma(gamma)

    def _params(self):
        return {"gamma": self.gamma}

    # The kernels coerce their inputs (dtype, contiguity) themselves.
    def tau(self, Z):
        return separable.separable_tau_rows(Z, self._kind, self.gamma)

    def grad_tau(self, Z):
        return separable.separable_grad_tau(Z, self._kind, self.gamma)

    def _validated_prox(self, Z):
        return separable.prox_in_place(self._kind, Z, self.gamma)

    def tau_matrix(self, X, Y):
        if sp.issparse(Y):
            return separable.separable_tau_pairwise_csr(X, Y, self._kind, self.gamma)
        return separable.separable_tau_pairwise(X, Y, self._kind, self.gamma)

    def _validated_quadratic_matrix(self, X, Y):
        if sp.issparse(Y):
            return super()._validated_quadratic_matrix(X, Y)
        return separable.separable_quadratic_pairwise(
            X, Y, self._kind, check_input=False
        )

    def _validated_cost_matrix(self, X, Y, columns=None):
        if sp.issparse(Y):
            if self._route(Y) == "targets":
                # STVS over the non-zeros of Y by feature, the square included:
                # neither BLAS on densified blocks nor a CSC copy per call
                if not columns:
                    columns = separable.sparse_columns(Y)
                return separable.stvs_cost_over_target_nonzeros(
                    X, columns, Y.shape[0], self.gamma
                )
            return super()._validated_cost_matrix(X, Y)
        # one pass for ½‖z‖² + τ(z) where the kernel has one (dense ℓ1, and
        # STVS over the non-zeros of Y, given by ``columns`` when known)
        return separable.separable_cost_pairwise(
            X, Y, self._kind, self.gamma, check_input=False, columns=columns or None
        )

    def _add_tau_matrix(self, X, Y, C):
        if sp.issparse(Y):
            separable.separable_tau_pairwise_csr(X, Y, self._kind, self.gamma, out=C)
        else:
            separable.separable_tau_pairwise(
                X, Y, self._kind, self.gamma, out=C, check_input=False
            )

    def support_columns(self, Y):
        columns = separable.sparse_columns(Y)
        return False if columns is None else columns

    def _densifies(self, Y):
        # the regulariser's kernel visits the non-zeros of sparse clouds
        return self._route(Y) == "dense"

    def _route(self, Y):
        """How the τ kernels visit the sparse cloud ``Y``
        (:func:`~skmonge._kernels.separable.tau_route_for_density`)."""
        density = Y.nnz / max(1, Y.shape[0] * Y.shape[1])
        return separable.tau_route_for_density(density, self._kind)

    def _grad_h_aggregate_sparse(self, X, Y, P, columns):
        return separable.separable_grad_h_aggregate_sparse(
            X, Y, P, self._kind, self.gamma, columns
        )

    def grad_tau_aggregate(self, X, Y, P):
        if sp.issparse(Y):
            return separable.separable_grad_tau_aggregate_csr(
                X, Y, P, self._kind, self.gamma
            )
        return separable.separable_grad_tau_aggregate(X, Y, P, self._kind, self.gamma)


class ElasticL1(_SeparableElastic):
    r"""Elastic-net cost :math:`h(z) = ½‖z‖² + γ‖z‖_1`.

    :math:`\operatorname{prox}_{γ‖·‖_1}` is soft-thresholding,
    :math:`ST_γ(z) = (1 - γ/|z|)_+ z`; displacement coordinates whose
    aggregated gradient is below ``gamma`` in magnitude are exactly zero.

    Parameters
    ----------
    gamma : float, default=1.0
        Strength of the ℓ1 term (> 0).
    """

    _kind = separable.KIND_L1
    sparse_density_cutoff = 0.25
    linear_in_gamma = True

    def prox(self, Z):
        return separable.soft_threshold(as_float_2d(Z), self.gamma)

    def _validated_linear_parts(self, X, Y):
        if sp.issparse(Y):
            return super()._validated_linear_parts(X, Y)
        # both parts in one pass over the pairs where the kernel allows
        return separable.separable_linear_parts(X, Y, self._kind, check_input=False)

    def tau_tensor(self, Z):
        r""":math:`γ‖z‖_1` row-wise on a torch tensor."""
        return self.gamma * Z.abs().sum(-1)

    def grad_tau_tensor(self, Z):
        return Z.sign().mul_(self.gamma)

    def prox_tensor(self, Z):
        return Z.sign() * (Z.abs() - self.gamma).clamp_(min=0.0)

    def tau_matrix_tensor(self, X, Y, pairs):
        # ℓ1 distances have a kernel of their own, without a 3-d block
        from ._torch import import_torch

        cdist = import_torch().cdist
        out = X.new_empty((X.shape[0], Y.shape[0]))
        step = 1024
        for i in range(0, X.shape[0], step):
            out[i : i + step] = cdist(X[i : i + step], Y, p=1.0)
        return out.mul_(self.gamma)


class ElasticSTVS(_SeparableElastic):
    r"""Elastic cost with the vanishing-shrinkage regulariser of Schreck et al.

    .. math::
        h(z) = ½‖z‖² + γ² \sum_t \big(σ_t + ½ - ½ e^{-2σ_t}\big),
        \qquad σ_t = \operatorname{asinh}(|z_t| / 2γ)

    ``τ`` is non-convex but ``h`` is ½-strongly convex and
    :math:`\operatorname{prox}_τ(z) = (1 - γ²/z²)_+ z` (element-wise), which
    zeroes small coordinates like soft-thresholding but does not shrink large
    ones.

    Parameters
    ----------
    gamma : float, default=1.0
        Threshold scale (> 0).
    """

    _kind = separable.KIND_STVS
    sparse_density_cutoff = 0.25

    def prox(self, Z):
        return separable.stvs_prox(as_float_2d(Z), self.gamma)

    def tau_tensor(self, Z):
        r""":math:`γ² \sum_t (σ_t + ½ - ½e^{-2σ_t})`, ``σ_t = asinh(|z_t|/2γ)``,
        row-wise on a torch tensor."""
        sigma = (Z.abs() / (2.0 * self.gamma)).asinh()
        return self.gamma**2 * (sigma + 0.5 - 0.5 * (-2.0 * sigma).exp()).sum(-1)

    def grad_tau_tensor(self, Z):
        r""":math:`\operatorname{sign}(z)\, 2γ² / (|z| + \sqrt{z² + 4γ²})`."""
        g2 = self.gamma**2
        return Z.sign() * (2.0 * g2) / (Z.abs() + (Z * Z + 4.0 * g2).sqrt())

    def prox_tensor(self, Z):
        r""":math:`(1 - γ²/z²)_+ z` (0 at z = 0)."""
        shrink = (1.0 - self.gamma**2 / (Z * Z)).clamp_(min=0.0)
        return shrink.nan_to_num_(0.0) * Z


class ElasticKOverlap(TranslationInvariantCost):
    r"""Elastic cost with the squared k-overlap (k-support) norm.

    .. math:: h(z) = ½‖z‖² + \frac{γ}{2}‖z‖_{ovk}^2

    Its proximal operator (Argyriou, Foygel & Srebro 2012) keeps between
    ``d`` (small γ) and ``k`` (large γ) non-zero coordinates. It is not
    separable, so its pairwise kernels cost O(n m d log d).

    Parameters
    ----------
    gamma : float, default=1.0
        Weight of the squared norm (> 0).
    k : int, default=1
        Support size of the norm, ``1 <= k <= n_features``.
    """

    linear_in_gamma = True

    def __init__(self, gamma=1.0, k=1):
        self.gamma = _check_gamma(gamma)
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        self.k = int(k)

    def _params(self):
        return {"gamma": self.gamma, "k": self.k}

    def _check_k(self, d):
        if self.k > d:
            raise ValueError(
                f"k={self.k} exceeds the number of features ({d}) for the "
                "k-overlap cost."
            )

    def tau(self, Z):
        Z = as_float_2d(Z)
        self._check_k(Z.shape[1])
        return (0.5 * self.gamma) * kovlp.kovlp_sq_norm(Z, self.k)

    def grad_tau(self, Z):
        Z = as_float_2d(Z)
        self._check_k(Z.shape[1])
        return self.gamma * kovlp.kovlp_grad_half_sq(Z, self.k)

    def prox(self, Z):
        Z = as_float_2d(Z)
        self._check_k(Z.shape[1])
        return kovlp.kovlp_prox(Z, self.gamma, self.k)

    def tau_tensor(self, Z):
        r""":math:`\frac{γ}{2}‖z‖²_{ovk}` row-wise on a torch tensor."""
        self._check_k(Z.shape[-1])
        theta, sq_norm = _kovlp_tensor_parts(Z, self.k)
        return (0.5 * self.gamma) * sq_norm

    def grad_tau_tensor(self, Z):
        r""":math:`γ ∇(½‖·‖²_{ovk})(z)`: ``z_i`` where :math:`|z_i| > θ`,
        :math:`\operatorname{sign}(z_i)\, θ` elsewhere (θ: the tail level)."""
        self._check_k(Z.shape[-1])
        theta, _ = _kovlp_tensor_parts(Z, self.k)
        theta = theta.unsqueeze(-1)
        grad = Z.where(Z.abs() > theta, Z.sign() * theta)
        return grad.mul_(self.gamma)

    def prox_tensor(self, Z):
        # The prox solves a 1-d root search per row (Argyriou et al.); it is
        # applied to one chunk of rows, not pairwise, so the host kernel
        # serves every device (one transfer per chunk).
        from ._torch import import_torch

        self._check_k(Z.shape[-1])
        out = kovlp.kovlp_prox(Z.detach().cpu().numpy(), self.gamma, self.k)
        return import_torch().as_tensor(out, device=Z.device)

    # The k-overlap norm is not separable: a sparse cloud is densified.
    def tau_matrix(self, X, Y):
        self._check_k(np.shape(X)[1])
        Y = Y.toarray() if sp.issparse(Y) else Y
        M = kovlp.kovlp_sq_norm_pairwise(X, Y, self.k)
        M *= M.dtype.type(0.5 * self.gamma)
        return M

    def grad_tau_aggregate(self, X, Y, P):
        self._check_k(np.shape(X)[1])
        Y = Y.toarray() if sp.issparse(Y) else Y
        G = kovlp.kovlp_grad_aggregate(X, Y, P, self.k)
        G *= G.dtype.type(self.gamma)
        return G


def _kovlp_tensor_parts(Z, k):
    r"""Tail level θ and squared k-overlap norm of every row (last axis) of a
    tensor.

    With :math:`s = |z|^↓` and ``h = k - r - 1`` head coordinates
    (Argyriou et al. 2012, Prop. 2.1; :func:`kovlp_sq_norm`), the tail level
    is :math:`θ = \frac{1}{r+1}\sum_{i \ge h} s_i`, the ``h`` with
    :math:`s_{h-1} > θ \ge s_h` is the one chosen, and

    .. math:: ‖z‖²_{ovk} = \sum_{i < h} s_i^2 + (r + 1)\, θ^2 .

    Only the ``k`` largest entries are sorted (``topk``); the tail sums come
    from the row's ℓ1 norm. Rounding can leave no ``h`` satisfying both
    inequalities exactly; the least violating one is taken.
    """
    a = Z.abs()
    top = a.topk(k, dim=-1, sorted=True).values  # s_0 >= ... >= s_{k-1}
    head_sum = top.cumsum(-1) - top  # Σ_{i<h} s_i for h = 0..k-1
    head_sq = (top * top).cumsum(-1) - top * top
    count = k - Z.new_tensor(range(k))  # r + 1 = k - h
    theta = (a.sum(-1, keepdim=True) - head_sum) / count
    previous = top.roll(1, dims=-1)
    previous[..., 0] = float("inf")
    violation = (theta - previous).clamp(min=0.0) + (top - theta).clamp(min=0.0)
    h = violation.argmin(-1, keepdim=True)
    theta = theta.gather(-1, h)
    sq_norm = head_sq.gather(-1, h) + count.expand_as(top).gather(-1, h) * theta**2
    return theta.squeeze(-1), sq_norm.squeeze(-1)


_COSTS = {
    "sqeuclidean": SqEuclidean,
    "elastic_l1": ElasticL1,
    "elastic_stvs": ElasticSTVS,
    "elastic_kovlp": ElasticKOverlap,
}


def make_cost(cost, gamma=1.0, k=None):
    """Build a cost object from its name, or return a given cost object.

    Parameters
    ----------
    cost : str or TranslationInvariantCost
        Name of the cost, or an instance (returned unchanged).
    gamma : float
        Regularisation strength of elastic costs (ignored by ``"sqeuclidean"``).
    k : int or None
        Support size of the k-overlap norm (required for ``"elastic_kovlp"``).
    """
    if isinstance(cost, TranslationInvariantCost):
        return cost
    if cost not in _COSTS:
        raise ValueError(
            f"Unknown cost {cost!r}; expected one of {sorted(_COSTS)} or a "
            "TranslationInvariantCost instance."
        )
    if cost == "sqeuclidean":
        return SqEuclidean()
    if cost == "elastic_kovlp":
        if k is None:
            raise ValueError('cost="elastic_kovlp" needs the support size k.')
        return ElasticKOverlap(gamma=gamma, k=k)
    return _COSTS[cost](gamma=gamma)
