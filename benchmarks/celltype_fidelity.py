"""Per-cell-type fidelity of EntropicSparseMap on the Kang et al. 2018 subsets.

Protocol (issue 9): 80/20 split per condition; the map is fitted on the 80 %
and the held-out control cells are mapped. For every cell type with at least
15 held-out control and stimulated cells, the top-20 genes by mean |Δ| of
that type's mapped cells are compared with the top-20 genes of the type's
observed held-out mean difference (stimulated - control). Printed beside the
map: the global mean-shift baseline and the per-type ceiling (both from the
train cells), the fraction of moved coordinates and the wall time.

Usage::

    python benchmarks/celltype_fidelity.py [--subsets harmony scgen]
        [--relative-epsilon 0.1 0.01 0.001]
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

from skmonge import EntropicSparseMap
from skmonge.datasets import load_kang2018
from skmonge.metrics import group_topk_overlap

DEFAULT_SCGEN = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "kang2018_scgen.npz"
)


def run(subset, rel_eps, seed=0):
    data = load_kang2018(subset)
    X, y, groups = data.data, np.asarray(data.target), np.asarray(data.cell_type)
    strata = np.char.add(y.astype(str), groups.astype(str))
    X_tr, X_te, y_tr, y_te, g_tr, g_te = train_test_split(
        X, y, groups, test_size=0.2, stratify=strata, random_state=seed
    )
    start = time.perf_counter()
    est = EntropicSparseMap(cost="elastic_l1", source="control", target="stimulated")
    if rel_eps is not None:
        est.set_params(relative_epsilon=rel_eps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X_tr, y_tr)
        table = group_topk_overlap(
            est, X_te, y_te, g_te, k=20, min_cells=15, reference=(X_tr, y_tr, g_tr)
        )
    seconds = time.perf_counter() - start
    control = X_te[y_te == "control"].toarray()
    moved = float(np.mean(est.displacement(control) != 0))
    return table, moved, seconds, est, len(caught)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", nargs="*", default=["harmony", "scgen"])
    parser.add_argument("--scgen", default=DEFAULT_SCGEN)
    parser.add_argument(
        "--relative-epsilon",
        nargs="*",
        type=float,
        default=[None],
        help="values to compare (default: the estimator's default)",
    )
    args = parser.parse_args()
    for subset in args.subsets:
        source = args.scgen if subset == "scgen" else subset
        if subset == "scgen" and not os.path.isfile(source):
            print(f"scgen: {source} not found, skipped")
            continue
        for rel in args.relative_epsilon:
            table, moved, seconds, est, n_warn = run(source, rel)
            print(
                f"\n{subset}: relative_epsilon={est.relative_epsilon:g} "
                f"(epsilon_={est.epsilon_:.4g}), Sinkhorn iterations {est.n_iter_}, "
                f"converged={est.converged_}, warnings={n_warn}, "
                f"moved coordinates {moved:.3f}, fit + evaluation {seconds:.1f} s"
            )
            print(table[["n_source", "n_target", "overlap", "baseline", "ceiling"]])
            means = table[["overlap", "baseline", "ceiling"]].mean()
            wins = int((table["overlap"] >= table["baseline"]).sum())
            print(
                f"mean overlap {means['overlap']:.2f} / baseline "
                f"{means['baseline']:.2f} / ceiling {means['ceiling']:.2f}; "
                f"map >= baseline in {wins} of {len(table)} types"
            )


if __name__ == "__main__":
    main()
