"""Matplotlib views of fitted displacement-sparse maps.

* :func:`plot_displacements_2d`: source and target clouds with the arrows
  ``x -> T(x)`` (and optionally the Bregman interpolation paths) of a map
  fitted on 2-d data, the style of Figure 1 of Cuturi, Klein & Ablin (2023).
* :func:`plot_feature_displacements`: which features (genes) move, as a bar
  chart of the mean displacement of the features moved most, or as a
  cells × features heatmap.
* :func:`plot_group_displacements`: a groups × genes dot plot (cell types ×
  genes, ``scanpy.pl.dotplot`` style) of the mean displacement and the
  fraction of cells moved.
* :func:`plot_sparsity_tradeoff`: sparsity against fit across a
  ``GridSearchCV`` run, one point per hyper-parameter value.
* :func:`plot_lambda_trajectory`: the λ, displacement-dimension and residue
  trajectory recorded while a neural map adapts λ (Chen, Xie & Zhang, Fig. 4).

Every function draws on the Axes it is given (a new figure when
``ax=None``) and returns that Axes. matplotlib is an optional dependency:
``pip install "skmonge[plot]"``.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._pipeline import map_and_displace

try:
    import matplotlib  # noqa: F401  (fail at import with an actionable message)
except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
    raise ImportError(
        "skmonge.plotting needs matplotlib; install it with "
        'pip install "skmonge[plot]".'
    ) from exc

__all__ = [
    "plot_displacements_2d",
    "plot_feature_displacements",
    "plot_group_displacements",
    "plot_sparsity_tradeoff",
    "plot_sparsity_path",
    "plot_lambda_trajectory",
]


def _new_axes(ax):
    """``ax``, or the Axes of a new figure (never draw over an unrelated plot)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def _dense_rows(X):
    """``X`` as given, densified if it is a scipy sparse matrix (e.g. Kang data)."""
    from scipy import sparse

    return X.toarray() if sparse.issparse(X) else X


def _as_matrix(X, name="X"):
    values = np.asarray(X, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {values.shape}.")
    return values


def _take_rows(X, rows):
    """Select ``rows`` (mask, indices or slice) of an array or a DataFrame."""
    if rows is None:
        return X
    if isinstance(rows, slice):
        return X.iloc[rows] if hasattr(X, "iloc") else X[rows]
    rows = np.asarray(rows)
    n = np.shape(X)[0]
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(
                f"A boolean cells mask must have shape ({n},), got {rows.shape}."
            )
        rows = np.flatnonzero(rows)
    elif rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(
            "cells must be a boolean mask, an array of row indices or a slice."
        )
    if rows.size == 0:
        raise ValueError("cells selects no rows.")
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _displacement(estimator, X):
    """``(X, T(X) - X)`` as float64 arrays, in the input features.

    Through :func:`skmonge._pipeline.map_and_displace`, so that a Pipeline
    ending in a map is drawn in the features the user passed.
    """
    _, delta = map_and_displace(estimator, X)
    return _as_matrix(X), _as_matrix(delta, "transform(X) - X")


def plot_displacements_2d(
    estimator,
    X,
    ax=None,
    *,
    target=None,
    arrows=True,
    paths=False,
    n_steps=20,
    source_kw=None,
    target_kw=None,
    arrow_kw=None,
    path_kw=None,
):
    """Draw a map fitted on 2-d data: source, target and arrows ``x -> T(x)``.

    Sparse displacements show up as axis-parallel arrows: a point that moves
    along one coordinate only draws a horizontal or vertical arrow.

    Parameters
    ----------
    estimator : fitted map estimator
        Any skmonge map fitted on 2 features (anything with ``transform``).
    X : array-like of shape (n_samples, 2)
        Source points to map and draw.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    target : array-like of shape (n_target, 2), default=None
        Target points to draw; defaults to the fitted ``estimator.target_``
        when the estimator stores it. Pass an empty array to draw none.
    arrows : bool, default=True
        Draw one arrow per row of ``X`` from ``x`` to ``T(x)``.
    paths : bool, default=False
        Also draw the Bregman interpolation path ``t -> x_t`` of each point
        (``estimator.interpolate(X, t)``, eq. 17 of Cuturi, Klein & Ablin);
        with an elastic cost the coordinates start moving at different times,
        so the paths bend where a straight arrow does not.
    n_steps : int, default=20
        Number of times ``t`` in [0, 1] at which each path is evaluated.
    source_kw, target_kw, arrow_kw, path_kw : dict, default=None
        Extra keyword arguments for the source ``scatter``, the target
        ``scatter``, the ``quiver`` of arrows and the ``LineCollection`` of
        paths.

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If ``X`` or ``target`` is not of shape (n, 2), if the estimator was
        fitted on a different number of features, or if ``paths=True`` and
        the estimator has no ``interpolate`` method.

    Examples
    --------
    >>> import numpy as np
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.plotting import plot_displacements_2d
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + [3, 0]])
    >>> y = np.repeat([0, 1], 30)
    >>> est = EntropicSparseMap(cost="elastic_l1", gamma=0.5).fit(X, y)
    >>> ax = plot_displacements_2d(est, X[y == 0], paths=True)
    """
    from matplotlib.collections import LineCollection

    X = _dense_rows(X)
    X_arr = _as_matrix(X)
    if X_arr.shape[1] != 2:
        raise ValueError(
            "plot_displacements_2d draws 2-d data: X must have shape "
            f"(n_samples, 2), got {X_arr.shape}."
        )
    n_features = getattr(estimator, "n_features_in_", 2)
    if n_features != 2:
        raise ValueError(
            f"The estimator was fitted on {n_features} features; "
            "plot_displacements_2d needs a map fitted on 2-d data."
        )
    if target is None:
        target = getattr(estimator, "target_", np.empty((0, 2)))
        if hasattr(target, "toarray"):  # a sparse fitted cloud
            target = target.toarray()
    target = _as_matrix(target, "target")
    if target.shape[1] != 2:
        raise ValueError(f"target must have shape (n, 2), got {target.shape}.")
    if paths and not hasattr(estimator, "interpolate"):
        raise ValueError(
            f"paths=True needs an estimator with an interpolate method; "
            f"{type(estimator).__name__} has none."
        )
    if not isinstance(n_steps, numbers.Integral) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}.")

    ax = _new_axes(ax)
    mapped = _as_matrix(map_and_displace(estimator, X)[0], "transform(X)")
    if target.shape[0]:
        ax.scatter(
            target[:, 0],
            target[:, 1],
            **{"s": 12, "color": "tab:orange", "label": "target", **(target_kw or {})},
        )
    ax.scatter(
        X_arr[:, 0],
        X_arr[:, 1],
        **{"s": 12, "color": "tab:blue", "label": "source", **(source_kw or {})},
    )
    if paths:
        times = np.linspace(0.0, 1.0, int(n_steps))
        # interpolate returns (n_steps, n, 2); a LineCollection wants one
        # (n_steps, 2) polyline per point
        trajectories = np.asarray(estimator.interpolate(X, times), dtype=np.float64)
        lines = LineCollection(
            np.transpose(trajectories, (1, 0, 2)),
            **{
                "colors": "0.4",
                "linewidths": 0.8,
                "label": "Bregman path",
                **(path_kw or {}),
            },
        )
        ax.add_collection(lines)
        ax.update_datalim(trajectories.reshape(-1, 2))
    if arrows:
        delta = mapped - X_arr
        # angles/scale "xy" make each arrow end exactly at T(x) in data units
        ax.quiver(
            X_arr[:, 0],
            X_arr[:, 1],
            delta[:, 0],
            delta[:, 1],
            **{
                "angles": "xy",
                "scale_units": "xy",
                "scale": 1.0,
                "width": 0.003,
                "color": "0.2",
                "label": "x → T(x)",
                **(arrow_kw or {}),
            },
        )
    # quiver does not grow the data limits to the arrow heads
    ax.update_datalim(np.vstack([X_arr, mapped]))
    ax.autoscale_view()
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_feature_displacements(
    estimator,
    X,
    feature_names=None,
    cells=None,
    top=20,
    kind="bar",
    ax=None,
    *,
    cmap="RdBu_r",
    colorbar=True,
):
    r"""Show which features the map moves: mean displacement or a heatmap.

    The displacement :math:`Δ_{it} = T(x_i)_t - x_{it}` is computed for the
    selected rows, and the ``top`` features with the largest mean
    :math:`|Δ_{it}|` over those rows are shown, largest first.

    Parameters
    ----------
    estimator : fitted map estimator
        Anything with ``transform`` (and ``get_feature_names_out`` when
        ``feature_names`` is None).
    X : array-like or sparse matrix of shape (n_samples, n_features)
        Points mapped as source points (e.g. the control cells, or the pooled
        matrix with ``cells`` selecting the control rows).
    feature_names : array-like of str, default=None
        Names of the features; defaults to ``estimator.get_feature_names_out()``
        (the column names the estimator was fitted on, else ``x0, x1, ...``).
    cells : array-like of bool or int, or slice, default=None
        Rows of ``X`` to use; all rows when None.
    top : int or None, default=20
        Number of features shown; None shows all of them.
    kind : {"bar", "heatmap"}, default="bar"
        ``"bar"``: horizontal bars of the mean signed displacement of each
        shown feature over the rows (red up, blue down). ``"heatmap"``: the
        displacement of every selected row (rows) on each shown feature
        (columns), on a colour scale symmetric around 0.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    cmap : str or Colormap, default="RdBu_r"
        Colormap of the heatmap.
    colorbar : bool, default=True
        Add a colorbar to the heatmap.

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        For an unknown ``kind``, a ``top`` below 1, feature names of the wrong
        length or an empty row selection.

    Examples
    --------
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.datasets import load_kang2018
    >>> from skmonge.plotting import plot_feature_displacements
    >>> kang = load_kang2018("liger")
    >>> X, y = kang.data.toarray(), kang.target
    >>> est = EntropicSparseMap(cost="elastic_stvs", gamma=1.0,
    ...                         source="control", target="stimulated").fit(X, y)
    >>> ax = plot_feature_displacements(est, X, kang.feature_names,
    ...                                 cells=y == "control", top=15)
    """
    if kind not in ("bar", "heatmap"):
        raise ValueError(f"kind must be 'bar' or 'heatmap', got {kind!r}.")
    # select before densifying: a sparse pooled matrix is never densified whole
    X = _dense_rows(_take_rows(X, cells))
    _, delta = _displacement(estimator, X)
    n_features = delta.shape[1]
    if feature_names is None:
        if hasattr(estimator, "get_feature_names_out"):
            feature_names = estimator.get_feature_names_out()
        else:
            feature_names = [f"x{i}" for i in range(n_features)]
    feature_names = np.asarray(feature_names, dtype=object)
    if feature_names.shape != (n_features,):
        raise ValueError(
            f"feature_names must hold {n_features} names (one per feature), "
            f"got shape {feature_names.shape}."
        )
    if top is None:
        top = n_features
    if not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top must be a positive integer or None, got {top!r}.")

    # stable sort: ties (e.g. many features that never move) keep input order
    order = np.argsort(-np.abs(delta).mean(axis=0), kind="stable")[: int(top)]
    names = [str(name) for name in feature_names[order]]
    ax = _new_axes(ax)
    if kind == "bar":
        mean = delta[:, order].mean(axis=0)
        positions = np.arange(len(order))
        ax.barh(
            positions,
            mean,
            color=np.where(mean > 0, "tab:red", "tab:blue"),
        )
        ax.set_yticks(positions, names)
        ax.invert_yaxis()  # largest mean |Δ| on top
        ax.axvline(0.0, color="0.3", linewidth=0.8)
        ax.set_xlabel(f"mean displacement T(x) - x over {delta.shape[0]} rows")
    else:
        values = delta[:, order]
        # symmetric limits so that white means "does not move"
        limit = float(np.abs(values).max()) or 1.0
        image = ax.imshow(
            values,
            aspect="auto",
            interpolation="nearest",
            cmap=cmap,
            vmin=-limit,
            vmax=limit,
        )
        ax.set_xticks(np.arange(len(order)), names, rotation=90)
        ax.set_ylabel("row")
        if colorbar:
            ax.figure.colorbar(image, ax=ax, label="T(x) - x")
    return ax


_STATS_COLUMNS = ("group", "feature", "mean_displacement", "fraction_moved")


def _stats_tables(stats):
    """Groups × features tables of a tidy per-group displacement report.

    Returns ``(group_labels, feature_names, mean, fraction, rank)`` with the
    groups and features in their order of first appearance; ``rank`` is the
    ``mean_abs_displacement`` column when present, else ``|mean|``.
    """
    if not hasattr(stats, "columns") or not hasattr(stats, "reset_index"):
        raise ValueError(
            "stats must be a pandas DataFrame with columns "
            f"{list(_STATS_COLUMNS)}, got {type(stats).__name__}."
        )
    names = [name for name in stats.index.names if name is not None]
    if any(column in names for column in _STATS_COLUMNS[:2]):
        stats = stats.reset_index()  # group / feature as index levels
    missing = [column for column in _STATS_COLUMNS if column not in stats.columns]
    if missing:
        raise ValueError(
            f"stats misses the column(s) {missing}; expected a tidy table with "
            f"columns {list(_STATS_COLUMNS)} (optionally mean_abs_displacement), "
            f"got {[str(c) for c in stats.columns]}."
        )
    if len(stats) == 0:
        raise ValueError("stats is empty: nothing to plot.")
    if stats.duplicated(["group", "feature"]).any():
        raise ValueError("stats has more than one row for some (group, feature).")
    group_labels = list(dict.fromkeys(stats["group"].tolist()))
    features = list(dict.fromkeys(stats["feature"].tolist()))
    row = {g: i for i, g in enumerate(group_labels)}
    col = {f: j for j, f in enumerate(features)}
    if len(stats) != len(group_labels) * len(features):
        raise ValueError(
            f"stats must hold every (group, feature) pair: {len(group_labels)} "
            f"groups × {len(features)} features, but it has {len(stats)} rows."
        )
    i = np.array([row[g] for g in stats["group"].tolist()])
    j = np.array([col[f] for f in stats["feature"].tolist()])
    tables = []
    for column in ("mean_displacement", "fraction_moved", "mean_abs_displacement"):
        if column not in stats.columns:
            tables.append(None)
            continue
        values = np.asarray(stats[column], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"stats[{column!r}] has NaN or infinite values.")
        table = np.zeros((len(group_labels), len(features)))
        table[i, j] = values
        tables.append(table)
    mean, fraction, rank = tables
    if np.any((fraction < 0) | (fraction > 1)):
        raise ValueError("stats['fraction_moved'] must lie in [0, 1].")
    return (
        group_labels,
        features,
        mean,
        fraction,
        np.abs(mean) if rank is None else rank,
    )


def plot_group_displacements(
    estimator=None,
    X=None,
    groups=None,
    *,
    stats=None,
    genes=None,
    n_genes=10,
    feature_names=None,
    atol=1e-8,
    ax=None,
    cmap="RdBu_r",
    max_size=200.0,
    colorbar=True,
    size_legend=True,
):
    r"""Dot plot of the mean displacement, groups × genes (``scanpy.pl.dotplot`` style).

    For the cells :math:`I_g` of group :math:`g` (e.g. a cell type) and gene
    :math:`t`, with :math:`Δ_{it} = T(x_i)_t - x_{it}` in the input space
    (also for a ``Pipeline``, see :func:`skmonge._pipeline.map_and_displace`),
    the dot of row :math:`g` and column :math:`t` has

    .. math::
        \text{colour} = \bar Δ_{gt} = \frac{1}{|I_g|} \sum_{i \in I_g} Δ_{it},
        \qquad
        \text{area} \propto f_{gt} = \frac{1}{|I_g|}
            \#\{i \in I_g : |Δ_{it}| > \text{atol}\},

    on a diverging colour scale centred at 0 with symmetric limits
    :math:`\pm\max_{g,t} |\bar Δ_{gt}|` (white: does not move on average),
    and dot areas ``max_size * f`` (points²; a gene no cell of the group
    moves has no visible dot). A colourbar and a legend of dot sizes
    (fraction of cells moved) go with it.

    Give either a fitted map with the cells to map, or precomputed
    statistics:

    * ``plot_group_displacements(estimator, X, groups)``: ``X`` holds the
      source cells (e.g. the control cells), ``groups`` their groups.
    * ``plot_group_displacements(stats=table)``: a tidy DataFrame with
      columns ``group``, ``feature``, ``mean_displacement``,
      ``fraction_moved`` (and optionally ``mean_abs_displacement``), e.g. a
      per-group displacement report; ``group`` / ``feature`` may be index
      levels.

    Parameters
    ----------
    estimator : fitted map estimator or Pipeline ending in one, default=None
        The map whose displacements are drawn.
    X : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_features)
        Cells to map as source points (sparse ``X`` is densified a chunk of
        rows at a time).
    groups : array-like of shape (n_cells,)
        Group of each cell; cells with a missing group (None, NaN) are left
        out. Groups are drawn in sorted order, top to bottom.
    stats : DataFrame, default=None
        Precomputed statistics instead of ``estimator``, ``X``, ``groups``;
        groups and genes keep their order of first appearance.
    genes : sequence of str, default=None
        Genes (feature names) to draw, left to right. ``None`` takes the
        union of each group's ``n_genes`` genes with the largest mean
        :math:`|Δ|` (for ``stats`` without ``mean_abs_displacement``, the
        largest :math:`|\bar Δ|`), group by group, each group's genes in
        decreasing order; genes with a zero mean are not taken.
    n_genes : int, default=10
        Genes per group when ``genes=None``.
    feature_names : sequence of str, default=None
        Names of the features of ``X``; by default the DataFrame columns,
        else the estimator's ``feature_names_in_``, else ``x0, x1, …``.
    atol : float, default=1e-8
        A cell moves a gene when :math:`|Δ_{it}| > \text{atol}`.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    cmap : str or Colormap, default="RdBu_r"
        Diverging colormap of the mean displacement.
    max_size : float, default=200.0
        Area (points²) of a dot whose gene moves in every cell of the group.
    colorbar : bool, default=True
        Add a colourbar of the mean displacement.
    size_legend : bool, default=True
        Add a legend of dot sizes (20 %, 40 %, …, 100 % of cells moved)
        above the plot.

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on; the dots are its one ``PathCollection``, in row
        order (group by group, genes left to right).

    Raises
    ------
    ValueError
        If both or neither of ``estimator`` and ``stats`` are given, ``X`` or
        ``groups`` is missing or of the wrong length, a gene name is unknown
        or repeated, ``n_genes``, ``atol`` or ``max_size`` is out of range,
        ``stats`` is malformed, or no gene moves.

    Examples
    --------
    >>> import numpy as np
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.plotting import plot_group_displacements
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 20))
    >>> y = np.repeat(["ctrl", "stim"], 60)
    >>> groups = np.tile(["B", "T"], 60)
    >>> X[(y == "stim") & (groups == "B"), :3] += 2.0
    >>> est = EntropicSparseMap(gamma=1.0, source="ctrl", target="stim").fit(X, y)
    >>> ax = plot_group_displacements(est, X[y == "ctrl"], groups[y == "ctrl"],
    ...                               n_genes=3)
    """
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    from ._groups import encode_groups
    from .inspection import _check_atol
    from .metrics import (
        _check_int,
        _check_rows,
        _group_displacement_stats,
        _input_feature_names,
    )

    n_genes = _check_int(n_genes, "n_genes", 1)
    atol = _check_atol(atol)
    if (
        isinstance(max_size, bool)
        or not isinstance(max_size, numbers.Real)
        or not np.isfinite(max_size)
        or max_size <= 0
    ):
        raise ValueError(f"max_size must be a positive number, got {max_size!r}.")
    if (estimator is None) == (stats is None):
        raise ValueError(
            "Give either a fitted estimator with X and groups, or stats (a "
            "per-group displacement table), not "
            + ("both." if stats is not None else "neither.")
        )
    if stats is not None:
        if X is not None or groups is not None or feature_names is not None:
            raise ValueError(
                "With stats, X, groups and feature_names must be None (the "
                "table already holds the groups and feature names)."
            )
        group_labels, names, mean, fraction, rank = _stats_tables(stats)
    else:
        if X is None or groups is None:
            raise ValueError(
                "plot_group_displacements(estimator, X, groups) needs the cells "
                "to map (X) and their groups."
            )
        X_valid = _check_rows(X, "X")
        n_cells, n_features = X_valid.shape
        labels, codes = encode_groups(groups, n_cells)
        if labels.size == 0:
            raise ValueError("groups holds no group label (all missing).")
        if feature_names is None:
            names = _input_feature_names(estimator, X, n_features)
        else:
            names = np.asarray(feature_names, dtype=object)
            if names.shape != (n_features,):
                raise ValueError(
                    f"feature_names must hold {n_features} names (one per "
                    f"feature), got shape {names.shape}."
                )
        rows = np.flatnonzero(codes >= 0)
        mean, rank, fraction, _ = _group_displacement_stats(
            estimator, X, X_valid, rows, codes[rows], labels.size, atol
        )
        group_labels = labels.tolist()
        names = [str(name) for name in names]

    if genes is None:
        chosen = {}
        for g in range(len(group_labels)):
            order = np.argsort(-rank[g], kind="stable")
            for j in order[rank[g][order] > 0][:n_genes].tolist():
                chosen.setdefault(j, None)
        columns = list(chosen)
        if not columns:
            raise ValueError(
                "The map moves no gene in any group (every mean |Δ| is 0); pass "
                "genes= to draw chosen genes anyway."
            )
    else:
        genes = [genes] if isinstance(genes, str) else list(genes)
        if not genes:
            raise ValueError("genes is empty.")
        if len(set(genes)) != len(genes):
            raise ValueError("genes contains duplicate names.")
        lookup = {name: j for j, name in enumerate(names)}
        unknown = [gene for gene in genes if gene not in lookup]
        if unknown:
            raise ValueError(
                f"Unknown gene name(s) {unknown[:10]}; the features are named "
                f"like {list(names[:3])}."
            )
        columns = [lookup[gene] for gene in genes]

    colour = mean[:, columns]
    size = fraction[:, columns]
    n_rows, n_cols = colour.shape
    limit = float(np.abs(colour).max()) or 1.0
    ax = _new_axes(ax)
    yy, xx = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    dots = ax.scatter(
        xx.ravel(),
        yy.ravel(),
        s=max_size * size.ravel(),
        c=colour.ravel(),
        cmap=cmap,
        norm=Normalize(vmin=-limit, vmax=limit),
        edgecolors="0.3",
        linewidths=0.5,
    )
    ax.set_xticks(np.arange(n_cols), [names[j] for j in columns], rotation=90)
    ax.set_yticks(np.arange(n_rows), [str(g) for g in group_labels])
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)  # first group on top
    ax.set_axisbelow(True)
    ax.grid(True, color="0.92", linewidth=0.5)
    if colorbar:
        ax.figure.colorbar(dots, ax=ax, label="mean displacement T(x) - x")
    if size_legend:
        fractions = (0.2, 0.4, 0.6, 0.8, 1.0)
        handles = [
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=float(np.sqrt(max_size * f)),  # points, s is points²
                markerfacecolor="0.6",
                markeredgecolor="0.3",
                markeredgewidth=0.5,
                label=f"{f:.0%}",
            )
            for f in fractions
        ]
        ax.legend(
            handles=handles,
            title=f"fraction of cells with |Δ| > {atol:g}",
            loc="lower center",
            bbox_to_anchor=(0.5, 1.01),
            ncol=len(fractions),
            frameon=False,
            fontsize="small",
            title_fontsize="small",
        )
    return ax


def _format_param(name, value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{name}={value:g}"
    return f"{name}={value}"


def _is_missing(value):
    return (
        value is None
        or value is np.ma.masked
        or (isinstance(value, float) and np.isnan(value))
    )


def _score_key(cv_results, key):
    """The ``cv_results`` column for ``key`` (a full key or a scorer name)."""
    for candidate in (key, f"mean_test_{key}"):
        if candidate in cv_results:
            return candidate
    scores = sorted(k for k in cv_results if str(k).startswith("mean_test_"))
    raise ValueError(
        f"cv_results has no key {key!r} (nor 'mean_test_{key}'); score keys "
        f"present: {scores}. Run GridSearchCV with scoring={{name: scorer}} "
        "for each metric you want to plot."
    )


def _param_column(cv_results, name):
    for candidate in (f"param_{name}", name):
        if candidate in cv_results:
            column = cv_results[candidate]
            mask = np.ma.getmaskarray(column)
            values = np.asarray(column, dtype=object)
            return [
                None if masked or _is_missing(v) else v
                for v, masked in zip(values, mask, strict=True)
            ]
    params = sorted(k for k in cv_results if str(k).startswith("param_"))
    raise ValueError(
        f"cv_results has no parameter column 'param_{name}'; present: {params}."
    )


def _sort_key(value):
    # numbers in numeric order, anything else after them in string order
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def plot_sparsity_path(path, *, gamma=None, ax=None, dimension=False):
    r"""Moved fraction and held-out fit along a γ path, the chosen γ marked.

    Draws :attr:`~skmonge.path.SparsityPath.moved_fraction` (or the moved
    features per cell, with ``dimension=True``) against γ on a log axis,
    and, when the path was computed with validation data, its held-out
    ``score`` (minus the Sinkhorn divergence) on a second y axis.

    Parameters
    ----------
    path : SparsityPath
        From :func:`skmonge.sparsity_path` (or an estimator's ``path_``).
    gamma : float, default=None
        A γ to mark with a vertical line (e.g. ``est.gamma_``).
    ax : matplotlib Axes, default=None
    dimension : bool, default=False
        Plot the mean number of moved features per cell instead of the
        fraction.

    Returns
    -------
    ax : matplotlib Axes
        The axes of the sparsity curve (the score axis is ``ax.right_ax``
        when drawn).
    """
    for name in ("gammas", "moved_fraction", "dimension", "score"):
        if not hasattr(path, name):
            raise ValueError(
                f"path must be a SparsityPath (from skmonge.sparsity_path); "
                f"{type(path).__name__} has no {name!r}."
            )
    ax = _new_axes(ax)
    order = np.argsort(path.gammas)
    gammas = np.asarray(path.gammas)[order]
    values = np.asarray(path.dimension if dimension else path.moved_fraction)[order]
    ax.plot(gammas, values, marker="o", color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("γ")
    ax.set_ylabel("moved features per cell" if dimension else "fraction moved")
    ax.tick_params(axis="y", colors="tab:blue")
    score = np.asarray(path.score)[order]
    if np.any(np.isfinite(score)):
        right = ax.twinx()
        right.plot(gammas, score, marker="s", color="tab:orange")
        right.set_ylabel("held-out score (− Sinkhorn divergence)")
        right.tick_params(axis="y", colors="tab:orange")
        ax.right_ax = right
    if gamma is not None:
        ax.axvline(float(gamma), color="0.4", ls=":", label=f"γ = {float(gamma):.3g}")
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_sparsity_tradeoff(
    cv_results,
    param="gamma",
    ax=None,
    *,
    x="mean_test_sparsity",
    y="mean_test_fit",
    by=None,
    errorbars=False,
    annotate=True,
    connect=True,
):
    """Sparsity against fit across a grid search, one point per setting.

    Each row of ``cv_results`` (one hyper-parameter setting) is drawn at
    (``x``, ``y``) and annotated with its value of ``param``; points are
    joined in increasing order of ``param`` so that the path traced as γ grows
    shows what each step of sparsity costs in fit.

    Parameters
    ----------
    cv_results : dict or DataFrame
        ``GridSearchCV.cv_results_`` (or ``pandas.DataFrame`` of it), from a
        search run with several scorers, e.g.
        ``scoring={"fit": ..., "sparsity": ...}, refit="fit"``.
    param : str, default="gamma"
        Parameter whose value annotates each point (``cv_results`` column
        ``"param_<param>"``).
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    x, y : str, default="mean_test_sparsity", "mean_test_fit"
        Keys of ``cv_results`` for the horizontal and vertical axes; a bare
        scorer name such as ``"sparsity"`` means ``"mean_test_sparsity"``.
    by : str, default=None
        Parameter that splits the points into one series per value (e.g.
        ``"cost"`` when the grid spans several costs); rows where ``by`` is
        not set (a grid entry without it) form their own series.
    errorbars : bool, default=False
        Draw ± one standard deviation across folds; needs the ``"std_..."``
        key matching each ``"mean_..."`` key.
    annotate : bool, default=True
        Write ``"<param>=<value>"`` next to each point.
    connect : bool, default=True
        Join the points of a series in increasing order of ``param`` (turn off
        when other parameters vary within a series).

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If a key or parameter column is missing.

    Examples
    --------
    The sparsity scorer is a plain callable ``(estimator, X, y) -> float``
    (GridSearchCV accepts those in a ``scoring`` dict). It maps the held-out
    source rows and returns the fraction of non-zero displacement
    coordinates; ``refit`` must name the score to select on.

    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> from skmonge import EntropicSparseMap
    >>> from skmonge.datasets import make_sparse_monge
    >>> from skmonge.metrics import (displacement_sparsity_score,
    ...                              sinkhorn_divergence_score)
    >>> from skmonge.plotting import plot_sparsity_tradeoff
    >>> X, y, _ = make_sparse_monge(100, 5, n_active=2, random_state=0)
    >>> search = GridSearchCV(
    ...     EntropicSparseMap(cost="elastic_l1"), {"gamma": [0.1, 0.3, 1.0]},
    ...     scoring={"fit": sinkhorn_divergence_score,
    ...              "sparsity": displacement_sparsity_score}, refit="fit",
    ...     cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(X, y)
    >>> ax = plot_sparsity_tradeoff(search.cv_results_, "gamma")
    """
    if not hasattr(cv_results, "keys"):
        raise ValueError(
            "cv_results must be a GridSearchCV.cv_results_ dict or a DataFrame, "
            f"got {type(cv_results).__name__}."
        )
    x_key, y_key = _score_key(cv_results, x), _score_key(cv_results, y)
    x_val = np.asarray(cv_results[x_key], dtype=np.float64)
    y_val = np.asarray(cv_results[y_key], dtype=np.float64)
    if x_val.shape != y_val.shape or x_val.ndim != 1:
        raise ValueError(f"{x_key!r} and {y_key!r} must be 1-d of the same length.")
    values = _param_column(cv_results, param)
    groups = _param_column(cv_results, by) if by is not None else [None] * len(values)
    if errorbars:
        err = []
        for key in (x_key, y_key):
            std_key = "std_" + key.removeprefix("mean_")
            if not key.startswith("mean_") or std_key not in cv_results:
                raise ValueError(
                    f"errorbars=True needs {std_key!r} in cv_results to go "
                    f"with {key!r}."
                )
            err.append(np.asarray(cv_results[std_key], dtype=np.float64))

    ax = _new_axes(ax)
    # one series per value of `by`, in first-seen order
    series = list(dict.fromkeys(groups))
    for group in series:
        rows = [i for i, g in enumerate(groups) if g == group]
        if connect:
            rows.sort(key=lambda i: _sort_key(values[i]))
        label = None if by is None else _format_param(by, group)
        style = "-o" if connect else "o"
        if errorbars:
            ax.errorbar(
                x_val[rows],
                y_val[rows],
                xerr=err[0][rows],
                yerr=err[1][rows],
                fmt=style,
                capsize=2,
                label=label,
            )
        else:
            ax.plot(x_val[rows], y_val[rows], style, label=label)
        if annotate:
            for i in rows:
                if values[i] is None:
                    continue
                ax.annotate(
                    _format_param(param, values[i]),
                    (x_val[i], y_val[i]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize="small",
                )
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    if by is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


_HISTORY_KEYS = ("lam", "dimension", "residue")


def plot_lambda_trajectory(
    history, ax=None, *, residue=True, target_dim=None, log_lam=False
):
    """Trajectory of an adaptive-λ fit: λ, displacement dimension and residue.

    Draws λ on the left axis and the displacement dimension on a twin right
    axis (and the residue on a third, offset axis), the view of Figure 4
    (right) and Figure 7 of Chen, Xie & Zhang: how the simulated-annealing
    schedule moves λ and what that does to the sparsity and the fit of the
    map.

    Parameters
    ----------
    history : dict of equal-length sequences
        The ``history_`` of an adaptive-λ fit, with keys ``"lam"`` (λ),
        ``"dimension"`` (mean number of displaced coordinates),
        ``"residue"`` (divergence between the mapped source and the target)
        and optionally ``"iteration"`` (the x axis; 0, 1, ... when absent).
    ax : matplotlib Axes, default=None
        Axes for λ; a new figure when None. The twin axes share its x axis
        and are reachable through ``ax.figure.axes``.
    residue : bool, default=True
        Also draw the residue on its own axis.
    target_dim : float, default=None
        Dimension constraint ``l`` of Algorithm 4, drawn as a dashed line on
        the dimension axis.
    log_lam : bool, default=False
        Log scale for λ (the annealing proposals are multiplicative).

    Returns
    -------
    ax : matplotlib Axes
        The λ axis.

    Raises
    ------
    ValueError
        If ``history`` is not a mapping, misses a key, is empty, or holds
        sequences of different lengths.

    Examples
    --------
    A history in the layout ``NeuralSparseMap.history_`` records, one entry
    per annealing step:

    >>> from skmonge.plotting import plot_lambda_trajectory
    >>> history = {"iteration": [0, 2000, 4000, 6000],
    ...            "lam": [0.01, 0.02, 0.015, 0.03],
    ...            "dimension": [240.0, 180.0, 150.0, 110.0],
    ...            "residue": [0.8, 0.9, 0.85, 1.1]}
    >>> ax = plot_lambda_trajectory(history, target_dim=100, log_lam=True)
    """
    if not hasattr(history, "keys"):
        raise ValueError(
            "history must be a dict of lists (NeuralSparseMap.history_), got "
            f"{type(history).__name__}."
        )
    missing = [key for key in _HISTORY_KEYS if key not in history]
    if missing:
        raise ValueError(
            f"history is missing the key(s) {missing}; expected {list(_HISTORY_KEYS)} "
            f"and optionally 'iteration', got {sorted(map(str, history.keys()))}."
        )
    keys = _HISTORY_KEYS + (("iteration",) if "iteration" in history else ())
    data = {}
    for key in keys:
        values = np.asarray(history[key], dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"history[{key!r}] must be a 1-d sequence of numbers.")
        data[key] = values
    lengths = {key: len(values) for key, values in data.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history lists must have equal lengths, got {lengths}.")
    if lengths["lam"] == 0:
        raise ValueError("history is empty: nothing to plot.")
    steps = data.get("iteration", np.arange(lengths["lam"], dtype=np.float64))

    ax = _new_axes(ax)
    handles = ax.plot(steps, data["lam"], color="tab:blue", label="λ")
    ax.set_xlabel("iteration" if "iteration" in data else "step")
    ax.set_ylabel("λ", color="tab:blue")
    if log_lam:
        ax.set_yscale("log")
    ax_dim = ax.twinx()
    handles += ax_dim.plot(steps, data["dimension"], color="tab:red", label="dimension")
    ax_dim.set_ylabel("displacement dimension", color="tab:red")
    if target_dim is not None:
        handles.append(
            ax_dim.axhline(
                float(target_dim),
                color="tab:red",
                linestyle="--",
                linewidth=0.8,
                label=f"target dimension {target_dim:g}",
            )
        )
    if residue:
        ax_res = ax.twinx()
        # a third y axis: move its spine right of the dimension axis
        ax_res.spines["right"].set_position(("axes", 1.15))
        handles += ax_res.plot(
            steps, data["residue"], color="tab:green", label="residue"
        )
        ax_res.set_ylabel("residue", color="tab:green")
    ax.legend(handles=handles, loc="best", fontsize="small")
    return ax
