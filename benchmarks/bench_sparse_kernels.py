"""Dense SIMD kernels versus CSR kernels for sparse point clouds.

The cost objects keep a sparse fitted cloud as CSR only below a density
cutoff (``sparse_density_cutoff``: 1 % for ℓ1 and ½ℓ2², 3 % for STVS). This
script measures where the CSR kernels start to win: the regulariser part of
the cost matrix and the gradient aggregation of 800 x 800 cells, with the
Kang 2018 harmony cells (9,015 genes, 6.3 % non-zero) thinned to lower
densities by zeroing random entries.

Usage::

    python benchmarks/bench_sparse_kernels.py
"""

import time

import numpy as np
import scipy.sparse as sp

from skmonge._kernels import separable as pw
from skmonge.datasets import load_kang2018


def _best(fn, *args, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    data = load_kang2018("harmony")
    y = np.asarray(data.target)
    X = data.data[y == "control"][:800]
    Y = data.data[y == "stimulated"][:800]
    rng = np.random.default_rng(0)
    P = np.full((200, Y.shape[0]), 1.0 / Y.shape[0], dtype=np.float32)
    print("800 x 800 cells, 9015 genes, float32; seconds (best of 3)")
    print(
        f"{'density':>8} {'tau':<5}{'C dense':>9}{'C csr':>9}{'agg dense':>11}"
        f"{'agg csr':>9}"
    )
    for keep in (1.0, 0.5, 0.25, 0.12):
        Ys = Y.copy()
        Ys.data[rng.random(Ys.nnz) > keep] = 0.0
        Ys.eliminate_zeros()
        Xs = X.copy()
        Xs.data[rng.random(Xs.nnz) > keep] = 0.0
        Xs.eliminate_zeros()
        Xd, Yd = Xs.toarray(), Ys.toarray()
        density = Ys.nnz / np.prod(Ys.shape)
        for kind, name in ((pw.KIND_L1, "l1"), (pw.KIND_STVS, "stvs")):
            # compile on a tiny problem first
            pw.separable_tau_pairwise(Xd[:2], Yd[:2], kind, 1.0)
            pw.separable_tau_pairwise_csr(Xd[:2], sp.csr_matrix(Yd[:2]), kind, 1.0)
            pw.separable_grad_tau_aggregate(Xd[:2], Yd[:2], P[:2, :2], kind, 1.0)
            pw.separable_grad_tau_aggregate_csr(
                Xd[:2], sp.csr_matrix(Yd[:2]), P[:2, :2], kind, 1.0
            )
            times = (
                _best(pw.separable_tau_pairwise, Xd, Yd, kind, 1.0),
                _best(pw.separable_tau_pairwise_csr, Xd, Ys, kind, 1.0),
                _best(pw.separable_grad_tau_aggregate, Xd[:200], Yd, P, kind, 1.0),
                _best(pw.separable_grad_tau_aggregate_csr, Xd[:200], Ys, P, kind, 1.0),
            )
            print(
                f"{density:>8.3%} {name:<5}"
                + "".join(
                    f"{t:>{w}.3f}" for t, w in zip(times, (9, 9, 11, 9), strict=True)
                )
            )


if __name__ == "__main__":
    main()
