"""EntropicSparseMap's torch backend on a GPU against its numba backend on 2 cores.

Cells: the Kang 2018 harmony subset resampled to ``n`` cells per condition
and to ``d`` genes (genes drawn with replacement, so that ``d`` may exceed the
9,015 of the subset), every non-zero multiplied by ``exp(N(0, 0.1²))``,
float32. Timed in the same run, on the same cells: ``fit`` and the transform
of 2,000 new control cells, with

* ``numba``: the default backend, numba limited to ``--cpu-threads`` (2);
* ``torch``: ``backend="torch"`` on ``--device`` (CUDA when available),
  synchronised before every clock reading;
* with ``--pot``: POT's log-domain Sinkhorn (``ot.sinkhorn(...,
  method="sinkhorn_log")``, torch tensors on the same device) on the
  torch backend's cost matrix and ε, per iteration against ours.

Printed per size: seconds of each, the ratio numba / torch, the largest
difference between the two maps relative to the data scale, the iterations,
and the peak GPU memory. Without CUDA the torch backend runs on the CPU (a
correctness and overhead check, not the GPU figure).

Usage::

    python benchmarks/bench_gpu.py [--sizes 20000] [--genes 20000]
        [--cpu-threads 2] [--device auto] [--pot] [--skip-numba] [--skip-torch]

``--skip-torch`` times the numba backend alone (with its own ε rule), for
the 2-core side of a size too slow to run next to the GPU in one lease.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_cells(n, d, seed=0):
    """``n`` control + ``n`` stimulated cells with ``d`` genes, and 2,000 new
    control cells (dense float32)."""
    import scipy.sparse as sp

    from skmonge.datasets import load_kang2018

    X, y = load_kang2018("harmony", return_X_y=True)
    X = sp.csr_matrix(X, dtype=np.float32)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    genes = rng.choice(X.shape[1], size=d, replace=d > X.shape[1])
    X = X[:, np.sort(genes)].tocsr()

    def draw(label, size):
        picked = X[rng.choice(np.flatnonzero(y == label), size=size)].tocsr()
        picked.data *= np.exp(rng.normal(0.0, 0.1, picked.data.size)).astype(np.float32)
        return picked.toarray()

    cells = np.vstack([draw("control", n), draw("stimulated", n)])
    labels = np.repeat(["control", "stimulated"], n)
    return cells, labels, draw("control", 2000)


def timed(sync, fn, *args):
    sync()
    start = time.perf_counter()
    out = fn(*args)
    sync()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20000])
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--cost", default="elastic_l1")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pot", action="store_true")
    parser.add_argument("--skip-numba", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()

    import numba
    import torch

    from skmonge import EntropicSparseMap
    from skmonge._torch import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    numba.set_num_threads(min(args.cpu_threads, numba.config.NUMBA_NUM_THREADS))
    name = torch.cuda.get_device_name(device) if cuda else "CPU (no CUDA here)"
    print(
        f"torch {torch.__version__} on {device} ({name}); numba on "
        f"{numba.get_num_threads()} threads; cost={args.cost}, gamma={args.gamma}, "
        f"{args.genes} genes, float32"
    )
    print(
        f"{'n':>6} {'backend':8} {'fit s':>8} {'transform s':>12} {'iters':>6} "
        f"{'eps':>9} {'peak GPU GB':>12}"
    )
    params = {
        "cost": args.cost,
        "gamma": args.gamma,
        "source": "control",
        "target": "stimulated",
        "verbose": False,
    }
    for n in args.sizes:
        X, y, new = make_cells(n, args.genes)
        # compile numba and warm torch/CUDA on a small problem first
        small = np.r_[0:64, n : n + 64]
        EntropicSparseMap(**params).fit(X[small], y[small]).transform(new[:8])
        est_t = None
        if not args.skip_torch:
            EntropicSparseMap(backend="torch", device=str(device), **params).fit(
                X[small], y[small]
            ).transform(new[:8])
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            est_t = EntropicSparseMap(backend="torch", device=str(device), **params)
            _, fit_t = timed(sync, est_t.fit, X, y)
            mapped_t, tr_t = timed(sync, est_t.transform, new)
            peak = float("nan")
            if cuda:
                peak = torch.cuda.max_memory_allocated(device) / 2**30
            print(
                f"{n:6d} {'torch':8} {fit_t:8.1f} {tr_t:12.1f} {est_t.n_iter_:6d} "
                f"{est_t.epsilon_:9.4g} {peak:12.2f}"
            )
        if not args.skip_numba:
            # the torch fit's ε, so that both solve the same problem
            same = {} if est_t is None else {"epsilon": est_t.epsilon_}
            est_n = EntropicSparseMap(**same, **params)
            _, fit_n = timed(sync, est_n.fit, X, y)
            mapped_n, tr_n = timed(sync, est_n.transform, new)
            print(
                f"{n:6d} {'numba':8} {fit_n:8.1f} {tr_n:12.1f} {est_n.n_iter_:6d} "
                f"{est_n.epsilon_:9.4g} {'':>12}"
            )
            if est_t is not None:
                diff = np.abs(mapped_n - mapped_t).max() / np.abs(new).max()
                print(
                    f"{n:6d} ratio numba/torch: fit {fit_n / fit_t:.1f}x, transform "
                    f"{tr_n / tr_t:.1f}x; max |T_numba - T_torch| / max|x| = {diff:.1e}"
                )
        if args.pot and est_t is not None:
            bench_pot(est_t, X, y, device, sync)


def bench_pot(est, X, y, device, sync):
    """Seconds per iteration of POT's log-domain Sinkhorn and of ours on the
    same cost matrix, ε and device."""
    import ot

    from skmonge._torch_ot import TorchBackend

    backend = TorchBackend(str(device), np.float32)
    C = backend.cost_matrix(
        est.cost_,
        backend.tensor(X[y == "control"]),
        backend.tensor(X[y == "stimulated"]),
    )
    n, m = C.shape
    a = C.new_full((n,), 1.0 / n)
    b = C.new_full((m,), 1.0 / m)
    iters = 200

    def pot():
        return ot.sinkhorn(
            a, b, C, est.epsilon_, method="sinkhorn_log", numItermax=iters, stopThr=0.0
        )

    def ours():
        return backend.sinkhorn(C, est.epsilon_, tol=1e-30, max_iter=iters, decay=None)

    _, pot_s = timed(sync, pot)
    res, ours_s = timed(sync, ours)
    print(
        f"{n:6d} Sinkhorn per iteration on {device}: POT sinkhorn_log "
        f"{pot_s / iters * 1e3:.1f} ms, skmonge {ours_s / res.n_iter * 1e3:.1f} ms "
        f"(POT / skmonge {pot_s / iters / (ours_s / res.n_iter):.1f}x)"
    )


if __name__ == "__main__":
    main()
