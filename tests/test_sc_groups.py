"""Per-group answers: predict(groupby=...), fit_map(groupby=...), the reports."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from skmonge import EntropicSparseMap
from skmonge.inspection import displacement_report

ad = pytest.importorskip("anndata")
from skmonge import sc  # noqa: E402

GENES = [f"G{i}" for i in range(12)]
RESPONSE = {"A": [0, 1], "B": [2, 3], "C": [4, 5]}


def _typed_adata(sparse=False, seed=0, n=30, n_tiny=4):
    """Three cell types, each responding in its own two genes, plus a tiny D.

    The types also differ by a marker gene (G8 + 2 * type), so a pooled map
    may mix them; per-type maps cannot.
    """
    rng = np.random.default_rng(seed)
    blocks, condition, cell_type = [], [], []
    for t, (label, genes) in enumerate(list(RESPONSE.items()) + [("D", [6])]):
        size = n if label != "D" else n_tiny
        for stim in (False, True):
            X = rng.normal(1.0, 0.3, size=(size, len(GENES)))
            X[:, 8] += 2.0 * t
            if stim:
                X[:, genes] += 2.0
            blocks.append(X)
            condition += ["stimulated" if stim else "control"] * size
            cell_type += [label] * size
    X = np.vstack(blocks)
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(condition),
            "cell_type": pd.Categorical(cell_type),
        },
        index=[f"c{i}" for i in range(X.shape[0])],
    )
    return ad.AnnData(
        X=sp.csr_matrix(X) if sparse else X, obs=obs, var=pd.DataFrame(index=GENES)
    )


def _dense(adata):
    return adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)


def _est():
    return EntropicSparseMap(gamma=0.3, source="control", target="stimulated")


@pytest.mark.parametrize("sparse", [False, True])
def test_predict_groupby_matches_a_hand_computation(sparse):
    adata = _typed_adata(sparse=sparse)
    est = sc.fit_map(adata, _est())
    sc.predict(adata, est, groupby="cell_type")
    uns = adata.uns["skmonge"]
    assert uns["params"]["groupby"] == "cell_type"
    assert uns["params"]["per_group_maps"] is False
    assert set(uns["names"].dtype.names) == {"A", "B", "C", "D"}
    X = _dense(adata)
    control = (adata.obs["condition"] == "control").to_numpy()
    stimulated = ~control
    types = adata.obs["cell_type"].to_numpy()
    for label in ("A", "B", "C"):
        rows = control & (types == label)
        delta = est.transform(pd.DataFrame(X[rows], columns=GENES)) - X[rows]
        order = np.argsort(-np.abs(delta).mean(0), kind="stable")
        assert list(uns["names"][label]) == [GENES[j] for j in order]
        np.testing.assert_allclose(
            uns["mean_displacement"][label], delta.mean(0)[order], atol=1e-10
        )
        np.testing.assert_allclose(
            uns["fraction_moved"][label], (np.abs(delta) > 1e-8).mean(0)[order]
        )
        observed = X[stimulated & (types == label)].mean(0) - X[rows].mean(0)
        np.testing.assert_allclose(
            uns["observed_difference"][label], observed[order], atol=1e-10
        )
        assert uns["n_cells"][label] == rows.sum()
    # the getter gives the same tidy table as displacement_report(groups=...)
    report = sc.get_group_report(adata)
    expected = displacement_report(
        est,
        pd.DataFrame(X, columns=GENES),
        y=adata.obs["condition"].to_numpy(),
        groups=types,
    )
    pd.testing.assert_frame_equal(report, expected, check_exact=False, atol=1e-12)
    only_b = sc.get_group_report(adata, group="B")
    assert only_b.index.get_level_values("group").unique().tolist() == ["B"]


def test_per_group_maps_skip_small_groups_and_map_each_type_with_its_own():
    adata = _typed_adata()
    with pytest.warns(UserWarning, match="1 group.*not fitted.*'D'"):
        maps = sc.fit_map(adata, _est(), groupby="cell_type", min_cells=10)
    assert isinstance(maps, sc.GroupedMaps)
    assert sorted(maps) == ["A", "B", "C"] and list(maps.skipped) == ["D"]
    assert "4 source and 4 target" in maps.skipped["D"]
    X = _dense(adata)
    types = adata.obs["cell_type"].to_numpy()
    condition = adata.obs["condition"].to_numpy()
    # each map is the fit on its own type's cells
    own = types == "B"
    direct = _est().fit(X[own], condition[own])
    np.testing.assert_allclose(
        maps["B"].potential_target_, direct.potential_target_, atol=1e-10
    )
    with pytest.warns(UserWarning, match="4 selected cell"):
        sc.predict(adata, maps)
    mapped = adata.obs["skmonge_mapped"].to_numpy()
    control = condition == "control"
    assert not mapped[types == "D"].any()
    assert mapped[control & (types != "D")].all()
    layer = np.asarray(adata.layers["skmonge_mapped"])
    rows = control & (types == "C")
    frame = pd.DataFrame(X[rows], columns=GENES)
    np.testing.assert_allclose(layer[rows], maps["C"].transform(frame), atol=1e-12)
    np.testing.assert_array_equal(layer[types == "D"], X[types == "D"])
    uns = adata.uns["skmonge"]
    assert uns["params"]["per_group_maps"] is True
    assert set(uns["names"].dtype.names) == {"A", "B", "C"}
    # conditional maps recover each type's own response genes
    for label, genes in RESPONSE.items():
        top = set(uns["names"][label][:2])
        assert top == {GENES[j] for j in genes}, (label, top)


def test_group_errors_are_explained():
    adata = _typed_adata()
    with pytest.raises(ValueError, match="min_cells must be a positive"):
        sc.fit_map(adata, _est(), groupby="cell_type", min_cells=0)
    with pytest.raises(ValueError, match="No group of obs"):
        sc.fit_map(adata, _est(), groupby="cell_type", min_cells=1000)
    with pytest.raises(ValueError, match="not a column"):
        sc.fit_map(adata, _est(), groupby="tissue")
    with pytest.raises(ValueError, match="pass source= and target="):
        sc.fit_map(adata, EntropicSparseMap(), groupby="cell_type")
    est = sc.fit_map(adata, _est())
    with pytest.raises(ValueError, match="no per-group report"):
        sc.get_group_report(adata)
    sc.predict(adata, est, groupby="cell_type")
    with pytest.raises(ValueError, match="No group"):
        sc.get_group_report(adata, group="Z")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        maps = sc.fit_map(adata, _est(), groupby="cell_type", min_cells=10)
    with pytest.raises(ValueError, match="fitted per obs"):
        sc.predict(adata, maps, groupby="condition")


def test_displacement_report_groups_without_y_maps_every_row():
    adata = _typed_adata()
    est = sc.fit_map(adata, _est())
    X = pd.DataFrame(_dense(adata), columns=GENES)
    types = adata.obs["cell_type"].to_numpy().astype(object)
    types[:3] = None  # no group: left out
    report = displacement_report(est, X, groups=types)
    assert "observed_difference" not in report
    assert report.loc["A", "n_cells"].iloc[0] == 2 * 30 - 3
    pooled = displacement_report(est, X.iloc[3:])
    counts = report.groupby("group")["n_cells"].first()
    weighted = (
        report["mean_displacement"].unstack("feature").mul(counts, axis=0).sum()
        / counts.sum()
    )
    np.testing.assert_allclose(
        weighted[pooled.index], pooled["mean_displacement"], atol=1e-12
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_pipeline_displacements_are_reported_in_the_input_genes(sparse):
    adata = _typed_adata(sparse=sparse)
    X = _dense(adata)
    y = adata.obs["condition"].to_numpy()
    pipe = make_pipeline(StandardScaler(with_mean=not sparse), _est())
    fitted = sc.fit_map(adata, pipe)
    sc.predict(adata, fitted, groupby="cell_type")
    scaler, est = fitted[0], fitted[-1]
    control = y == "control"
    z = scaler.transform(X[control])
    expected = scaler.inverse_transform(est.transform(z)) - X[control]
    np.testing.assert_allclose(
        adata.var["skmonge_mean_disp"], expected.mean(0), atol=1e-10
    )
    layer = adata.layers["skmonge_mapped"]
    layer = layer.toarray() if sp.issparse(layer) else layer
    np.testing.assert_allclose(layer[control], X[control] + expected, atol=1e-10)
    report = displacement_report(fitted, X[control], feature_names=GENES)
    np.testing.assert_allclose(
        report.loc[GENES, "mean_displacement"], expected.mean(0), atol=1e-10
    )


def test_pipeline_step_without_inverse_is_named():
    adata = _typed_adata()
    fitted = sc.fit_map(adata, make_pipeline(Normalizer(), _est()))
    with pytest.raises(ValueError, match="'normalizer'.*inverse_transform"):
        sc.predict(adata, fitted)
    with pytest.raises(ValueError, match="'normalizer'"):
        displacement_report(fitted, _dense(adata))
