"""Reproduce the experiments of Howard et al. with LearnedCostMap (prints numbers).

Sections (all by default; pass names to run a subset):

``c1``  Appendix C.1, inverse OT: T-shape, moons and spiral, 128 training
        pairs, ICNN [32, 32], α = 0.01, symmetric cost, 500 iterations;
        held-out RMSE on 32 new pairs and Sinkhorn divergence
        S_ε(T#μ̃, ν̃), against the ½ℓ2² entropic map (EntropicSparseMap),
        with the wall time of each fit.
``d1``  Appendix D.1, limited labelled pairs: d = 2, 4, 6 with 32/40,
        128/160, 256/320 points, a quarter of the source points paired;
        cost h(Φ(x) - Φ(y)) with a shared flow, trained on the map ("pairs")
        or, as the paper's baseline, on the coupling matrix ("coupling");
        incorrect mass and RMSE on the training pairs, RMSE and S_ε on 128
        fresh pairs.
``d2``  Appendix D.2: 3-d Gaussians, 128 points each, ICNN [64, 64], low-rank
        (rank 2) and 2-directional losses plus the Sinkhorn fit term; the
        trailing singular value / directional spread of the displacements of
        128 new points, against the ½ℓ2² entropic map.

The datasets of C.1 and D.2 are not specified by the paper; ours are
documented in :func:`skmonge.datasets.make_inverse_ot` and below. torch
uses its default number of threads (all cores); on a busy machine set
``OMP_NUM_THREADS=1``, since small operations then stall at thread barriers.

    python benchmarks/reproduce_learned_cost.py [c1] [d1] [d2]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skmonge import EntropicSparseMap, LearnedCostMap
from skmonge.datasets import make_inverse_ot, make_limited_pairs
from skmonge.metrics import incorrect_mass, pair_rmse
from skmonge.sinkhorn import sinkhorn_divergence


def _divergence(mapped, target):
    """S_ε(T#μ̃, ν̃): ½ℓ2² cost, ε = 10 % of the mean target cost (score protocol)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return sinkhorn_divergence(mapped, target)


def _fit(est, X, y, **fit_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y, **fit_params)
        seconds = time.perf_counter() - start
    flag = "" if not caught else "  (ConvergenceWarning)"
    return seconds, flag


# ------------------------------------------------------------------------ C.1
C1_SETTINGS = {
    # T-shape: a symmetric h(x - y) suffices (paper); moons and spiral need
    # flows h(Φ_μ(x) - Φ_ν(y)) (paper), here two separate MAFs.
    "t_shape": dict(relative_epsilon=0.01),
    "moons": dict(relative_epsilon=0.01, flows="separate"),
    "spiral": dict(relative_epsilon=0.01, flows="separate"),
}


def run_c1():
    print("== C.1 inverse OT: 128 pairs, ICNN [32, 32], alpha=0.01, 500 iterations")
    print(
        f"{'task':8s} {'method':14s} {'RMSE test':>10s} {'S_eps test':>11s} "
        f"{'RMSE train':>11s} {'fit s':>7s}"
    )
    for name, settings in C1_SETTINGS.items():
        X, y, pair_id = make_inverse_ot(name, n_samples=128, random_state=0)
        X_test, _, _ = make_inverse_ot(name, n_samples=32, random_state=1)
        src, tgt = X_test[:32], X_test[32:]
        l2 = EntropicSparseMap(cost="sqeuclidean", relative_epsilon=0.01, debias=False)
        l2_seconds, _ = _fit(l2, X, y)
        est = LearnedCostMap(
            hidden_sizes=(32, 32),
            alpha=0.01,
            symmetric=True,
            n_iter=500,
            random_state=0,
            device="cpu",
            **settings,
        )
        seconds, flag = _fit(est, X, y, pair_id=pair_id)
        for label, model, secs, note in (
            ("l2 entropic", l2, l2_seconds, ""),
            ("learned cost", est, seconds, flag),
        ):
            print(
                f"{name:8s} {label:14s} {pair_rmse(model.transform(src), tgt):10.4f} "
                f"{_divergence(model.transform(src), tgt):11.4g} "
                f"{pair_rmse(model.transform(X[:128]), X[128:]):11.4f} "
                f"{secs:7.1f}{note}"
            )


# ------------------------------------------------------------------------ D.1
D1_SIZES = ((2, 32, 40), (4, 128, 160), (6, 256, 320))
D1_ITER = 300


def run_d1():
    print(
        f"== D.1 limited labelled pairs: cost h(Phi(x) - Phi(y)), shared MAF, "
        f"ICNN [32, 32], {D1_ITER} iterations, n_pairs = n_source / 4"
    )
    print(
        f"{'d':>2s} {'n':>8s} {'method':16s} {'I.M. train':>10s} {'RMSE train':>10s} "
        f"{'RMSE test':>10s} {'S_eps test':>10s} {'fit s':>7s}"
    )
    for d, n_source, n_target in D1_SIZES:
        n_pairs = n_source // 4
        X, y, pair_id, task = make_limited_pairs(
            n_source, n_target, n_pairs, n_features=d, random_state=d
        )
        src_test, tgt_test = task.sample_pairs(128, random_state=100 + d)
        ids_s, ids_t = pair_id[:n_source], pair_id[n_source:]
        paired = ids_s >= 0
        common = dict(
            hidden_sizes=(32, 32),
            flows="shared",
            flow_hidden_sizes=(32, 32),
            relative_epsilon=0.01,
            n_iter=D1_ITER,
            learning_rate=3e-3,
            flow_learning_rate=1e-3,
            random_state=0,
            device="cpu",
        )
        rows = [
            (
                "l2 entropic",
                EntropicSparseMap(
                    cost="sqeuclidean", relative_epsilon=0.01, debias=False
                ),
                {},
            )
        ]
        rows.append(
            (
                "optimise map",
                LearnedCostMap(loss="pairs", **common),
                dict(pair_id=pair_id),
            )
        )
        rows.append(
            (
                "optimise coupling",
                LearnedCostMap(loss="coupling", **common),
                dict(pair_id=pair_id),
            )
        )
        for label, model, fit_params in rows:
            seconds, flag = _fit(model, X, y, **fit_params)
            if isinstance(model, LearnedCostMap):
                plan = model.transport_plan()
            else:
                from skmonge.sinkhorn import transport_plan

                C = 0.5 * ((X[:n_source, None] - X[None, n_source:]) ** 2).sum(-1)
                plan = transport_plan(
                    C, model.potential_source_, model.potential_target_, model.epsilon_
                )
            order = np.argsort(ids_t[ids_t >= 0])
            partners = X[n_source:][ids_t >= 0][order]
            mine = X[:n_source][paired][np.argsort(ids_s[paired])]
            print(
                f"{d:2d} {n_source:>3d}/{n_target:<4d} {label:16s} "
                f"{incorrect_mass(plan, ids_s, ids_t):10.3f} "
                f"{pair_rmse(model.transform(mine), partners):10.4f} "
                f"{pair_rmse(model.transform(src_test), tgt_test):10.4f} "
                f"{_divergence(model.transform(src_test), tgt_test):10.4g} "
                f"{seconds:7.1f}{flag}"
            )


# ------------------------------------------------------------------------ D.2
def _gaussians(n, seed):
    """Source N(0, I_3); target N(m, diag(2, 0.5, 1.5)^2), m = (2, 1, 0)."""
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n, 3))
    target = rng.normal(size=(n, 3)) * np.array([2.0, 0.5, 1.5]) + np.array(
        [2.0, 1.0, 0.0]
    )
    return source, target


def _spherical_kmeans(D, k, seed=0, n_iter=100):
    """k unit directions maximising the summed best cosine (for the ½ℓ2² map)."""
    U = D / np.linalg.norm(D, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    best, best_score = None, -np.inf
    for _ in range(10):
        V = U[rng.choice(len(U), k, replace=False)]
        for _ in range(n_iter):
            labels = np.argmax(U @ V.T, axis=1)
            V = np.array(
                [
                    U[labels == j].sum(0) if np.any(labels == j) else V[j]
                    for j in range(k)
                ]
            )
            V /= np.linalg.norm(V, axis=1, keepdims=True)
        score = np.max(U @ V.T, axis=1).sum()
        if score > best_score:
            best, best_score = V, score
    return best


def _spread(D, V):
    """Mean over points of the smallest cosine distance to the directions."""
    U = D / np.linalg.norm(D, axis=1, keepdims=True)
    return float(np.mean(np.min(1.0 - U @ V.T, axis=1)))


def run_d2():
    print("== D.2 structured displacements: 3-d, 128 points, ICNN [64, 64], alpha=0.01")
    source, target = _gaussians(128, 0)
    test, test_target = _gaussians(128, 1)
    X = np.vstack([source, target])
    y = np.repeat([0, 1], 128)
    l2 = EntropicSparseMap(cost="sqeuclidean", relative_epsilon=0.01, debias=False).fit(
        X, y
    )
    D_l2 = l2.transform(test) - test
    common = dict(
        hidden_sizes=(64, 64),
        alpha=0.01,
        fit_weight=1.0,
        relative_epsilon=0.01,
        n_iter=300,
        random_state=0,
        device="cpu",
    )
    low = LearnedCostMap(loss="low_rank", rank=2, **common)
    seconds, flag = _fit(low, X, y)
    D_low = low.transform(test) - test
    head = f"{'method':22s} {'sigma_3/sigma_1':>15s} {'sigma (all)':>28s}"
    print(f"{head} {'S_eps':>8s} {'fit s':>6s}")
    for label, D, model, secs, note in (
        ("l2 entropic", D_l2, l2, 0.0, ""),
        ("learned, low_rank p=2", D_low, low, seconds, flag),
    ):
        sigma = np.linalg.svd(D, compute_uv=False)
        values = np.array2string(sigma, precision=3)
        print(
            f"{label:22s} {sigma[2] / sigma[0]:15.4f} {values:>28s} "
            f"{_divergence(model.transform(test), test_target):8.4f} {secs:6.1f}{note}"
        )
    two = LearnedCostMap(loss="k_directional", n_directions=2, **common)
    seconds, flag = _fit(two, X, y)
    D_two = two.transform(test) - test
    V_l2 = _spherical_kmeans(D_l2, 2)
    print(
        f"{'method':22s} {'spread (mean min d_cos)':>24s} {'S_eps':>8s} {'fit s':>6s}"
    )
    print(
        f"{'l2 entropic (k-means)':22s} {_spread(D_l2, V_l2):24.4f} "
        f"{_divergence(l2.transform(test), test_target):8.4f}"
    )
    print(
        f"{'learned, 2 directions':22s} {_spread(D_two, two.directions_):24.4f} "
        f"{_divergence(two.transform(test), test_target):8.4f} {seconds:6.1f}{flag}"
    )
    print("learned directions:", np.array2string(two.directions_, precision=3))


if __name__ == "__main__":
    sections = sys.argv[1:] or ["c1", "d1", "d2"]
    for section in sections:
        {"c1": run_c1, "d1": run_d1, "d2": run_d2}[section]()
        print()
