"""Synthesized perturbation tasks of Chen, Xie & Zhang (displacement-sparse neural OT).

(a) 500 cells x 250 genes, 20 perturbed (the earlier draft's Appendix K:
    ICNN OT mean dimension 208.5, SICNN 20.88 with target l = 21);
(b) 4000 cells x 3000 genes, 100 perturbed (Tables 1-3: ICNN OT 2480,
    Cuturi et al. 99, constant λ 120-153, adaptive λ 107-111, gene overlap
    >= 95 %).

For each method the script prints the mean displacement dimension (|Δ| >
1e-2), the recall of the truly perturbed genes, the sliced-Wasserstein
residue between T(source) and the target, and the wall time of fit +
transform. EntropicSparseMap (elastic ℓ1, the "Cuturi et al." column) runs
on the same data in the same table.

    python benchmarks/reproduce_dsnot_synthetic.py --task a
    python benchmarks/reproduce_dsnot_synthetic.py --task b --eval-cells 1000
    python benchmarks/reproduce_dsnot_synthetic.py --task eight --lam0 0.3 \
        --learning-rate 3e-3 --n-init 1500 --n-round 200 --decay 0.8

The adaptive (target_dim) fit runs with NeuralSparseMap's defaults unless
--lam0 / --n-init / --n-round / --decay / --patience are given, and its λ
trajectory is printed (--no-history to skip it).
"""

from __future__ import annotations

import argparse
import time

from skmonge import EntropicSparseMap, NeuralSparseMap
from skmonge.datasets import make_eight_gaussians, make_perturbation
from skmonge.metrics import (
    displacement_dimension,
    perturbed_gene_recall,
    sliced_wasserstein,
)

TASKS = {
    # n, d, k, target l, paper's numbers for the table header
    "a": dict(n=500, d=250, k=20, target_dim=21, paper="ICNN OT 208.5, SICNN 20.88"),
    "b": dict(
        n=4000,
        d=3000,
        k=100,
        target_dim=105,
        paper="ICNN OT 2480, Cuturi 99, constant 120-153, adaptive 107-111",
    ),
}


def methods(task, args):
    neural = dict(
        random_state=args.seed,
        verbose=args.verbose,
        learning_rate=args.learning_rate,
    )
    n_iter = args.n_iter
    yield "ICNN OT (no penalty)", NeuralSparseMap(penalty=None, n_iter=n_iter, **neural)
    yield (
        f"smoothed l0, constant lam={args.lam:g}",
        NeuralSparseMap(lam=args.lam, n_iter=n_iter, **neural),
    )
    # the estimator's defaults unless an annealing option is given
    given = _annealing_options(args)
    label = "defaults" if not given else ", ".join(f"{k}={v}" for k, v in given.items())
    yield (
        f"smoothed l0, target_dim={task['target_dim']} ({label})",
        NeuralSparseMap(
            schedule="target_dim", target_dim=task["target_dim"], **given, **neural
        ),
    )
    # the paper's setting for Cuturi et al.: ε = 1e-3 (relative here), γ = 2
    yield (
        f"EntropicSparseMap l1 gamma={args.gamma:g} eps=1e-3",
        EntropicSparseMap(
            cost="elastic_l1",
            gamma=args.gamma,
            relative_epsilon=1e-3,
            debias=False,
            max_iter=20000,
            verbose=args.verbose,
        ),
    )


def _annealing_options(args):
    """The annealing parameters given on the command line (None: the default)."""
    options = {
        "lam": args.lam0,
        "n_iter": args.n_init,
        "n_iter_round": args.n_round,
        "decay": args.decay,
        "patience": args.patience,
    }
    return {k: v for k, v in options.items() if v is not None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS) + ["eight"], default="a")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lam", type=float, default=1e4, help="constant λ")
    # None: NeuralSparseMap's default
    parser.add_argument("--lam0", type=float, default=None, help="initial λ")
    parser.add_argument("--n-iter", type=int, default=600)
    parser.add_argument("--n-init", type=int, default=None, help="n_ini (n_iter)")
    parser.add_argument("--n-round", type=int, default=None, help="n_tr")
    parser.add_argument("--decay", type=float, default=None)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--gamma", type=float, default=2.0)
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="Adam step (eight: 3e-3)"
    )
    parser.add_argument("--eval-cells", type=int, default=None)
    parser.add_argument("--only", default=None, help="run methods whose name has this")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--no-history", action="store_true", help="do not print the λ trajectory"
    )
    args = parser.parse_args()
    if args.task == "eight":
        return eight_gaussians(args)

    task = TASKS[args.task]
    X, y, genes = make_perturbation(
        task["n"], task["d"], task["k"], random_state=args.seed
    )
    source, target = X[y == 0], X[y == 1]
    n_eval = args.eval_cells or source.shape[0]
    print(
        f"task ({args.task}): n={task['n']} d={task['d']} k={task['k']}; "
        f"paper: {task['paper']}"
    )
    header = (
        f"{'method':42s} {'mean dim':>9s} {'recall':>7s} {'SW res':>8s} {'time s':>8s}"
    )
    print(header)
    print("-" * len(header))
    for name, est in methods(task, args):
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        est.fit(X, y)
        mapped = est.transform(source[:n_eval])
        elapsed = time.perf_counter() - start
        dim = displacement_dimension(source[:n_eval], mapped)
        recall = perturbed_gene_recall(source[:n_eval], mapped, genes)
        residue = sliced_wasserstein(mapped, target[:n_eval], random_state=0)
        penalised = getattr(est, "penalty", None) is not None
        extra = f"  (final λ={est.lam_:.4g})" if penalised else ""
        print(
            f"{name:42s} {dim:9.2f} {recall:7.3f} {residue:8.3f} {elapsed:8.1f}{extra}",
            flush=True,
        )
        if not args.no_history and getattr(est, "schedule", "") == "target_dim":
            print_history(est.history_)
    half = len(target) // 2
    floor = sliced_wasserstein(target[:half], target[half:])
    print(f"sliced-W residue between two target halves (sampling floor): {floor:.3f}")


def print_history(history):
    print("    iteration  phase      accepted         λ   dimension  residue")
    for row in zip(
        history["iteration"],
        history["phase"],
        history["accepted"],
        history["lam"],
        history["dimension"],
        history["residue"],
        strict=True,
    ):
        it, phase, acc, lam, dim, res = row
        acc = "" if acc is None else str(acc)
        print(f"    {it:9d}  {phase:9s}  {acc:8s} {lam:9.4g} {dim:11.2f} {res:8.3f}")


def eight_gaussians(args):
    """Algorithm 1 on the eight Gaussians (Fig. 4): the weight a moves the
    balance between sparsity (mean smoothed ℓ0 of the displacements) and fit."""
    X, y = make_eight_gaussians(1000, random_state=args.seed)
    source, target = X[y == 0], X[y == 1]
    print("eight Gaussians, smoothed l0 (sigma=1), Algorithm 1 from λ0 =", args.lam0)
    half = len(target) // 2
    floor = sliced_wasserstein(target[:half], target[half:])
    print(f"sliced-W residue between two target halves (sampling floor): {floor:.3f}")
    print(f"{'a':>5s} {'final λ':>9s} {'mean dim':>9s} {'SW res':>8s} {'time s':>8s}")
    for a in (0.1, 0.5, 0.9):
        start = time.perf_counter()
        est = NeuralSparseMap(
            schedule="tradeoff",
            tradeoff=a,
            **_annealing_options(args),
            learning_rate=args.learning_rate,
            random_state=args.seed,
            verbose=args.verbose,
        ).fit(X, y)
        mapped = est.transform(source)
        elapsed = time.perf_counter() - start
        print(
            f"{a:5.1f} {est.lam_:9.4g} {displacement_dimension(source, mapped):9.3f} "
            f"{sliced_wasserstein(mapped, target, random_state=0):8.3f} {elapsed:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
