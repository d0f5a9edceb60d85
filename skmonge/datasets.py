"""Synthetic transport tasks with a known sparse Monge map.

The generators of §5.1 of Cuturi, Klein & Ablin (2023) and of Chen, Xie &
Zhang (the synthesized perturbation task and the eight Gaussians), and the
Kang et al. (2018) PBMC subsets. Each generator returns the two
populations pooled as ``(X, y)`` (``y = 0`` source, ``y = 1`` target), the
layout every skmonge estimator fits on, plus the ground-truth map.
"""

from __future__ import annotations

import numbers
import os
import pathlib

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "make_sparse_monge",
    "SparseMongeMap",
    "make_perturbation",
    "make_eight_gaussians",
    "load_kang2018",
    "make_inverse_ot",
    "make_limited_pairs",
    "DiffeomorphicPairs",
]


class SparseMongeMap:
    r"""Ground-truth map of :func:`make_sparse_monge`.

    ``pattern="constant"``:
    :math:`T^*(x) = [e^{x_1}, …, e^{x_s}, x_{s+1}, …, x_d]`.

    ``pattern="x_dependent"``: with :math:`n_1 = \sum_{i \le s} x_i^2` and
    :math:`n_2 = \sum_{s < i \le 2s} x_i^2`, the exponential is applied to the
    first group when :math:`n_1 > n_2` and to the second group otherwise.

    Calling the object maps the rows of an array; :meth:`support` returns the
    boolean mask of the coordinates each point moves along.
    """

    def __init__(self, n_active, pattern):
        self.n_active = n_active
        self.pattern = pattern

    def support(self, X):
        """Boolean mask (n_samples, n_features) of the displaced coordinates."""
        X = np.asarray(X)
        s = self.n_active
        mask = np.zeros(X.shape, dtype=bool)
        if self.pattern == "constant":
            mask[:, :s] = True
        else:
            first = np.sum(X[:, :s] ** 2, axis=1) > np.sum(X[:, s : 2 * s] ** 2, axis=1)
            mask[first, :s] = True
            mask[~first, s : 2 * s] = True
        return mask

    def __call__(self, X):
        X = np.asarray(X)
        return np.where(self.support(X), np.exp(X), X)

    def __repr__(self):
        return f"SparseMongeMap(n_active={self.n_active}, pattern={self.pattern!r})"


def _check_positive_int(**values):
    """ValueError naming the first argument that is not an integer >= 1."""
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def make_sparse_monge(
    n_samples=1000,
    n_features=10,
    n_active=2,
    pattern="constant",
    n_target=None,
    random_state=None,
):
    """Source ``U[0,1]^d`` and its image under a sparse ground-truth map.

    Source points ``x_i`` and fresh points ``x̃_j`` are drawn i.i.d. from
    ``U[0, 1]^d``; the target sample is ``y_j = T^*(x̃_j)`` (the protocol of
    §5.1, so that source and target are independent samples).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of source points.
    n_features : int, default=10
        Dimension ``d``.
    n_active : int, default=2
        Number ``s`` of displaced coordinates (``2 s <= d`` for the
        x-dependent pattern).
    pattern : {"constant", "x_dependent"}, default="constant"
        Sparsity pattern of the displacement.
    n_target : int, default=None
        Number of target points (``n_samples`` when None).
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples + n_target, n_features)
        Source rows first, then target rows.
    y : ndarray of shape (n_samples + n_target,)
        0 for source rows, 1 for target rows.
    true_map : SparseMongeMap
        The ground-truth map ``T^*`` (callable on arrays; ``.support(X)`` gives
        the true displacement support).
    """
    _check_positive_int(n_samples=n_samples, n_features=n_features, n_active=n_active)
    if pattern not in ("constant", "x_dependent"):
        raise ValueError(
            f"pattern must be 'constant' or 'x_dependent', got {pattern!r}."
        )
    needed = n_active if pattern == "constant" else 2 * n_active
    if needed > n_features:
        raise ValueError(
            f"pattern={pattern!r} with n_active={n_active} needs at least "
            f"{needed} features, got n_features={n_features}."
        )
    n_target = n_samples if n_target is None else int(n_target)
    rng = check_random_state(random_state)
    true_map = SparseMongeMap(int(n_active), pattern)
    source = rng.uniform(size=(n_samples, n_features))
    target = true_map(rng.uniform(size=(n_target, n_features)))
    X = np.vstack([source, target])
    y = np.concatenate([np.zeros(n_samples, dtype=int), np.ones(n_target, dtype=int)])
    return X, y, true_map


def make_perturbation(
    n_samples=500,
    n_features=250,
    n_perturbed=20,
    shift=100.0,
    noise=0.1,
    n_target=None,
    random_state=None,
):
    r"""Synthesized single-cell perturbation task (Chen, Xie & Zhang, §5.1).

    Control cells (the source) and perturbed cells (the target) are
    independent samples of ``N(0, I_d)`` "expression" profiles. In the
    perturbed cells ``n_perturbed`` randomly chosen genes are shifted by a
    strong, gene-specific amount, and every other gene gets extra noise:

    .. math::
        x \sim N(0, I_d), \qquad
        y_t = z_t + δ_t \ (t ∈ S), \qquad
        y_t = z_t + \text{noise}\cdot ξ_t \ (t ∉ S),

    with ``z ~ N(0, I_d)``, ``ξ ~ N(0, I_d)``, ``|S| = n_perturbed`` and
    ``δ_t = ±\text{shift}\cdot U(0.1, 1)`` (random sign: up- or
    down-regulated). The optimal map translates the genes of ``S`` and
    rescales the others by :math:`\sqrt{1 + \text{noise}^2}`, a
    displacement of :math:`≈ \text{noise}^2 |x_t| / 2`, below the paper's
    dimension threshold 1e-2 for typical cells at the default noise, so the
    true displacement dimension is ``n_perturbed``. ``(n_samples,
    n_features, n_perturbed) = (500, 250, 20)`` is the task of the earlier
    draft's Appendix K (shift intensity 100); ``(4000, 3000, 100)`` that of
    Tables 1-3.

    Parameters
    ----------
    n_samples : int, default=500
        Number of control (source) cells.
    n_features : int, default=250
        Number of genes ``d``.
    n_perturbed : int, default=20
        Number of truly perturbed genes ``k <= d``.
    shift : float, default=100.0
        Largest absolute shift of a perturbed gene.
    noise : float, default=0.1
        Standard deviation of the extra noise on the other genes.
    n_target : int, default=None
        Number of perturbed (target) cells (``n_samples`` when None).
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples + n_target, n_features)
        Control rows first, then perturbed rows.
    y : ndarray of shape (n_samples + n_target,)
        0 for control (source) rows, 1 for perturbed (target) rows.
    perturbed_genes : ndarray of int, shape (n_perturbed,)
        Sorted indices of the truly perturbed genes.
    """
    _check_positive_int(
        n_samples=n_samples, n_features=n_features, n_perturbed=n_perturbed
    )
    if n_perturbed > n_features:
        raise ValueError(f"n_perturbed={n_perturbed} exceeds n_features={n_features}.")
    if not np.isfinite(shift) or shift <= 0:
        raise ValueError(f"shift must be a positive number, got {shift!r}.")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}.")
    n_target = n_samples if n_target is None else int(n_target)
    _check_positive_int(n_target=n_target)
    rng = check_random_state(random_state)
    perturbed = np.sort(rng.choice(n_features, size=n_perturbed, replace=False))
    sign = rng.choice([-1.0, 1.0], size=n_perturbed)
    delta = sign * shift * rng.uniform(0.1, 1.0, size=n_perturbed)
    source = rng.standard_normal((n_samples, n_features))
    target = rng.standard_normal((n_target, n_features))
    unperturbed = np.ones(n_features, dtype=bool)
    unperturbed[perturbed] = False
    target[:, unperturbed] += noise * rng.standard_normal(
        (n_target, int(unperturbed.sum()))
    )
    target[:, perturbed] += delta
    X = np.vstack([source, target])
    y = np.concatenate([np.zeros(n_samples, dtype=int), np.ones(n_target, dtype=int)])
    return X, y, perturbed


def make_eight_gaussians(
    n_samples=1000, radius=5.0, std=0.5, source_std=1.0, random_state=None
):
    """The eight-Gaussians example of Chen, Xie & Zhang (Fig. 4), in 2-d.

    The source is ``N(0, source_std² I_2)`` at the centre; the target an
    equal mixture of eight ``N(m_c, std² I_2)`` whose means ``m_c`` lie
    evenly on the circle of radius ``radius``. A sparse map moves each point
    along one axis where it can, which shows the sparsity/feasibility
    trade-off of λ.

    Returns
    -------
    X : ndarray of shape (2 * n_samples, 2)
        Source rows first, then target rows.
    y : ndarray of shape (2 * n_samples,)
        0 for source rows, 1 for target rows.
    """
    _check_positive_int(n_samples=n_samples)
    for name, value in (("radius", radius), ("std", std), ("source_std", source_std)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    rng = check_random_state(random_state)
    angles = 2.0 * np.pi * np.arange(8) / 8.0
    centres = radius * np.column_stack([np.cos(angles), np.sin(angles)])
    source = source_std * rng.standard_normal((n_samples, 2))
    target = centres[rng.randint(0, 8, size=n_samples)]
    target = target + std * rng.standard_normal((n_samples, 2))
    X = np.vstack([source, target])
    y = np.concatenate([np.zeros(n_samples, dtype=int), np.ones(n_samples, dtype=int)])
    return X, y


_KANG_SUBSETS = {"harmony": "kang2018_harmony.npz", "liger": "kang2018_liger.npz"}


def load_kang2018(subset="harmony", lognorm=True, as_frame=False, return_X_y=False):
    """Kang et al. 2018 PBMCs, control vs IFN-β stimulated (bundled subsets).

    Real 10x single-cell RNA-seq (doi:10.1038/nbt.4042, GEO GSE96583); see
    ``skmonge/data/README.md`` for provenance, licences and caveats.

    Parameters
    ----------
    subset : {"harmony", "liger"} or path-like, default="harmony"
        ``"harmony"``: 1000 + 1000 cells × 9015 genes, with inferred cell
        types; ``"liger"``: 300 + 300 cells × 249 genes. A path reads another
        ``.npz`` of the same layout (e.g. the scGen subset used by the
        benchmarks).
    lognorm : bool, default=True
        For files holding raw counts (``layer == "counts"``), normalise each
        cell to 10,000 total counts and apply ``log1p`` (what
        ``sc.pp.normalize_total(target_sum=1e4); sc.pp.log1p`` does); else
        return the counts. Files that are already log-normalised are
        returned as stored.
    as_frame : bool, default=False
        Return ``data`` as a pandas DataFrame (sparse columns) indexed by
        barcode with gene names as columns, and ``target`` as a Series.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``data`` (CSR float32, cells × genes), ``target`` (``"control"`` /
        ``"stimulated"``), ``feature_names`` (gene symbols), ``cell_names``
        (barcodes), ``cell_type`` (or None), ``DESCR``.
    (X, y) : tuple if ``return_X_y``
    """
    from importlib import resources

    import scipy.sparse as sp
    from sklearn.utils import Bunch

    package_data = resources.files("skmonge") / "data"
    if isinstance(subset, str) and subset in _KANG_SUBSETS:
        source = package_data / _KANG_SUBSETS[subset]
    elif isinstance(subset, (str, os.PathLike)) and os.path.isfile(subset):
        source = pathlib.Path(subset)
    else:
        raise ValueError(
            f"subset must be one of {sorted(_KANG_SUBSETS)} or the path of an "
            f".npz file, got {subset!r}."
        )
    with source.open("rb") as handle:
        arrays = dict(np.load(handle, allow_pickle=False))
    X = sp.csr_matrix(
        (arrays["X_data"], arrays["X_indices"], arrays["X_indptr"]),
        shape=tuple(arrays["X_shape"]),
    )
    if lognorm and str(arrays["layer"]) == "counts":
        library_size = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        X = (sp.diags(1e4 / library_size) @ X.astype(np.float64)).tocsr()
        X.data = np.log1p(X.data)
    X = X.astype(np.float32)
    y = arrays["condition"].astype(object)
    genes = arrays["genes"].astype(object)
    cells = arrays["cells"].astype(object)
    cell_type = arrays.get("cell_type_inferred", arrays.get("cell_type"))
    if as_frame:
        import pandas as pd

        X = pd.DataFrame.sparse.from_spmatrix(X, index=cells, columns=genes)
        y = pd.Series(y, index=cells, name="condition")
    if return_X_y:
        return X, y
    descr = (package_data / "README.md").read_text(encoding="utf-8")
    return Bunch(
        data=X,
        target=y,
        feature_names=genes,
        cell_names=cells,
        cell_type=None if cell_type is None else cell_type.astype(object),
        DESCR=descr,
    )


# --- inverse-OT tasks of Howard et al. (LearnedCostMap)
#
# The paper (Appendix C.1, D.1) names these tasks but does not define them;
# the constructions below are ours, chosen so that the ground truth is known
# exactly and held-out pairs can be drawn from the same map.


def _inverse_ot_pairs(name, n, rng):
    """``n`` ground-truth pairs ``(x_k, T*(x_k))`` of the 2-d task ``name``."""
    if name == "t_shape":
        # Source: the bar of a T, target: its stem; the bar's left end goes to
        # the stem's foot, its right end to the top (comonotone in u).
        u = rng.uniform(-1.0, 1.0, n)
        source = np.c_[u, np.ones(n)]
        target = np.c_[np.zeros(n), -1.0 + 0.95 * (u + 1.0)]
    elif name == "moons":
        # The two half circles of ``sklearn.datasets.make_moons``, point t of
        # the upper moon paired with point t of the lower one.
        t = rng.uniform(0.0, np.pi, n)
        source = np.c_[np.cos(t), np.sin(t)]
        target = np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)]
    else:  # spiral
        # One arm of an Archimedean spiral and the same arm turned by a
        # quarter turn counter-clockwise, (x1, x2) -> (-x2, x1).
        t = rng.uniform(np.pi / 2, 3 * np.pi, n)
        source = np.c_[t * np.cos(t), t * np.sin(t)] / (3 * np.pi)
        target = source @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    return source, target


def make_inverse_ot(name="t_shape", n_samples=128, noise=0.0, random_state=None):
    r"""Fully paired 2-d inverse-OT tasks: T-shape, moons and spiral.

    The three tasks of Appendix C.1 of Howard et al., in our own exact
    construction (the paper shows but does not define them); every source
    row ``x_k`` is paired with the target row ``y_k = T^*(x_k)``:

    ``"t_shape"``
        :math:`x = (u, 1)`, :math:`T^*(x) = (0, -1 + 0.95(u + 1))`,
        :math:`u \sim U[-1, 1]`: the bar of a T is mapped monotonically onto
        its stem. The pairing is optimal for every cost
        :math:`h(z)` with :math:`∂_1∂_2 h > 0` (e.g. a quadratic with a
        positive off-diagonal term), a symmetric convex cost, whereas for
        ½ℓ2² every coupling of the two segments costs the same.
    ``"moons"``
        :math:`x = (\cos t, \sin t)`, :math:`T^*(x) = (1 - \cos t, ½ - \sin t)`,
        :math:`t \sim U[0, π]` (the two moons of ``make_moons``): a point
        reflection, which no convex translation-invariant cost makes optimal.
    ``"spiral"``
        :math:`x = t(\cos t, \sin t) / 3π`, :math:`T^*(x) = R_{π/2}\,x`,
        :math:`t \sim U[π/2, 3π]`: a counter-clockwise quarter turn of a
        spiral arm.

    Held-out pairs come from another ``random_state``: the map does not
    depend on it.

    Parameters
    ----------
    name : {"t_shape", "moons", "spiral"}, default="t_shape"
    n_samples : int, default=128
        Number of pairs.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to every point after
        pairing (the pairs are then only approximately the map).
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (2 * n_samples, 2)
        Source rows, then target rows.
    y : ndarray of shape (2 * n_samples,)
        0 for source rows, 1 for target rows.
    pair_id : ndarray of shape (2 * n_samples,)
        ``k`` for the k-th source row and its partner, the k-th target row
        (the ``pair_id`` fit parameter of :class:`~skmonge.LearnedCostMap`).
    """
    if name not in ("t_shape", "moons", "spiral"):
        raise ValueError(f"name must be 't_shape', 'moons' or 'spiral', got {name!r}.")
    _check_positive_int(n_samples=n_samples)
    if not noise >= 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}.")
    rng = check_random_state(random_state)
    source, target = _inverse_ot_pairs(name, int(n_samples), rng)
    X = np.vstack([source, target])
    if noise > 0:
        X = X + noise * rng.normal(size=X.shape)
    y = np.repeat([0, 1], n_samples)
    pair_id = np.tile(np.arange(n_samples), 2)
    return X, y, pair_id


class _MonotoneDiffeomorphism:
    r"""Random diffeomorphism :math:`Φ = A_2∘σ_2∘A_1∘σ_1` of :math:`\mathbb R^d`.

    :math:`A_l(u) = Q_l\operatorname{diag}(s_l)u + c_l` (rotation, positive
    scales) and the element-wise :math:`σ_l(t) = t + a\sin(ωt + φ)` with
    :math:`|aω| \le 0.6`, so that :math:`σ_l' ≥ 0.4 > 0`.
    """

    def __init__(self, n_features, rng):
        d = n_features
        self.layers = []
        for _ in range(2):
            Q, R = np.linalg.qr(rng.normal(size=(d, d)))
            Q = Q * np.sign(np.diag(R))
            scales = rng.uniform(0.6, 1.4, d)
            omega = rng.uniform(2.0, 5.0, d)
            amp = rng.uniform(0.2, 0.6, d) / omega
            phase = rng.uniform(0.0, 2 * np.pi, d)
            shift = rng.uniform(-0.5, 0.5, d)
            self.layers.append((amp, omega, phase, Q * scales, shift))

    def __call__(self, U):
        Z = np.asarray(U, dtype=np.float64)
        for amp, omega, phase, A, shift in self.layers:
            Z = Z + amp * np.sin(omega * Z + phase)
            Z = Z @ A.T + shift
        return Z

    def inverse(self, X):
        Z = np.asarray(X, dtype=np.float64)
        for amp, omega, phase, A, shift in reversed(self.layers):
            Z = np.linalg.solve(A, (Z - shift).T).T
            # σ^{-1} by safeguarded Newton: σ is increasing with σ' >= 0.4
            T = Z.copy()
            for _ in range(60):
                step = (T + amp * np.sin(omega * T + phase) - Z) / (
                    1.0 + amp * omega * np.cos(omega * T + phase)
                )
                T = T - step
                if np.max(np.abs(step)) < 1e-14:
                    break
            Z = T
        return Z


class DiffeomorphicPairs:
    r"""Ground truth of :func:`make_limited_pairs`.

    :math:`μ = Φ_1{}_\sharp U`, :math:`ν = Φ_2{}_\sharp U` with
    :math:`U = \mathrm{Unif}([0, 1]^d)` and the map
    :math:`T^* = Φ_2∘Φ_1^{-1}` (Appendix D.1 of Howard et al.). Calling the
    object applies :math:`T^*` to the rows of an array; :meth:`sample_pairs`
    draws fresh, fully paired test sets.
    """

    def __init__(self, n_features, rng):
        self.n_features = int(n_features)
        self.phi_source = _MonotoneDiffeomorphism(self.n_features, rng)
        self.phi_target = _MonotoneDiffeomorphism(self.n_features, rng)

    def __call__(self, X):
        return self.phi_target(self.phi_source.inverse(X))

    def sample_pairs(self, n_samples, random_state=None):
        """``n_samples`` pairs ``(Φ_1(u), Φ_2(u))``, ``u ~ U[0, 1]^d``.

        Returns
        -------
        X_source, X_target : ndarrays of shape (n_samples, n_features)
        """
        U = check_random_state(random_state).uniform(size=(n_samples, self.n_features))
        return self.phi_source(U), self.phi_target(U)

    def __repr__(self):
        return f"DiffeomorphicPairs(n_features={self.n_features})"


def make_limited_pairs(
    n_source=32, n_target=40, n_pairs=8, n_features=2, random_state=None
):
    r"""Mostly unpaired samples with a few known pairs (Appendix D.1 of Howard et al.).

    Two random diffeomorphisms :math:`Φ_1, Φ_2` of :math:`\mathbb R^d` push
    :math:`U = \mathrm{Unif}([0, 1]^d)` forward to the source and target
    distributions. The first ``n_pairs`` source and target rows share their
    uniform draw, so that :math:`y_k = Φ_2∘Φ_1^{-1}(x_k)` (known pairs, like
    traced cells); the other rows are independent draws.

    Parameters
    ----------
    n_source, n_target : int, default=32, 40
        Sample sizes (the paper uses 32/40, 128/160 and 256/320 in d = 2,
        4, 6).
    n_pairs : int, default=8
        Known pairs (at most ``min(n_source, n_target)``).
    n_features : int, default=2
    random_state : int, RandomState instance or None
        Draws the diffeomorphisms and the samples.

    Returns
    -------
    X : ndarray of shape (n_source + n_target, n_features)
    y : ndarray of shape (n_source + n_target,)
        0 for source rows, 1 for target rows.
    pair_id : ndarray of shape (n_source + n_target,)
        ``k`` for the k-th known pair (on both rows), ``-1`` elsewhere.
    task : DiffeomorphicPairs
        The ground-truth map and a sampler of held-out pairs.
    """
    _check_positive_int(n_source=n_source, n_target=n_target, n_features=n_features)
    if not isinstance(n_pairs, numbers.Integral) or not (
        0 <= n_pairs <= min(n_source, n_target)
    ):
        raise ValueError(
            f"n_pairs must be an integer in [0, min(n_source, n_target)], got "
            f"{n_pairs!r}."
        )
    rng = check_random_state(random_state)
    task = DiffeomorphicPairs(n_features, rng)
    U_pairs = rng.uniform(size=(n_pairs, n_features))
    U_source = np.vstack([U_pairs, rng.uniform(size=(n_source - n_pairs, n_features))])
    U_target = np.vstack([U_pairs, rng.uniform(size=(n_target - n_pairs, n_features))])
    X = np.vstack([task.phi_source(U_source), task.phi_target(U_target)])
    y = np.r_[np.zeros(n_source, dtype=int), np.ones(n_target, dtype=int)]
    ids = np.arange(n_pairs)
    pair_id = np.r_[
        ids, np.full(n_source - n_pairs, -1), ids, np.full(n_target - n_pairs, -1)
    ]
    return X, y, pair_id, task
