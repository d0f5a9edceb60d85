"""scikit-learn compatibility, labels, pandas, pickling and bad input."""

import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import expected_failed_checks
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmonge import EntropicSparseMap, EntropicSparseMapCV
from skmonge.datasets import make_sparse_monge
from skmonge.metrics import make_sparsity_fit_scorer


@parametrize_with_checks(
    [
        EntropicSparseMap(source=0, target=1),
        EntropicSparseMap(cost="sqeuclidean", source=0, target=1),
        EntropicSparseMapCV(gammas=[0.5, 1.0], cv=2, source=0, target=1),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 1.0])
    return X, np.repeat([0, 1], n)


@pytest.mark.parametrize(
    "labels,source,target",
    [
        (np.array(["ctrl", "drug"]), "ctrl", "drug"),
        (np.array([True, False]), True, False),
        (np.array([3, 7]), 7, 3),
        (np.array([False, True]), None, None),
    ],
)
def test_label_types(labels, source, target):
    X, y01 = _data()
    y = labels[y01]
    est = EntropicSparseMap(source=source, target=target).fit(X, y)
    src = labels[0] if source is None else source
    np.testing.assert_array_equal(est.source_, X[y == src])
    assert est.source_label_ == src


def test_other_labels_are_ignored():
    X, y = _data()
    X3 = np.vstack([X, np.full((5, 3), 100.0)])
    y3 = np.r_[y, np.full(5, 2)]
    a = EntropicSparseMap(source=0, target=1).fit(X, y).transform(X[:5])
    b = EntropicSparseMap(source=0, target=1).fit(X3, y3).transform(X[:5])
    np.testing.assert_allclose(a, b)


def test_clone_pickle_pipeline():
    X, y = _data()
    est = EntropicSparseMap(cost="elastic_stvs", gamma=0.2)
    assert clone(est).get_params() == est.get_params()
    est.fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X[:4]), est.transform(X[:4]))
    pipe = Pipeline([("scale", StandardScaler()), ("map", EntropicSparseMap())])
    out = pipe.fit(X, y).transform(X[:5])
    assert out.shape == (5, 3)
    assert np.isfinite(pipe.score(X, y))


def test_grid_search_over_gamma():
    X, y, _ = make_sparse_monge(n_samples=60, n_features=6, n_active=1, random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(EntropicSparseMap(), {"gamma": [0.01, 0.1, 1.0]}, cv=cv)
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores <= 1e-8)
    sparse = GridSearchCV(
        EntropicSparseMap(),
        {"gamma": [0.01, 100.0]},
        cv=cv,
        scoring=make_sparsity_fit_scorer(tradeoff=1.0),
    ).fit(X, y)
    # sparsity only: the γ that freezes every coordinate wins
    assert sparse.best_params_["gamma"] == 100.0


def test_pandas_in_and_out():
    X, y = _data()
    cols = ["g1", "g2", "g3"]
    df = pd.DataFrame(X, columns=cols)
    est = EntropicSparseMap().set_output(transform="pandas").fit(df, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, cols)
    out = est.transform(df.iloc[:4])
    assert isinstance(out, pd.DataFrame) and list(out.columns) == cols
    np.testing.assert_array_equal(est.get_feature_names_out(), cols)
    assert np.isfinite(est.score(df, y))


def test_score_is_negative_divergence_and_improves_on_identity():
    X, y = _data(n=80, seed=3)
    est = EntropicSparseMap(cost="sqeuclidean").fit(X, y)
    assert est.score(X, y) <= 0
    frozen = EntropicSparseMap(gamma=1e4).fit(X, y)
    assert est.score(X, y) > frozen.score(X, y)


@pytest.mark.parametrize(
    "params,X_mod,y_mod,match",
    [
        ({}, "nan", None, "NaN"),
        ({}, "inf", None, "infinity"),
        ({}, None, "strings", "only allowed when y holds exactly"),
        ({"source": "a", "target": "zz"}, None, "strings", "target label 'zz'"),
        ({}, None, "one_source", "source population has 1 row"),
        ({"gamma": 0.0}, None, None, "gamma"),
        ({"gamma": -1.0}, None, None, "gamma"),
        ({"epsilon": 0.0}, None, None, "epsilon"),
        ({"cost": "elastic_kovlp", "k": 5}, None, None, "k=5 exceeds"),
        ({"cost": "elastic_kovlp"}, None, None, "needs the support size k"),
        ({"cost": "nope"}, None, None, "cost"),
    ],
)
def test_bad_input_raises_clear_value_error(params, X_mod, y_mod, match):
    X, y = _data()
    if X_mod == "nan":
        X[3, 1] = np.nan
    elif X_mod == "inf":
        X[3, 1] = np.inf
    if y_mod == "strings":
        y = np.array(["a", "b"])[y]
    elif y_mod == "one_source":
        y = np.ones_like(y)
        y[0] = 0
    X0, y0 = X.copy(), y.copy()
    with pytest.raises(ValueError, match=match):
        EntropicSparseMap(**params).fit(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_transform_validation():
    X, y = _data()
    est = EntropicSparseMap().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="requires y"):
        EntropicSparseMap().fit(X)
    Xc = X.copy()
    est.transform(Xc)
    est.inverse_transform(Xc)
    np.testing.assert_array_equal(Xc, X)


def test_convergence_warning():
    X, y = _data()
    with pytest.warns(ConvergenceWarning):
        est = EntropicSparseMap(max_iter=1, tol=1e-12, relative_epsilon=0.01).fit(X, y)
    assert not est.converged_


def test_unstratified_folds_get_a_hint():
    """Sorted pooled data + plain KFold leaves a fold without one population."""
    from sklearn.model_selection import KFold, cross_val_score

    X, y = _data()
    with pytest.raises(ValueError, match="StratifiedKFold"):
        cross_val_score(EntropicSparseMap(), X, y, cv=KFold(2), error_score="raise")


def test_fold_with_explicit_labels_missing_a_side_gets_the_hint():
    X, y = _data()
    labels = np.array(["ctrl", "drug"])[y]
    est = EntropicSparseMap(source="ctrl", target="drug")
    with pytest.raises(ValueError, match="target label 'drug'.*StratifiedKFold"):
        est.fit(X[:40], labels[:40])


# --------------------------------------- default cv on rows sorted by condition
def _sorted_cells(n=60, d=30, seed=0):
    """Control rows first, then stimulated (the AnnData / Kang layout)."""
    rng = np.random.default_rng(seed)
    Xs = rng.normal(size=(n, d))
    Xt = rng.normal(size=(n, d))
    Xt[:, :3] += 2.0
    return np.vstack([Xs, Xt]), np.repeat(["ctrl", "stim"], n)


def test_default_cv_on_sorted_rows_gives_finite_scores():
    from sklearn.model_selection import KFold, cross_val_score

    X, y = _sorted_cells()
    est = EntropicSparseMap(gamma=0.5, source="ctrl", target="stim")
    scores = cross_val_score(est, X, y, cv=5, error_score="raise")
    assert scores.shape == (5,) and np.all(np.isfinite(scores))
    assert np.all(scores <= 0)
    # the folds really are one-population folds: 0-1 control, 3-4 stimulated
    folds = [set(y[test]) for _, test in KFold(5).split(X)]
    assert folds[0] == folds[1] == {"ctrl"} and folds[4] == {"stim"}


def test_one_population_fold_is_scored_against_the_fitted_sample():
    from skmonge.sinkhorn import sinkhorn_divergence

    X, y = _sorted_cells()
    train = np.r_[0:40, 60:100]
    est = EntropicSparseMap(gamma=0.5, source="ctrl", target="stim")
    est.fit(X[train], y[train])
    held_source, held_target = X[40:60], X[100:]
    # only control rows held out: T(held-out control) against the fitted target
    expected = -sinkhorn_divergence(est.transform(held_source), est.target_)
    assert est.score(held_source, y[40:60]) == pytest.approx(expected)
    # only stimulated rows held out: T(fitted control) against them
    expected = -sinkhorn_divergence(est.transform(est.source_), held_target)
    assert est.score(held_target, y[100:]) == pytest.approx(expected)
    # a single held-out row of a population does not count as a sample of it
    X1 = np.vstack([held_source, held_target[:1]])
    y1 = np.r_[y[40:60], ["stim"]]
    expected = -sinkhorn_divergence(est.transform(held_source), est.target_)
    assert est.score(X1, y1) == pytest.approx(expected)
    # both populations held out: the fitted samples play no part
    Xb = np.vstack([held_source, held_target])
    yb = np.r_[y[40:60], y[100:]]
    expected = -sinkhorn_divergence(est.transform(held_source), held_target)
    assert est.score(Xb, yb) == pytest.approx(expected)


def test_one_population_fold_with_sparse_fitted_samples():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    _, y = _sorted_cells()
    X = np.zeros((120, 50))  # 2 % non-zeros, like counts: fitted clouds stay CSR
    mask = rng.random(X.shape) < 0.02
    X[mask] = rng.exponential(1.0, size=mask.sum())
    X[60:, :2] += 2.0 * (rng.random((60, 2)) < 0.3)  # two genes turned on
    train = np.r_[0:40, 60:100]
    params = {"cost": "elastic_stvs", "gamma": 0.5, "source": "ctrl", "target": "stim"}
    dense = EntropicSparseMap(**params).fit(X[train], y[train])
    sparse = EntropicSparseMap(**params).fit(sp.csr_matrix(X[train]), y[train])
    assert sp.issparse(sparse.source_) and sp.issparse(sparse.target_)
    for rows in (slice(40, 60), slice(100, 120)):
        held = sp.csr_matrix(X[rows])
        assert sparse.score(held, y[rows]) == pytest.approx(
            dense.score(X[rows], y[rows]), rel=1e-6
        )


def test_fold_without_two_rows_of_either_population_raises():
    X, y = _sorted_cells()
    est = EntropicSparseMap(gamma=0.5, source="ctrl", target="stim").fit(X, y)
    other = np.array(["other"] * 4)
    with pytest.raises(ValueError, match="0 source and 0 target rows.*Stratified"):
        est.score(X[:4], other)
    with pytest.raises(ValueError, match="1 source and 1 target rows"):
        est.score(X[[0, 100]], y[[0, 100]])
    with pytest.raises(ValueError, match="one population label per row"):
        est.score(X, y[:-1])


def test_estimator_without_a_fitted_sample_points_to_stratified_folds():
    import copy

    X, y = _sorted_cells()
    est = EntropicSparseMap(gamma=0.5, source="ctrl", target="stim").fit(X, y)
    stripped = copy.copy(est)
    del stripped.target_  # as NeuralSparseMap, which keeps only its networks
    with pytest.raises(ValueError, match="stores no fitted target.*StratifiedKFold"):
        stripped.score(X[:60], y[:60])


def test_learned_cost_map_scores_a_one_population_fold():
    pytest.importorskip("torch")
    from skmonge import LearnedCostMap
    from skmonge.sinkhorn import sinkhorn_divergence

    X, y = _sorted_cells(n=30, d=3)
    train = np.r_[0:20, 30:50]
    est = LearnedCostMap(
        n_iter=0, device="cpu", random_state=0, source="ctrl", target="stim"
    )
    est.fit(X[train], y[train], pair_id=np.r_[np.arange(20), np.arange(20)])
    expected = -sinkhorn_divergence(est.transform(X[20:30]), est.target_)
    assert est.score(X[20:30], y[20:30]) == pytest.approx(expected)
    expected = -sinkhorn_divergence(est.transform(est.source_), X[50:])
    assert est.score(X[50:], y[50:]) == pytest.approx(expected)


def test_grid_search_with_default_cv_chooses_gamma_by_score():
    X, y = _sorted_cells()
    # γ = 1e4 freezes every coordinate: the worst fit, and the first entry,
    # which a search with all-NaN scores would return
    grid = {"gamma": [1e4, 0.3, 3.0]}
    search = GridSearchCV(
        EntropicSparseMap(cost="elastic_l1", source="ctrl", target="stim"), grid
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert search.best_params_["gamma"] != 1e4
    assert scores[0] < scores[1:].min() - 1.0
