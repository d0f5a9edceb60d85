"""skmonge.plotting: what is drawn matches the map, the search and the history."""

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from skmonge import EntropicSparseMap  # noqa: E402
from skmonge.datasets import make_sparse_monge  # noqa: E402
from skmonge.metrics import (  # noqa: E402
    displacement_sparsity_score,
    sinkhorn_divergence_score,
)
from skmonge.plotting import (  # noqa: E402
    plot_displacements_2d,
    plot_feature_displacements,
    plot_group_displacements,
    plot_lambda_trajectory,
    plot_sparsity_tradeoff,
)


@pytest.fixture(autouse=True)
def _no_figure_leak():
    """Every test starts and ends without open figures."""
    plt.close("all")
    yield
    plt.close("all")


def _pooled_2d(n=30, seed=0):
    rng = np.random.default_rng(seed)
    Xs = rng.normal(size=(n, 2))
    Xt = rng.normal(size=(n, 2)) * 0.7 + [3.0, 0.2]
    return np.vstack([Xs, Xt]), np.repeat([0, 1], n), Xs


@pytest.fixture(scope="module")
def map_2d():
    X, y, Xs = _pooled_2d()
    return EntropicSparseMap(cost="elastic_l1", gamma=0.5).fit(X, y), Xs


@pytest.fixture(scope="module")
def map_6d():
    """Only the first two of six features are shifted between the populations."""
    rng = np.random.default_rng(1)
    Xs = rng.normal(size=(40, 6))
    Xt = rng.normal(size=(40, 6))
    Xt[:, 0] += 3.0
    Xt[:, 1] -= 1.5
    X, y = np.vstack([Xs, Xt]), np.repeat([0, 1], 40)
    est = EntropicSparseMap(cost="elastic_stvs", gamma=0.5).fit(X, y)
    return est, X, y


def _only(ax, kind):
    found = [c for c in ax.get_children() if isinstance(c, kind)]
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------- 2-d arrows
def test_arrows_go_from_each_point_to_its_image(map_2d):
    est, Xs = map_2d
    ax = plot_displacements_2d(est, Xs)
    assert plt.get_fignums() == [ax.figure.number]  # one new figure, no more
    quiver = _only(ax, Quiver)
    delta = est.transform(Xs) - Xs
    assert quiver.N == len(Xs)
    np.testing.assert_allclose(quiver.get_offsets(), Xs)
    np.testing.assert_allclose(quiver.U, delta[:, 0])
    np.testing.assert_allclose(quiver.V, delta[:, 1])
    # arrows are in data units, so each head lands on T(x)
    assert quiver.angles == "xy" and quiver.scale_units == "xy" and quiver.scale == 1
    clouds = {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}
    np.testing.assert_allclose(clouds["source"].get_offsets(), Xs)
    np.testing.assert_allclose(clouds["target"].get_offsets(), est.target_)
    # the view holds every arrow head
    x0, x1 = ax.get_xlim()
    assert x0 <= (Xs + delta)[:, 0].min() and x1 >= (Xs + delta)[:, 0].max()


def test_bregman_paths_are_the_interpolation(map_2d):
    est, Xs = map_2d
    fig, ax = plt.subplots()
    returned = plot_displacements_2d(
        est,
        Xs[:10],
        ax=ax,
        arrows=False,
        paths=True,
        n_steps=7,
        target=np.empty((0, 2)),
    )
    assert returned is ax and plt.get_fignums() == [fig.number]
    assert not [c for c in ax.get_children() if isinstance(c, Quiver)]
    assert not [c for c in ax.collections if isinstance(c, PathCollection)][1:]
    lines = _only(ax, LineCollection)
    expected = est.interpolate(Xs[:10], np.linspace(0, 1, 7))
    segments = lines.get_segments()
    assert len(segments) == 10
    for i, segment in enumerate(segments):
        np.testing.assert_allclose(segment, expected[:, i, :])
    np.testing.assert_allclose(
        [s[-1] for s in segments], est.transform(Xs[:10]), atol=1e-12
    )


def test_arrow_plot_rejects_non_2d_data(map_2d, map_6d):
    est, Xs = map_2d
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        plot_displacements_2d(est, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="2-d array"):
        plot_displacements_2d(est, Xs[:, 0])
    est6, X6, _ = map_6d
    with pytest.raises(ValueError, match="fitted on 6 features"):
        plot_displacements_2d(est6, X6[:, :2])
    with pytest.raises(ValueError, match="target must have shape"):
        plot_displacements_2d(est, Xs, target=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_steps"):
        plot_displacements_2d(est, Xs, paths=True, n_steps=1)
    X, y, _ = _pooled_2d()
    pipe = Pipeline([("map", EntropicSparseMap(gamma=0.5))]).fit(X, y)
    with pytest.raises(ValueError, match="interpolate"):
        plot_displacements_2d(pipe, Xs, paths=True)
    assert plt.get_fignums() == []  # validation happens before drawing


# ------------------------------------------------------ feature displacements
def test_bars_are_the_mean_displacement_of_the_top_features(map_6d):
    est, X, y = map_6d
    names = np.array([f"gene{i}" for i in range(6)])
    ax = plot_feature_displacements(est, X, names, cells=y == 0, top=3)
    Xs = X[y == 0]
    delta = est.transform(Xs) - Xs
    order = np.argsort(-np.abs(delta).mean(axis=0))[:3]
    assert set(order[:2]) == {0, 1}  # the two shifted genes move most
    bars = list(ax.patches)
    assert len(bars) == 3
    # bar i sits at y = i and the axis is inverted: decreasing mean |Δ| downwards
    assert ax.yaxis_inverted()
    np.testing.assert_allclose([b.get_y() + b.get_height() / 2 for b in bars], range(3))
    mean = delta[:, order].mean(axis=0)
    np.testing.assert_allclose([b.get_width() for b in bars], mean)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(names[order])
    # gene 0 moves up (red), gene 1 down (blue)
    colours = {i: b.get_facecolor() for i, b in zip(order, bars, strict=True)}
    assert colours[0] == matplotlib.colors.to_rgba("tab:red")
    assert colours[1] == matplotlib.colors.to_rgba("tab:blue")


def test_default_names_come_from_the_fitted_dataframe(map_6d):
    pd = pytest.importorskip("pandas")
    _, X, y = map_6d
    names = [f"g{i}" for i in range(6)]
    frame = pd.DataFrame(X, columns=names)
    est = EntropicSparseMap(cost="elastic_stvs", gamma=0.5).fit(frame, y)
    ax = plot_feature_displacements(est, frame, cells=np.flatnonzero(y == 0), top=None)
    assert len(ax.patches) == 6
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == names


def test_sparse_pooled_matrix_gives_the_same_bars(map_6d):
    from scipy import sparse

    est, X, y = map_6d
    dense = plot_feature_displacements(est, X, cells=y == 0, top=4)
    _, ax_sparse = plt.subplots()
    plot_feature_displacements(
        est, sparse.csr_matrix(X), cells=y == 0, top=4, ax=ax_sparse
    )
    np.testing.assert_allclose(
        [b.get_width() for b in ax_sparse.patches],
        [b.get_width() for b in dense.patches],
    )
    assert [t.get_text() for t in ax_sparse.get_yticklabels()] == [
        t.get_text() for t in dense.get_yticklabels()
    ]


def test_heatmap_is_cells_by_top_features(map_6d):
    est, X, y = map_6d
    rows = np.flatnonzero(y == 0)[:12]
    ax = plot_feature_displacements(est, X, cells=rows, top=4, kind="heatmap")
    image = _only(ax, AxesImage)
    delta = est.transform(X[rows]) - X[rows]
    order = np.argsort(-np.abs(delta).mean(axis=0), kind="stable")[:4]
    values = np.asarray(image.get_array())
    assert values.shape == (12, 4)
    np.testing.assert_allclose(values, delta[:, order])
    vmin, vmax = image.get_clim()
    assert vmin == -vmax == pytest.approx(-np.abs(delta[:, order]).max())
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"x{i}" for i in order]
    assert len(ax.figure.axes) == 2  # the heatmap and its colorbar


def test_feature_plot_rejects_bad_input(map_6d):
    est, X, y = map_6d
    with pytest.raises(ValueError, match="kind"):
        plot_feature_displacements(est, X, kind="pie")
    with pytest.raises(ValueError, match="top"):
        plot_feature_displacements(est, X, top=0)
    with pytest.raises(ValueError, match="6 names"):
        plot_feature_displacements(est, X, feature_names=["a", "b"])
    with pytest.raises(ValueError, match="boolean cells mask"):
        plot_feature_displacements(est, X, cells=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="no rows"):
        plot_feature_displacements(est, X, cells=np.zeros(len(X), dtype=bool))
    assert plt.get_fignums() == []


# ------------------------------------------------------- sparsity trade-off
_fit_score = sinkhorn_divergence_score
_sparsity_score = displacement_sparsity_score


@pytest.fixture(scope="module")
def search():
    X, y, _ = make_sparse_monge(60, 4, n_active=1, random_state=0)
    grid = [
        {"cost": ["sqeuclidean"]},
        {"cost": ["elastic_l1", "elastic_stvs"], "gamma": [0.3, 0.05, 0.1]},
    ]
    return GridSearchCV(
        EntropicSparseMap(),
        grid,
        scoring={"fit": _fit_score, "sparsity": _sparsity_score},
        refit="fit",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)


def test_tradeoff_points_and_annotations_follow_cv_results(search):
    res = search.cv_results_
    ax = plot_sparsity_tradeoff(res, "gamma", by="cost")
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {
        "cost=sqeuclidean",
        "cost=elastic_l1",
        "cost=elastic_stvs",
    }
    for cost in ("elastic_l1", "elastic_stvs"):
        rows = [i for i, p in enumerate(res["params"]) if p["cost"] == cost]
        rows.sort(key=lambda i: res["params"][i]["gamma"])  # joined by increasing γ
        np.testing.assert_allclose(
            lines[f"cost={cost}"].get_xdata(), res["mean_test_sparsity"][rows]
        )
        np.testing.assert_allclose(
            lines[f"cost={cost}"].get_ydata(), res["mean_test_fit"][rows]
        )
    # sqeuclidean has no γ (masked in cv_results_): a point, no annotation
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["gamma=0.05", "gamma=0.1", "gamma=0.3"] * 2)
    for text in ax.texts:
        i = next(
            i
            for i, p in enumerate(res["params"])
            if f"gamma={p.get('gamma', -1):g}" == text.get_text()
            and np.allclose(
                text.xy, (res["mean_test_sparsity"][i], res["mean_test_fit"][i])
            )
        )
        assert res["params"][i]["cost"] != "sqeuclidean"
    assert ax.get_xlabel() == "mean_test_sparsity"
    # the dense map moves every coordinate, the sparse ones do not
    dense = lines["cost=sqeuclidean"].get_xdata()[0]
    assert dense == pytest.approx(1.0)
    assert min(lines["cost=elastic_l1"].get_xdata()) < dense


def test_tradeoff_short_keys_dataframe_and_errorbars(search):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(search.cv_results_)
    ax = plot_sparsity_tradeoff(
        frame, "cost", x="sparsity", y="fit", errorbars=True, connect=False
    )
    assert len(ax.texts) == len(frame)
    assert {t.get_text() for t in ax.texts} == {
        "cost=sqeuclidean",
        "cost=elastic_l1",
        "cost=elastic_stvs",
    }
    assert len(ax.containers) == 1  # one errorbar series
    np.testing.assert_allclose(ax.lines[0].get_xdata(), frame["mean_test_sparsity"])


def test_tradeoff_rejects_missing_keys(search):
    res = search.cv_results_
    with pytest.raises(ValueError, match="mean_test_fit"):
        plot_sparsity_tradeoff(res, x="accuracy")
    with pytest.raises(ValueError, match="param_lam"):
        plot_sparsity_tradeoff(res, "lam")
    with pytest.raises(ValueError, match="std_test_fit"):
        plot_sparsity_tradeoff(
            {k: v for k, v in res.items() if k != "std_test_fit"}, errorbars=True
        )
    with pytest.raises(ValueError, match="cv_results_"):
        plot_sparsity_tradeoff([1, 2, 3])
    assert plt.get_fignums() == []


# --------------------------------------------------------- λ trajectory
def _history(n=8):
    rng = np.random.default_rng(0)
    return {
        "lam": list(np.exp(rng.normal(size=n))),
        "dimension": list(rng.integers(5, 50, size=n).astype(float)),
        "residue": list(rng.uniform(size=n)),
    }


def test_lambda_and_dimension_on_twin_axes():
    history = _history()
    history["iteration"] = list(range(0, 80, 10))
    ax = plot_lambda_trajectory(history, target_dim=20, log_lam=True)
    fig = ax.figure
    assert len(fig.axes) == 3  # λ, dimension twin, residue twin
    np.testing.assert_allclose(ax.lines[0].get_ydata(), history["lam"])
    np.testing.assert_allclose(ax.lines[0].get_xdata(), history["iteration"])
    assert ax.get_yscale() == "log"
    twins = [a for a in fig.axes if a is not ax]
    assert all(a.get_shared_x_axes().joined(a, ax) for a in twins)
    by_label = {line.get_label(): line for a in twins for line in a.lines}
    np.testing.assert_allclose(by_label["dimension"].get_ydata(), history["dimension"])
    np.testing.assert_allclose(by_label["residue"].get_ydata(), history["residue"])
    assert list(by_label["target dimension 20"].get_ydata()) == [20, 20]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["λ", "dimension", "target dimension 20", "residue"]


def test_lambda_trajectory_without_residue_axis():
    history = _history(5)
    fig, ax = plt.subplots()
    assert plot_lambda_trajectory(history, ax=ax, residue=False) is ax
    assert len(fig.axes) == 2
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(5))
    assert ax.get_xlabel() == "step"


@pytest.mark.parametrize(
    "history, match",
    [
        ({"lam": [1.0], "dimension": [3.0]}, "missing the key.*residue"),
        ({"lam": [1.0, 2.0], "dimension": [3.0], "residue": [0.1]}, "equal lengths"),
        ({"lam": [], "dimension": [], "residue": []}, "empty"),
        (
            {"lam": [1.0], "dimension": [3.0], "residue": [0.1], "iteration": []},
            "equal lengths",
        ),
        ([1.0, 2.0], "dict of lists"),
    ],
)
def test_lambda_trajectory_rejects_bad_history(history, match):
    with pytest.raises(ValueError, match=match):
        plot_lambda_trajectory(history)
    assert plt.get_fignums() == []


# ------------------------------------------------------ group dot plot
def _dots(ax):
    found = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(found) == 1, found
    return found[0]


def _cell_type_data():
    """Two cell types that respond in different genes; 12 features."""
    rng = np.random.default_rng(2)
    n, d = 30, 12
    groups = np.tile(["B", "T"], n)
    Xs = rng.normal(size=(2 * n, d))
    Xt = rng.normal(size=(2 * n, d))
    Xs[groups == "T", 11] += 6.0  # a marker gene tells the types apart
    Xt[groups == "T", 11] += 6.0
    Xt[groups == "B", :2] += [3.0, -2.0]
    Xt[groups == "T", 2:4] += [2.5, 2.0]
    return np.vstack([Xs, Xt]), np.repeat([0, 1], 2 * n), Xs, groups


@pytest.fixture(scope="module")
def cell_types():
    X, y, Xs, groups = _cell_type_data()
    est = EntropicSparseMap(cost="elastic_stvs", gamma=0.5).fit(X, y)
    return est, Xs, groups


def test_dot_plot_colours_and_sizes_are_the_group_statistics(cell_types):
    est, Xs, groups = cell_types
    Xs0, groups0 = Xs.copy(), groups.copy()
    ax = plot_group_displacements(est, Xs, groups, n_genes=2, max_size=100.0)
    delta = est.transform(Xs) - Xs
    genes = []
    for group in ("B", "T"):  # union of each group's top 2, group by group
        moved = np.abs(delta[groups == group]).mean(axis=0)
        for g in np.argsort(-moved, kind="stable")[:2]:
            if g not in genes:
                genes.append(g)
    assert set(genes[:2]) == {0, 1}  # B's response genes come first
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"x{g}" for g in genes]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "T"]
    dots = _dots(ax)
    assert len(dots.get_offsets()) == 2 * len(genes)  # groups × genes
    mean = np.array([delta[groups == g][:, genes].mean(axis=0) for g in "BT"])
    moved = np.array(
        [(np.abs(delta[groups == g][:, genes]) > 1e-8).mean(axis=0) for g in "BT"]
    )
    assert np.ptp(moved) > 0.3  # fractions that differ: sizes are informative
    np.testing.assert_allclose(dots.get_array(), mean.ravel())
    np.testing.assert_allclose(dots.get_sizes(), 100.0 * moved.ravel())
    # row g, column j sits at (j, g); first group on top
    np.testing.assert_allclose(
        dots.get_offsets(), [(j, g) for g in range(2) for j in range(len(genes))]
    )
    assert ax.yaxis_inverted()
    vmin, vmax = dots.get_clim()
    assert vmin == -vmax == pytest.approx(-np.abs(mean).max())
    assert dots.get_cmap().name == "RdBu_r"
    assert len(ax.figure.axes) == 2  # the dots and the colourbar
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["20%", "40%", "60%", "80%", "100%"]
    # legend markers: area (markersize²) proportional to the fraction
    sizes = [h.get_markersize() ** 2 for h in ax.get_legend().legend_handles]
    np.testing.assert_allclose(sizes, 100.0 * np.array([0.2, 0.4, 0.6, 0.8, 1.0]))
    np.testing.assert_array_equal(Xs, Xs0)
    np.testing.assert_array_equal(groups, groups0)


def test_dot_plot_atol_sets_the_fraction_moved(cell_types):
    est, Xs, groups = cell_types
    delta = est.transform(Xs) - Xs
    atol = float(np.median(np.abs(delta[:, 0])))
    ax = plot_group_displacements(
        est, Xs, groups, genes=["x0"], atol=atol, max_size=50.0, size_legend=False
    )
    expected = [(np.abs(delta[groups == g, 0]) > atol).mean() for g in "BT"]
    np.testing.assert_allclose(_dots(ax).get_sizes(), 50.0 * np.array(expected))
    assert ax.get_legend() is None


def test_dot_plot_from_sparse_dataframe_and_pipeline(cell_types):
    from scipy import sparse
    from sklearn.preprocessing import StandardScaler

    pd = pytest.importorskip("pandas")
    est, Xs, groups = cell_types
    dense = _dots(plot_group_displacements(est, Xs, groups, genes=["x0", "x3"]))
    sparse_ax = plot_group_displacements(
        est, sparse.csr_matrix(Xs), groups, genes=["x0", "x3"]
    )
    np.testing.assert_allclose(_dots(sparse_ax).get_array(), dense.get_array())
    np.testing.assert_allclose(_dots(sparse_ax).get_sizes(), dense.get_sizes())
    names = [f"g{i}" for i in range(Xs.shape[1])]
    X_all, y_all, _, _ = _cell_type_data()
    named = clone(est).fit(pd.DataFrame(X_all, columns=names), y_all)
    ax = plot_group_displacements(
        named, pd.DataFrame(Xs, columns=names), groups, n_genes=1
    )
    assert [t.get_text() for t in ax.get_xticklabels()][0] in {"g0", "g1"}
    # a Pipeline reports in input units: Δ_input = scale · Δ_z
    shift = np.zeros(Xs.shape[1])
    shift[0] = 3.0
    X = np.vstack([Xs, Xs + shift]) * 10.0
    pipe = Pipeline(
        [("scale", StandardScaler()), ("map", EntropicSparseMap(gamma=0.5))]
    ).fit(X, np.repeat([0, 1], len(Xs)))
    ax = plot_group_displacements(pipe, X[: len(Xs)], groups, genes=["x0"])
    z = pipe[0].transform(X[: len(Xs)])
    delta = (pipe[-1].transform(z) - z) * pipe[0].scale_
    expected = [delta[groups == g, 0].mean() for g in "BT"]
    np.testing.assert_allclose(_dots(ax).get_array(), expected)
    assert abs(expected[0]) > 5.0  # ~30 in input units; z-scores would be ~1


def test_dot_plot_from_a_tidy_table():
    pd = pytest.importorskip("pandas")
    stats = pd.DataFrame(
        {
            "group": ["B", "B", "B", "T", "T", "T"],
            "feature": ["IFIT1", "ISG15", "CD3E"] * 2,
            "mean_displacement": [2.0, -1.0, 0.0, 0.5, 0.0, 0.25],
            "fraction_moved": [1.0, 0.5, 0.0, 0.25, 0.0, 0.75],
        }
    )
    stats0 = stats.copy()
    ax = plot_group_displacements(stats=stats, n_genes=1, max_size=80.0)
    # top 1 by |mean| per group: IFIT1 for B and for T
    assert [t.get_text() for t in ax.get_xticklabels()] == ["IFIT1"]
    ax = plot_group_displacements(stats=stats.set_index(["group", "feature"]))
    # n_genes=10: every gene with a non-zero mean somewhere, B's order first
    assert [t.get_text() for t in ax.get_xticklabels()] == ["IFIT1", "ISG15", "CD3E"]
    dots = _dots(ax)
    np.testing.assert_allclose(dots.get_array(), [2.0, -1.0, 0.0, 0.5, 0.0, 0.25])
    np.testing.assert_allclose(
        dots.get_sizes(), 200.0 * np.array([1.0, 0.5, 0.0, 0.25, 0.0, 0.75])
    )
    assert dots.get_clim() == (-2.0, 2.0)
    ax = plot_group_displacements(stats=stats, genes=["CD3E", "ISG15"])
    np.testing.assert_allclose(_dots(ax).get_array(), [0.0, -1.0, 0.25, 0.0])
    pd.testing.assert_frame_equal(stats, stats0)


def test_dot_plot_rejects_bad_input(cell_types):
    pd = pytest.importorskip("pandas")
    est, Xs, groups = cell_types
    with pytest.raises(ValueError, match="either a fitted estimator"):
        plot_group_displacements()
    with pytest.raises(ValueError, match="needs the cells to map"):
        plot_group_displacements(est, Xs)
    with pytest.raises(ValueError, match="one label per row"):
        plot_group_displacements(est, Xs, groups[:-1])
    with pytest.raises(ValueError, match="Unknown gene name"):
        plot_group_displacements(est, Xs, groups, genes=["x0", "nope"])
    with pytest.raises(ValueError, match="duplicate"):
        plot_group_displacements(est, Xs, groups, genes=["x0", "x0"])
    with pytest.raises(ValueError, match="n_genes"):
        plot_group_displacements(est, Xs, groups, n_genes=0)
    with pytest.raises(ValueError, match="atol"):
        plot_group_displacements(est, Xs, groups, atol=-1.0)
    with pytest.raises(ValueError, match="max_size"):
        plot_group_displacements(est, Xs, groups, max_size=0)
    with pytest.raises(ValueError, match="12 names"):
        plot_group_displacements(est, Xs, groups, feature_names=["a"])
    with pytest.raises(ValueError, match="all missing"):
        plot_group_displacements(est, Xs, [None] * len(Xs))
    identity = FunctionTransformer().fit(Xs)  # moves nothing
    with pytest.raises(ValueError, match="moves no gene"):
        plot_group_displacements(identity, Xs, groups)
    stats = pd.DataFrame(
        {"group": ["B", "T"], "feature": ["a", "a"], "mean_displacement": [1.0, 2.0]}
    )
    with pytest.raises(ValueError, match="fraction_moved"):
        plot_group_displacements(stats=stats)
    stats["fraction_moved"] = [0.5, 1.5]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_group_displacements(stats=stats)
    with pytest.raises(ValueError, match="every .group, feature. pair"):
        plot_group_displacements(
            stats=stats.iloc[:1]
            .assign(group="B")
            .pipe(lambda s: pd.concat([s, s.assign(feature="b"), s.assign(group="T")]))
        )
    with pytest.raises(ValueError, match="more than one row"):
        plot_group_displacements(stats=pd.concat([stats, stats]))
    with pytest.raises(ValueError, match="not both"):
        plot_group_displacements(est, Xs, groups, stats=stats)
    with pytest.raises(ValueError, match="must be None"):
        plot_group_displacements(X=Xs, stats=stats)
    with pytest.raises(ValueError, match="pandas DataFrame"):
        plot_group_displacements(stats={"group": []})
    assert plt.get_fignums() == []  # validation happens before drawing
