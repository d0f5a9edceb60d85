"""Bad and extreme inputs to the torch estimators: clear errors, never NaN.

NeuralSparseMap trains in float32 and LearnedCostMap evaluates a learned,
non scale-equivariant cost; inputs that these cannot represent must fail
with a ValueError naming what the user passed, before any training, and no
method may return non-finite values silently.
"""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from conftest import FAST_LEARNED  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skmonge import LearnedCostMap, NeuralSparseMap  # noqa: E402
from skmonge.learned_cost.costs import ConvexCost  # noqa: E402
from skmonge.neural.icnn import ICNN, check_hidden_sizes  # noqa: E402

NEURAL = dict(
    hidden_sizes=(8, 8),
    n_iter=4,
    n_iter_round=2,
    n_inner=2,
    batch_size=16,
    n_eval=50,
    device="cpu",
    random_state=0,
)
LEARNED = FAST_LEARNED


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny problems: extra torch threads only add barrier waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n=20, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 1.0])
    return X, np.repeat([0, 1], n)


def _neural(**params):
    return NeuralSparseMap(**{**NEURAL, **params})


def _learned(**params):
    return LearnedCostMap(**{**LEARNED, **params})


@pytest.fixture(scope="module")
def neural_fit():
    X, y = _data()
    return X, y, _neural().fit(X, y)


@pytest.fixture(scope="module")
def learned_fit():
    X, y = _data()
    return X, y, _learned().fit(X, y)


# ------------------------------------------------- NeuralSparseMap: float32
@pytest.mark.parametrize("factor", [1e38, 1e40, 1e300])
def test_neural_rejects_values_beyond_float32(factor):
    # 1e38 used to fit by luck, 1e40 said "training diverged"
    X, y = _data()
    with pytest.raises(ValueError, match=r"X holds values up to .*rescale X"):
        _neural().fit(X * factor, y)


@pytest.mark.parametrize("factor", [1e-40, 1e-170, 1e-300])
def test_neural_rejects_a_scale_below_float32(factor):
    # 1e-300 used to say "both samples are constant" (the variance underflows)
    X, y = _data()
    with pytest.raises(ValueError, match=r"The scale of X .* is [0-9.e+-]+, below"):
        _neural().fit(X * factor, y)


def test_neural_constant_samples_still_named_constant():
    X, y = _data()
    with pytest.raises(ValueError, match="constant"):
        _neural().fit(np.ones_like(X), y)


@pytest.mark.parametrize("factor", [1e-30, 1e30])
def test_neural_fits_extreme_but_representable_scales(factor):
    # the networks see each sample centred and divided by its scale: without
    # a penalty (the only term in data units) training is scale-free, so the
    # fitted map is the unit-scale one, rescaled
    X, y = _data()
    ref = _neural(penalty=None).fit(X, y)
    est = _neural(penalty=None).fit(X * factor, y)
    np.testing.assert_allclose(
        est.transform(X * factor) / factor, ref.transform(X), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "displacement"])
def test_neural_maps_never_return_nan(neural_fit, method):
    X, _, est = neural_fit
    far = X.copy()
    far[5] *= 1e39  # finite in float64, beyond the float32 networks
    with pytest.raises(ValueError, match=r"1 row\(s\) of X \(first: row 5\)"):
        getattr(est, method)(far)
    # moderately far points still map to finite values
    assert np.all(np.isfinite(getattr(est, method)(X * 1e3)))


def test_neural_score_of_far_points_raises(neural_fit):
    X, y, est = neural_fit
    with pytest.raises(ValueError, match="non-finite"):
        est.score(X * 1e39, y)


# --------------------------------------------------- LearnedCostMap: range
def test_learned_identical_rows_raise_before_training():
    X, y = _data()
    with pytest.raises(ValueError, match="same point"):
        _learned().fit(np.tile(X[:1], (X.shape[0], 1)), y)


@pytest.mark.parametrize("side", ["source", "target"])
def test_learned_one_constant_population_still_fits(side):
    # one population a single point is a valid (degenerate) transport problem
    X, y = _data()
    X = X.copy()
    rows = y == (0 if side == "source" else 1)
    X[rows] = X[rows][0]
    est = _learned().fit(X, y)
    assert np.all(np.isfinite(est.transform(X)))
    assert np.all(np.isfinite(est.inverse_transform(X)))


@pytest.mark.parametrize(
    "factor,dtype",
    [(1e-10, "float64"), (1e-12, "float64"), (1e-300, "float64"), (1e-4, "float32")],
)
def test_learned_rejects_too_small_a_scale(factor, dtype):
    X, y = _data()
    match = r"too close together .* root-mean-square distance is [0-9.e+-]+, below"
    if dtype == "float32":
        match += r".*dtype='float64'"
    with pytest.raises(ValueError, match=match):
        _learned(dtype=dtype).fit(X * factor, y)


@pytest.mark.parametrize(
    "factor,dtype",
    [(1e100, "float64"), (1e150, "float64"), (1e200, "float64"), (1e30, "float32")],
)
def test_learned_rejects_too_large_a_scale(factor, dtype):
    X, y = _data()
    with pytest.raises(ValueError, match=rf"X is too large .* in {dtype}"):
        _learned(dtype=dtype).fit(X * factor, y)


# float32 at large scales may warn that the inner solver of (∇h)^{-1} did
# not reach its tolerance: a warning is an acceptable outcome, NaN is not
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "factor,dtype",
    [(1e-5, "float64"), (1e70, "float64"), (1e-2, "float32"), (1e8, "float32")],
)
def test_learned_fits_extreme_valid_scales(factor, dtype):
    X, y = _data()
    est = _learned(dtype=dtype).fit(X * factor, y)
    assert np.all(np.isfinite(est.loss_curve_))
    assert np.all(np.isfinite(est.transform(X * factor)))


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_learned_maps_never_return_nan(learned_fit, method):
    X, _, est = learned_fit
    far = X.copy()
    far[3] *= 1e160
    with pytest.raises(ValueError, match=r"1 row\(s\) of X \(first: row 3\)"):
        getattr(est, method)(far)


def test_learned_linalg_errors_are_reported(learned_fit, monkeypatch):
    from skmonge.learned_cost import inverse, maps

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("not positive-definite")

    X, y, est = learned_fit
    monkeypatch.setattr(maps, "solve_inverse_gradient", broken)
    with pytest.raises(ValueError, match="non-finite"):
        est.transform(X)
    monkeypatch.setattr(inverse, "_spd_solve", broken)
    with pytest.raises(FloatingPointError, match="non-finite values"):
        _learned().fit(X, y)


# -------------------------------------------------------------- not fitted
@pytest.mark.parametrize(
    "make,method",
    [
        (NeuralSparseMap, "transform"),
        (NeuralSparseMap, "inverse_transform"),
        (NeuralSparseMap, "displacement"),
        (NeuralSparseMap, "score"),
        (NeuralSparseMap, "get_feature_names_out"),
        (LearnedCostMap, "transform"),
        (LearnedCostMap, "inverse_transform"),
        (LearnedCostMap, "score"),
        (LearnedCostMap, "transport_plan"),
        (LearnedCostMap, "get_feature_names_out"),
    ],
)
def test_every_method_before_fit_raises_not_fitted(make, method):
    X, y = _data()
    args = {
        "score": (X, y),
        "transport_plan": (),
        "get_feature_names_out": (),
    }.get(method, (X,))
    with pytest.raises(NotFittedError):
        getattr(make(), method)(*args)


def test_learned_transport_plan_with_data_before_fit_raises_not_fitted():
    X, y = _data()
    with pytest.raises(NotFittedError):
        LearnedCostMap().transport_plan(X, y)


# ------------------------------------------------------------ hidden sizes
BAD_SIZES = [(8.7,), (8.0,), (8, 2.5), (True,), (8, False), ("8",), (8, None), (0,)]


@pytest.mark.parametrize("sizes", BAD_SIZES)
def test_check_hidden_sizes_rejects_non_integers(sizes):
    with pytest.raises(ValueError, match="hidden_sizes must be .* positive integers"):
        check_hidden_sizes(sizes)
    with pytest.raises(ValueError, match="hidden_sizes"):
        ICNN(3, sizes)
    # the learned cost's ICNN goes through the same check (it truncated)
    with pytest.raises(ValueError, match="hidden_sizes"):
        ConvexCost(3, sizes)


@pytest.mark.parametrize("sizes", BAD_SIZES)
def test_estimators_reject_non_integer_hidden_sizes(sizes):
    X, y = _data()
    with pytest.raises(ValueError, match="hidden_sizes"):
        _neural(hidden_sizes=sizes).fit(X, y)
    with pytest.raises(ValueError, match="hidden_sizes"):
        _learned(hidden_sizes=sizes).fit(X, y)
    with pytest.raises(ValueError, match="flow_hidden_sizes"):
        _learned(flows="shared", flow_hidden_sizes=sizes).fit(X, y)


def test_hidden_sizes_accept_integer_sequences():
    assert check_hidden_sizes(np.array([4, 5])) == (4, 5)
    assert check_hidden_sizes([np.int32(3)]) == (3,)
    assert check_hidden_sizes((), allow_empty=True) == ()
    with pytest.raises(ValueError, match="non-empty"):
        check_hidden_sizes(())
    with pytest.raises(ValueError, match="hidden_sizes"):
        check_hidden_sizes("88")
    X, y = _data()
    est = _neural(hidden_sizes=np.array([8, 8])).fit(X, y)
    assert est.potential_source_.hidden_sizes == (8, 8)
    # an empty ICNN is allowed for the learned cost: h = α‖z‖²
    assert _learned(hidden_sizes=()).fit(X, y).cost_.h_module.icnn is None


# ------------------------------------------------- complex, NaN, infinity
@pytest.mark.parametrize("make", [_neural, _learned])
@pytest.mark.parametrize("sparse", [False, True])
def test_complex_input_is_rejected(make, sparse, neural_fit, learned_fit):
    X, y = _data()
    Xc = X + 1j
    if sparse:
        Xc = sp.csr_matrix(Xc)
    with pytest.raises(ValueError, match="Complex data not supported"):
        make().fit(Xc, y)
    _, _, est = neural_fit if make is _neural else learned_fit
    methods = ["transform", "inverse_transform"]
    if make is _neural:
        methods.append("displacement")
    for method in methods:
        with pytest.raises(ValueError, match="Complex data not supported"):
            getattr(est, method)(Xc)


@pytest.mark.parametrize("make", [_neural, _learned])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(make, value, neural_fit, learned_fit):
    X, y = _data()
    bad = X.copy()
    bad[4, 1] = value
    match = "NaN" if np.isnan(value) else "infinity"
    with pytest.raises(ValueError, match=match):
        make().fit(bad, y)
    _, _, est = neural_fit if make is _neural else learned_fit
    for method in ("transform", "inverse_transform"):
        with pytest.raises(ValueError, match=match):
            getattr(est, method)(bad)
    with pytest.raises(ValueError, match=match):
        est.score(bad, y)
