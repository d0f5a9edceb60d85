"""The package's one progress bar."""

from skmonge._progress import Progress, progress_over


def test_quiet_progress_prints_nothing_and_costs_nothing(capsys):
    progress = Progress(100, "solver", verbose=False, every=10)
    assert not progress.active
    for _ in range(50):
        progress.step(error="1e-3")
    progress.show(dim="3.0")
    progress.close(50)
    assert progress.count == 0  # nothing is even counted
    assert capsys.readouterr().err == ""
    assert progress_over(range(5), "chunks", verbose=False) == [0, 1, 2, 3, 4]


def test_verbose_progress_leaves_count_and_status(capsys):
    with Progress(100, "solver", verbose=True, every=10) as progress:
        for i in range(37):
            progress.step(error=f"{1.0 / (i + 1):.1e}")
    err = capsys.readouterr().err
    # the final count, not the planned total, and the last status
    assert "solver" in err and "37/100" in err and "error=2.7e-02" in err
    progress = Progress(10, "fit", verbose=True)
    progress.step(3)
    progress.close(7, stage="last")
    err = capsys.readouterr().err
    assert "7/10" in err and "stage=last" in err


def test_progress_over_chunks(capsys):
    assert list(progress_over([1], "transform", verbose=True)) == [1]
    assert capsys.readouterr().err == ""  # one chunk: no bar
    assert list(progress_over(range(3), "transform", verbose=True)) == [0, 1, 2]
    assert "3/3" in capsys.readouterr().err


def test_auto_decides_from_the_size_of_the_work():
    import pytest

    from skmonge._progress import AUTO_STEPS, AUTO_WORK, show_progress

    assert show_progress(True) and not show_progress(False)
    assert not show_progress("auto", work=AUTO_WORK / 2, steps=AUTO_STEPS - 1)
    assert show_progress("auto", work=AUTO_WORK)
    assert show_progress("auto", steps=AUTO_STEPS)
    with pytest.raises(ValueError, match="auto"):
        show_progress("always")


def test_estimators_show_bars_by_default_only_for_long_work(capsys, monkeypatch):
    import numpy as np
    import pytest

    import skmonge._progress as progress
    from skmonge import EntropicSparseMap, NeuralSparseMap
    from skmonge.datasets import make_sparse_monge

    X, y, _ = make_sparse_monge(n_samples=120, n_features=5, n_active=2, random_state=0)
    source = X[y == 0]
    est = EntropicSparseMap(chunk_size=30)
    assert est.verbose == "auto"
    est.fit(X, y).transform(source)
    assert capsys.readouterr().err == ""  # 120 x 120 x 5: a fraction of a second
    # the same calls judged long: the Sinkhorn and transform bars appear
    monkeypatch.setattr(progress, "AUTO_WORK", 120 * 120 * 5)
    est.fit(X, y).transform(source)
    err = capsys.readouterr().err
    assert "sinkhorn" in err and "transform" in err
    EntropicSparseMap(verbose=False, chunk_size=30).fit(X, y).transform(source)
    assert capsys.readouterr().err == ""
    # training loops: by planned steps
    pytest.importorskip("torch")
    monkeypatch.setattr(progress, "AUTO_STEPS", 4)
    NeuralSparseMap(hidden_sizes=(4,), n_iter=3, device="cpu").fit(X, y)
    assert capsys.readouterr().err == ""
    NeuralSparseMap(hidden_sizes=(4,), n_iter=4, device="cpu").fit(X, y)
    assert "NeuralSparseMap" in capsys.readouterr().err
    assert np.isfinite(est.epsilon_)
