"""Throughput of the k-overlap proximal operator (and the separable ones).

Prints proxes per second of ``prox_{(γ/2)‖·‖²_ovk}`` for random normal rows
at d = 34,000, k = 100 (the issue's size) and, against OTT-JAX's
``SqKOverlap.prox`` when installed, at a size OTT can handle (d = 1,600,
k = 100), with the objective ``½‖u - z‖² + (γ/2)‖u‖²_ovk`` reached by each
(lower is better: OTT-JAX 0.6.0's prox is not optimal in some cases).

Usage::

    python benchmarks/bench_prox.py [--rows 200] [--gamma 1.0]
"""

import argparse
import time

import numpy as np

from skmonge.costs import ElasticKOverlap, ElasticL1, ElasticSTVS


def _rate(fn, Z, repeats=3):
    fn(Z[:2])  # compile / warm up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(Z)
        best = min(best, time.perf_counter() - start)
    return Z.shape[0] / best


def _objective(cost, Z, U):
    return 0.5 * np.sum((U - Z) ** 2, axis=1) + cost.tau(U)


def bench_ott(Z, gamma, k):
    try:
        import jax
        import jax.numpy as jnp
        from ott.geometry.regularizers import SqKOverlap
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    reg = SqKOverlap(k)
    prox = jax.jit(jax.vmap(lambda v: reg.prox(v, gamma)))
    Zj = jnp.asarray(Z)
    prox(Zj[:1]).block_until_ready()
    start = time.perf_counter()
    U = np.asarray(prox(Zj).block_until_ready())
    return Z.shape[0] / (time.perf_counter() - start), U


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--gamma", type=float, default=1.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print("proxes per second (rows of random normal vectors, 2 threads)")
    print(f"{'prox':<28}{'d':>7}{'k':>5}{'float64':>12}{'float32':>12}")
    d = 34000
    Z = rng.normal(size=(args.rows, d))
    for name, cost, k in [
        ("k-overlap", ElasticKOverlap(args.gamma, 100), 100),
        ("soft-threshold (l1)", ElasticL1(args.gamma), "-"),
        ("STVS", ElasticSTVS(args.gamma), "-"),
    ]:
        r64 = _rate(cost.prox, Z)
        r32 = _rate(cost.prox, Z.astype(np.float32))
        print(f"{name:<28}{d:>7}{k:>5}{r64:>12.0f}{r32:>12.0f}")

    d, k = 1600, 100
    Z = rng.normal(size=(20, d))
    cost = ElasticKOverlap(args.gamma, k)
    ours = _rate(cost.prox, Z)
    print(f"\nk-overlap at d = {d}, k = {k}, gamma = {args.gamma}:")
    print(f"  skmonge  {ours:10.1f} proxes/s")
    ott = bench_ott(Z, args.gamma, k)
    if ott is None:
        print("  OTT-JAX  not installed (skipped)")
        return
    rate, U_ott = ott
    gap = _objective(cost, Z, U_ott) - _objective(cost, Z, cost.prox(Z))
    print(f"  OTT-JAX  {rate:10.1f} proxes/s   skmonge / OTT = {ours / rate:.0f}x")
    print(
        "  objective(OTT) - objective(skmonge): "
        f"min {gap.min():.2e}, max {gap.max():.2e} "
        f"({np.sum(gap > 1e-9)} of {len(gap)} rows worse for OTT)"
    )


if __name__ == "__main__":
    main()
