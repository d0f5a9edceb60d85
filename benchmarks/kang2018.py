"""The demo's tables on all three Kang et al. 2018 subsets, with wall times.

harmony (bundled, 2000 cells x 9015 genes, counts -> log-CP10K), liger
(bundled, 600 x 249) and scgen (1975 x 6998, already log-normalised by scGen,
read from a path: ``../shared/data/kang2018_scgen.npz`` by default).

1. The demo's grid (EntropicSparseMap with the ½ℓ2², elastic ℓ1 and elastic
   STVS costs over a γ grid): sparsity, held-out Sinkhorn divergence, RBO.
2. Per cell type (subsets with cell types: harmony, scgen), the top-20
   overlap of :func:`skmonge.metrics.group_topk_overlap` for every
   estimator: EntropicSparseMap (elastic ℓ1 and STVS with the defaults,
   and the paper's estimator: elastic ℓ1, ``debias=False``, ε = 0.1 ·
   mean(C), γ = 1) and NeuralSparseMap (``--neural-iters``
   minimax iterations; its default 2000 take about 20 min per subset on 2
   CPU cores). LearnedCostMap is not run: its cost matrix is built through
   an n x m x d tensor (54 GB on these subsets).

Usage::

    python benchmarks/kang2018.py [--scgen PATH] [--subsets harmony liger scgen]
        [--neural-iters 300] [--skip-grid]
"""

import argparse
import os
import time

import numpy as np

from skmonge import EntropicSparseMap, NeuralSparseMap
from skmonge.datasets import load_kang2018
from skmonge.demo import (
    DEFAULT_GRID,
    cell_type_fidelity,
    evaluate_maps,
    print_cell_type_table,
    print_table,
)

DEFAULT_SCGEN = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "kang2018_scgen.npz"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scgen", default=DEFAULT_SCGEN, help="scgen .npz path")
    parser.add_argument("--subsets", nargs="*", default=["harmony", "liger", "scgen"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--neural-iters", type=int, default=300)
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    for subset in args.subsets:
        source = args.scgen if subset == "scgen" else subset
        if subset == "scgen" and not os.path.isfile(source):
            print(f"\nscgen: {source} not found, skipped")
            continue
        data = load_kang2018(source)
        genes = np.asarray(data.feature_names)
        n_cells, n_genes = data.data.shape
        if not args.skip_grid:
            start = time.perf_counter()
            rows, context = evaluate_maps(
                data.data,
                data.target,
                genes,
                DEFAULT_GRID,
                random_state=args.seed,
                verbose=False,
            )
            print_table(
                rows, context, f"{subset} subset, {n_cells} cells x {n_genes} genes"
            )
            print(f"total wall time for {subset}: {time.perf_counter() - start:.1f} s")
        if data.cell_type is None:
            print(f"\n{subset}: no cell types, per-type metric skipped")
            continue
        table, fitted, seconds, _ = cell_type_fidelity(
            data.data,
            data.target,
            data.cell_type,
            estimators=estimators(args.neural_iters, args.seed),
            genes=genes,
            random_state=args.seed,
        )
        print(f"\n== {subset}: per cell type, every estimator")
        print_cell_type_table(table, first="l1")
        print(
            "fit + score seconds: "
            + ", ".join(f"{name} {value:.1f}" for name, value in seconds.items())
        )


def estimators(neural_iters, seed):
    labels = {"source": "control", "target": "stimulated"}
    return {
        "l1": EntropicSparseMap(cost="elastic_l1", **labels),
        "stvs": EntropicSparseMap(cost="elastic_stvs", **labels),
        "l1 paper": EntropicSparseMap(
            gamma=1.0, relative_epsilon=0.1, debias=False, **labels
        ),
        f"neural {neural_iters}": NeuralSparseMap(
            n_iter=neural_iters, random_state=seed, **labels
        ),
    }


if __name__ == "__main__":
    main()
