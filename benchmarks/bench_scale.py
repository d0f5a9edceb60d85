"""Fit time, transform time and peak memory of EntropicSparseMap against n.

Cells: the Kang 2018 harmony subset (9,015 genes, ~6 % non-zero, float32)
resampled per condition to ``n`` cells each, every non-zero multiplied by
``exp(N(0, 0.1²))`` so that no two cells are equal. Each size runs in a
fresh subprocess, so that its peak resident memory (``ru_maxrss``) is its
own; "data" is the resident memory right after the cells are built, "peak"
the maximum during fit and transform. Printed per n: fit seconds, seconds to
transform 2,000 new control cells, Sinkhorn iterations, peak and data RSS.
The POT peer (``ot.da.SinkhornL1l2Transport`` has no elastic cost; its
``EMDTransport``/``SinkhornTransport`` build n x m float64 matrices and a
dense plan) is timed at the smallest size only, in the same run, with
``--pot``.

Usage::

    python benchmarks/bench_scale.py [--sizes 5000 10000 20000 40000]
        [--cost elastic_l1] [--gamma 1.0] [--sparse] [--genes D] [--pot]
        [--plain]

``--plain`` fits the paper's map (``debias=False``): no self-transport
solves in the fit, one cost matrix per map evaluation.

``--genes D`` resamples the genes too (drawn with replacement, so that ``D``
may exceed 9,015), for atlas-sized gene panels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def make_cells(n, seed=0, sparse=False, genes=None):
    """``n`` control + ``n`` stimulated harmony cells (resampled, noised), with
    ``genes`` genes drawn from the 9,015 when given."""
    import scipy.sparse as sp

    from skmonge.datasets import load_kang2018

    X, y = load_kang2018("harmony", return_X_y=True)
    X = sp.csr_matrix(X, dtype=np.float32)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if genes is not None:
        drawn = rng.choice(X.shape[1], size=genes, replace=genes > X.shape[1])
        X = X[:, np.sort(drawn)].tocsr()
    parts, labels = [], []
    for label in ("control", "stimulated"):
        rows = np.flatnonzero(y == label)
        picked = X[rng.choice(rows, size=n, replace=True)].tocsr()
        picked.data *= np.exp(rng.normal(0.0, 0.1, picked.data.size)).astype(np.float32)
        parts.append(picked)
        labels.append(np.full(n, label))
    cells = sp.vstack(parts).tocsr()
    new = X[rng.choice(np.flatnonzero(y == "control"), size=2000)].tocsr()
    if not sparse:
        cells, new = cells.toarray(), new.toarray()
    return cells, np.concatenate(labels), new


def _rss_gb():
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _current_rss_gb():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def run_one(n, cost, gamma, sparse, genes=None, debias=True):
    """One size, in this process: a dict of the measured numbers."""
    from skmonge import EntropicSparseMap

    X, y, new = make_cells(n, sparse=sparse, genes=genes)
    # warm the JIT on a small problem (compilation is not what we measure)
    params = dict(
        cost=cost, gamma=gamma, debias=debias, source="control", target="stimulated"
    )
    EntropicSparseMap(**params).fit(
        X[np.r_[0:50, n : n + 50]], y[np.r_[0:50, n : n + 50]]
    ).transform(new[:10])
    data_gb = _current_rss_gb()
    est = EntropicSparseMap(**params)
    start = time.perf_counter()
    est.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    est.transform(new)
    transform_s = time.perf_counter() - start
    return {
        "n": n,
        "fit_s": fit_s,
        "transform_s": transform_s,
        "n_iter": int(est.n_iter_),
        "converged": bool(est.converged_),
        "peak_gb": _rss_gb(),
        "data_gb": data_gb,
    }


def run_pot(n):
    """POT's log-domain Sinkhorn plus barycentric map at size ``n`` (½ℓ2²)."""
    import ot

    X, y, new = make_cells(n)
    Xs, Xt = (
        X[y == "control"].astype(np.float64),
        X[y == "stimulated"].astype(np.float64),
    )
    start = time.perf_counter()
    M = ot.dist(Xs, Xt) / 2
    eps = 0.01 * M.mean()
    a = np.full(n, 1.0 / n)
    ot.sinkhorn(a, a, M, eps, method="sinkhorn_log", numItermax=200, stopThr=1e-6)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--cost", default="elastic_l1")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--sparse", action="store_true", help="CSR input")
    parser.add_argument("--genes", type=int, help="resample to this many genes")
    parser.add_argument("--pot", action="store_true", help="time POT at the first size")
    parser.add_argument("--plain", action="store_true", help="debias=False")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        r = run_one(
            args.one, args.cost, args.gamma, args.sparse, args.genes, not args.plain
        )
        print(json.dumps(r))
        return
    print(
        f"EntropicSparseMap(cost={args.cost!r}, gamma={args.gamma}, "
        f"debias={not args.plain}), harmony "
        f"cells resampled, {args.genes or 9015:,} genes, float32, "
        f"{'CSR' if args.sparse else 'dense'} input; cpus={os.cpu_count()}"
    )
    print(
        f"{'n = m':>7}{'fit s':>9}{'transform 2k s':>16}{'iters':>7}"
        f"{'peak GB':>9}{'data GB':>9}"
    )
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--cost", args.cost]
        command += ["--gamma", str(args.gamma)] + (["--sparse"] if args.sparse else [])
        command += ["--genes", str(args.genes)] if args.genes else []
        command += ["--plain"] if args.plain else []
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['n']:>7}{r['fit_s']:>9.1f}{r['transform_s']:>16.1f}"
            f"{r['n_iter']:>7}{r['peak_gb']:>9.2f}{r['data_gb']:>9.2f}",
            flush=True,
        )
    if args.pot:
        n = args.sizes[0]
        print(
            f"POT ot.sinkhorn(method='sinkhorn_log', 200 iterations) + ot.dist "
            f"at n = {n} (½ℓ2², float64): {run_pot(n):.1f} s"
        )


if __name__ == "__main__":
    main()
