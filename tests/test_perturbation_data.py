"""The synthetic tasks and metrics added for NeuralSparseMap."""

import numpy as np
import pytest

from skmonge.datasets import make_eight_gaussians, make_perturbation
from skmonge.metrics import perturbed_gene_recall, sliced_wasserstein


def test_make_perturbation_shapes_and_ground_truth():
    X, y, genes = make_perturbation(400, 60, 7, shift=50.0, noise=0.1, random_state=1)
    assert X.shape == (800, 60) and np.bincount(y).tolist() == [400, 400]
    assert genes.shape == (7,) and np.all(np.diff(genes) > 0)
    source, target = X[y == 0], X[y == 1]
    shift = target.mean(0) - source.mean(0)
    other = np.setdiff1d(np.arange(60), genes)
    # perturbed genes shift by 5..50 in absolute value, the others do not
    assert np.all(np.abs(shift[genes]) > 4.0) and np.all(np.abs(shift[genes]) < 51)
    assert np.all(np.abs(shift[other]) < 0.3)
    # extra noise on the unperturbed genes: variance 1 + noise^2
    np.testing.assert_allclose(target[:, other].var(0).mean(), 1.01, atol=0.05)
    # reproducible
    X2, _, genes2 = make_perturbation(400, 60, 7, shift=50.0, noise=0.1, random_state=1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(genes, genes2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_perturbed=0), "n_perturbed"),
        (dict(n_features=5, n_perturbed=6), "exceeds"),
        (dict(shift=-1.0), "shift"),
        (dict(noise=-0.1), "noise"),
    ],
)
def test_make_perturbation_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_perturbation(
            **{"n_samples": 10, "n_features": 10, "n_perturbed": 2, **kwargs}
        )


def test_eight_gaussians():
    X, y = make_eight_gaussians(800, radius=4.0, std=0.1, random_state=0)
    target = X[y == 1]
    np.testing.assert_allclose(np.linalg.norm(target, axis=1).mean(), 4.0, atol=0.05)
    angles = np.round(np.arctan2(target[:, 1], target[:, 0]) / (np.pi / 4)) % 8
    assert np.unique(angles).size == 8
    assert np.abs(X[y == 0].mean(0)).max() < 0.15
    with pytest.raises(ValueError, match="radius"):
        make_eight_gaussians(radius=0)


def test_perturbed_gene_recall():
    X = np.zeros((4, 5))
    moved = X.copy()
    moved[:, [0, 1]] = 1.0  # every cell moves genes 0 and 1
    moved[0, 2] = 0.005  # below atol
    assert perturbed_gene_recall(X, moved, [0, 1]) == 1.0
    assert perturbed_gene_recall(X, moved, [0, 2]) == 0.5
    assert perturbed_gene_recall(X, moved, [2, 3, 4]) == 0.0
    with pytest.raises(ValueError, match="index"):
        perturbed_gene_recall(X, moved, [5])


def test_sliced_wasserstein_in_one_dimension_is_sorted_matching():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 1)), rng.normal(2.0, 1.5, size=(300, 1))
    # in 1-d every projection is +-identity: SW2 = W2 = ||sort(a) - sort(b)|| / sqrt(n)
    w2 = np.sqrt(np.mean((np.sort(a[:, 0]) - np.sort(b[:, 0])) ** 2))
    assert sliced_wasserstein(a, b, n_projections=10) == pytest.approx(w2, rel=1e-10)
    assert sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-12)
    # translation in d dims: SW2 = |shift| * sqrt(E[theta_1^2]) = |shift| / sqrt(d)
    x = rng.normal(size=(2000, 4))
    sw = sliced_wasserstein(x, x + [3.0, 0, 0, 0], n_projections=4000)
    assert sw == pytest.approx(3.0 / 2.0, rel=0.03)
