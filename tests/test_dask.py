"""dask.array input to the map methods, on the threaded scheduler and on a
two-process LocalCluster; GridSearchCV under joblib's dask backend."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skmonge import EntropicSparseMap
from skmonge.datasets import make_sparse_monge

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = make_sparse_monge(n_samples=150, n_features=8, n_active=2, random_state=0)
    return EntropicSparseMap(gamma=0.5).fit(X, y), X


# rounding of block-wise against whole-array evaluation
_ROUNDING = {
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
    np.float64: {"rtol": 1e-12, "atol": 1e-12},
}


def _keys_holding(graph, obj):
    return [k for k, v in graph.items() if getattr(v, "value", v) is obj]


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "displacement"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dask_input_gives_the_numpy_result_lazily(fitted, method, dtype):
    est, X = fitted
    X = X[:130].astype(dtype)
    # chunked along the features too: blocks are rechunked to whole rows
    lazy = getattr(est, method)(da.from_array(X, chunks=(30, 3)))
    assert isinstance(lazy, da.Array)
    assert lazy.dtype == dtype and lazy.shape == X.shape
    assert lazy.chunks == ((30, 30, 30, 30, 10), (8,))
    expected = getattr(est, method)(X)
    result = lazy.compute(scheduler="threads")
    assert result.dtype == dtype
    # blocks of rows go through BLAS with other shapes (and, on workers,
    # other thread counts) than the whole array: equal up to rounding
    np.testing.assert_allclose(result, expected, **_ROUNDING[dtype])


def test_the_fitted_map_enters_the_graph_once(fitted):
    from dask.core import get_dependencies

    est, X = fitted
    lazy = est.transform(da.from_array(X, chunks=(20, 8)))
    graph = dict(lazy.__dask_graph__())
    holders = _keys_holding(graph, est)
    assert len(holders) == 1  # not one copy per block
    blocks = [key for (key,) in lazy.__dask_keys__()]
    assert len(blocks) == 15
    for key in blocks:
        assert holders[0] in get_dependencies(graph, key)


def test_sparse_blocks_and_integer_input(fitted):
    est, X = fitted
    csr = sp.csr_matrix(np.where(np.abs(X[:60]) > 0.5, X[:60], 0.0))
    lazy = est.transform(da.from_array(csr, chunks=(25, 8), asarray=False))
    np.testing.assert_allclose(
        lazy.compute(), est.transform(csr), **_ROUNDING[np.float64]
    )
    counts = np.round(np.abs(X[:40]) * 3).astype(np.int64)
    lazy = est.displacement(da.from_array(counts, chunks=(16, 8)))
    assert lazy.dtype == np.float64
    np.testing.assert_allclose(
        lazy.compute(), est.displacement(counts), **_ROUNDING[np.float64]
    )


def test_dask_input_errors_name_the_problem(fitted):
    est, X = fitted
    with pytest.raises(ValueError, match="3 features, but EntropicSparseMap"):
        est.transform(da.zeros((10, 3), chunks=5))
    with pytest.raises(ValueError, match="2-d"):
        est.transform(da.zeros(10, chunks=5))
    with pytest.raises(NotFittedError):
        EntropicSparseMap().transform(da.from_array(X, chunks=20))


def test_neural_and_learned_maps_take_dask_input():
    pytest.importorskip("torch")
    from conftest import FAST_LEARNED

    from skmonge import LearnedCostMap, NeuralSparseMap

    X, y, _ = make_sparse_monge(n_samples=80, n_features=4, n_active=1, random_state=1)
    neural = NeuralSparseMap(
        hidden_sizes=(8,), n_iter=5, random_state=0, device="cpu"
    ).fit(X, y)
    learned = LearnedCostMap(**FAST_LEARNED).fit(X, y)
    lazy_X = da.from_array(X, chunks=(40, 4))
    for est, methods in (
        (neural, ("transform", "inverse_transform", "displacement")),
        (learned, ("transform", "inverse_transform")),
    ):
        for method in methods:
            np.testing.assert_allclose(
                getattr(est, method)(lazy_X).compute(),
                getattr(est, method)(X),
                rtol=1e-12,
                atol=1e-12,
            )


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="2GiB",
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_local_cluster_of_two_processes(client, fitted):
    from distributed import get_task_stream

    est, X = fitted
    many = np.vstack([X] * 4)
    with get_task_stream(client) as stream:
        result = client.compute(est.displacement(da.from_array(many, chunks=(50, 8))))
        result = result.result()
    np.testing.assert_allclose(result, est.displacement(many), **_ROUNDING[np.float64])
    # the blocks ran in both worker processes
    ran = [task for task in stream.data if "_apply" in str(task["key"])]
    assert len(ran) == many.shape[0] // 50
    assert len({task["worker"] for task in ran}) == 2


@pytest.mark.slow
def test_grid_search_under_joblib_dask_backend(client, monkeypatch):
    import joblib

    X, y, _ = make_sparse_monge(n_samples=120, n_features=6, n_active=2, random_state=2)
    from distributed import get_task_stream

    search = GridSearchCV(
        EntropicSparseMap(),
        {"gamma": [0.1, 1.0, 10.0]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        n_jobs=-1,
    )
    # fits in this process are counted (the workers import the class
    # unpatched); joblib batches fast fits into fewer cluster tasks, so the
    # tasks themselves are not counted
    local_fits = []
    fit = EntropicSparseMap.fit

    def counted(self, *args, **kwargs):
        local_fits.append(self.gamma)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(EntropicSparseMap, "fit", counted)
    with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        on_cluster = search.fit(X, y)
    monkeypatch.undo()
    # the 3 x 3 fits ran on the cluster: only the refit ran here
    assert len(stream.data) >= 1 and local_fits == [on_cluster.best_params_["gamma"]]
    scores = on_cluster.cv_results_["mean_test_score"]
    local = GridSearchCV(
        EntropicSparseMap(),
        {"gamma": [0.1, 1.0, 10.0]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    np.testing.assert_allclose(scores, local.cv_results_["mean_test_score"])
    assert on_cluster.best_params_ == local.best_params_
