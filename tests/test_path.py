"""sparsity_path: the warm-started γ path of EntropicSparseMap."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skmonge import EntropicSparseMap, NeuralSparseMap, sparsity_path
from skmonge.costs import ElasticL1
from skmonge.datasets import make_sparse_monge
from skmonge.path import _evaluation_index, default_gammas


@pytest.fixture(scope="module")
def task():
    X, y, true_map = make_sparse_monge(
        n_samples=200, n_features=8, n_active=2, random_state=0
    )
    return X, y, true_map


@pytest.mark.parametrize("cost", ["elastic_l1", "elastic_stvs"])
def test_path_gets_denser_as_gamma_decreases(task, cost):
    X, y, _ = task
    path = sparsity_path(X, y, estimator=EntropicSparseMap(cost=cost), n_gammas=6)
    assert np.all(np.diff(path.gammas) < 0)
    # monotone up to ties of the entropic estimate (a few cells)
    assert np.all(np.diff(path.moved_fraction) >= -0.01)
    assert path.moved_fraction[0] < 0.5 < path.moved_fraction[-1]
    np.testing.assert_allclose(path.dimension, 8 * path.moved_fraction)
    assert np.all(path.converged) and np.all(np.isnan(path.score))
    assert path.estimators is None


def _counting_sinkhorn_iterations(monkeypatch):
    """Patch the solver of the ε search and of the fits; returns the list of
    iteration counts that every later solve appends to."""
    import skmonge._epsilon as rule
    import skmonge.entropic as entropic

    counts = []
    solve = entropic.sinkhorn

    def counted(*args, **kwargs):
        result = solve(*args, **kwargs)
        counts.append(result.n_iter)
        return result

    monkeypatch.setattr(rule, "sinkhorn", counted)
    monkeypatch.setattr(entropic, "sinkhorn", counted)
    return counts


def test_warm_starts_give_the_cold_fits(task, monkeypatch):
    X, y, _ = task
    gammas = [2.0, 1.0, 0.5, 0.25]
    counts = _counting_sinkhorn_iterations(monkeypatch)
    warm = sparsity_path(X, y, gammas=gammas, return_estimators=True)
    warm_counts = list(counts)
    counts.clear()
    cold = sparsity_path(X, y, gammas=gammas, warm_start=False, return_estimators=True)
    cold_counts = list(counts)
    for a, b, gamma in zip(warm.estimators, cold.estimators, gammas, strict=True):
        assert a.gamma == b.gamma == gamma
        reference = EntropicSparseMap(gamma=gamma).fit(X, y)
        assert a.epsilon_ == b.epsilon_ == reference.epsilon_
        # the same fixed point to the Sinkhorn tolerance (potentials up to
        # their constant)
        for est in (a, b):
            f = est.potential_source_ - reference.potential_source_
            assert np.ptp(f) < 1e-4 * np.ptp(reference.potential_source_)
            np.testing.assert_allclose(
                est.transform(X[:20]), reference.transform(X[:20]), atol=1e-5
            )
    np.testing.assert_allclose(warm.moved_fraction, cold.moved_fraction, atol=0.01)
    # warm starts shorten the ε searches (the final solves start from the
    # search either way): fewer solves, and no more iterations in all
    assert len(warm_counts) < len(cold_counts)
    assert sum(warm_counts) <= sum(cold_counts)


def test_path_caches_the_self_transport_costs(task, monkeypatch):
    """Along a path the debiased map's self-transport cost matrices are
    ½‖x_i - x_j‖² + γ‖x_i - x_j‖₁ from parts computed once per sample, and
    each self solve starts from the neighbour's potential."""
    X, y, _ = task
    calls = []
    linear_parts = ElasticL1.linear_parts
    cost_matrix = ElasticL1.cost_matrix

    def parts(self, A, B):
        calls.append(("parts", A.shape[0], B.shape[0]))
        return linear_parts(self, A, B)

    def whole(self, A, B, *args, **kwargs):
        calls.append(("whole", A.shape[0], B.shape[0]))
        return cost_matrix(self, A, B, *args, **kwargs)

    monkeypatch.setattr(ElasticL1, "linear_parts", parts)
    monkeypatch.setattr(ElasticL1, "cost_matrix", whole)
    path = sparsity_path(X, y, gammas=[2.0, 1.0, 0.5], return_estimators=True)
    n_source, n_target = (y == 0).sum(), (y == 1).sum()
    # the cross parts, then each sample with itself, once for the 3 fits
    assert calls == [
        ("parts", n_source, n_target),
        ("parts", n_source, n_source),
        ("parts", n_target, n_target),
    ]
    monkeypatch.setattr(ElasticL1, "linear_parts", linear_parts)
    monkeypatch.setattr(ElasticL1, "cost_matrix", cost_matrix)
    for est in path.estimators:
        cold = EntropicSparseMap(gamma=est.gamma).fit(X, y)
        for name in ("source", "target"):
            f = getattr(est, f"potential_{name}_self_")
            ref = getattr(cold, f"potential_{name}_self_")
            assert np.ptp(f - ref) < 1e-4 * np.ptp(ref)


def test_validation_scores_and_evaluation_cells(task):
    X, y, _ = task
    path = sparsity_path(X, y, n_gammas=3, X_val=X, y_val=y, X_eval=X[:10])
    assert np.all(np.isfinite(path.score)) and np.all(path.score <= 1e-9)
    frame = path.as_frame()
    assert list(frame.columns[:4]) == ["gamma", "moved_fraction", "dimension", "score"]
    assert len(frame) == 3


def test_default_grid_follows_the_units_of_the_data(task):
    X, y, _ = task
    base = default_gammas(X, y, 0, 1, n_gammas=5)
    np.testing.assert_allclose(default_gammas(10 * X, y, 0, 1, n_gammas=5), 10 * base)
    shift = X[y == 1].mean(0) - X[y == 0].mean(0)
    assert base[0] == pytest.approx(2 * np.abs(shift).max())
    assert base[-1] == pytest.approx(base[0] * 1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gammas=[]), "empty"),
        (dict(gammas=[1.0, 0.0]), "positive finite"),
        (dict(gammas=[1.0, np.nan]), "positive finite"),
        (dict(n_gammas=0), "n_gammas"),
        (dict(gamma_ratio=2.0), "gamma_ratio"),
        (dict(estimator=EntropicSparseMap(cost="sqeuclidean")), "has no γ"),
        (dict(estimator=EntropicSparseMap(cost=ElasticL1(gamma=2.0))), "by name"),
        (dict(estimator=NeuralSparseMap()), "must be an EntropicSparseMap"),
        (dict(X_val=np.zeros((4, 8))), "both X_val and y_val"),
    ],
)
def test_bad_inputs(task, kwargs, match):
    X, y, _ = task
    with pytest.raises(ValueError, match=match):
        sparsity_path(X, y, **kwargs)


def test_identical_means_need_an_explicit_grid():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    X[20:] = X[:20][::-1]  # same rows, so the same feature means
    y = np.repeat([0, 1], 20)
    with pytest.raises(ValueError, match="pass gammas explicitly"):
        sparsity_path(X, y)


def test_path_plot(task):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skmonge.plotting import plot_sparsity_path

    X, y, _ = task
    path = sparsity_path(X, y, n_gammas=3, X_val=X, y_val=y)
    ax = plot_sparsity_path(path, gamma=path.gammas[1])
    (line,) = ax.get_lines()[:1]
    np.testing.assert_allclose(line.get_xdata(), path.gammas[::-1])
    np.testing.assert_allclose(line.get_ydata(), path.moved_fraction[::-1])
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.right_ax.get_lines()[0].get_ydata(), path.score[::-1])
    assert ax.get_lines()[-1].get_xdata()[0] == path.gammas[1]  # the marked γ
    ax = plot_sparsity_path(sparsity_path(X, y, n_gammas=2), dimension=True)
    assert not hasattr(ax, "right_ax")  # no validation data: no score axis
    with pytest.raises(ValueError, match="SparsityPath"):
        plot_sparsity_path({"gammas": [1.0]})


# ------------------------------------------------------------ target_dim
@pytest.mark.parametrize("target_dim, start", [(3.5, 1.0), (5, 0.01), (4, 30.0)])
def test_target_dim_lands_within_ten_percent(target_dim, start):
    # a known support: 3 of 10 features are displaced
    X, y, _ = make_sparse_monge(
        n_samples=300, n_features=10, n_active=3, random_state=1
    )
    est = EntropicSparseMap(target_dim=target_dim, gamma=start).fit(X, y)
    source = X[y == 0]
    moved = (np.abs(est.transform(source) - source) > 1e-8).sum(axis=1).mean()
    assert abs(moved - target_dim) <= 0.1 * target_dim
    assert est.gamma_ in est.path_.gammas and est.gamma_ == est.cost_.gamma
    assert np.all(np.diff(est.path_.gammas) < 0)
    row = list(est.path_.gammas).index(est.gamma_)
    # the path counts on (at most 512) evenly spaced training source cells,
    # from the costs the fit holds: the same count as transform's there
    index = _evaluation_index(source.shape[0])
    assert index.size == min(512, source.shape[0])
    on_index = (np.abs(est.transform(source[index]) - source[index]) > 1e-8).sum(1)
    assert est.path_.dimension[row] == pytest.approx(on_index.mean())
    # the fitted state is the cold fit at the chosen γ, to the tolerance
    cold = EntropicSparseMap(gamma=est.gamma_).fit(X, y)
    np.testing.assert_allclose(est.transform(source), cold.transform(source), atol=1e-5)
    assert est.get_params()["gamma"] == start  # the parameter is not mutated


def test_target_dim_below_the_floor_of_the_path_warns():
    # the paper's ℓ1 map moves the 3 displaced coordinates (all targets on
    # one side) for every γ: 1.5 features per cell cannot be reached; the
    # search stops once the dimension levels off and says so
    X, y, _ = make_sparse_monge(
        n_samples=300, n_features=10, n_active=3, random_state=1
    )
    with pytest.warns(ConvergenceWarning, match="levels off"):
        est = EntropicSparseMap(target_dim=1.5, gamma=30.0, debias=False).fit(X, y)
    assert len(est.path_.gammas) <= 4  # stops after two flat steps
    assert est.path_.dimension.min() == pytest.approx(3.0, abs=0.1)


def test_target_dim_on_the_true_support_size_finds_the_support():
    X, y, true_map = make_sparse_monge(
        n_samples=300, n_features=10, n_active=3, random_state=1
    )
    est = EntropicSparseMap(target_dim=3).fit(X, y)
    source = X[y == 0]
    moved = np.abs(est.transform(source) - source) > 1e-8
    # the moved coordinates are mostly the truly displaced ones
    assert (moved & true_map.support(source)).sum() / moved.sum() > 0.8


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(target_dim=0), "target_dim"),
        (dict(target_dim=-2.0), "target_dim"),
        (dict(target_dim=11), "exceeds the number of features"),
        (dict(target_dim=2, cost="sqeuclidean"), "needs an elastic cost"),
        (dict(target_dim=2, cost=ElasticL1()), "pass the cost by name"),
    ],
)
def test_target_dim_bad_values(task, params, match):
    X, y, _ = task
    X = np.hstack([X, X[:, :2]])  # 10 features
    with pytest.raises(ValueError, match=match):
        EntropicSparseMap(**params).fit(X, y)


# ------------------------------------------------------------ EntropicSparseMapCV
def test_cv_with_the_tradeoff_scorer_finds_the_true_sparsity():
    from skmonge import EntropicSparseMapCV
    from skmonge.metrics import make_sparsity_fit_scorer

    # 2 of 10 features displaced: a moved fraction near 0.2 is the truth
    X, y, _ = make_sparse_monge(
        n_samples=300, n_features=10, n_active=2, random_state=0
    )
    est = EntropicSparseMapCV(
        gammas=8, cv=3, scoring=make_sparsity_fit_scorer(0.3), random_state=0
    ).fit(X, y)
    assert est.gamma_ in est.gammas_ and len(est.cv_results_["params"]) == 8
    source = X[y == 0]
    moved = np.mean(np.abs(est.transform(source) - source) > 1e-8)
    assert 0.15 < moved < 0.35
    # the refitted map is the plain map at the chosen γ
    plain = EntropicSparseMap(gamma=est.gamma_).fit(X, y)
    np.testing.assert_allclose(est.transform(source), plain.transform(source))
    best = np.argmin(est.cv_results_["rank_test_score"])
    assert est.best_score_ == est.cv_results_["mean_test_score"][best]
    # the default score (held-out divergence) prefers a denser map
    dense = EntropicSparseMapCV(gammas=8, cv=3, random_state=0).fit(X, y)
    assert dense.gamma_ < est.gamma_


def test_cv_refit_false_and_several_scorers(task):
    from sklearn.exceptions import NotFittedError

    from skmonge import EntropicSparseMapCV
    from skmonge.metrics import displacement_sparsity_score, sinkhorn_divergence_score

    X, y, _ = task
    scoring = {
        "fit": sinkhorn_divergence_score,
        "sparsity": displacement_sparsity_score,
    }
    with pytest.raises(ValueError, match="refit must name"):
        EntropicSparseMapCV(gammas=[1.0, 0.5], cv=2, scoring=scoring).fit(X, y)
    est = EntropicSparseMapCV(
        gammas=[1.0, 0.5], cv=2, scoring=scoring, refit="fit", random_state=0
    ).fit(X, y)
    assert "mean_test_sparsity" in est.cv_results_
    quiet = EntropicSparseMapCV(gammas=[1.0, 0.5], cv=2, refit=False).fit(X, y)
    assert quiet.gamma_ in (1.0, 0.5)
    with pytest.raises(NotFittedError):
        quiet.transform(X)
    with pytest.raises(ValueError, match="positive finite"):
        EntropicSparseMapCV(gammas=[1.0, -1.0]).fit(X, y)
    with pytest.raises(ValueError, match="by name"):
        EntropicSparseMapCV(gammas=[1.0], cost=ElasticL1()).fit(X, y)


@pytest.mark.parametrize("cost", ["elastic_l1", "elastic_kovlp", "elastic_stvs"])
def test_path_cost_reuse_equals_the_direct_cost_matrix(cost):
    from skmonge.costs import make_cost
    from skmonge.path import _LinearCosts

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 6)), rng.normal(size=(25, 6)) + 0.5
    X[rng.random(X.shape) < 0.6] = 0.0
    Y[rng.random(Y.shape) < 0.6] = 0.0
    # sparse samples (a path on CSR input): source rows densified by chunks
    for X_in, Y_in in ((X, Y), (sp.csr_matrix(X), sp.csr_matrix(Y))):
        costs = _LinearCosts(EntropicSparseMap(chunk_size=7)._pairwise_matrix)
        for gamma in (3.0, 0.7, 0.01):
            c = make_cost(cost, gamma=gamma, k=2)
            direct = c.cost_matrix(X, Y)
            np.testing.assert_allclose(
                costs(c, X_in, Y_in), direct, rtol=1e-12, atol=1e-12
            )
        # ℓ1 and k-overlap reuse their parts; STVS is not linear in γ
        assert (costs.parts is not None) == (cost != "elastic_stvs")


def test_path_and_target_dim_on_very_sparse_input():
    # CSR input sparse enough to be stored CSR: the path computes its cost
    # parts from chunks of densified source rows, and fits like dense input
    rng = np.random.default_rng(3)
    X = np.abs(rng.normal(size=(80, 300))) * (rng.random((80, 300)) < 0.01)
    X[40:, :5] += 2.0
    y = np.repeat([0, 1], 40)
    path_sparse = sparsity_path(sp.csr_matrix(X), y, n_gammas=3)
    path_dense = sparsity_path(X, y, n_gammas=3)
    np.testing.assert_allclose(path_sparse.gammas, path_dense.gammas)
    np.testing.assert_allclose(
        path_sparse.moved_fraction, path_dense.moved_fraction, atol=1e-12
    )
    fitted = sparsity_path(
        sp.csr_matrix(X), y, n_gammas=2, return_estimators=True
    ).estimators
    assert all(sp.issparse(est.target_) for est in fitted)


def test_evaluated_cells_are_evenly_spaced_and_capped():
    np.testing.assert_array_equal(_evaluation_index(300), np.arange(300))
    index = _evaluation_index(1000)
    assert index.size == 512 and index[0] == 0 and index[-1] == 999
    assert np.all(np.diff(index) >= 1) and np.diff(index).max() <= 2
