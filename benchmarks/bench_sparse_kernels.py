"""Dense SIMD kernels versus CSR kernels for sparse point clouds.

The cost objects store a fitted cloud as CSR below a density cutoff
(``sparse_density_cutoff``: 25 % for ℓ1 and STVS, for memory), and the
kernels choose by density whether to visit its non-zeros or to run on
densified blocks. This script measures where the non-zero kernels start to
win: the regulariser part of
the cost matrix and the gradient aggregation of 800 x 800 cells, with the
Kang 2018 harmony cells (9,015 genes, 6.3 % non-zero) thinned to lower
densities by zeroing random entries, or made denser by filling random
zeros with small positive values (all of them: "dense").

The regulariser part of the cost matrix has these kernels: the dense SIMD
one over every triple (``C dense``); the column kernel, which evaluates τ
only on pairs of non-zeros, for a dense array (``C cols``, used below
``TAU_COLUMN_DENSITY``) or a CSR matrix (``C csr``); for STVS, the targets
kernel over the non-zeros of the target cloud for every source row (``C
tgts``, used from there up to ``TAU_TARGET_DENSITY``); above that a CSR
cloud runs the dense kernel on densified blocks of its rows (``C blocks``).

The gradient aggregation has three kernels: the dense one, over every
(row, target, feature) triple; and the column kernel, over the non-zeros of
the target cloud feature by feature, used below
``COLUMN_AGGREGATE_DENSITY`` non-zeros, for a dense array (``agg cols``) or
a CSR matrix (``agg csr``). ``dense/cols`` is their ratio.

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
        f"{'density':>8} {'tau':<5}{'C dense':>9}{'C cols':>9}{'C csr':>9}"
        f"{'C blocks':>9}{'C tgts':>9}"
        f"{'dense/cols':>11}{'agg dense':>11}{'agg cols':>10}{'agg csr':>9}"
        f"{'dense/cols':>11}"
    )
    for keep in ("dense", 5.0, 2.5, 1.0, 0.5, 0.25, 0.12):
        Ys = Y.copy()
        Xs = X.copy()
        if keep == "dense" or keep > 1:
            # every zero filled ("dense"), or a fraction of them (keep > 1:
            # keep x the non-zeros of the cells)
            fill_x = rng.random(Xs.shape) < (1.0 if keep == "dense" else keep * 0.06)
            fill_y = rng.random(Ys.shape) < (1.0 if keep == "dense" else keep * 0.06)
            noise = rng.uniform(0.01, 0.1, Xs.shape).astype(np.float32)
            Xd = Xs.toarray() + np.where(fill_x, noise, 0).astype(np.float32)
            Yd = Ys.toarray() + np.where(fill_y[: Ys.shape[0]], noise[: Ys.shape[0]], 0)
            Yd = Yd.astype(np.float32)
            Xs, Ys = sp.csr_matrix(Xd), sp.csr_matrix(Yd)
        else:
            Ys.data[rng.random(Ys.nnz) > keep] = 0.0
            Ys.eliminate_zeros()
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
            agg = (Xd[:200], Yd, P, kind, 1.0)
            cutoffs = (
                pw.COLUMN_AGGREGATE_DENSITY,
                dict(pw.TAU_COLUMN_DENSITY),
                dict(pw.TAU_TARGET_DENSITY),
            )
            # the dense kernels, whatever Y
            pw.COLUMN_AGGREGATE_DENSITY = 0.0
            pw.TAU_COLUMN_DENSITY[kind] = 0.0
            pw.TAU_TARGET_DENSITY[kind] = 0.0
            dense_c = _best(pw.separable_tau_pairwise, Xd, Yd, kind, 1.0)
            blocks_c = _best(pw.separable_tau_pairwise_csr, Xd, Ys, kind, 1.0)
            dense_agg = _best(pw.separable_grad_tau_aggregate, *agg)
            # the column kernels, whatever Y
            pw.COLUMN_AGGREGATE_DENSITY = 1.01
            pw.TAU_COLUMN_DENSITY[kind] = 1.01
            column_c = _best(pw.separable_tau_pairwise, Xd, Yd, kind, 1.0)
            csr_c = _best(pw.separable_tau_pairwise_csr, Xd, Ys, kind, 1.0)
            column_agg = _best(pw.separable_grad_tau_aggregate, *agg)
            targets_c = np.nan
            if kind == pw.KIND_STVS:
                pw.TAU_COLUMN_DENSITY[kind] = 0.0
                pw.TAU_TARGET_DENSITY[kind] = 1.01
                targets_c = _best(pw.separable_tau_pairwise, Xd, Yd, kind, 1.0)
            (
                pw.COLUMN_AGGREGATE_DENSITY,
                pw.TAU_COLUMN_DENSITY,
                pw.TAU_TARGET_DENSITY,
            ) = cutoffs
            csr_agg = _best(
                pw.separable_grad_tau_aggregate_csr, Xd[:200], Ys, P, kind, 1.0
            )
            print(
                f"{density:>8.3%} {name:<5}{dense_c:>9.3f}{column_c:>9.3f}"
                f"{csr_c:>9.3f}{blocks_c:>9.3f}{targets_c:>9.3f}"
                f"{dense_c / column_c:>11.1f}"
                f"{dense_agg:>11.3f}"
                f"{column_agg:>10.3f}{csr_agg:>9.3f}{dense_agg / column_agg:>11.1f}"
            )


if __name__ == "__main__":
    main()
