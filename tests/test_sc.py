"""AnnData front end: fit_map and predict."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skmonge import EntropicSparseMap
from skmonge.inspection import displacement_report
from skmonge.metrics import displacement_sparsity, wilcoxon_scores

ad = pytest.importorskip("anndata")
from skmonge import sc  # noqa: E402

GENES = [f"G{i}" for i in range(10)]


def _adata(sparse=False, seed=0, n=40, dtype=np.float64):
    """Control / stimulated cells (stimulation moves G0 and G1) plus others."""
    rng = np.random.default_rng(seed)
    X = rng.exponential(size=(3 * n, len(GENES)))
    X[n : 2 * n, :2] += 2.5
    X[rng.random(X.shape) > 0.4] = 0.0
    condition = np.repeat(["control", "stimulated", "other"], n).astype(object)
    condition[-3:] = None  # cells of unknown condition
    obs = pd.DataFrame(
        {"condition": pd.Categorical(condition)},
        index=[f"cell{i}" for i in range(3 * n)],
    )
    X = X.astype(dtype)
    adata = ad.AnnData(
        X=sp.csr_matrix(X) if sparse else X, obs=obs, var=pd.DataFrame(index=GENES)
    )
    adata.layers["counts"] = np.round(X * 10)
    return adata


def _rows(adata, label, layer=None):
    X = adata.X if layer is None else adata.layers[layer]
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return X[(adata.obs["condition"] == label).to_numpy()]


def test_import_is_lazy_and_missing_anndata_is_explained(monkeypatch):
    code = "import sys, skmonge.sc; print('anndata' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "anndata", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "skmonge\[anndata\]"'):
        sc.fit_map(object(), EntropicSparseMap())


@pytest.mark.parametrize("sparse", [False, True])
def test_fit_map_equals_fitting_the_rows(sparse):
    adata = _adata(sparse=sparse)
    X0 = adata.X.copy()
    user = EntropicSparseMap(gamma=0.4)
    est = sc.fit_map(adata, user, source="control", target="stimulated")
    # the user's estimator is cloned, not fitted or changed
    assert user.get_params()["source"] is None
    with pytest.raises(NotFittedError):
        user.transform(np.ones((1, 10)))
    assert est.source_label_ == "control" and est.target_label_ == "stimulated"
    source, target = est.source_, est.target_
    if sp.issparse(source):
        source, target = source.toarray(), target.toarray()
    np.testing.assert_array_equal(source, _rows(adata, "control"))
    np.testing.assert_array_equal(target, _rows(adata, "stimulated"))
    direct = EntropicSparseMap(gamma=0.4, source="control", target="stimulated").fit(
        np.vstack([_rows(adata, "control"), _rows(adata, "stimulated")]),
        np.repeat(["control", "stimulated"], 40),
    )
    np.testing.assert_allclose(
        est.potential_target_, direct.potential_target_, rtol=1e-12
    )
    np.testing.assert_array_equal(est.get_feature_names_out(), GENES)
    # adata is only read
    assert (adata.X != X0).nnz == 0 if sparse else np.array_equal(adata.X, X0)


def test_fit_map_genes_layer_and_estimator_labels():
    adata = _adata()
    by_name = sc.fit_map(
        adata,
        EntropicSparseMap(source="control", target="stimulated"),
        genes=["G3", "G0", "G1"],
        layer="counts",
    )
    np.testing.assert_array_equal(by_name.get_feature_names_out(), ["G3", "G0", "G1"])
    np.testing.assert_array_equal(
        by_name.source_, _rows(adata, "control", "counts")[:, [3, 0, 1]]
    )
    mask = np.isin(GENES, ["G0", "G1", "G3"])
    by_mask = sc.fit_map(
        adata, EntropicSparseMap(), source="control", target="stimulated", genes=mask
    )
    np.testing.assert_array_equal(by_mask.get_feature_names_out(), ["G0", "G1", "G3"])
    np.testing.assert_array_equal(by_mask.source_, _rows(adata, "control")[:, mask])


_LABELS = {"source": "control", "target": "stimulated"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (_LABELS | {"key": "batch"}, "'batch' is not a column of adata.obs"),
        (_LABELS | {"genes": ["G0", "nope"]}, r"not in adata.var_names: \['nope'\]"),
        (_LABELS | {"layer": "spliced"}, "no layer 'spliced'"),
        ({"source": "control", "target": "treated"}, "target label 'treated'"),
        ({}, "only allowed when y holds exactly"),
    ],
)
def test_fit_map_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sc.fit_map(_adata(), EntropicSparseMap(), **kwargs)


@pytest.mark.parametrize("sparse", [False, True])
def test_predict_writes_layer_and_var(sparse):
    adata = _adata(sparse=sparse, dtype=np.float32)
    X_before = adata.X.copy()
    est = sc.fit_map(
        adata, EntropicSparseMap(gamma=0.4), source="control", target="stimulated"
    )
    assert sc.predict(adata, est) is None
    assert adata.X is not None
    same = (
        (adata.X != X_before).nnz == 0 if sparse else np.array_equal(adata.X, X_before)
    )
    assert same, "adata.X was modified"

    layer = adata.layers["skmonge_mapped"]
    assert sp.issparse(layer) == sparse and layer.dtype == np.float32
    layer = layer.toarray() if sparse else layer
    X = X_before.toarray() if sparse else X_before
    control = (adata.obs["condition"] == "control").to_numpy()
    np.testing.assert_array_equal(adata.obs["skmonge_mapped"], control)
    np.testing.assert_array_equal(layer[~control], X[~control])
    with pytest.warns(UserWarning, match="valid feature names"):
        expected = est.transform(X[control])
    np.testing.assert_array_equal(layer[control], expected)

    report = displacement_report(est, pd.DataFrame(X[control], columns=GENES))
    for column, name in [
        ("skmonge_mean_abs_disp", "mean_abs_displacement"),
        ("skmonge_mean_disp", "mean_displacement"),
        ("skmonge_frac_moved", "fraction_moved"),
    ]:
        np.testing.assert_allclose(
            adata.var[column], report.loc[GENES, name], rtol=1e-12
        )
    # stimulation raises G0 and G1: the map moves them up most
    top = adata.var["skmonge_mean_disp"].sort_values(ascending=False).index[:2]
    assert set(top) == {"G0", "G1"}


def test_predict_gene_subset_obsm_mask_and_copy():
    adata = _adata(sparse=True)
    est = sc.fit_map(
        adata,
        EntropicSparseMap(gamma=0.4),
        source="control",
        target="stimulated",
        genes=["G1", "G0", "G5"],
    )
    cells = np.zeros(adata.n_obs, dtype=bool)
    cells[[0, 5, 7, 50]] = True  # three control cells and a stimulated one
    out = sc.predict(
        adata, est, cells=cells, obsm_key="mapped", copy=True, chunk_size=3
    )
    assert "mapped" not in adata.obsm and "skmonge_mean_disp" not in adata.var
    assert "skmonge_mapped" not in out.layers  # obsm instead of a layer
    X = adata.X.toarray()
    mapped = out.obsm["mapped"].toarray()
    assert mapped.shape == (adata.n_obs, 3)
    np.testing.assert_array_equal(mapped[~cells], X[~cells][:, [1, 0, 5]])
    with pytest.warns(UserWarning, match="valid feature names"):
        expected = est.transform(X[cells][:, [1, 0, 5]])
    # chunks of 3 cells: BLAS may round differently from one chunk of 4
    np.testing.assert_allclose(mapped[cells], expected, rtol=1e-12, atol=1e-12)
    var = out.var["skmonge_mean_abs_disp"]
    assert var.drop(["G0", "G1", "G5"]).isna().all()
    assert var[["G0", "G1", "G5"]].notna().all()
    # a label selects the cells too (here the stimulated ones)
    sc.predict(adata, est, cells="stimulated", layer_added="back", key_added="s")
    stim = (adata.obs["condition"] == "stimulated").to_numpy()
    np.testing.assert_array_equal(adata.obs["s_mapped"], stim)
    layer = adata.layers["back"].toarray()
    np.testing.assert_array_equal(
        layer[:, [2, 3, 4, 6, 7, 8, 9]], X[:, [2, 3, 4, 6, 7, 8, 9]]
    )
    with pytest.raises(ValueError, match="No cell selected"):
        sc.predict(adata, est, cells="nobody")


def test_predict_matches_genes_by_name_and_reads_the_layer():
    adata = _adata()
    est = sc.fit_map(
        adata,
        EntropicSparseMap(gamma=0.4),
        source="control",
        target="stimulated",
        layer="counts",
    )
    sc.predict(adata, est, layer="counts")
    # the same cells with the genes in reverse order and an extra gene
    shuffled = ad.AnnData(
        X=np.zeros((adata.n_obs, 11)),
        obs=adata.obs[["condition"]].copy(),
        var=pd.DataFrame(index=["extra"] + GENES[::-1]),
    )
    shuffled.layers["counts"] = np.column_stack(
        [np.ones(adata.n_obs), adata.layers["counts"][:, ::-1]]
    )
    sc.predict(shuffled, est, layer="counts")
    np.testing.assert_array_equal(
        shuffled.layers["skmonge_mapped"][:, 1:],
        adata.layers["skmonge_mapped"][:, ::-1],
    )
    np.testing.assert_array_equal(shuffled.layers["skmonge_mapped"][:, 0], 1.0)
    np.testing.assert_allclose(
        shuffled.var.loc[GENES, "skmonge_mean_disp"],
        adata.var.loc[GENES, "skmonge_mean_disp"],
        rtol=1e-12,
    )
    assert np.isnan(shuffled.var.loc["extra", "skmonge_mean_disp"])
    np.testing.assert_array_equal(shuffled.X, 0.0)  # X was not the input


def test_kang2018_liger_end_to_end():
    from skmonge.datasets import load_kang2018

    data = load_kang2018("liger")
    adata = ad.AnnData(
        X=data.data,
        obs=pd.DataFrame(
            {"condition": pd.Categorical(data.target)}, index=data.cell_names
        ),
        var=pd.DataFrame(index=data.feature_names),
    )
    est = sc.fit_map(
        adata,
        EntropicSparseMap(cost="elastic_l1", gamma=1.0),
        source="control",
        target="stimulated",
    )
    assert est.converged_
    sc.predict(adata, est)
    var = adata.var
    # The genes pushed up most are interferon-response markers: they are among
    # the 20 best Wilcoxon markers of stimulated against control cells.
    # (measured: 10 of the top 10; ISG15 first.)
    z = wilcoxon_scores(adata.X, data.target, "stimulated", "control")
    markers = set(adata.var_names[np.argsort(-z)[:20]])
    up = var["skmonge_mean_disp"].sort_values(ascending=False).index[:10]
    assert len(markers & set(up)) >= 8
    assert var["skmonge_mean_abs_disp"].idxmax() == "ISG15"
    # the displacement is sparse, and the var statistics agree with metrics
    control = data.target == "control"
    mapped = adata.layers["skmonge_mapped"][control].toarray()
    original = adata.X[control].toarray()
    sparsity = displacement_sparsity(original, mapped)
    assert sparsity < 0.5
    assert var["skmonge_frac_moved"].mean() == pytest.approx(sparsity, rel=1e-12)


# ---------------------------------------------------------- backed AnnData
@pytest.mark.parametrize("sparse", [False, True])
def test_predict_reads_a_backed_anndata_in_row_chunks(tmp_path, monkeypatch, sparse):
    import skmonge._groups as groups

    rng = np.random.default_rng(3)
    n, d = 120, 12
    X = np.where(rng.random((n, d)) < 0.4, rng.exponential(2.0, (n, d)), 0.0)
    obs = pd.DataFrame(
        {
            "condition": np.repeat(["control", "stimulated"], n // 2),
            "cell_type": rng.choice(["a", "b", "c"], n),
        },
        index=[f"c{i}" for i in range(n)],
    )
    memory = ad.AnnData(
        X=sp.csr_matrix(X, dtype=np.float32) if sparse else X.astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"g{i}" for i in range(d)]),
    )
    memory.write_h5ad(tmp_path / "cells.h5ad")
    est = sc.fit_map(memory, EntropicSparseMap(source="control", target="stimulated"))
    sc.predict(memory, est, groupby="cell_type", layer_added=None)

    backed = ad.read_h5ad(tmp_path / "cells.h5ad", backed="r")
    assert not isinstance(backed.X, np.ndarray) and not sp.issparse(backed.X)
    reads = []
    read_rows = sc._read_rows

    def spy(X, rows):
        reads.append(len(rows))
        return read_rows(X, rows)

    monkeypatch.setattr(sc, "_read_rows", spy)
    monkeypatch.setattr(groups, "_BLOCK_VALUES", 5 * d)  # group means in blocks
    sc.predict(backed, est, groupby="cell_type", layer_added=None, chunk_size=16)
    # the 60 control cells were read 16 at a time, never all of X
    assert reads == [16, 16, 16, 12]
    # float32 cells in other chunks: the debiased gradient is a difference of
    # two averages, whose rounding depends on the chunk (1.1e-6 measured)
    for column in ("skmonge_mean_abs_disp", "skmonge_mean_disp", "skmonge_frac_moved"):
        np.testing.assert_allclose(backed.var[column], memory.var[column], rtol=1e-5)
    np.testing.assert_array_equal(
        backed.obs["skmonge_mapped"], memory.obs["skmonge_mapped"]
    )
    got, expected = (sc.get_group_report(a) for a in (backed, memory))
    pd.testing.assert_frame_equal(got.sort_index(), expected.sort_index(), rtol=1e-6)
    # a layer of every cell would load X: refused, with the way out named
    with pytest.raises(ValueError, match="backed.*layer_added=None"):
        sc.predict(backed, est)
    backed.file.close()


def test_predict_shows_a_bar_over_cells_for_long_work(capsys, monkeypatch):
    import skmonge._progress as progress

    adata = _adata()
    est = sc.fit_map(adata, EntropicSparseMap(source="control", target="stimulated"))
    capsys.readouterr()
    sc.predict(adata, est, chunk_size=7)
    assert capsys.readouterr().err == ""  # small: no bar by default
    monkeypatch.setattr(progress, "AUTO_WORK", 1)
    sc.predict(adata, est, chunk_size=7)
    err = capsys.readouterr().err
    n_mapped = int(adata.obs["skmonge_mapped"].sum())
    assert "predict" in err and f"{n_mapped}/{n_mapped}" in err
    sc.predict(adata, est, chunk_size=7, verbose=False)
    assert "predict" not in capsys.readouterr().err
