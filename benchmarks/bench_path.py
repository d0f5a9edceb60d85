"""Time of a γ path against one fit, on the Kang 2018 harmony subset (all genes).

Issue goal: a 10-γ :func:`skmonge.sparsity_path` in at most 3 times one fit.
Printed: one default fit (``EntropicSparseMap(cost=...)``, ε by its default
rule), the same fit plus the evaluation the path does at each γ (the
displacement of every source cell), the path with warm starts and the same
path with cold starts, their ratios, and the path itself (γ, moved fraction,
moved genes per cell, Sinkhorn iterations). POT and OTT-JAX have no γ path
(nor elastic costs), so there is no peer column.

Usage::

    python benchmarks/bench_path.py [--cost elastic_l1] [--n-gammas 10]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from skmonge import EntropicSparseMap, sparsity_path
from skmonge.datasets import load_kang2018


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", default="elastic_l1")
    parser.add_argument("--n-gammas", type=int, default=10)
    parser.add_argument("--subset", default="harmony")
    parser.add_argument("--target-dim", type=float, default=300)
    args = parser.parse_args()

    X, y = load_kang2018(args.subset, return_X_y=True)
    X = X.toarray()
    y = np.asarray(y)
    print(
        f"Kang 2018 {args.subset}: {X.shape[0]} cells x {X.shape[1]} genes; "
        f"cost={args.cost}; cpus={os.cpu_count()}"
    )
    est = EntropicSparseMap(cost=args.cost, source="control", target="stimulated")
    sparsity_path(X[::20], y[::20], estimator=est, n_gammas=2)  # JIT warm-up

    start = time.perf_counter()
    est.fit(X, y)
    one_fit = time.perf_counter() - start
    est.displacement(X[y == "control"])
    fit_and_eval = time.perf_counter() - start

    timings = {}
    for warm in (True, False):
        start = time.perf_counter()
        path = sparsity_path(
            X, y, estimator=est, n_gammas=args.n_gammas, warm_start=warm
        )
        timings[warm] = (time.perf_counter() - start, path)
    warm_s, path = timings[True]
    cold_s, cold = timings[False]
    print(f"one fit:                      {one_fit:7.2f} s")
    print(f"one fit + evaluation:         {fit_and_eval:7.2f} s")
    print(
        f"{len(path.gammas)}-gamma path, warm starts: {warm_s:7.2f} s = "
        f"{warm_s / one_fit:.2f} x one fit, {warm_s / fit_and_eval:.2f} x fit + eval"
    )
    print(
        f"{len(path.gammas)}-gamma path, cold starts: {cold_s:7.2f} s "
        f"(warm / cold = {warm_s / cold_s:.2f}); Sinkhorn iterations "
        f"{path.n_iter.sum()} warm vs {cold.n_iter.sum()} cold"
    )
    print(path.as_frame().round(4).to_string(index=False))

    start = time.perf_counter()
    chosen = EntropicSparseMap(
        cost=args.cost,
        target_dim=args.target_dim,
        source="control",
        target="stimulated",
    ).fit(X, y)
    search_s = time.perf_counter() - start
    source = X[y == "control"]
    moved = (np.abs(chosen.displacement(source)) > 1e-8).sum(axis=1).mean()
    print(
        f"target_dim={args.target_dim:g}: gamma_={chosen.gamma_:.4g} after "
        f"{len(chosen.path_.gammas)} fits, {moved:.1f} genes moved per control "
        f"cell (all cells); {search_s:.2f} s = {search_s / one_fit:.2f} x one fit"
    )
    print(chosen.path_.as_frame().round(4).to_string(index=False))


if __name__ == "__main__":
    main()
