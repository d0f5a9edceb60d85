"""Per-feature displacement reports and the §5.2 evaluation metrics."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.preprocessing import FunctionTransformer

from skmonge import EntropicSparseMap
from skmonge.datasets import make_sparse_monge
from skmonge.inspection import (
    cell_displacements,
    displacement_report,
)
from skmonge.metrics import (
    displacement_sparsity,
    r2_marker_means,
    sinkhorn_divergence_pca,
)
from skmonge.sinkhorn import sinkhorn_divergence

# A map whose displacement is known by hand: feature a doubles, b is sent to
# 0 and c moves by 1e-10 (below the default atol).
X_HAND = np.array([[1.0, -1.0, 0.0], [2.0, 1.0, 0.0], [-1.0, 0.0, 5.0]])


def _hand_map(X):
    X = np.asarray(X, dtype=float)
    return np.column_stack([2.0 * X[:, 0], np.zeros(len(X)), X[:, 2] + 1e-10])


def _hand_estimator(names=None):
    est = FunctionTransformer(_hand_map, feature_names_out="one-to-one")
    return est.fit(X_HAND if names is None else pd.DataFrame(X_HAND, columns=names))


def test_report_matches_hand_computation():
    report = displacement_report(_hand_estimator(), X_HAND)
    # Δa = (1, 2, -1), Δb = (1, -1, 0), Δc = 1e-10 everywhere
    expected = pd.DataFrame(
        {
            "mean_abs_displacement": [4 / 3, 2 / 3, 1e-10],
            "mean_displacement": [2 / 3, 0.0, 1e-10],
            "fraction_moved": [1.0, 2 / 3, 0.0],
        },
        index=pd.Index(["x0", "x1", "x2"], name="feature"),
    )
    pd.testing.assert_frame_equal(report, expected, rtol=1e-12, atol=1e-15)
    loose = displacement_report(_hand_estimator(), X_HAND, atol=0.0)
    assert loose.loc["x2", "fraction_moved"] == 1.0
    strict = displacement_report(_hand_estimator(), X_HAND, atol=1.5)
    np.testing.assert_allclose(strict["fraction_moved"], [1 / 3, 0.0, 0.0])


def test_report_names():
    X = pd.DataFrame(X_HAND, columns=["IFI6", "ISG15", "CD3E"])
    named = _hand_estimator(names=list(X.columns))
    assert list(displacement_report(named, X).index) == ["IFI6", "ISG15", "CD3E"]
    given = displacement_report(
        _hand_estimator(), X_HAND, feature_names=["u", "v", "w"]
    )
    assert list(given.index) == ["u", "v", "w"]
    with pytest.raises(ValueError, match="2 feature names for 3 features"):
        displacement_report(_hand_estimator(), X_HAND, feature_names=["u", "v"])


def _fitted_map(seed=0, n=60, d=8):
    X, y, _ = make_sparse_monge(
        n_samples=n, n_features=d, n_active=2, random_state=seed
    )
    est = EntropicSparseMap(cost="elastic_l1", gamma=0.3).fit(X, y)
    return est, X[y == 0]


def test_report_on_entropic_map_sorted_and_consistent_with_metrics():
    est, Xs = _fitted_map()
    report = displacement_report(est, Xs)
    delta = est.displacement(Xs)
    abs_mean = np.abs(delta).mean(axis=0)
    order = np.argsort(-abs_mean, kind="stable")
    assert list(report.index) == [f"x{i}" for i in order]
    assert np.all(np.diff(report["mean_abs_displacement"].to_numpy()) <= 0)
    np.testing.assert_allclose(report["mean_abs_displacement"], abs_mean[order])
    np.testing.assert_allclose(report["mean_displacement"], delta.mean(axis=0)[order])
    # the two moved coordinates of the ground truth lead the report
    assert set(report.index[:2]) == {"x0", "x1"}
    assert report["fraction_moved"].mean() == pytest.approx(
        displacement_sparsity(Xs, est.transform(Xs))
    )


def test_report_ties_keep_feature_order():
    shift = FunctionTransformer(
        lambda X: np.asarray(X) + np.array([0.0, 2.0, -2.0, 0.0]),
        feature_names_out="one-to-one",
    ).fit(np.zeros((2, 4)))
    report = displacement_report(shift, np.ones((3, 4)))
    assert list(report.index) == ["x1", "x2", "x0", "x3"]


@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_report_sparse_equals_dense(chunk_size):
    est, Xs = _fitted_map(seed=1)
    Xs = np.where(Xs > 0.5, Xs, 0.0)
    dense = displacement_report(est, Xs)
    sparse = displacement_report(est, sp.csr_matrix(Xs), chunk_size=chunk_size)
    pd.testing.assert_frame_equal(sparse, dense, rtol=1e-12)
    coo = displacement_report(est, sp.coo_array(Xs), chunk_size=chunk_size)
    pd.testing.assert_frame_equal(coo, dense, rtol=1e-12)


def test_cell_displacements_by_hand():
    est = _hand_estimator()
    # cell 1: Δ = (2, -1, 1e-10): c is below atol, a moves most
    first = cell_displacements(est, X_HAND, 1)
    pd.testing.assert_series_equal(
        first,
        pd.Series([2.0, -1.0], index=pd.Index(["x0", "x1"], name="feature"), name=1),
    )
    # cell 0: Δ = (1, 1, 1e-10): the tie keeps the feature order
    assert list(cell_displacements(est, X_HAND, 0).index) == ["x0", "x1"]
    # cell 2 moves along a only; with atol=0 c comes in last
    assert cell_displacements(est, X_HAND, -1).to_dict() == {"x0": -1.0}
    assert list(cell_displacements(est, X_HAND, 2, atol=0.0).index) == ["x0", "x2"]
    frame = pd.DataFrame(X_HAND, index=["AAC", "TTG", "GCA"], columns=list("abc"))
    named = cell_displacements(_hand_estimator(list("abc")), frame, "TTG")
    assert named.name == "TTG" and named.to_dict() == {"a": 2.0, "b": -1.0}
    with pytest.raises(IndexError):
        cell_displacements(est, X_HAND, 3)


def test_cell_displacements_sparse_entropic():
    est, Xs = _fitted_map(seed=2)
    delta = est.displacement(Xs)[5]
    series = cell_displacements(est, sp.csr_matrix(Xs), 5)
    moved = np.flatnonzero(np.abs(delta) > 1e-8)
    assert sorted(series.index) == sorted(f"x{i}" for i in moved)
    np.testing.assert_allclose(
        series.to_numpy(), delta[[int(name[1:]) for name in series.index]]
    )
    assert np.all(np.diff(np.abs(series.to_numpy())) <= 0)


# ------------------------------------------------------------------ metrics
def _populations(seed=0, d=10):
    rng = np.random.default_rng(seed)
    X_obs = rng.gamma(2.0, size=(80, d))
    X_pred = X_obs[:60] + rng.normal(scale=0.3, size=(60, d))
    return X_pred, X_obs


def test_r2_marker_means_matches_sklearn():
    X_pred, X_obs = _populations()
    markers = [0, 3, 4, 8]
    expected = r2_score(X_obs.mean(axis=0)[markers], X_pred.mean(axis=0)[markers])
    assert r2_marker_means(X_pred, X_obs, markers) == pytest.approx(expected)
    mask = np.zeros(10, dtype=bool)
    mask[markers] = True
    assert r2_marker_means(X_pred, X_obs, mask) == pytest.approx(expected)
    names = [f"g{i}" for i in range(10)]
    by_name = r2_marker_means(
        X_pred, X_obs, ["g0", "g3", "g4", "g8"], feature_names=names
    )
    assert by_name == pytest.approx(expected)
    frame = pd.DataFrame(X_obs, columns=names)
    assert r2_marker_means(X_pred, frame, ["g8", "g0", "g4", "g3"]) == pytest.approx(
        expected
    )
    sparse = r2_marker_means(sp.csr_matrix(X_pred), sp.csc_matrix(X_obs), markers)
    assert sparse == pytest.approx(expected, rel=1e-12)
    assert r2_marker_means(X_obs, X_obs, markers) == 1.0
    # a biased prediction is penalised (R² is not a squared correlation)
    assert r2_marker_means(X_obs + 1.0, X_obs, markers) < 0.9


def test_r2_marker_means_bad_input():
    X_pred, X_obs = _populations()
    with pytest.raises(ValueError, match="at least 2 markers"):
        r2_marker_means(X_pred, X_obs, [3])
    with pytest.raises(ValueError, match="feature_names"):
        r2_marker_means(X_pred, X_obs, ["g1", "g2"])
    with pytest.raises(ValueError, match="Unknown marker"):
        r2_marker_means(X_pred, X_obs, ["g1", "zz"], feature_names=list("abcdefghij"))
    with pytest.raises(ValueError, match="features"):
        r2_marker_means(X_pred[:, :5], X_obs, [0, 1])


def test_sinkhorn_divergence_pca():
    X_pred, X_obs = _populations(seed=1, d=20)
    pca = PCA(n_components=5).fit(np.vstack([X_pred, X_obs]))
    # a tight solve, so that "0 for identical clouds" is checked to 1e-10;
    # the keyword arguments are passed on to sinkhorn_divergence
    tight = {"tol": 1e-9, "max_iter": 20000}
    value = sinkhorn_divergence_pca(X_pred, X_obs, pca, **tight)
    expected = sinkhorn_divergence(pca.transform(X_pred), pca.transform(X_obs), **tight)
    assert value == pytest.approx(expected, rel=1e-12) and value > 0.1
    identical = sinkhorn_divergence_pca(X_obs, X_obs, pca, **tight)
    assert identical == pytest.approx(0.0, abs=1e-10)
    sparse = sinkhorn_divergence_pca(
        sp.csr_matrix(X_pred), sp.csr_matrix(X_obs), pca, **tight
    )
    assert sparse == pytest.approx(expected, rel=1e-8)
    # relative_epsilon reaches sinkhorn_divergence as well
    assert sinkhorn_divergence_pca(X_pred, X_obs, pca, relative_epsilon=0.5) == (
        pytest.approx(
            sinkhorn_divergence(
                pca.transform(X_pred), pca.transform(X_obs), relative_epsilon=0.5
            ),
            rel=1e-12,
        )
    )
    with pytest.raises(NotFittedError):
        sinkhorn_divergence_pca(X_pred, X_obs, PCA(n_components=5))
