"""NeuralSparseMap: ICNN, penalties, annealing schedules, estimator behaviour."""

import copy
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import expected_failed_checks  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from skmonge import NeuralSparseMap  # noqa: E402
from skmonge.costs import ElasticL1, ElasticSTVS  # noqa: E402
from skmonge.datasets import make_perturbation  # noqa: E402
from skmonge.metrics import (  # noqa: E402
    displacement_dimension,
    perturbed_gene_recall,
)
from skmonge.neural import annealing  # noqa: E402
from skmonge.neural.icnn import ICNN  # noqa: E402
from skmonge.neural.penalties import SmoothedL0, make_penalty  # noqa: E402

# a small, fast configuration for API tests
FAST = dict(
    hidden_sizes=(8, 8), n_iter=4, n_iter_round=2, n_inner=2, batch_size=16, n_eval=50
)


# --------------------------------------------------------------------- ICNN
def _randomised_icnn(d, seed, clamp=True):
    torch.manual_seed(seed)
    net = ICNN(d, (16, 16, 16)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.5)
    return net.clamp_weights_() if clamp else net


def _convexity_gap(net, d, seed):
    """max over random pairs of φ(t x + (1-t) y) - t φ(x) - (1-t) φ(y)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2000, d, generator=gen, dtype=torch.float64) * 2
    y = torch.randn(2000, d, generator=gen, dtype=torch.float64) * 2
    t = torch.rand(2000, 1, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        mid = net(t * x + (1 - t) * y)
        chord = t[:, 0] * net(x) + (1 - t[:, 0]) * net(y)
    return float((mid - chord).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icnn_is_convex_after_projection(seed):
    net = _randomised_icnn(4, seed)
    assert _convexity_gap(net, 4, seed) <= 1e-9


def test_convexity_check_detects_negative_weights():
    # the same check fails when the hidden weights are allowed to be negative
    gaps = [_convexity_gap(_randomised_icnn(4, s, clamp=False), 4, s) for s in range(3)]
    assert max(gaps) > 1e-3


def test_icnn_gradient_shape_and_finite_differences():
    net = _randomised_icnn(5, 3)
    x = torch.randn(7, 5, dtype=torch.float64)
    grad = net.gradient(x)
    assert grad.shape == (7, 5)
    h = 1e-6
    fd = torch.stack(
        [
            (net(x + h * e) - net(x - h * e)) / (2 * h)
            for e in torch.eye(5, dtype=x.dtype)
        ],
        dim=1,
    )
    torch.testing.assert_close(grad, fd, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["leaky_relu", "softplus"])
def test_icnn_activations_are_convex(activation):
    torch.manual_seed(5)
    net = ICNN(3, (8, 8), activation=activation).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 1.0)
    assert _convexity_gap(net.clamp_weights_(), 3, 5) <= 1e-9
    with pytest.raises(ValueError, match="not convex"):
        ICNN(3, activation="celu", square_first=True)
    with pytest.raises(ValueError, match="activation"):
        ICNN(3, activation="relu6")


def test_icnn_starts_at_identity_map():
    net = ICNN(6, init_scale=0.0)
    x = torch.randn(10, 6)
    torch.testing.assert_close(net.gradient(x), x)


# ---------------------------------------------------------------- penalties
def test_penalties_match_cost_classes_and_formula():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(6, 9)) * 3
    Zt = torch.tensor(Z)
    np.testing.assert_allclose(
        make_penalty("l1").value(Zt).numpy(), ElasticL1(1.0).tau(Z)
    )
    np.testing.assert_allclose(
        make_penalty("stvs", gamma=0.7).value(Zt).numpy(), ElasticSTVS(0.7).tau(Z)
    )
    l0 = SmoothedL0(sigma=0.5)
    expected = np.sum(1 - np.exp(-(Z**2) / (2 * 0.25)), axis=1)
    np.testing.assert_allclose(l0.value(Zt).numpy(), expected)
    np.testing.assert_allclose(l0.value(Z), expected)
    # tends to the l0 count as sigma -> 0
    assert SmoothedL0(1e-6).value(np.array([[0.0, 1.0, -2.0]]))[0] == pytest.approx(2)
    assert make_penalty(None) is None
    with pytest.raises(ValueError, match="penalty"):
        make_penalty("l2")


# ---------------------------------------------------------------- annealing
def test_proposal_radius_shrinks_with_temperature():
    assert annealing.proposal_radius(1.0, radius=3) == pytest.approx(1.0)
    assert annealing.proposal_radius(0.5, radius=3) == pytest.approx(np.exp(-1.5))
    assert annealing.proposal_radius(0.0, radius=10, min_radius=0.05) == 0.05
    rng = np.random.RandomState(0)
    hot = [annealing.propose_intensity(1.0, 1.0, rng) for _ in range(2000)]
    cold = [annealing.propose_intensity(1.0, 0.2, rng) for _ in range(2000)]
    assert np.ptp(hot) > 1.9 and np.ptp(cold) < 2 * np.exp(-2.4) + 1e-12
    ups = [annealing.propose_intensity(2.0, 0.6, rng, "up") for _ in range(500)]
    downs = [annealing.propose_intensity(2.0, 0.6, rng, "down") for _ in range(500)]
    R = np.exp(-3 * 0.4)
    assert min(ups) >= 2.0 and max(ups) <= 2.0 * (1 + R)
    assert max(downs) <= 2.0 and min(downs) >= 2.0 * (1 - R)


def test_metropolis_accepts_improvements_and_worsening_with_boltzmann_rate():
    rng = np.random.RandomState(1)
    assert all(annealing.metropolis_accept(0.1, 0.5, 0.01, rng) for _ in range(100))
    delta, tem = 0.3, 0.5
    rate = np.mean(
        [annealing.metropolis_accept(0.3 + delta, 0.3, tem, rng) for _ in range(20000)]
    )
    assert rate == pytest.approx(np.exp(-delta / tem), abs=0.015)


class _StubModel:
    """A 'model' whose metrics depend only on the λ it was last trained with."""

    def __init__(self, metrics_of_lam):
        self.metrics_of_lam = metrics_of_lam
        self.calls = []

    def train(self, lam, n_steps):
        self.calls.append((lam, n_steps))

    def evaluate(self):
        return self.metrics_of_lam(self.calls[-1][0])


def _replay_tradeoff(tradeoff, seed):
    stub = _StubModel(lambda lam: {"sparsity": 1 / lam, "residue": lam, "dimension": 1})
    kw = dict(rng=np.random.RandomState(seed), n_init=7, n_train=3, n_rollback=2)
    lam, history = annealing.anneal_tradeoff(
        stub.train, stub.evaluate, 1.0, tradeoff=tradeoff, decay=0.9, **kw
    )
    return lam, history.as_dict(), stub.calls, history.step


@pytest.mark.parametrize("tradeoff,seed", [(1.0, 0), (0.0, 1), (0.5, 2)])
def test_tradeoff_annealing_follows_algorithm_1(tradeoff, seed):
    lam, rows, calls, n_steps = _replay_tradeoff(tradeoff, seed)
    n_rounds = int(np.ceil(np.log(0.15) / np.log(0.9)))
    assert rows["phase"].count("propose") == n_rounds
    assert calls[0] == (1.0, 7) and rows["phase"][0] == "init"
    kept, i, n_rejected = 1.0, 1, 0
    for phase, lam_row, accepted in zip(
        rows["phase"], rows["lam"], rows["accepted"], strict=True
    ):
        if phase != "propose":
            continue
        # trained n_train steps at the proposal ...
        assert calls[i] == (lam_row, 3)
        i += 1
        # ... an improvement of Eval is always accepted: with a = 1, Eval is
        # the (normalised) sparsity 1/λ, so a larger λ improves it; with
        # a = 0 it is the residue λ, so a smaller λ does
        if tradeoff == 1.0 and lam_row > kept or tradeoff == 0.0 and lam_row < kept:
            assert accepted
        if accepted:
            kept = lam_row
        else:
            # ... and a rejection is followed by n_rollback steps at the kept λ
            assert calls[i] == (kept, 2)
            i += 1
            n_rejected += 1
    assert i == len(calls) and lam == kept
    assert n_steps == sum(n for _, n in calls)
    assert rows["phase"].count("rollback") == n_rejected


def test_target_dim_annealing_has_two_phases():
    stub = _StubModel(lambda lam: {"sparsity": 0, "residue": 0, "dimension": 100 / lam})
    lam, history = annealing.anneal_target_dim(
        stub.train,
        stub.evaluate,
        0.5,
        target_dim=20,
        rng=np.random.RandomState(0),
        n_init=5,
        n_train=3,
        n_rollback=1,
    )
    rows = history.as_dict()
    phases = rows["phase"]
    first_decrease = phases.index("decrease")
    increases = [
        lam for p, lam in zip(phases, rows["lam"], strict=True) if p == "increase"
    ]
    # phase 1 raises λ until the constraint (dim = 100/λ <= 20, λ >= 5) holds
    assert np.all(np.diff(increases) > 0) and increases[-1] >= 5 > increases[-2]
    assert "increase" not in phases[first_decrease:]
    # phase 2 lowers λ, keeps only values that still meet the constraint
    for p, lam_row, acc in zip(phases, rows["lam"], rows["accepted"], strict=True):
        if p == "decrease":
            assert acc == (100 / lam_row <= 20)
    assert 5 <= lam < increases[-1]
    assert rows["dimension"][-1] <= 20
    # temperature decays once per round over both phases
    temps = [
        t
        for p, t in zip(phases, rows["temperature"], strict=True)
        if p in ("increase", "decrease")
    ]
    assert np.allclose(np.diff(np.log(temps)), np.log(0.95))


@pytest.mark.parametrize("patience", [1, 3])
def test_target_dim_annealing_stops_once_lambda_settled(patience):
    # dim = 100 / λ: every λ below 5 breaks dim <= 20, so once λ sits near 5
    # the lower proposals are all rejected; the chain stops after `patience`
    # rejections in a row instead of running every temperature
    def run(patience):
        stub = _StubModel(
            lambda lam: {"sparsity": 0, "residue": 0, "dimension": 100 / lam}
        )
        lam, history = annealing.anneal_target_dim(
            stub.train,
            stub.evaluate,
            5.0001,
            target_dim=20,
            rng=np.random.RandomState(0),
            n_init=5,
            n_train=3,
            n_rollback=1,
            patience=patience,
        )
        return lam, history.as_dict()

    lam_all, full = run(None)
    lam, rows = run(patience)
    steps = zip(rows["phase"], rows["accepted"], strict=True)
    decreases = [accepted for phase, accepted in steps if phase == "decrease"]
    assert len(decreases) < full["phase"].count("decrease")
    # it stopped exactly after `patience` rejections in a row
    assert decreases[-patience:] == [False] * patience
    streak = 0
    for accepted in decreases[:-1]:
        streak = 0 if accepted else streak + 1
        assert streak < patience
    assert lam == lam_all == 5.0001 and rows["dimension"][-1] <= 20


def test_auto_n_iter_follows_the_schedule():
    est = NeuralSparseMap()
    assert est.n_iter == "auto" and est._n_iter() == 2000
    assert est.set_params(schedule="target_dim", target_dim=5)._n_iter() == 200
    assert est.set_params(n_iter=17)._n_iter() == 17


class _StatefulStub:
    """Dimension rises with every training call at λ < 5 and never recovers:
    only restoring a saved state brings it back (a sparse state is that
    fragile on the perturbation tasks: see the ``rollback`` parameter)."""

    def __init__(self):
        self.dimension, self.calls, self.restored = 100.0, [], []

    def train(self, lam, n_steps):
        self.calls.append((lam, n_steps))
        self.dimension = self.dimension * 0.5 if lam >= 5 else self.dimension + 50

    def evaluate(self):
        return {"sparsity": 0.0, "residue": 0.0, "dimension": self.dimension}

    def snapshot(self):
        return self.dimension

    def restore(self, state):
        self.restored.append(state)
        self.dimension = state


@pytest.mark.parametrize("restore", [True, False])
def test_target_dim_rollback_restores_the_kept_model(restore):
    stub = _StatefulStub()
    callbacks = dict(snapshot=stub.snapshot, restore=stub.restore) if restore else {}
    lam, history = annealing.anneal_target_dim(
        stub.train,
        stub.evaluate,
        1.0,
        target_dim=20,
        rng=np.random.RandomState(0),
        n_init=1,
        n_train=1,
        n_rollback=1,
        **callbacks,
    )
    rows = history.as_dict()
    assert "rollback" in rows["phase"]
    if restore:
        # rejected proposals restore the state kept with λ, without training
        assert stub.restored and all(state <= 20 for state in stub.restored)
        assert rows["dimension"][-1] <= 20 and stub.dimension <= 20
        assert all(n == 1 for _, n in stub.calls)
        assert history.step == len(stub.calls)
    else:
        # the paper's rollback trains at the kept λ instead
        assert not stub.restored
    assert lam >= 5


# ---------------------------------------------------------------- estimator
def test_map_learns_gaussian_closed_form():
    # N(0, I) -> N(m, diag(a^2)): the OT map is x -> m + a * x, which the
    # mean-shift initialisation does not know (a != 1)
    rng = np.random.default_rng(0)
    m, a = np.array([2.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.0])
    Xs = rng.normal(size=(600, 3))
    Xt = m + a * rng.normal(size=(600, 3))
    X, y = np.vstack([Xs, Xt]), np.repeat([0, 1], 600)
    est = NeuralSparseMap(
        penalty=None,
        n_iter=600,
        learning_rate=3e-3,
        hidden_sizes=(32, 32),
        random_state=0,
    ).fit(X, y)
    test = rng.normal(size=(500, 3))
    err = np.sqrt(np.mean((est.transform(test) - (m + a * test)) ** 2))
    init_err = np.sqrt(np.mean((a - 1) ** 2 * test**2))  # the translation x + m
    back = np.sqrt(np.mean((est.inverse_transform(m + a * test) - test) ** 2))
    # measured: 0.132 forward, 0.152 backward, from 0.645 at initialisation
    assert err < 0.2 and back < 0.25 and init_err > 0.6
    # the mean moves from 0 to m (|m| = 2.3)
    np.testing.assert_allclose(est.transform(test).mean(0), m, atol=0.3)


@pytest.fixture(scope="module")
def perturbation_fits():
    X, y, genes = make_perturbation(300, 50, 5, random_state=0)
    common = dict(n_iter=200, hidden_sizes=(32, 32), random_state=0)
    plain = NeuralSparseMap(penalty=None, **common).fit(X, y)
    sparse = NeuralSparseMap(penalty="smoothed_l0", lam=1000.0, **common).fit(X, y)
    return X, y, genes, plain, sparse


def test_smoothed_l0_lowers_dimension_and_keeps_true_genes(perturbation_fits):
    X, y, genes, plain, sparse = perturbation_fits
    Xs = X[y == 0]
    dim_plain = displacement_dimension(Xs, plain.transform(Xs))
    dim_sparse = displacement_dimension(Xs, sparse.transform(Xs))
    # measured: 46.9 of 50 without penalty, 5.1 with it (5 true genes)
    assert dim_plain > 40
    assert dim_sparse < 7
    assert perturbed_gene_recall(Xs, sparse.transform(Xs), genes) > 0.98
    assert sparse.dimension_ == pytest.approx(dim_sparse, abs=1.5)
    hist = sparse.history_
    assert set(hist["phase"]) == {"constant"} and hist["iteration"][-1] == 200


def test_reproducible_and_float32(perturbation_fits):
    X, y, *_ = perturbation_fits
    a = NeuralSparseMap(random_state=3, **FAST).fit(X, y).transform(X[:20])
    b = NeuralSparseMap(random_state=3, **FAST).fit(X, y).transform(X[:20])
    np.testing.assert_array_equal(a, b)
    c = NeuralSparseMap(random_state=4, **FAST).fit(X, y).transform(X[:20])
    assert not np.allclose(a, c)
    est = NeuralSparseMap(random_state=3, **FAST).fit(X.astype(np.float32), y)
    # every map method follows the input's float dtype
    for method in (est.transform, est.inverse_transform, est.displacement):
        assert method(X[:5].astype(np.float32)).dtype == np.float32
        assert method(X[:5]).dtype == np.float64
    np.testing.assert_allclose(
        est.displacement(X[:5]), est.transform(X[:5]) - X[:5], rtol=0, atol=0
    )


def test_chunk_size_does_not_change_the_map(perturbation_fits):
    X, y, genes, plain, sparse = perturbation_fits
    whole = sparse.transform(X[:50])
    # the fitted networks, evaluated 7 rows at a time (float32 matmuls of
    # other shapes may round differently)
    chunked = copy.deepcopy(sparse).set_params(chunk_size=7).transform(X[:50])
    np.testing.assert_allclose(whole, chunked, rtol=1e-5, atol=1e-6)
    assert sparse.converged_ and plain.converged_


def test_target_dim_schedule_fits_and_warns_when_unreachable(perturbation_fits):
    X, y, *_ = perturbation_fits
    est = NeuralSparseMap(
        schedule="target_dim", target_dim=0, lam=1e-3, min_temperature=0.8, **FAST
    )
    with pytest.warns(ConvergenceWarning, match="target dimension"):
        est.fit(X, y)
    assert not est.converged_
    assert set(est.history_["phase"]) <= {"init", "increase"}
    assert np.all(np.diff(est.history_["lam"]) > 0)


def test_tradeoff_schedule_records_history(perturbation_fits):
    X, y, *_ = perturbation_fits
    est = NeuralSparseMap(
        schedule="tradeoff",
        lam=10.0,
        min_temperature=0.7,
        decay=0.95,
        patience=None,  # every temperature: 0.95^k > 0.7 for k < 7
        random_state=0,
        **FAST,
    ).fit(X, y)
    phases = est.history_["phase"]
    assert phases[0] == "init" and phases.count("propose") == 7
    assert est.n_iter_ == est.history_["iteration"][-1]
    assert est.lam_ in est.history_["lam"]


def test_verbose_shows_progress(perturbation_fits, capsys):
    X, y, *_ = perturbation_fits
    NeuralSparseMap(verbose=True, **FAST).fit(X, y)
    err = capsys.readouterr().err
    assert "NeuralSparseMap" in err and "dim=" in err
    NeuralSparseMap(**FAST).fit(X, y)
    assert capsys.readouterr().err == ""


def test_pickle_moves_networks_to_cpu(perturbation_fits):
    X, y, *_ = perturbation_fits
    est = NeuralSparseMap(random_state=0, **FAST).fit(X, y)
    state = est.__getstate__()
    for name in ("potential_source_", "potential_target_"):
        assert all(p.device.type == "cpu" for p in state[name].parameters())
    # a model recorded as fitted on a GPU loads and maps on a CPU-only machine
    est.device_ = "cuda:0"
    buffer = io.BytesIO()
    pickle.dump(est, buffer)
    loaded = pickle.loads(buffer.getvalue())
    if not torch.cuda.is_available():
        np.testing.assert_allclose(loaded.transform(X[:10]), est.transform(X[:10]))
    assert clone(est).get_params() == est.get_params()


def test_grid_search_over_lam(perturbation_fits):
    X, y, *_ = perturbation_fits
    search = GridSearchCV(
        NeuralSparseMap(random_state=0, **FAST),
        {"lam": [0.0, 100.0]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_params_["lam"] in (0.0, 100.0)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(penalty="l2"), "penalty"),
        (dict(schedule="target_dim"), "target_dim"),
        (dict(schedule="tradeoff", penalty=None), "needs a penalty"),
        (dict(schedule="tradeoff", lam=0.0), "lam > 0"),
        (dict(min_temperature=2.0), "min_temperature"),
        (dict(lam=-1.0), "lam"),
        (dict(hidden_sizes=(8, 0)), "hidden_sizes"),
        (dict(device="tpu-of-dreams"), "device"),
    ],
)
def test_bad_parameters(perturbation_fits, params, match):
    X, y, *_ = perturbation_fits
    with pytest.raises(ValueError, match=match):
        NeuralSparseMap(**{**FAST, **params}).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only machine")
def test_cuda_requested_without_gpu(perturbation_fits):
    X, y, *_ = perturbation_fits
    with pytest.raises(ValueError, match="CUDA is not available"):
        NeuralSparseMap(device="cuda", **FAST).fit(X, y)


def test_bad_input_and_no_mutation(perturbation_fits):
    X, y, *_ = perturbation_fits
    X_bad = X.copy()
    X_bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NeuralSparseMap(**FAST).fit(X_bad, y)
    X_copy, y_copy = X.copy(), y.copy()
    est = NeuralSparseMap(**FAST).fit(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])


def test_missing_torch_gives_install_hint(monkeypatch):
    import sys

    from skmonge import _torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install"):
        _torch.import_torch()


@parametrize_with_checks(
    [NeuralSparseMap(source=0, target=1, random_state=0, **FAST)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
