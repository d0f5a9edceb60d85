"""Cost matrix of a fit on CSR input: default source chunks against fixed ones.

A fit on sparse ``X`` computes its cost matrix by chunks of densified source
rows, and every chunk makes a few passes over the whole target cloud
(validation, norms, the density test of the regulariser kernel). By default
chunks may take up to an eighth of the cost matrix; ``chunk_size`` fixes
them. This script times ``EntropicSparseMap._fit_cost_matrix`` on the
``bench_scale.py`` cells (harmony resampled, CSR, float32, elastic ℓ1) with
the default and with the rows the fixed 64 MiB budget alone would give, in
the same run, and prints the ratio. The two differ only where an eighth of
the cost matrix exceeds that budget (n = m above about 11,600 in float32).
POT has no cost matrix for sparse clouds to compare with (``ot.dist`` needs
dense arrays).

Measured 2026-12-04 on 2 cores, n = m = 16,000, 20,000 genes: 242.2 s with
the default (347-row chunks) against 290.3 s with 182-row chunks.

Usage::

    python benchmarks/bench_fit_chunks.py [--n 16000] [--genes 20000]
"""

import argparse
import time

import numpy as np
from bench_scale import make_cells

from skmonge import EntropicSparseMap
from skmonge.costs import make_cost
from skmonge.entropic import _CHUNK_BYTES


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16000)
    parser.add_argument("--genes", type=int, default=20000)
    args = parser.parse_args()
    n, d = args.n, args.genes
    X, _, _ = make_cells(n, sparse=True, genes=d)
    source, target = X[:n], X[n:]
    cost = make_cost("elastic_l1", gamma=1.0)
    itemsize = np.dtype(np.float32).itemsize
    fixed = max(1, _CHUNK_BYTES // (itemsize * (2 * n + 3 * d)))
    seconds = {}
    for name, chunk in (("default", None), (f"fixed {fixed} rows", fixed)):
        est = EntropicSparseMap(chunk_size=chunk)
        start = time.perf_counter()
        est._fit_cost_matrix(cost, source, target)
        seconds[name] = time.perf_counter() - start
        print(f"n = m = {n}, {d} genes, CSR, chunks {name}: {seconds[name]:.1f} s")
    default, other = seconds.values()
    print(f"fixed / default: {other / default:.2f}x")


if __name__ == "__main__":
    main()
