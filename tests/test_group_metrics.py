"""Per-group (cell type) top-k overlap of moved and observed genes, and its scorer."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmonge import EntropicSparseMap
from skmonge.metrics import group_topk_overlap, make_group_overlap_scorer

N_FEATURES = 30
MARKER = 29  # feature that tells the cell types apart (same in both conditions)

# Observed response of each cell type: gene -> shift of the target (stimulated)
# rows. Group a shifts most, so the global mean shift is led by a's genes.
SHIFTS = {
    "a": {0: 5.0, 1: 4.5, 2: 4.0, 3: 3.5, 4: 3.0},
    "b": {10: 2.5, 11: 2.4, 12: 2.3, 13: 2.2, 14: 2.1},
    "c": {20: 1.5, 21: 1.4, 22: 1.3, 23: 1.2, 24: 1.1},
}
# The training cells of the ceiling test: b responds far more strongly (so the
# global shift is led by b's genes), and c partly in other genes.
REFERENCE_SHIFTS = {
    "a": SHIFTS["a"],
    "b": {10: 9.0, 11: 8.8, 12: 8.6, 13: 8.4, 14: 8.2},
    "c": {20: 1.5, 21: 1.4, 22: 1.3, 26: 1.2, 27: 1.1},
}
# What the fake map moves in each cell type: gene -> displacement.
MOVES = {
    "a": {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 9: 1.0},  # ties, 4 right
    "b": {10: 0.5, 11: -0.4, 12: 0.3, 13: 0.2, 14: 0.1, 15: 0.05},  # 6 moved
    "c": {20: 2.0, 5: -1.0, 6: 0.5},  # only 3 genes move
}


def _cells(shifts=SHIFTS, n=20, seed=0):
    """Cell types a, b, c with n source (0) and n target (1) rows each."""
    rng = np.random.default_rng(seed)
    blocks, y, groups = [], [], []
    for code, group in enumerate(shifts):
        for population in (0, 1):
            block = 0.05 * rng.normal(size=(n, N_FEATURES))
            block[:, MARKER] = 10.0 * code
            if population:
                for gene, value in shifts[group].items():
                    block[:, gene] += value
            blocks.append(block)
            y += [population] * n
            groups += [group] * n
    return np.vstack(blocks), np.array(y), np.array(groups, dtype=object)


class TableMap(BaseEstimator):
    """A fitted "map" whose displacement is known: MOVES of the cell's type."""

    def fit(self, X=None, y=None):
        self.source_label_, self.target_label_ = 0, 1
        self.n_features_in_ = N_FEATURES
        table = np.zeros((len(MOVES), N_FEATURES))
        for code, moves in enumerate(MOVES.values()):
            for gene, value in moves.items():
                table[code, gene] = value
        self.table_ = table
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        code = np.rint(X[:, MARKER] / 10.0).astype(int)
        return X + self.table_[code]


@pytest.fixture(scope="module")
def cells():
    return _cells()


@pytest.fixture(scope="module")
def table_map():
    return TableMap().fit()


def _names(genes):
    return [f"x{g}" for g in genes]


# ------------------------------------------------------------- by hand
def test_overlap_and_baseline_by_hand(cells, table_map):
    X, y, groups = cells
    X0, y0, g0 = X.copy(), y.copy(), groups.copy()
    table = group_topk_overlap(table_map, X, y, groups, k=5, min_cells=15)
    assert table.index.name == "group" and list(table.index) == ["a", "b", "c"]
    assert list(table.columns) == [
        "n_source",
        "n_target",
        "overlap",
        "baseline",
        "map_genes",
        "observed_genes",
    ]
    assert table["n_source"].tolist() == [20, 20, 20]
    assert table["n_target"].tolist() == [20, 20, 20]
    # a: 4 of its 5 moved genes respond; b: all 5 (gene 15 is 6th, cut by k);
    # c: the map moves 3 genes, one of which responds
    assert table["overlap"].tolist() == [4, 5, 1]
    assert table.loc["a", "map_genes"] == _names([0, 1, 2, 3, 9])  # ties: order
    assert table.loc["b", "map_genes"] == _names([10, 11, 12, 13, 14])
    assert table.loc["c", "map_genes"] == _names([20, 5, 6])
    for group, shifts in SHIFTS.items():
        assert table.loc[group, "observed_genes"] == _names(shifts)
    # the global shift is led by a's genes: it predicts a, and nothing else
    assert table["baseline"].tolist() == [5, 0, 0]
    assert table["overlap"].dtype == np.int64
    # nothing the caller passed is modified
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(groups, g0)


def test_ties_are_broken_by_feature_order(cells, table_map):
    X, y, groups = cells
    table = group_topk_overlap(table_map, X, y, groups, k=3, min_cells=15)
    assert table.loc["a", "map_genes"] == _names([0, 1, 2])  # five tied genes
    assert table["overlap"].tolist() == [3, 3, 1]


def test_reference_gives_the_baseline_and_a_ceiling(cells, table_map):
    X, y, groups = cells
    reference = _cells(REFERENCE_SHIFTS, n=25, seed=1)
    table = group_topk_overlap(
        table_map, X, y, groups, k=5, min_cells=15, reference=reference
    )
    assert "ceiling" in table and table["ceiling"].dtype == np.int64
    # the reference's global shift is led by b's genes
    assert table["baseline"].tolist() == [0, 5, 0]
    # each group's own reference shift: c shares 3 genes with its held-out one
    assert table["ceiling"].tolist() == [5, 5, 3]
    # the map and the held-out observation do not depend on the reference
    plain = group_topk_overlap(table_map, X, y, groups, k=5, min_cells=15)
    pd.testing.assert_series_equal(table["overlap"], plain["overlap"])
    assert table["observed_genes"].tolist() == plain["observed_genes"].tolist()


def test_groups_below_min_cells_are_left_out(cells, table_map):
    X, y, groups = cells
    rng = np.random.default_rng(3)
    # d: 5 source and 20 target rows; e: 20 source and 4 target rows; both look
    # like a to the map (marker 0)
    extra = 0.05 * rng.normal(size=(49, N_FEATURES))
    extra[:, MARKER] = 0.0
    X2 = np.vstack([X, extra])
    y2 = np.r_[y, [0] * 5 + [1] * 20 + [0] * 20 + [1] * 4]
    g2 = np.r_[groups, ["d"] * 25 + ["e"] * 24].astype(object)
    g2[:3] = None  # three source rows of a belong to no group
    table = group_topk_overlap(table_map, X2, y2, g2, k=5, min_cells=15)
    assert list(table.index) == ["a", "b", "c"]
    assert table.loc["a", "n_source"] == 17
    table = group_topk_overlap(table_map, X2, y2, g2, k=5, min_cells=5)
    assert list(table.index) == ["a", "b", "c", "d"]  # e has 4 target rows
    assert table.loc["d", ["n_source", "n_target"]].tolist() == [5, 20]
    assert table.loc[["b", "c"], "overlap"].tolist() == [5, 1]
    with pytest.raises(ValueError, match="No group has at least min_cells=21"):
        group_topk_overlap(table_map, X2, y2, g2, k=5, min_cells=21)


def test_mixed_type_group_labels(cells, table_map):
    X, y, groups = cells
    mixed = np.where(groups == "b", 7, groups).astype(object)
    table = group_topk_overlap(table_map, X, y, mixed, k=5, min_cells=15)
    # sorted by (type name, str): ints before strings, deterministic
    assert list(table.index) == [7, "a", "c"]
    assert table["overlap"].tolist() == [5, 4, 1]


def test_sparse_and_dataframe_input_give_the_same_table(cells, table_map):
    X, y, groups = cells
    dense = group_topk_overlap(table_map, X, y, groups, k=5, min_cells=15)
    sparse = group_topk_overlap(
        table_map, sp.csr_matrix(X), y, groups, k=5, min_cells=15
    )
    pd.testing.assert_frame_equal(sparse, dense)
    names = [f"gene{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=names, index=[f"cell{i}" for i in range(len(X))])
    named = group_topk_overlap(table_map, frame, y, groups, k=5, min_cells=15)
    assert named.loc["c", "map_genes"] == ["gene20", "gene5", "gene6"]
    pd.testing.assert_series_equal(named["overlap"], dense["overlap"])


def test_fitted_map_sparse_equals_dense(cells):
    X, y, groups = cells
    est = EntropicSparseMap(gamma=0.5).fit(X, y)
    dense = group_topk_overlap(est, X, y, groups, k=5, min_cells=15)
    sparse = group_topk_overlap(est, sp.csr_matrix(X), y, groups, k=5, min_cells=15)
    pd.testing.assert_frame_equal(sparse, dense)
    # the expected sets by hand: mean |T(x) - x| over each group's source rows
    for group in "abc":
        rows = (y == 0) & (groups == group)
        moved = np.abs(est.transform(X[rows]) - X[rows]).mean(axis=0)
        expected = [g for g in np.argsort(-moved, kind="stable") if moved[g] > 0][:5]
        assert dense.loc[group, "map_genes"] == _names(expected)


def test_pipeline_is_scored_in_the_input_space():
    X, y, groups = _cells(n=20, seed=2)
    # very different gene scales: the ranking by |Δ| in z-scores is not the
    # ranking in the input units
    scale = np.geomspace(0.05, 20.0, N_FEATURES)
    scale[MARKER] = 1.0
    X = X * scale
    pipe = make_pipeline(StandardScaler(), EntropicSparseMap(gamma=0.5)).fit(X, y)
    table = group_topk_overlap(pipe, X, y, groups, k=5, min_cells=15)
    scaler, est = pipe[0], pipe[-1]
    differs = False
    for group in "abc":
        rows = (y == 0) & (groups == group)
        z = scaler.transform(X[rows])
        delta_z = est.transform(z) - z
        for delta, check in ((delta_z * scaler.scale_, True), (delta_z, False)):
            moved = np.abs(delta).mean(axis=0)
            order = [g for g in np.argsort(-moved, kind="stable") if moved[g] > 0]
            if check:
                assert table.loc[group, "map_genes"] == _names(order[:5])
            else:
                differs |= table.loc[group, "map_genes"] != _names(order[:5])
    assert differs  # the test tells input space from z-scores apart


# ------------------------------------------------------------- the scorer
@pytest.fixture(scope="module")
def frame_cells():
    """Cells as a DataFrame with a barcode index, shuffled; groups as a Series."""
    X, y, groups = _cells(n=20, seed=4)
    barcodes = np.array([f"cell{i:03d}" for i in range(len(X))])
    order = np.random.default_rng(0).permutation(len(X))
    frame = pd.DataFrame(X[order], index=barcodes[order])
    # the Series is in the original order: only a lookup by label is right
    return frame, y[order], pd.Series(groups, index=barcodes, name="cell_type")


def test_scorer_looks_up_the_groups_of_each_fold(frame_cells):
    X, y, groups = frame_cells
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    est = EntropicSparseMap(gamma=0.5)
    scorer = make_group_overlap_scorer(groups, k=5, min_cells=3)
    scores = cross_val_score(est, X, y, cv=cv, scoring=scorer, error_score="raise")
    expected = []
    for train, test in cv.split(X, y):
        fitted = clone(est).fit(X.iloc[train], y[train])
        fold_groups = groups.loc[X.index[test]].to_numpy()
        table = group_topk_overlap(
            fitted, X.iloc[test], y[test], fold_groups, k=5, min_cells=3
        )
        assert len(table) == 3
        expected.append(table["overlap"].mean())
    np.testing.assert_allclose(scores, expected)
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)


def test_scorer_with_groups_of_the_scored_rows(cells):
    X, y, groups = cells
    est = EntropicSparseMap(gamma=0.5).fit(X, y)
    scorer = make_group_overlap_scorer(groups, k=5, min_cells=15)
    table = group_topk_overlap(est, X, y, groups, k=5, min_cells=15)
    assert scorer(est, X, y) == pytest.approx(table["overlap"].mean())
    # a Series with a plain array X of the same length is used by position
    series = make_group_overlap_scorer(pd.Series(groups), k=5, min_cells=15)
    assert series(est, X, y) == pytest.approx(table["overlap"].mean())
    text = repr(scorer)
    assert "k=5" in text and "min_cells=15" in text and "120 labels" in text


def test_scorer_explains_how_to_pass_groups(frame_cells, cells):
    X, y, groups = frame_cells
    est = EntropicSparseMap(gamma=0.5).fit(X, y)
    half = X.iloc[:60]
    # a plain array for the whole data set, given one fold of it
    with pytest.raises(ValueError, match="60 rows of X but groups has 120 labels"):
        make_group_overlap_scorer(groups.to_numpy())(est, half, y[:60])
    with pytest.raises(ValueError, match="Series indexed like the DataFrame X"):
        make_group_overlap_scorer(groups.to_numpy())(est, half, y[:60])
    # a Series whose index does not hold the rows of X
    renamed = groups.set_axis([f"other{i}" for i in range(len(groups))])
    with pytest.raises(ValueError, match="not in the index of the groups Series"):
        make_group_overlap_scorer(renamed)(est, half, y[:60])
    duplicated = groups.set_axis(["same"] * len(groups))
    with pytest.raises(ValueError, match="duplicates"):
        make_group_overlap_scorer(duplicated)(est, half, y[:60])
    # a Series, but X a plain array of another length
    with pytest.raises(ValueError, match="X is not a DataFrame"):
        make_group_overlap_scorer(groups)(est, half.to_numpy(), y[:60])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        make_group_overlap_scorer(groups, k=0)
    with pytest.raises(ValueError, match="min_cells"):
        make_group_overlap_scorer(groups, min_cells=1.5)


# ------------------------------------------------------------- bad input
def test_bad_input_raises_clear_value_errors(cells, table_map):
    X, y, groups = cells
    kw = {"k": 5, "min_cells": 15}
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        group_topk_overlap(table_map, X, y, groups, k=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        group_topk_overlap(table_map, X, y, groups, k=2.5)
    with pytest.raises(ValueError, match="k=31 exceeds the number of features"):
        group_topk_overlap(table_map, X, y, groups, k=31)
    with pytest.raises(ValueError, match="min_cells"):
        group_topk_overlap(table_map, X, y, groups, k=5, min_cells=0)
    with pytest.raises(ValueError, match="groups must be 1-d with one label per row"):
        group_topk_overlap(table_map, X, y, groups[:-1], **kw)
    with pytest.raises(ValueError, match="one population label per row"):
        group_topk_overlap(table_map, X, y[:-1], groups, **kw)
    with pytest.raises(ValueError, match="No group has at least min_cells=21"):
        group_topk_overlap(table_map, X, y, groups, k=5, min_cells=21)
    with pytest.raises(ValueError, match="No group.*source/target rows per group"):
        group_topk_overlap(table_map, X[y == 0], y[y == 0], groups[y == 0], **kw)
    with pytest.raises(ValueError, match=r"reference must be a tuple \(X_ref"):
        group_topk_overlap(table_map, X, y, groups, reference=X, **kw)
    with pytest.raises(ValueError, match="X_ref has 29 features but X has 30"):
        group_topk_overlap(
            table_map, X, y, groups, reference=(X[:, :-1], y, groups), **kw
        )
    with pytest.raises(ValueError, match="NaN"):
        bad = X.copy()
        bad[0, 0] = np.nan
        group_topk_overlap(table_map, bad, y, groups, **kw)
    with pytest.raises(ValueError, match="skmonge map"):
        group_topk_overlap(StandardScaler().fit(X), X, y, groups, **kw)
    with pytest.raises(NotFittedError):
        group_topk_overlap(EntropicSparseMap(), X, y, groups, **kw)


def test_group_overlap_feature_names():
    X, y, groups = _cells()
    est = EntropicSparseMap(gamma=0.5).fit(X, y)
    names = [f"gene{i}" for i in range(X.shape[1])]
    table = group_topk_overlap(est, X, y, groups, k=3, feature_names=names)
    assert all(g.startswith("gene") for genes in table["map_genes"] for g in genes)
    with pytest.raises(ValueError, match="feature_names must hold"):
        group_topk_overlap(est, X, y, groups, k=3, feature_names=names[:-1])
