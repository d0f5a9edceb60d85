"""The main job: sparse maps from control to IFN-β stimulated PBMCs.

``python -m skmonge demo`` loads the bundled Kang et al. 2018 harmony subset
(2000 cells, all 9,015 genes, log-normalised), splits each condition 80/20,
fits the ½ℓ2² entropic map and elastic-ℓ1 and elastic-STVS maps that move
about 100, 300 and 1,000 genes per cell (``target_dim``: γ is chosen by the
estimator, not guessed) on the training cells, and reports on the held-out
cells:

* the fraction of non-zero displacement coordinates,
* the Sinkhorn divergence between mapped control cells and stimulated cells,
* the rank-biased overlap (p = 0.9) between the genes ranked by mean signed
  displacement and the top Wilcoxon markers of stimulation (train split),
* the ten genes moved most;

then, per inferred cell type, the default map (elastic ℓ1, ε by the
perplexity rule) against the paper's ε = 0.1 · mean(C) and the trivial
global mean shift: the overlap of the 20 genes each type's mapped cells move
most with the 20 genes of that type's observed response
(:func:`skmonge.metrics.group_topk_overlap`), and a types × genes dot plot
of the default map (:func:`skmonge.plotting.plot_group_displacements`),
written next to the first figure.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from ._progress import Progress
from .datasets import load_kang2018
from .entropic import EntropicSparseMap
from .metrics import (
    displacement_sparsity,
    group_topk_overlap,
    rank_biased_overlap,
    wilcoxon_scores,
)

#: (cost, target_dim) pairs of the demo grid: genes moved per training
#: control cell, from which each map chooses its γ (None: the dense map).
DEFAULT_GRID = (
    ("sqeuclidean", None),
    ("elastic_l1", 100),
    ("elastic_l1", 300),
    ("elastic_l1", 1000),
    ("elastic_stvs", 100),
    ("elastic_stvs", 300),
    ("elastic_stvs", 1000),
)
N_MARKERS = 50
#: per-type protocol: top-k genes, fewest held-out cells of each condition
TOP_K, MIN_CELLS = 20, 15


def evaluate_maps(X, y, genes, grid=DEFAULT_GRID, random_state=0, verbose=True):
    """Fit each (cost, target_dim) of ``grid`` on an 80/20 split; held-out metrics.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_cells, n_genes)
        Log-normalised expression, control and stimulated cells pooled.
    y : array-like of shape (n_cells,)
        ``"control"`` or ``"stimulated"``.
    genes : array-like of shape (n_genes,)
        Gene names.
    grid : sequence of (cost, target_dim)
        Maps to fit: ``EntropicSparseMap(cost=cost, target_dim=target_dim)``
        (``None`` for ``"sqeuclidean"``, which has no γ).
    random_state : int
        Seed of the split (stratified by condition).
    verbose : bool
        Progress bar over the grid.

    Returns
    -------
    rows : list of dict
        Per map: ``target_dim``, ``gamma`` (the γ chosen), ``nonzero``
        (fraction of non-zero displacement coordinates of the held-out
        control cells), ``divergence`` (held-out Sinkhorn
        divergence), ``rbo`` (against the top Wilcoxon markers of the train
        split), ``top_genes``, ``mean_shift`` and ``seconds`` (fit + eval).
    context : dict
        ``markers``, ``baseline`` (held-out divergence without a map).
    """
    y = np.asarray(y)
    genes = np.asarray(genes)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=random_state
    )
    markers = genes[
        np.argsort(-wilcoxon_scores(X_train, y_train, "stimulated", "control"))
    ][:N_MARKERS]
    test_control = X_test[y_test == "control"]
    test_control = (
        test_control.toarray() if hasattr(test_control, "toarray") else test_control
    )

    rows = []
    progress = Progress(len(grid), "fitting maps", verbose)
    for cost, target_dim in grid:
        progress.show(map=f"{cost} target_dim={target_dim}")
        start = time.perf_counter()
        est = EntropicSparseMap(
            cost=cost,
            target_dim=target_dim,
            source="control",
            target="stimulated",
        ).fit(X_train, y_train)
        mapped = est.transform(test_control)
        divergence = -est.score(X_test, y_test)
        elapsed = time.perf_counter() - start
        mean_shift = (mapped - test_control).mean(axis=0)
        order = np.argsort(-mean_shift)
        rows.append(
            {
                "cost": cost,
                "target_dim": target_dim,
                "gamma": est.gamma_,
                "nonzero": displacement_sparsity(test_control, mapped),
                "divergence": divergence,
                "rbo": rank_biased_overlap(genes[order][:N_MARKERS], markers, p=0.9),
                "top_genes": list(genes[np.argsort(-np.abs(mean_shift))][:10]),
                "mean_shift": mean_shift,
                "seconds": elapsed,
            }
        )
        progress.step()
    progress.close()
    context = {"markers": markers, "baseline": _identity_divergence(X_test, y_test)}
    return rows, context


def default_fidelity_estimators():
    """The maps the demo compares per cell type: the default (debiased) map,
    the paper's estimator at the best plain ε rule, and with its own ε rule."""
    labels = {"source": "control", "target": "stimulated"}
    return {
        "default": EntropicSparseMap(**labels),
        "plain": EntropicSparseMap(gamma=1.0, perplexity=50, debias=False, **labels),
        "paper": EntropicSparseMap(
            gamma=1.0, relative_epsilon=0.1, debias=False, **labels
        ),
    }


def cell_type_fidelity(X, y, cell_types, estimators=None, genes=None, random_state=0):
    """Per-type top-20 overlap of several maps, on held-out cells.

    The split is stratified by condition x cell type (80/20). Each map is
    fitted on the train cells; the held-out control cells are mapped, and
    each type with at least 15 held-out cells of both conditions is scored
    with :func:`skmonge.metrics.group_topk_overlap` (observed differences on
    the held-out cells, baseline and ceiling from the train cells).

    Parameters
    ----------
    X, y, cell_types : pooled cells, their condition and cell type
    estimators : dict of str -> unfitted map, default=None
        ``None``: :func:`default_fidelity_estimators`. The first one's table
        gives the columns; the others add ``overlap[<name>]``.
    genes : array-like of str, default=None
        Gene names for ``map_genes``.
    random_state : int

    Returns
    -------
    table : pandas.DataFrame
        The first map's table (``overlap``, ``baseline``, ``ceiling``,
        ``map_genes``, ...) and ``overlap[<name>]`` of the others.
    fitted : dict of str -> fitted map
    seconds : dict of str -> fit + scoring time
    held_out : tuple
        ``(X_test, y_test, types_test)``.
    """
    if estimators is None:
        estimators = default_fidelity_estimators()
    y = np.asarray(y)
    cell_types = np.asarray(cell_types)
    strata = np.char.add(y.astype(str), cell_types.astype(str))
    X_tr, X_te, y_tr, y_te, t_tr, t_te = train_test_split(
        X, y, cell_types, test_size=0.2, stratify=strata, random_state=random_state
    )
    table, fitted, seconds = None, {}, {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        est = clone(estimator).fit(X_tr, y_tr)
        scored = group_topk_overlap(
            est,
            X_te,
            y_te,
            t_te,
            k=TOP_K,
            min_cells=MIN_CELLS,
            reference=(X_tr, y_tr, t_tr),
            feature_names=genes,
        )
        seconds[name] = time.perf_counter() - start
        fitted[name] = est
        if table is None:
            table = scored
        else:
            table.insert(
                table.columns.get_loc("baseline"), f"overlap[{name}]", scored["overlap"]
            )
    return table, fitted, seconds, (X_te, y_te, t_te)


def print_cell_type_table(table, first="default"):
    """Print :func:`cell_type_fidelity`'s table, the maps beside the baseline."""
    others = [c for c in table.columns if c.startswith("overlap[")]
    names = [first] + [c[len("overlap[") : -1] for c in others]
    columns = ["overlap"] + others
    print()
    print(
        f"Per cell type: top-{TOP_K} genes moved by the map vs the type's observed "
        "response (held-out cells)"
    )
    widths = [max(10, len(name) + 2) for name in names]
    header = (
        f"{'cell type':<13}{'cells':>6}"
        + "".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True))
        + f"{'global':>8}{'ceiling':>9}  genes moved most ({first})"
    )
    print(header)
    print("-" * len(header))
    for label, row in table.iterrows():
        print(
            f"{label!s:<13}{row['n_source']:>6}"
            + "".join(f"{row[c]:>{w}}" for c, w in zip(columns, widths, strict=True))
            + f"{row['baseline']:>8}{row['ceiling']:>9}"
            f"  {', '.join(row['map_genes'][:6])}"
        )
    means = table[columns + ["baseline", "ceiling"]].mean()
    print(
        f"{'mean':<13}{'':>6}"
        + "".join(f"{means[c]:>{w}.2f}" for c, w in zip(columns, widths, strict=True))
        + f"{means['baseline']:>8.2f}{means['ceiling']:>9.2f}"
    )
    print(
        "global = one mean shift for every cell (train cells); ceiling = each "
        "type's own train shift"
    )


def run_demo(
    output="skmonge_demo.png", random_state=0, grid=DEFAULT_GRID, verbose=True
):
    """Fit the demo grid on the harmony subset; print the tables, write figures.

    The second figure (per-type dot plot) goes next to ``output``, with
    ``_celltypes`` before the extension.

    Returns
    -------
    rows : list of dict
        One record per (cost, target_dim) with the reported metrics (see
        :func:`evaluate_maps`).
    table : pandas.DataFrame
        The per-cell-type table of :func:`cell_type_fidelity`.
    """
    data = load_kang2018("harmony", lognorm=True)
    genes = np.asarray(data.feature_names)
    rows, context = evaluate_maps(
        data.data, data.target, genes, grid, random_state, verbose
    )
    print_table(rows, context, "Kang et al. 2018 PBMCs (harmony subset), 9,015 genes")
    table, fitted, _, (X_te, y_te, t_te) = cell_type_fidelity(
        data.data, data.target, data.cell_type, genes=genes, random_state=random_state
    )
    print_cell_type_table(table)
    est = fitted["default"]
    if output:
        _plot(rows, genes, context["baseline"], output)
        print(f"figure written to {output}")
        types_output = _celltypes_path(output)
        _plot_cell_types(est, X_te, y_te, t_te, table, genes, types_output)
        print(f"figure written to {types_output}")
    return rows, table


def _celltypes_path(output):
    import os

    stem, ext = os.path.splitext(output)
    return f"{stem}_celltypes{ext or '.png'}"


def _plot_cell_types(est, X_te, y_te, t_te, table, genes, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_group_displacements

    control = y_te == "control"
    scored = np.isin(t_te, table.index.to_numpy())
    fig, ax = plt.subplots(figsize=(13, 5))
    plot_group_displacements(
        est,
        X_te[control & scored],
        t_te[control & scored],
        feature_names=genes,
        n_genes=5,
        ax=ax,
    )
    # the size legend sits right above the axes: keep the title clear of it
    ax.set_title(
        "Default elastic-ℓ1 map, held-out control cells: mean displacement per "
        "cell type",
        pad=48,
    )
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def _identity_divergence(X_test, y_test):
    from .sinkhorn import sinkhorn_divergence

    def dense(rows):
        rows = rows.toarray() if hasattr(rows, "toarray") else rows
        return np.asarray(rows, dtype=np.float64)

    return float(
        sinkhorn_divergence(
            dense(X_test[y_test == "control"]), dense(X_test[y_test == "stimulated"])
        )
    )


def print_table(rows, context, title):
    """Print the rows of :func:`evaluate_maps` as a table under ``title``."""
    print()
    print(f"{title}; control -> IFN-beta stimulated; metrics on 20 % held-out cells")
    print(f"held-out Sinkhorn divergence without any map: {context['baseline']:.3f}")
    print(f"top Wilcoxon markers (train split): {', '.join(context['markers'][:10])}")
    header = (
        f"{'cost':<13}{'genes/cell':>11}{'gamma':>8}{'nonzero':>9}{'S_eps':>9}"
        f"{'RBO':>7}{'time s':>8}  genes moved most"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        target = "all" if row["target_dim"] is None else f"{row['target_dim']:g}"
        gamma = "-" if row["gamma"] is None else f"{row['gamma']:.3g}"
        print(
            f"{row['cost']:<13}{target:>11}{gamma:>8}{row['nonzero']:>9.3f}"
            f"{row['divergence']:>9.3f}{row['rbo']:>7.3f}{row['seconds']:>8.1f}"
            f"  {', '.join(row['top_genes'])}"
        )


def _plot(rows, genes, baseline, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_trade, ax_genes) = plt.subplots(1, 2, figsize=(12, 4.5))
    for cost, marker in (("elastic_l1", "o"), ("elastic_stvs", "s")):
        pts = [r for r in rows if r["cost"] == cost]
        ax_trade.plot(
            [r["nonzero"] for r in pts],
            [r["divergence"] for r in pts],
            marker=marker,
            label=cost,
        )
        for r in pts:
            ax_trade.annotate(
                f"{r['target_dim']:g} genes (γ={r['gamma']:.2g})",
                (r["nonzero"], r["divergence"]),
                textcoords="offset points",
                # l1 labels above the points, STVS labels below
                xytext=(4, 6) if cost == "elastic_l1" else (4, -12),
                fontsize=8,
            )
    for r in rows:
        if r["cost"] == "sqeuclidean":
            ax_trade.scatter(
                [r["nonzero"]],
                [r["divergence"]],
                marker="*",
                s=150,
                color="k",
                label="½ℓ2² (dense)",
            )
    ax_trade.axhline(baseline, color="grey", ls="--", label="no map")
    ax_trade.set_xscale("log")
    ax_trade.set_xlabel("fraction of non-zero displacement coordinates (log)")
    ax_trade.set_ylabel("held-out Sinkhorn divergence")
    ax_trade.set_title("Sparsity versus fit")
    ax_trade.legend()

    sparse_rows = [r for r in rows if r["cost"] != "sqeuclidean"]
    best = min(sparse_rows, key=lambda r: r["divergence"])
    top = np.argsort(-np.abs(best["mean_shift"]))[:20]
    ax_genes.barh(
        np.arange(20)[::-1],
        best["mean_shift"][top],
        color=np.where(best["mean_shift"][top] > 0, "tab:red", "tab:blue"),
    )
    ax_genes.set_yticks(np.arange(20)[::-1], genes[top], fontsize=8)
    ax_genes.set_xlabel("mean displacement (log-CP10K) of held-out control cells")
    ax_genes.set_title(
        f"Genes moved most: {best['cost']}, {best['target_dim']:g} genes per cell"
    )
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skmonge")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit sparse maps on Kang 2018 PBMCs")
    demo.add_argument(
        "--output", default="skmonge_demo.png", help="path of the PNG figure"
    )
    demo.add_argument("--seed", type=int, default=0, help="split seed")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(output=args.output, random_state=args.seed, verbose=not args.quiet)
    return 0
