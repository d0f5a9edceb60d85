"""Benchmark skmonge's Sinkhorn against POT (and OTT-JAX when installed).

Problem: ``n`` source points ``N(0, I_d)``, ``n`` target points
``N(0.5 * 1, I_d)``, cost ``C = ½‖x - y‖²``, uniform weights,
``ε = rel_eps * mean(C)`` (0.1 by default, 1e-3 with ``--small-eps``), the
same ``ε`` and marginal tolerance for every solver.

Reported per solver: time per iteration, iterations to tolerance, total time
to tolerance (setup included), and the ratios POT / skmonge, OTT / skmonge
and skmonge / floor, where the floor is two BLAS mat-vecs
(``K @ v`` and ``K.T @ u``) over an n x m matrix, i.e. the cost of one plain
kernel-Sinkhorn iteration.

Caveats printed with the table: POT checks its stopping rule (L2 norm of the
column-marginal error) every 10 iterations and is capped at
``--pot-max-iter`` iterations for large ``n``; skmonge checks the L1
row-marginal error every iteration. Timings are minima over ``--repeats``
runs; the load average is printed because this machine may be shared.

Usage::

    python benchmarks/bench_sinkhorn.py                 # n = 1000, 3000, 6000
    python benchmarks/bench_sinkhorn.py --n 1000 --small-eps
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numba
import numpy as np

from skmonge._kernels.separable import sqeuclidean_half
from skmonge.sinkhorn import sinkhorn


def _min_time(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, d)) + 0.5
    return sqeuclidean_half(X, Y)


# The plain loop: no epsilon schedule, no over-relaxation (the defaults
# before they were added), for the iteration ratio in the same run.
PLAIN = {"epsilon_decay": None, "relaxation": 1.0}


def bench_skmonge(C, eps, tol, max_iter, dtype, repeats, **options):
    """Run to tolerance, then time per iteration by differencing two run lengths."""
    sinkhorn(C[:8, :8].astype(dtype), 1.0, max_iter=2, warn=False)  # JIT / cache
    total, res = _min_time(
        lambda: sinkhorn(
            C, eps, tol=tol, max_iter=max_iter, dtype=dtype, warn=False, **options
        ),
        repeats,
    )

    def run(k):
        res = sinkhorn(C, eps, tol=1e-300, max_iter=k, dtype=dtype, warn=False, **PLAIN)
        return res.n_iter

    # per iteration = (min time of 2 + k iterations - min time of 2) / k,
    # with k chosen for about one second of iterations
    t_short, _ = _min_time(lambda: run(2), repeats)
    probe, _ = _min_time(lambda: run(12), 1)
    k = int(np.clip(10.0 / max(probe - t_short, 1e-4), 20, 2000))
    t_long, it_long = _min_time(lambda: run(2 + k), repeats)
    per_iter = max(t_long - t_short, 0.0) / max(it_long - 2, 1)
    return {
        "per_iter": per_iter,
        "iters": res.n_iter,
        "total": total,
        "converged": res.converged,
        "error": res.marginal_error,
        "setup": t_short - 2 * per_iter,
    }


def bench_pot(C, eps, tol, cap, repeats):
    import ot

    n, m = C.shape
    a = np.full(n, 1.0 / n)
    b = np.full(m, 1.0 / m)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ot.sinkhorn(
                a,
                b,
                C,
                reg=eps,
                method="sinkhorn_log",
                stopThr=tol,
                numItermax=cap,
                log=True,
            )

    total, (P, log) = _min_time(run, repeats)
    iters = int(log["niter"]) + 1
    # POT's last update makes the rows exact: report the column error.
    err_l1 = float(np.abs(P.sum(0) - b).sum())
    converged = bool(log["err"] and log["err"][-1] < tol)
    return {
        "per_iter": total / iters,
        "iters": iters,
        "total": total,
        "converged": converged,
        "error": err_l1,
        "setup": float("nan"),
    }


def bench_ott(C, eps, tol, max_iter, repeats):
    try:
        import jax
        import jax.numpy as jnp
        from ott.geometry import geometry
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn as ott_sinkhorn
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    Cj = jnp.asarray(C)

    @jax.jit
    def solve(Cj):
        geom = geometry.Geometry(cost_matrix=Cj, epsilon=eps)
        prob = linear_problem.LinearProblem(geom)
        solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iter)
        out = solver(prob)
        return out.n_iters, out.f

    def run():
        it, f = solve(Cj)
        f.block_until_ready()
        return int(it)

    run()  # compile
    total, iters = _min_time(run, repeats)
    iters = max(iters, 1)
    return {
        "per_iter": total / iters,
        "iters": iters,
        "total": total,
        "converged": iters < max_iter,
        "error": float("nan"),
        "setup": float("nan"),
    }


def bench_floor(C, eps, dtype, repeats):
    K = np.exp(-(C - C.min()) / (C.max() - C.min())).astype(dtype)
    u = np.ones(C.shape[0], dtype=dtype)
    v = np.ones(C.shape[1], dtype=dtype)
    K @ v
    t, _ = _min_time(lambda: (K @ v, K.T @ u), max(10, 3 * repeats))
    return t


def _fmt_ms(x):
    return f"{1e3 * x:10.2f}" if np.isfinite(x) else f"{'-':>10s}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 3000, 6000])
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--rel-eps", type=float, default=0.1)
    parser.add_argument(
        "--small-eps", action="store_true", help="use epsilon = 1e-3 * mean(C)"
    )
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument(
        "--max-iter", type=int, default=100000, help="skmonge / OTT iteration cap"
    )
    parser.add_argument(
        "--pot-max-iter",
        type=int,
        default=None,
        help="POT iteration cap (default: 1000 for n <= 1000, "
        "30 for n <= 3000, 11 above; 50 with --small-eps)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pot", action="store_true")
    args = parser.parse_args(argv)
    rel = 1e-3 if args.small_eps else args.rel_eps

    print(
        f"cpus={os.cpu_count()} numba_threads={numba.get_num_threads()} "
        f"threading_layer={numba.config.THREADING_LAYER} "
        f"loadavg={os.getloadavg()[0]:.2f}"
    )
    print(f"d={args.d}  eps={rel:g} * mean(C)  tol={args.tol:g} (marginal error)")
    for n in args.n:
        C = _problem(n, args.d)
        eps = rel * float(C.mean())
        rows = {}
        rows["skmonge f64"] = bench_skmonge(
            C, eps, args.tol, args.max_iter, np.float64, args.repeats
        )
        rows["skmonge f32"] = bench_skmonge(
            C, eps, args.tol, args.max_iter, np.float32, args.repeats
        )
        rows["skmonge f64 plain loop"] = bench_skmonge(
            C, eps, args.tol, args.max_iter, np.float64, 1, **PLAIN
        )
        if not args.no_pot:
            cap = args.pot_max_iter
            if cap is None:
                cap = (
                    50
                    if args.small_eps
                    else (1000 if n <= 1000 else 30 if n <= 3000 else 11)
                )
            rows["POT sinkhorn_log"] = bench_pot(C, eps, args.tol, cap, 1)
        ott_row = bench_ott(C, eps, args.tol, args.max_iter, args.repeats)
        if ott_row is not None:
            rows["OTT-JAX (CPU)"] = ott_row
        floor64 = bench_floor(C, eps, np.float64, args.repeats)
        floor32 = bench_floor(C, eps, np.float32, args.repeats)

        ref = rows["skmonge f64"]["per_iter"]
        print(f"\nn = m = {n}, eps = {eps:.4g}")
        print(
            f"{'solver':18s} {'ms/iter':>10s} {'iters':>7s} {'total s':>9s} "
            f"{'setup ms':>9s} {'conv':>5s} {'L1 err*':>9s} {'vs skm f64':>10s}"
        )
        for name, r in rows.items():
            print(
                f"{name:18s} {_fmt_ms(r['per_iter'])} {r['iters']:7d} "
                f"{r['total']:9.3f} {_fmt_ms(r['setup'])[1:]} "
                f"{'yes' if r['converged'] else 'no':>5s} {r['error']:9.2e} "
                f"{r['per_iter'] / ref:9.1f}x"
            )
        print(
            "  * L1 error of the marginal the last update does not enforce "
            "(skmonge: rows, POT: columns)"
        )
        print(f"{'floor f64 (2 gemv)':18s} {_fmt_ms(floor64)}")
        print(f"{'floor f32 (2 gemv)':18s} {_fmt_ms(floor32)}")
        ratios = [
            f"skmonge f64 / floor f64 = {ref / floor64:.2f}",
            f"skmonge f32 / floor f32 = "
            f"{rows['skmonge f32']['per_iter'] / floor32:.2f}",
        ]
        if "POT sinkhorn_log" in rows:
            pot = rows["POT sinkhorn_log"]["per_iter"]
            ratios.append(f"POT / skmonge f64 = {pot / ref:.1f}")
            ratios.append(
                f"POT / skmonge f32 = {pot / rows['skmonge f32']['per_iter']:.1f}"
            )
        if "OTT-JAX (CPU)" in rows:
            ratios.append(
                f"OTT / skmonge f64 = {rows['OTT-JAX (CPU)']['per_iter'] / ref:.1f}"
            )
        else:
            ratios.append("OTT-JAX: not installed (skipped)")
        plain = rows["skmonge f64 plain loop"]
        ratios.append(
            f"plain loop / default: iterations "
            f"{plain['iters'] / rows['skmonge f64']['iters']:.1f}x, "
            f"time {plain['total'] / rows['skmonge f64']['total']:.1f}x"
        )
        print("  " + "; ".join(ratios))
    print(f"\nloadavg at end = {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
