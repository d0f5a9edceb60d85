"""Leave-one-out self-transport of the debiased map: digests, exclusions."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmonge import EntropicSparseMap
from skmonge._self_transport import RowDigests, never_cost
from skmonge.sinkhorn import gibbs_weights, symmetric_sinkhorn


def test_row_digests_dense_and_csr_agree_and_find_equal_rows():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(6, 5)) * (rng.random((6, 5)) < 0.5)
    Z[4] = Z[1]  # a duplicate
    Z[5] = 0.0
    dense, csr = RowDigests(Z), RowDigests(sp.csr_matrix(Z))
    assert dense.index == csr.index
    # new rows: one equal to the duplicated point (found as its first
    # copy), one new, one all-zero; float32 values equal to float64 ones match
    new = np.vstack([Z[1], Z[0] + 1e-12, np.zeros(5)]).astype(np.float32)
    found = RowDigests(Z.astype(np.float32))
    r, i = found.matches(new)
    assert r.tolist() == [0, 2] and i.tolist() == [1, 5]
    r, i = dense.matches(Z[[0, 2]] + 1.0)
    assert r.size == 0 and i.size == 0


def test_never_cost_gives_zero_weight():
    rng = np.random.default_rng(1)
    C = rng.random((4, 6)) * 10.0
    g = rng.normal(size=6) * 10.0
    C[0, 2] = never_cost(np.abs(C).max(), 0.01)
    P, _ = gibbs_weights(C, g, 0.01)
    assert P[0, 2] == 0.0 and np.isfinite(P).all()


def test_self_transport_leaves_the_diagonal_out_and_keeps_duplicates():
    """The self-transport couples no cell with itself but duplicated cells
    with each other (leaving out all copies can be infeasible: here 60 % of
    the cells are empty), and a fitted cell leaves only itself out."""
    rng = np.random.default_rng(2)
    Xs = rng.exponential(size=(40, 3)) * (rng.random((40, 3)) < 0.5)
    Xs[:24] = 0.0  # 24 of 40 cells are empty
    Xt = rng.exponential(size=(40, 3)) + 1.0
    X, y = np.vstack([Xs, Xt]), np.repeat([0, 1], 40)
    est = EntropicSparseMap(cost="sqeuclidean", tol=1e-10).fit(X, y)
    assert np.isfinite(est.potential_source_self_).all()
    C = est.cost_.cost_matrix(Xs, Xs)
    never = never_cost(np.abs(C).max(), est.epsilon_)
    masked = C.copy()
    np.fill_diagonal(masked, never)
    ref = symmetric_sinkhorn(masked, est.epsilon_, tol=1e-10).f
    np.testing.assert_allclose(est.potential_source_self_, ref, atol=1e-8)
    # an empty cell (the first of its copies) and another fitted cell
    for k in (0, 30):
        P, _ = gibbs_weights(
            est.cost_.cost_matrix(Xs[[k]], Xt), est.potential_target_, est.epsilon_
        )
        Q, _ = gibbs_weights(masked[[k]], est.potential_source_self_, est.epsilon_)
        np.testing.assert_allclose(
            est.displacement(Xs[[k]]), P @ Xt - Q @ Xs, atol=1e-10
        )


@pytest.mark.parametrize("sparse", [False, True])
def test_fitted_cells_map_like_held_out_cells(sparse):
    """A cell's displacement does not depend on whether it was fitted: the
    map of a training cell equals the map of the same cell under a fit
    without it, up to the change of the fit itself (one cell of 200)."""
    rng = np.random.default_rng(3)
    Xs = rng.exponential(size=(201, 30)) * (rng.random((201, 30)) < 0.3)
    Xt = rng.exponential(size=(200, 30)) * (rng.random((200, 30)) < 0.3)
    Xt[:, :3] += 2.0
    X = np.vstack([Xs, Xt])
    y = np.r_[np.zeros(201, int), np.ones(200, int)]
    X_in = sp.csr_matrix(X) if sparse else X
    with_cell = EntropicSparseMap().fit(X_in, y)
    keep = np.arange(X.shape[0]) != 0
    without = EntropicSparseMap().fit(X_in[keep], y[keep])
    fitted, held_out = with_cell.displacement(Xs[:1]), without.displacement(Xs[:1])
    assert np.abs(fitted - held_out).max() < 0.05 * np.abs(held_out).max()
    # without the exclusion at evaluation the fitted cell's centring
    # average would be the cell itself (sanity of the comparison)
    centre = with_cell._map_clouds()[1]
    assert centre is not None and centre[2].matches(Xs[:1])[1].tolist() == [0]


def test_large_samples_are_centred_on_evenly_spaced_points(monkeypatch):
    """Beyond _MAX_CENTRE_POINTS the centring cloud is that many evenly
    spaced rows of the sample; the map averages over them only."""
    import skmonge.entropic as entropic

    monkeypatch.setattr(entropic, "_MAX_CENTRE_POINTS", 10)
    rng = np.random.default_rng(4)
    Xs, Xt = rng.normal(size=(30, 3)), rng.normal(size=(25, 3)) + 1.0
    X, y = np.vstack([Xs, Xt]), np.r_[np.zeros(30, int), np.ones(25, int)]
    est = EntropicSparseMap(cost="sqeuclidean", tol=1e-10).fit(X, y)
    index = np.unique(np.linspace(0, 29, 10).astype(int))
    assert est.potential_source_self_.shape == (10,)
    assert est.potential_target_self_.shape == (10,)
    centre = Xs[index]
    C = est.cost_.cost_matrix(centre, centre)
    np.fill_diagonal(C, never_cost(np.abs(C).max(), est.epsilon_))
    ref = symmetric_sinkhorn(C, est.epsilon_, tol=1e-10).f
    np.testing.assert_allclose(est.potential_source_self_, ref, atol=1e-8)
    # a fitted cell in the centring cloud leaves itself out; one outside it
    # is averaged over all of the centring cloud
    for k in (index[3], 4):
        Ck = est.cost_.cost_matrix(Xs[[k]], centre)
        if k in index:
            Ck[0, np.flatnonzero(index == k)] = never_cost(
                np.abs(C).max(), est.epsilon_
            )
        P, _ = gibbs_weights(
            est.cost_.cost_matrix(Xs[[k]], Xt), est.potential_target_, est.epsilon_
        )
        Q, _ = gibbs_weights(Ck, est.potential_source_self_, est.epsilon_)
        np.testing.assert_allclose(
            est.displacement(Xs[[k]]), P @ Xt - Q @ centre, atol=1e-10
        )
