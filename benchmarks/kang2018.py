"""The demo's table on all three Kang et al. 2018 subsets, with wall times.

harmony (bundled, 2000 cells x 9015 genes, counts -> log-CP10K), liger
(bundled, 600 x 249) and scgen (1975 x 6998, already log-normalised by scGen,
read from a path: ``../shared/data/kang2018_scgen.npz`` by default). Every
estimator available in skmonge is run (today: EntropicSparseMap with the
½ℓ2², elastic ℓ1 and elastic STVS costs over a γ grid).

Usage::

    python benchmarks/kang2018.py [--scgen PATH] [--subsets harmony liger scgen]
"""

import argparse
import os
import time

import numpy as np

from skmonge.datasets import load_kang2018
from skmonge.demo import DEFAULT_GRID, evaluate_maps, print_table

DEFAULT_SCGEN = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "kang2018_scgen.npz"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scgen", default=DEFAULT_SCGEN, help="scgen .npz path")
    parser.add_argument("--subsets", nargs="*", default=["harmony", "liger", "scgen"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for subset in args.subsets:
        source = args.scgen if subset == "scgen" else subset
        if subset == "scgen" and not os.path.isfile(source):
            print(f"\nscgen: {source} not found, skipped")
            continue
        data = load_kang2018(source)
        start = time.perf_counter()
        rows, context = evaluate_maps(
            data.data,
            data.target,
            np.asarray(data.feature_names),
            DEFAULT_GRID,
            random_state=args.seed,
            verbose=False,
        )
        n_cells, n_genes = data.data.shape
        print_table(
            rows, context, f"{subset} subset, {n_cells} cells x {n_genes} genes"
        )
        print(f"total wall time for {subset}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
