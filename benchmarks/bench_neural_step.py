"""Cost of one NeuralSparseMap training iteration (n_inner g steps + 1 f step).

Prints milliseconds per iteration for the perturbation tasks' sizes and,
with --profile, torch's operator table for a few iterations: on these
sizes the time goes to the d x hidden matrix products of the networks'
input layers (forward, input gradient, and their parameter gradients).

    python benchmarks/bench_neural_step.py
    python benchmarks/bench_neural_step.py --dims 3000 --profile
"""

from __future__ import annotations

import argparse
import time

import torch

from skmonge.neural.estimator import _MinimaxTrainer
from skmonge.neural.icnn import ICNN
from skmonge.neural.penalties import make_penalty


def make_trainer(d, n, batch_size, n_inner, seed=0):
    torch.manual_seed(seed)
    g, f = ICNN(d), ICNN(d)
    source, target = torch.randn(n, d), torch.randn(n, d) + 1.0
    return _MinimaxTrainer(
        g,
        f,
        source,
        target,
        penalty=make_penalty("smoothed_l0"),
        scale=1.0,
        offset=torch.zeros(d),
        batch_size=batch_size,
        n_inner=n_inner,
        learning_rate=1e-4,
        generator=torch.Generator().manual_seed(seed),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[250, 3000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-inner", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    print(f"batch {args.batch_size}, n_inner {args.n_inner}, hidden (64,)*4")
    print(f"{'d':>6s} {'threads':>8s} {'ms/iteration':>13s} {'it/s':>6s}")
    for d in args.dims:
        for threads in args.threads:
            torch.set_num_threads(threads)
            trainer = make_trainer(d, 4000, args.batch_size, args.n_inner)
            trainer.train(1000.0, 3)  # warm-up
            start = time.perf_counter()
            trainer.train(1000.0, args.iterations)
            ms = (time.perf_counter() - start) / args.iterations * 1e3
            print(f"{d:6d} {threads:8d} {ms:13.1f} {1e3 / ms:6.2f}", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        trainer = make_trainer(args.dims[-1], 4000, args.batch_size, args.n_inner)
        trainer.train(1000.0, 2)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train(1000.0, 5)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
