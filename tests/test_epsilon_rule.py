"""The default ε rule: plan perplexity, its search, and the estimator's use."""

import numpy as np
import pytest
from scipy.special import softmax

from skmonge import EntropicSparseMap
from skmonge._epsilon import perplexity_epsilon, plan_perplexity
from skmonge._kernels.separable import sqeuclidean_half
from skmonge.sinkhorn import sinkhorn


def _cost(n=120, m=100, d=4, seed=0, clusters=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((m, d)) + 0.5
    if clusters:
        X[: n // 2] += 6.0
        Y[: m // 2] += 6.0
    return sqeuclidean_half(X, Y)


def test_plan_perplexity_matches_a_hand_computation():
    C = _cost()
    rng = np.random.default_rng(1)
    g = rng.normal(size=C.shape[1])
    b = rng.uniform(0.5, 1.0, C.shape[1])
    b /= b.sum()
    eps = 0.3
    p = softmax((g - C) / eps + np.log(b), axis=1)
    expected = np.exp(-np.sum(p * np.log(p), axis=1))
    np.testing.assert_allclose(plan_perplexity(C, g, eps, b), expected, rtol=1e-9)
    # bounds: one point at tiny ε, all m points for a flat row
    assert plan_perplexity(C, np.zeros(C.shape[1]), 1e-6).min() == pytest.approx(1.0)
    flat = plan_perplexity(np.zeros((3, 50)), np.zeros(50), 1.0)
    # selected rows are the same rows of the full evaluation, in their order
    rows = np.array([4, 0, 2, 2])
    np.testing.assert_array_equal(
        plan_perplexity(C, g, eps, b, rows=rows), plan_perplexity(C, g, eps, b)[rows]
    )
    np.testing.assert_allclose(flat, 50.0)


@pytest.mark.parametrize("target", [5, 20, 35])
@pytest.mark.parametrize("clusters", [False, True])
def test_perplexity_epsilon_hits_the_target_on_a_converged_plan(target, clusters):
    C = _cost(clusters=clusters)
    eps, warm = perplexity_epsilon(C, target)
    assert eps > 0 and np.isfinite(eps)
    res = sinkhorn(C, eps, tol=1e-7, max_iter=100_000)
    assert res.converged
    median = np.median(plan_perplexity(C, res.g, eps))
    # the search narrows log ε by regula falsi on loose solves
    assert median == pytest.approx(target, rel=0.05)
    # the returned solve is a useful warm start: fewer iterations than cold
    kw = dict(tol=1e-6, max_iter=20_000, epsilon_decay=None, relaxation=1.0)
    warm_run = sinkhorn(C, eps, f_init=warm.f, g_init=warm.g, **kw)
    assert warm_run.converged
    # (cold plain Sinkhorn stalls on the clustered case: no warning wanted)
    assert warm_run.n_iter < sinkhorn(C, eps, warn=False, **kw).n_iter


def test_perplexity_epsilon_is_monotone_and_ignores_constant_offsets():
    C = _cost(seed=3)
    eps = [perplexity_epsilon(C, p)[0] for p in (3, 10, 30)]
    assert eps[0] < eps[1] < eps[2]
    # adding a constant changes neither the plan nor the rule (unlike 0.1 mean C)
    shifted = perplexity_epsilon(C + 1e3, 10)[0]
    assert shifted == pytest.approx(eps[1], rel=1e-6)


def test_perplexity_is_capped_at_half_the_target_sample():
    C = _cost(n=12, m=10)
    eps, _ = perplexity_epsilon(C, 30)  # unreachable 30 -> capped to 5.5
    res = sinkhorn(C, eps, tol=1e-10, max_iter=50_000)
    assert np.median(plan_perplexity(C, res.g, eps)) == pytest.approx(5.5, rel=0.05)
    # one target point: every ε gives the same plan; a finite positive one
    eps1, _ = perplexity_epsilon(_cost(n=5, m=1), 30)
    assert eps1 > 0 and np.isfinite(eps1)


def test_the_search_checks_the_cost_matrix_once(monkeypatch):
    # each of the search's loose solves used to check C again (a pass over
    # the n x m matrix); the scale found once is passed on, same result
    import skmonge.sinkhorn as sinkhorn_module

    C = _cost(clusters=True)
    expected_eps, expected = perplexity_epsilon(C, 20)
    passes = []
    max_abs = sinkhorn_module.max_abs

    def counting(A):
        passes.append(A.shape)
        return max_abs(A)

    monkeypatch.setattr(sinkhorn_module, "max_abs", counting)
    eps, result = perplexity_epsilon(C, 20)
    assert passes == [C.shape]
    assert eps == expected_eps
    np.testing.assert_array_equal(result.g, expected.g)
    # sinkhorn given the scale solves the same problem as without it
    scale = float(np.abs(C).max())
    plain = sinkhorn(C, 0.5, tol=1e-9, max_iter=5000)
    given = sinkhorn(C, 0.5, tol=1e-9, max_iter=5000, cost_scale=scale)
    np.testing.assert_array_equal(given.f, plain.f)
    with pytest.raises(ValueError, match="too small"):
        sinkhorn(C, scale * 1e-20, cost_scale=scale)


def test_perplexity_epsilon_rejects_a_constant_cost():
    with pytest.raises(ValueError, match="pass an absolute epsilon"):
        perplexity_epsilon(np.ones((4, 5)), 3)


def test_estimator_epsilon_rules():
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((80, 5))
    Xt = rng.standard_normal((70, 5)) + 1.0
    X, y = np.vstack([Xs, Xt]), np.repeat([0, 1], [80, 70])
    C = EntropicSparseMap().fit(X, y).cost_.cost_matrix(Xs, Xt)
    default = EntropicSparseMap().fit(X, y)
    median = np.median(plan_perplexity(C, default.potential_target_, default.epsilon_))
    assert median == pytest.approx(35.5, rel=0.05)  # 50 capped at 1 + 69 / 2
    assert default.converged_
    paper = EntropicSparseMap(relative_epsilon=0.1).fit(X, y)
    assert paper.epsilon_ == pytest.approx(0.1 * C.mean())
    absolute = EntropicSparseMap(epsilon=0.7, relative_epsilon=0.1).fit(X, y)
    assert absolute.epsilon_ == 0.7
    narrower = EntropicSparseMap(perplexity=10).fit(X, y)
    assert narrower.epsilon_ < default.epsilon_
    with pytest.raises(ValueError, match="perplexity"):
        EntropicSparseMap(perplexity=0.5).fit(X, y)


@pytest.mark.parametrize("clusters", [False, True])
def test_the_final_solve_starts_from_the_search(clusters):
    rng = np.random.default_rng(4)
    Xs = rng.standard_normal((300, 6))
    Xt = rng.standard_normal((280, 6)) + 0.5
    if clusters:
        Xs[:150] += 5.0
        Xt[:100] += 5.0
    X, y = np.vstack([Xs, Xt]), np.repeat([0, 1], [300, 280])
    est = EntropicSparseMap(cost="sqeuclidean").fit(X, y)
    C = sqeuclidean_half(Xs, Xt)
    cold = sinkhorn(C, est.epsilon_, tol=est.tol, max_iter=est.max_iter)
    assert cold.converged and est.converged_
    # the warm start from the search's loose solve at ε saves iterations ...
    assert est.n_iter_ < 0.7 * cold.n_iter
    # ... and reaches the cold solve's fixed point to the tolerance
    f = est.potential_source_ - cold.f
    assert np.ptp(f) < 1e-4 * np.ptp(cold.f)
    np.testing.assert_allclose(
        est.transform(Xs[:20]),
        EntropicSparseMap(cost="sqeuclidean", epsilon=est.epsilon_)
        .fit(X, y)
        .transform(Xs[:20]),
        atol=1e-4,  # tol = 1e-6 on the marginals; points are of size ~5
    )


def test_tied_targets_stop_the_search_at_the_plateau():
    # most cells are all-zero rows: a zero source row is equally close to the
    # 40 zero target rows at every ε, so a perplexity of 10 is out of reach
    rng = np.random.default_rng(0)
    X = np.zeros((50, 6))
    Y = np.zeros((60, 6))
    X[:10] = rng.exponential(size=(10, 6))
    Y[:20] = rng.exponential(size=(20, 6))
    C = sqeuclidean_half(X, Y)
    eps, _ = perplexity_epsilon(C, 10)
    spread = np.mean(C.mean(1) - C.min(1))
    assert 1e-3 * spread < eps < spread
    res = sinkhorn(C, eps, tol=1e-8, max_iter=10_000)
    assert res.converged
    assert np.median(plan_perplexity(C, res.g, eps)) > 10


@pytest.mark.parametrize("clusters", [False, True])
def test_a_started_search_chooses_the_cold_epsilon_in_fewer_solves(
    clusters, monkeypatch
):
    import skmonge._epsilon as rule

    C = _cost(clusters=clusters)
    calls = []
    solve = rule.sinkhorn

    def counted(*args, **kwargs):
        calls.append(1)
        return solve(*args, **kwargs)

    monkeypatch.setattr(rule, "sinkhorn", counted)
    cold, _ = perplexity_epsilon(C, 20)
    n_cold = len(calls)
    # a guess near the answer (a path's previous γ), and guesses far off
    for start in (cold * 1.3, cold * 50, cold / 50):
        calls.clear()
        eps, _ = perplexity_epsilon(C, 20, start=start)
        assert eps == pytest.approx(cold, rel=2e-3)
        if start == cold * 1.3:
            assert len(calls) < n_cold
    # a guess inside the plateau of tied targets falls back to the cold search
    rng = np.random.default_rng(0)
    X, Y = np.zeros((50, 6)), np.zeros((60, 6))
    X[:10] = rng.exponential(size=(10, 6))
    Y[:20] = rng.exponential(size=(20, 6))
    tied = sqeuclidean_half(X, Y)
    plateau, _ = perplexity_epsilon(tied, 10)
    assert perplexity_epsilon(tied, 10, start=plateau / 64)[0] == plateau
