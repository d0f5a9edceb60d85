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
