"""Sparse displacements on a 2-d toy task, drawn as arrows.

The source is uniform on the unit square. Each target point is the image of a
fresh uniform point under the ground-truth map of ``make_sparse_monge`` with
``pattern="x_dependent"``: a point moves along its first coordinate when that
coordinate is the larger one, along its second otherwise. So the true
displacement of every point has a single non-zero coordinate, and which one
depends on the point.

The ½ℓ2² entropic map (top left) moves every point diagonally. The
elastic-ℓ1 and elastic-STVS maps draw mostly axis-parallel arrows: their
proximal step sets the small coordinate of the displacement exactly to zero.
Near the diagonal, where the true map switches coordinates, the entropic
estimate averages both targets and still moves diagonally. The bottom-right
panel draws the Bregman interpolation paths ``x_t`` (eq. 17 of Cuturi, Klein &
Ablin) of the STVS map at 20 times in [0, 1]; on these positive data they stay
close to the straight arrows, and they bend where a coordinate crosses zero.

Run ``python plot_toy_maps.py [output.png]``; without an argument the figure
goes to the temporary directory.
"""

import argparse
import os
import tempfile

import matplotlib

matplotlib.use("Agg")  # write a file, never open a window
import matplotlib.pyplot as plt  # noqa: E402

from skmonge import EntropicSparseMap  # noqa: E402
from skmonge.datasets import make_sparse_monge  # noqa: E402
from skmonge.metrics import displacement_sparsity, support_error  # noqa: E402
from skmonge.plotting import plot_displacements_2d  # noqa: E402


def main(output):
    X, y, true_map = make_sparse_monge(
        n_samples=200, n_features=2, n_active=1, pattern="x_dependent", random_state=0
    )
    # draw arrows for a readable subset of the source points only
    shown = X[y == 0][:40]
    maps = {
        "½ℓ2² (dense)": EntropicSparseMap(cost="sqeuclidean"),
        "elastic ℓ1, γ=0.5": EntropicSparseMap(cost="elastic_l1", gamma=0.5),
        "elastic STVS, γ=0.5": EntropicSparseMap(cost="elastic_stvs", gamma=0.5),
    }
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
    axes = axes.ravel()
    source = X[y == 0]
    for ax, (title, est) in zip(axes, maps.items(), strict=False):
        est.fit(X, y)
        mapped = est.transform(source)
        nonzero = displacement_sparsity(source, mapped, atol=1e-8)
        off_support = support_error(source, mapped, true_map.support(source))
        divergence = -est.score(X, y)
        print(
            f"{title:<22} non-zero coordinates {nonzero:.2f}   "
            f"support error {off_support:.3f}   Sinkhorn divergence {divergence:.3f}"
        )
        plot_displacements_2d(est, shown, ax=ax, target_kw={"alpha": 0.3})
        ax.set_title(f"{title}: {nonzero:.0%} of coordinates move")
    plot_displacements_2d(
        maps["elastic STVS, γ=0.5"],
        shown,
        ax=axes[3],
        arrows=False,
        paths=True,
        target_kw={"alpha": 0.3},
    )
    axes[3].set_title("elastic STVS: Bregman paths x_t, t ∈ [0, 1]")
    for ax in axes:
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(output, dpi=90)
    plt.close(fig)
    print(f"figure written to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output",
        nargs="?",
        default=os.path.join(tempfile.gettempdir(), "skmonge_toy_maps.png"),
        help="path of the PNG figure",
    )
    main(parser.parse_args().output)
