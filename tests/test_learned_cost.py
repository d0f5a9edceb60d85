"""LearnedCostMap building blocks: convex cost, inverse gradient, Sinkhorn, maps."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.func import functional_call  # noqa: E402

from skmonge import EntropicSparseMap, LearnedCostMap  # noqa: E402
from skmonge.learned_cost.costs import ConvexCost, pairwise_cost  # noqa: E402
from skmonge.learned_cost.inverse import (  # noqa: E402
    inverse_gradient,
    solve_inverse_gradient,
)
from skmonge.learned_cost.losses import (  # noqa: E402
    cost_matrix_penalty,
    coupling_loss,
    k_directional_loss,
    low_rank_loss,
)
from skmonge.learned_cost.maps import aggregated_gradient  # noqa: E402
from skmonge.learned_cost.sinkhorn import (  # noqa: E402
    differentiable_plan,
    differentiable_sinkhorn_divergence,
    sinkhorn_potentials,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These problems are tiny: a second thread only adds barrier waits (and
    stalls badly when the machine is busy); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_cost(d=2, hidden=(8, 8), symmetric=True, alpha=0.05, seed=0):
    """A convex cost whose network is far from its near-quadratic start."""
    torch.manual_seed(seed)
    h = ConvexCost(d, hidden, alpha=alpha, symmetric=symmetric, init_scale=1.0)
    h = h.to(F64)
    with torch.no_grad():
        for p in h.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return h.clamp_weights_()


def _uniform_logs(n, m):
    return (
        torch.full((n,), -np.log(n), dtype=F64),
        torch.full((m,), -np.log(m), dtype=F64),
    )


# --------------------------------------------------------------- convex cost
@pytest.mark.parametrize("symmetric", [True, False])
def test_cost_is_normalised_convex_and_even_when_symmetric(symmetric):
    h = _random_cost(symmetric=symmetric)
    Z = torch.randn(200, 2, dtype=F64)
    zero = torch.zeros(1, 2, dtype=F64)
    assert abs(float(h(zero).detach())) < 1e-12
    assert float(h.gradient(zero).abs().max()) < 1e-12
    # h >= alpha |z|^2 (convex with minimum 0 at 0, plus the quadratic)
    assert torch.all(h(Z) >= h.alpha * (Z * Z).sum(1) - 1e-10)
    if symmetric:
        torch.testing.assert_close(h(Z), h(-Z))
    # Hessians are >= 2 alpha I
    eig = torch.linalg.eigvalsh(h.hessian(Z))
    assert float(eig.min()) >= 2 * h.alpha - 1e-9
    # gradient against central differences
    e = 1e-6
    basis = torch.eye(2, dtype=F64)
    fd = torch.stack(
        [(h(Z + e * basis[t]) - h(Z - e * basis[t])) / (2 * e) for t in range(2)], 1
    )
    torch.testing.assert_close(h.gradient(Z), fd, atol=1e-7, rtol=1e-6)


def test_pairwise_cost_matches_rowwise_evaluation():
    h = _random_cost()
    X, Y = torch.randn(5, 2, dtype=F64), torch.randn(3, 2, dtype=F64)
    C, G = pairwise_cost(h, X, Y, with_gradient=True)
    for i in range(5):
        torch.testing.assert_close(C[i], h(X[i] - Y))
        torch.testing.assert_close(G[i], h.gradient(X[i] - Y))


# ----------------------------------------------------------- inverse gradient
@pytest.mark.parametrize("symmetric", [True, False])
def test_inverse_gradient_solves_grad_h(symmetric):
    h = _random_cost(d=3, symmetric=symmetric)
    W = torch.randn(64, 3, dtype=F64)
    z, converged = solve_inverse_gradient(h, W, tol=1e-12)
    assert converged
    torch.testing.assert_close(h.gradient(z), W, atol=1e-10, rtol=0)
    # warm start from the solution: stays there
    z2, _ = solve_inverse_gradient(h, W, z0=z, tol=1e-12)
    torch.testing.assert_close(z2, z, atol=1e-10, rtol=0)
    # each row's solution does not depend on the rest of the batch
    z_half, _ = solve_inverse_gradient(h, W[:7], tol=1e-12)
    torch.testing.assert_close(z_half, z[:7], atol=1e-12, rtol=0)


def test_inverse_gradient_of_quadratic_is_closed_form():
    h = ConvexCost(2, (), alpha=0.3).to(F64)
    W = torch.randn(10, 2, dtype=F64)
    z, converged = solve_inverse_gradient(h, W, z0=torch.zeros_like(W))
    assert converged
    torch.testing.assert_close(z, W / 0.6)


class _Inverse(torch.nn.Module):
    """``w -> (∇h)^{-1}(w)`` as a module, so that functional_call swaps θ."""

    def __init__(self, h):
        super().__init__()
        self.h = h

    def forward(self, w):
        return inverse_gradient(self.h, w, tol=1e-13, max_iter=100)


@pytest.mark.parametrize("symmetric", [True, False])
def test_inverse_gradient_implicit_derivatives_gradcheck(symmetric):
    h = _random_cost(d=2, hidden=(3, 3), symmetric=symmetric, seed=1)
    module = _Inverse(h)
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    w = torch.randn(3, 2, dtype=F64, requires_grad=True)

    def fn(w, *params):
        return functional_call(module, dict(zip(names, params, strict=True)), (w,))

    # atol covers the finite differences of an iterative solve (tol 1e-13)
    assert torch.autograd.gradcheck(fn, (w, *params), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------ Sinkhorn
@pytest.mark.parametrize("dense_limit", [None, 0])  # dense solve, then CG
def test_sinkhorn_implicit_gradients_gradcheck(dense_limit):
    rng = np.random.default_rng(0)
    n, m = 5, 4
    K = torch.tensor(3.0 * rng.random((n, m)), dtype=F64, requires_grad=True)
    log_a, log_b = _uniform_logs(n, m)
    v = torch.tensor(rng.normal(size=(n, m)), dtype=F64)

    def weights(K):
        f, g = sinkhorn_potentials(
            K, log_a, log_b, tol=1e-14, max_iter=10000, dense_limit=dense_limit
        )
        # the map's Gibbs weights (forward and reverse), and the plan
        forward = torch.softmax(log_b + g - K, dim=1)
        backward = torch.softmax(log_a[:, None] + f[:, None] - K, dim=0)
        plan = differentiable_plan(K, f, g, log_a, log_b)
        return forward, backward, (plan * v).sum()

    assert torch.autograd.gradcheck(weights, (K,), eps=1e-6, atol=1e-7)


def test_sinkhorn_potentials_meet_the_marginals():
    rng = np.random.default_rng(1)
    K = torch.tensor(rng.random((30, 20)) / 0.05, dtype=F64)
    log_a, log_b = _uniform_logs(30, 20)
    info = {}
    f, g = sinkhorn_potentials(K, log_a, log_b, tol=1e-10, info=info)
    assert info["converged"]
    P = differentiable_plan(K, f, g, log_a, log_b)
    torch.testing.assert_close(P.sum(1), log_a.exp(), atol=1e-9, rtol=0)
    torch.testing.assert_close(P.sum(0), log_b.exp(), atol=1e-12, rtol=0)


def test_sinkhorn_divergence_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    X = torch.tensor(rng.normal(size=(6, 2)), dtype=F64, requires_grad=True)
    Y = torch.tensor(rng.normal(size=(5, 2)) + 1.0, dtype=F64)

    def S(X):
        return differentiable_sinkhorn_divergence(X, Y, 0.5, tol=1e-13, max_iter=20000)

    (grad,) = torch.autograd.grad(S(X), X)
    fd = torch.zeros_like(X)
    e = 1e-6
    with torch.no_grad():
        for idx in np.ndindex(*X.shape):
            E = torch.zeros_like(X)
            E[idx] = e
            fd[idx] = (S(X + E) - S(X - E)) / (2 * e)
    torch.testing.assert_close(grad, fd, atol=1e-7, rtol=1e-6)
    assert float(differentiable_sinkhorn_divergence(Y, Y, 0.5)) == pytest.approx(
        0.0, abs=1e-9
    )


# --------------------------------------------------------------------- losses
def test_losses_by_hand():
    D = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5]], dtype=F64)
    # singular values 2, 1, 0.5: beyond rank 1 -> (1 + 0.25) / 3 rows
    assert float(low_rank_loss(D, 1)) == pytest.approx(1.25 / 3)
    assert float(low_rank_loss(D, 3)) == 0.0
    V = torch.eye(3, dtype=F64)
    # each displacement is along one direction: d_cos = 0 there, 1 elsewhere
    expected = -np.log(1 + 2 * np.exp(-1.0))
    assert float(k_directional_loss(D, V)) == pytest.approx(expected)
    plan = torch.tensor([[0.3, 0.2], [0.0, 0.5]], dtype=F64)
    rows, cols = torch.tensor([0, 1]), torch.tensor([0, 1])
    # correct mass 0.8 out of the attainable 2 * 1/2
    assert float(coupling_loss(plan, rows, cols)) == pytest.approx(-0.8)
    C = torch.tensor([[1.0, -2.0]], dtype=F64)
    assert float(cost_matrix_penalty(C)) == pytest.approx(np.log(np.e + np.e**2) ** 2)


# ------------------------------------------------------------------------ map
def test_quadratic_cost_map_is_the_l2_entropic_map():
    """h = α‖z‖² (no network): the map is EntropicSparseMap's ½ℓ2² map."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(40, 3)), 0.5 * rng.normal(size=(30, 3)) + 1.0])
    y = np.r_[np.zeros(40, int), np.ones(30, int)]
    new = rng.normal(size=(15, 3))
    ours = LearnedCostMap(
        hidden_sizes=(),
        alpha=0.5,
        loss="low_rank",
        relative_epsilon=0.05,
        sinkhorn_tol=1e-10,
        device="cpu",
    ).fit(X, y)
    assert ours.n_iter_ == 0  # nothing to learn
    ref = EntropicSparseMap(
        cost="sqeuclidean", relative_epsilon=0.05, tol=1e-10, debias=False
    ).fit(X, y)
    assert ours.epsilon_ == pytest.approx(ref.epsilon_, rel=1e-10)
    np.testing.assert_allclose(ours.transform(new), ref.transform(new), atol=1e-7)
    np.testing.assert_allclose(
        ours.inverse_transform(new), ref.inverse_transform(new), atol=1e-7
    )
    # a smaller alpha scales the cost and ε together: the same map
    other = LearnedCostMap(
        hidden_sizes=(),
        alpha=0.01,
        loss="low_rank",
        relative_epsilon=0.05,
        sinkhorn_tol=1e-10,
        device="cpu",
    ).fit(X, y)
    np.testing.assert_allclose(other.transform(new), ref.transform(new), atol=1e-7)


def test_aggregated_gradient_reverse_is_forward_of_transposed_problem():
    h = _random_cost()
    X, Y = torch.randn(6, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    C, G = pairwise_cost(h, X, Y, with_gradient=True)
    f = torch.randn(6, dtype=F64)
    log_a, _ = _uniform_logs(6, 4)
    W = aggregated_gradient(C, G, f, log_a, 0.3, reverse=True)
    # by hand for target point j
    for j in range(4):
        p = torch.softmax(log_a + f - C[:, j] / 0.3, dim=0)
        torch.testing.assert_close(W[j], (p[:, None] * h.gradient(X - Y[j])).sum(0))
