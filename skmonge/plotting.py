"""Matplotlib views of fitted displacement-sparse maps.

* :func:`plot_displacements_2d`: source and target clouds with the arrows
  ``x -> T(x)`` (and optionally the Bregman interpolation paths) of a map
  fitted on 2-d data, the style of Figure 1 of Cuturi, Klein & Ablin (2023).
* :func:`plot_feature_displacements`: which features (genes) move, as a bar
  chart of the mean displacement of the features moved most, or as a
  cells × features heatmap.
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
    "plot_sparsity_tradeoff",
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
    """``(X, T(X) - X)`` as float64 arrays, with ``T = estimator.transform``."""
    mapped = _as_matrix(estimator.transform(X), "transform(X)")
    X = _as_matrix(X)
    return X, mapped - X


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
    mapped = _as_matrix(estimator.transform(X), "transform(X)")
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
