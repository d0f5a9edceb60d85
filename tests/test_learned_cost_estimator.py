"""LearnedCostMap as an estimator: training, scikit-learn API, datasets, metrics."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import FAST_LEARNED, expected_failed_checks  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn import config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from skmonge import EntropicSparseMap, LearnedCostMap  # noqa: E402
from skmonge.datasets import make_inverse_ot, make_limited_pairs  # noqa: E402
from skmonge.metrics import incorrect_mass, pair_rmse  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny problems: extra torch threads only add barrier waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fast(**params):
    """A small, quick configuration (the loss needs no fit parameter)."""
    base = dict(FAST_LEARNED)
    base.update(params)
    return LearnedCostMap(**base)


@parametrize_with_checks(
    [_fast(), _fast(loss="k_directional", flows="shared", flow_hidden_sizes=(4,))],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _tshape(n, seed):
    return make_inverse_ot("t_shape", n_samples=n, random_state=seed)


# ------------------------------------------------------------------ training
def test_training_on_t_shape_pairs_beats_the_l2_map():
    """Measured: held-out RMSE 0.023 (learned) vs 0.61 (½ℓ2² entropic map);
    incorrectly transported mass on the training pairs 0.81 vs 0.98."""
    X, y, pair_id = _tshape(48, 0)
    X_test, _, _ = _tshape(32, 1)
    src, tgt = X_test[:32], X_test[32:]
    est = LearnedCostMap(
        hidden_sizes=(16, 16),
        learning_rate=1e-2,
        n_iter=60,
        random_state=0,
        device="cpu",
    ).fit(X, y, pair_id=pair_id)
    ref = EntropicSparseMap(cost="sqeuclidean", relative_epsilon=0.01).fit(X, y)
    learned, l2 = pair_rmse(est.transform(src), tgt), pair_rmse(ref.transform(src), tgt)
    assert l2 > 0.5  # every coupling of the two segments costs the same under ½ℓ2²
    assert learned < 0.05 and learned < 0.1 * l2
    assert pair_rmse(est.inverse_transform(tgt), src) < 0.05
    assert est.n_pairs_ == 48 and est.converged_
    assert est.loss_curve_.shape == (60,)
    assert est.loss_curve_[-5:].mean() < 0.1 * est.loss_curve_[:5].mean()
    # the learned cost's plan on the training data follows the pairs
    ids = pair_id
    plan = est.transport_plan()
    assert plan.sum() == pytest.approx(1.0)
    ref_plan = EntropicSparseMap(cost="sqeuclidean", relative_epsilon=0.01).fit(X, y)
    C = 0.5 * ((X[:48, None] - X[None, 48:]) ** 2).sum(-1)
    from skmonge.sinkhorn import sinkhorn, transport_plan

    r = sinkhorn(C, ref_plan.epsilon_)
    l2_plan = transport_plan(C, r.f, r.g, ref_plan.epsilon_)
    assert incorrect_mass(plan, ids[:48], ids[48:]) < 0.9 * incorrect_mass(
        l2_plan, ids[:48], ids[48:]
    )


@pytest.mark.parametrize(
    "params",
    [
        dict(loss="low_rank", rank=1, fit_weight=1.0),
        dict(loss="k_directional", n_directions=2),
        dict(loss="subsets"),
        dict(loss="coupling"),
        dict(loss="pairs", flows="separate", symmetry_reg=0.1, dirichlet_reg=0.01),
        dict(loss="pairs", flows="shared", reverse=False, symmetric=False),
    ],
)
def test_every_loss_trains(params):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(24, 3)), rng.normal(size=(20, 3)) * 0.7 + 1.0])
    y = np.r_[np.zeros(24, int), np.ones(20, int)]
    pair_id = np.r_[np.arange(10), np.full(14, -1), np.arange(10), np.full(10, -1)]
    subset_id = np.r_[np.arange(24) % 2, np.arange(20) % 2]
    est = LearnedCostMap(
        hidden_sizes=(8,),
        n_iter=25,
        learning_rate=1e-2,
        flow_learning_rate=1e-2,
        random_state=0,
        device="cpu",
        relative_epsilon=0.05,
        flow_hidden_sizes=(8,),
        **params,
    ).fit(X, y, pair_id=pair_id, subset_id=subset_id)
    curve = est.loss_curve_
    assert np.all(np.isfinite(curve))
    assert curve[-5:].mean() < curve[:5].mean()
    out, back = est.transform(X[:5]), est.inverse_transform(X[24:29])
    assert (
        out.shape == (5, 3) and np.all(np.isfinite(out)) and np.all(np.isfinite(back))
    )
    if params["loss"] == "k_directional":
        np.testing.assert_allclose(np.linalg.norm(est.directions_, axis=1), 1.0)


def test_flows_start_at_identity_and_invert():
    X, y, pair_id = _tshape(16, 0)
    est = LearnedCostMap(flows="separate", n_iter=0, device="cpu").fit(
        X, y, pair_id=pair_id
    )
    for push, pull in (
        (est.cost_.push_source, est.cost_.pull_source),
        (est.cost_.push_target, est.cost_.pull_target),
    ):
        P = torch.tensor(X, dtype=torch.float64)
        torch.testing.assert_close(push(P), P)
        torch.testing.assert_close(pull(push(P * 1.3)), P * 1.3)


# -------------------------------------------------------------- learned cost
def test_cost_callable():
    X, y, pair_id = _tshape(24, 0)
    est = LearnedCostMap(
        n_iter=10, random_state=0, device="cpu", relative_epsilon=0.05
    ).fit(X, y, pair_id=pair_id)
    A, B = X[:5], X[24:28]
    C = est.cost_(A, B)
    assert C.shape == (5, 4) and C.dtype == np.float64
    np.testing.assert_allclose(
        C, est.cost_.h((A[:, None] - B[None]).reshape(-1, 2)).reshape(5, 4)
    )
    np.testing.assert_allclose(C, est.cost_(B, A).T, atol=1e-12)  # symmetric h
    Z = np.random.default_rng(0).normal(size=(7, 2))
    np.testing.assert_allclose(
        est.cost_.inverse_grad_h(est.cost_.grad_h(Z)), Z, atol=1e-8
    )
    assert est.cost_.h(np.zeros((1, 2)))[0] == pytest.approx(0.0, abs=1e-12)
    # usable as the cost of the numba Sinkhorn divergence
    from skmonge.sinkhorn import sinkhorn_divergence

    assert np.isfinite(sinkhorn_divergence(A, B, cost=est.cost_))
    assert "LearnedCost" in repr(est.cost_)


# ----------------------------------------------------------------- sklearn
def test_clone_pickle_and_cpu_state():
    X, y, pair_id = _tshape(20, 0)
    est = LearnedCostMap(
        n_iter=5, random_state=0, flows="shared", device="cpu", relative_epsilon=0.1
    )
    assert clone(est).get_params() == est.get_params()
    est.fit(X, y, pair_id=pair_id)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X[:4]), est.transform(X[:4]))
    np.testing.assert_array_equal(
        again.inverse_transform(X[20:24]), est.inverse_transform(X[20:24])
    )
    # the shared flow stays shared, and every tensor is on the CPU
    assert again.cost_.flow_source is again.cost_.flow_target
    state = pickle.loads(pickle.dumps(est)).cost_.h_module.state_dict()
    assert all(t.device.type == "cpu" for t in state.values())


def test_same_seed_same_result_and_float32():
    X, y, pair_id = _tshape(20, 0)
    kw = dict(n_iter=5, random_state=3, device="cpu", relative_epsilon=0.05)
    a = LearnedCostMap(**kw).fit(X, y, pair_id=pair_id)
    b = LearnedCostMap(**kw).fit(X, y, pair_id=pair_id)
    np.testing.assert_array_equal(a.transform(X[:5]), b.transform(X[:5]))
    out = a.transform(X[:5].astype(np.float32))
    assert out.dtype == np.float32
    c = LearnedCostMap(dtype="float32", **kw)
    c.fit(X.astype(np.float32), y, pair_id=pair_id)
    np.testing.assert_allclose(c.transform(X[:5]), a.transform(X[:5]), atol=1e-3)


def test_parameter_names_follow_the_package_vocabulary():
    """n_iter / sinkhorn_tol / chunk_size; the old names are gone (no aliases)."""
    params = LearnedCostMap().get_params()
    assert params["n_iter"] == 500
    assert params["sinkhorn_tol"] == 1e-5
    assert params["chunk_size"] is None
    assert params["sinkhorn_max_iter"] == 5000
    assert params["train_sinkhorn_iter"] == 100
    assert not {"max_iter", "tol", "batch_size"} & params.keys()
    for old in ("max_iter", "tol", "batch_size"):
        with pytest.raises(TypeError, match=old):
            LearnedCostMap(**{old: 1})
    X, y, pair_id = _tshape(12, 0)
    with pytest.raises(ValueError, match="n_iter"):
        LearnedCostMap(n_iter=-1, device="cpu").fit(X, y, pair_id=pair_id)


def test_fitted_attributes_n_iter_device_and_potentials():
    X, y, pair_id = _tshape(16, 0)
    est = LearnedCostMap(
        n_iter=3, hidden_sizes=(4,), random_state=0, device="cpu", relative_epsilon=0.1
    ).fit(X, y, pair_id=pair_id)
    assert est.n_iter_ == 3 and est.loss_curve_.shape == (3,)
    assert isinstance(est.converged_, bool)
    assert isinstance(est.device_, str) and est.device_ == "cpu"
    # potentials: f on source_ (n_source,), g on target_ (n_target,), float64,
    # with P_ij = exp((f_i + g_j - C_ij) / ε) / (n m) as in EntropicSparseMap
    f, g = est.potential_source_, est.potential_target_
    assert f.shape == (16,) and g.shape == (16,)
    assert f.dtype == np.float64 and g.dtype == np.float64
    C = est.cost_(est.source_, est.target_)
    plan = np.exp((f[:, None] + g[None] - C) / est.epsilon_) / (16 * 16)
    np.testing.assert_allclose(est.transport_plan(), plan, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(plan.sum(1), 1 / 16, rtol=1e-3)
    # chunk_size chunks the map evaluation only: same images
    full = est.transform(X[:7]), est.inverse_transform(X[16:23])
    est.set_params(chunk_size=2)
    chunked = est.transform(X[:7]), est.inverse_transform(X[16:23])
    for a, b in zip(full, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_is_recorded_on_cuda():
    X, y, pair_id = _tshape(12, 0)
    est = LearnedCostMap(n_iter=2, hidden_sizes=(4,), random_state=0, device="cuda")
    est.fit(X, y, pair_id=pair_id)
    assert est.device_.startswith("cuda")
    assert est.transform(X[:3].astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("compute_dtype", ["float64", "float32"])
def test_maps_return_the_floating_dtype_of_x(compute_dtype):
    """float32 in -> float32 out, float64 -> float64, else float64, whatever
    the compute ``dtype``."""
    import scipy.sparse as sp

    X, y, pair_id = _tshape(16, 0)
    est = LearnedCostMap(
        n_iter=2,
        hidden_sizes=(4,),
        random_state=0,
        device="cpu",
        relative_epsilon=0.1,
        dtype=compute_dtype,
    ).fit(X, y, pair_id=pair_id)
    reference = est.transform(X[:5]), est.inverse_transform(X[16:21])
    atol = 1e-3 if compute_dtype == "float32" else 1e-5
    cases = [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int64, np.float64),
    ]
    for in_dtype, out_dtype in cases:
        for as_sparse in (False, True):
            src, tgt = X[:5].astype(in_dtype), X[16:21].astype(in_dtype)
            if as_sparse:
                src, tgt = sp.csr_matrix(src), sp.csr_matrix(tgt)
            out = est.transform(src), est.inverse_transform(tgt)
            for got, ref in zip(out, reference, strict=True):
                assert got.dtype == out_dtype, (in_dtype, as_sparse)
                if in_dtype is not np.int64:
                    np.testing.assert_allclose(got, ref, atol=atol)


@pytest.mark.parametrize("routing", [False, True])
def test_pair_id_passes_through_grid_search(routing):
    X, y, pair_id = _tshape(30, 0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    est = LearnedCostMap(n_iter=3, hidden_sizes=(4,), random_state=0, device="cpu")
    with config_context(enable_metadata_routing=routing):
        if routing:
            est = est.set_fit_request(pair_id=True, subset_id=False)
        search = GridSearchCV(est, {"alpha": [0.01, 0.1]}, cv=cv)
        search.fit(X, y, pair_id=pair_id)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # refit on all rows: every pair known
    assert search.best_estimator_.n_pairs_ == 30
    # without pair_id, loss="pairs" cannot fit
    with pytest.raises(ValueError, match="needs known pairs"):
        LearnedCostMap(n_iter=1).fit(X, y)


def test_pairs_split_by_the_same_masks_as_x():
    """pair_id is indexed with X: shuffled rows keep their pairs."""
    X, y, pair_id = _tshape(12, 0)
    order = np.random.default_rng(0).permutation(24)
    labels = np.array(["ctrl", "drug"])[y]
    est = LearnedCostMap(
        n_iter=2, source="ctrl", target="drug", random_state=0, device="cpu"
    ).fit(X[order], labels[order], pair_id=pair_id[order])
    assert est.n_pairs_ == 12
    # ids on one side only (e.g. the partner is in another fold) are ignored
    partial = pair_id.copy()
    partial[12:18] = -1
    assert (
        LearnedCostMap(n_iter=1, device="cpu").fit(X, y, pair_id=partial).n_pairs_ == 6
    )


@pytest.mark.parametrize(
    "params,fit_params,match",
    [
        ({}, {"pair_id": np.zeros(5, int)}, "one entry per row"),
        ({}, {"pair_id": "bad"}, "pair_id"),
        ({}, {"pair_id": np.full(40, 0.5)}, "integers"),
        ({}, {"pair_id": np.r_[np.zeros(20, int), np.arange(20)]}, "repeats an id"),
        ({}, {"pair_id": np.full(40, -2)}, ">= -1"),
        ({"loss": "subsets"}, {}, "subset_id"),
        ({"alpha": 0.0}, {"pair_id": None}, "alpha"),
        ({"hidden_sizes": (4, 0)}, {}, "hidden_sizes"),
        ({"hidden_sizes": 3}, {}, "hidden_sizes"),
        ({"flows": "both"}, {}, "flows"),
        ({"loss": "nope"}, {}, "loss"),
        ({"sinkhorn_tol": 0.0}, {}, "sinkhorn_tol"),
        ({"chunk_size": 0}, {}, "chunk_size"),
        (
            {"device": "cuda:7"} if not torch.cuda.is_available() else {"dtype": "x"},
            {},
            "device|dtype",
        ),
    ],
)
def test_bad_input_raises_clear_value_error(params, fit_params, match):
    X, y, pair_id = _tshape(20, 0)
    fit_params = {"pair_id": pair_id, **fit_params}
    X0 = X.copy()
    with pytest.raises(ValueError, match=match):
        LearnedCostMap(n_iter=1, **params).fit(X, y, **fit_params)
    np.testing.assert_array_equal(X, X0)


def test_nan_and_transform_validation():
    X, y, pair_id = _tshape(20, 0)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LearnedCostMap(n_iter=1).fit(bad, y, pair_id=pair_id)
    est = LearnedCostMap(n_iter=1, device="cpu").fit(X, y, pair_id=pair_id)
    with pytest.raises(ValueError, match="features"):
        est.transform(np.ones((2, 3)))
    Xc = X.copy()
    est.transform(Xc)
    est.inverse_transform(Xc)
    np.testing.assert_array_equal(Xc, X)


def test_convergence_warning_and_verbose(capsys):
    X, y, pair_id = _tshape(20, 0)
    with pytest.warns(
        ConvergenceWarning,
        match=r"Sinkhorn.*sinkhorn_tol=1\.0e-12.*Increase sinkhorn_max_iter, "
        r"sinkhorn_tol or relative_epsilon",
    ):
        est = LearnedCostMap(n_iter=2, sinkhorn_max_iter=1, sinkhorn_tol=1e-12).fit(
            X, y, pair_id=pair_id
        )
    assert not est.converged_
    LearnedCostMap(n_iter=3, verbose=True, relative_epsilon=0.1).fit(
        X, y, pair_id=pair_id
    )
    assert "loss=" in capsys.readouterr().err


# ----------------------------------------------------------- datasets, metrics
def test_t_shape_pairs_are_optimal_for_a_correlated_quadratic_not_for_l2():
    X, _, pair_id = _tshape(40, 0)
    src, tgt = X[:40], X[40:]
    Z = src[:, None] - tgt[None]
    A = np.array([[1.0, 0.5], [0.5, 1.0]])  # ∂1∂2 h > 0
    C = np.einsum("ijk,kl,ijl->ij", Z, A, Z)
    rows, cols = linear_sum_assignment(C)
    np.testing.assert_array_equal(cols[np.argsort(rows)], np.arange(40))
    # for ½ℓ2² every permutation costs the same
    C2 = (Z**2).sum(-1)
    perm = np.random.default_rng(0).permutation(40)
    assert C2[np.arange(40), perm].sum() == pytest.approx(np.trace(C2))


@pytest.mark.parametrize("name", ["t_shape", "moons", "spiral"])
def test_inverse_ot_sets(name):
    X, y, pair_id = make_inverse_ot(name, 10, random_state=0)
    assert X.shape == (20, 2) and np.all(pair_id[:10] == pair_id[10:])
    X2, _, _ = make_inverse_ot(name, 10, random_state=0)
    np.testing.assert_array_equal(X, X2)
    with pytest.raises(ValueError, match="name"):
        make_inverse_ot("circle")


def test_limited_pairs_generator():
    X, y, pair_id, task = make_limited_pairs(40, 50, 7, n_features=3, random_state=0)
    assert X.shape == (90, 3) and (pair_id >= 0).sum() == 14
    src, tgt = X[:40], X[40:]
    np.testing.assert_allclose(task(src[:7]), tgt[:7], atol=1e-10)
    A, B = task.sample_pairs(20, random_state=1)
    np.testing.assert_allclose(task(A), B, atol=1e-10)
    np.testing.assert_allclose(
        task.phi_source.inverse(task.phi_source(A)), A, atol=1e-10
    )
    with pytest.raises(ValueError, match="n_pairs"):
        make_limited_pairs(5, 5, 6)


def test_pair_metrics_by_hand():
    assert pair_rmse([[0.0, 0.0], [1.0, 1.0]], [[3.0, 4.0], [1.0, 1.0]]) == (
        pytest.approx(np.sqrt(25 / 2))
    )
    P = np.full((3, 3), 1 / 9)
    # pairs s0-t1 and s2-t0: 6 of the 9 cells go against a known pair
    assert incorrect_mass(P, [0, -1, 1], [1, 0, -1]) == pytest.approx(6 / 9)
    assert incorrect_mass(np.eye(2) / 2, [0, 1], [0, 1]) == 0.0
    assert incorrect_mass(P, [-1] * 3, [-1] * 3) == 0.0
    with pytest.raises(ValueError, match="shape"):
        incorrect_mass(P, [0, 1], [0, 1, 2])


@pytest.mark.parametrize("loss", ["low_rank", "k_directional"])
def test_losses_that_fit_on_x_and_y_alone(loss):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat([0, 1], 20)
    est = LearnedCostMap(loss=loss, n_iter=2, hidden_sizes=(4,), device="cpu")
    assert est.fit(X, y).transform(X[:3]).shape == (3, 3)


def test_default_loss_without_pairs_says_what_each_loss_needs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat([0, 1], 20)
    with pytest.raises(ValueError, match="needs known pairs") as info:
        LearnedCostMap(n_iter=1, device="cpu").fit(X, y)
    message = str(info.value)
    assert "'subsets' subset_id" in message and "(X, y) alone" in message
    with pytest.raises(ValueError, match="'low_rank' and 'k_directional'"):
        LearnedCostMap(loss="subsets", n_iter=1, device="cpu").fit(X, y)
