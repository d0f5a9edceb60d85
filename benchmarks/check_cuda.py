"""Every CUDA path of EntropicSparseMap's torch backend, checked against numba.

For each cost (½ℓ2², ℓ1, STVS, k-overlap) and dtype (float64, float32), on
Gaussian clouds with a sparse shift (300 x 320 cells, 40 features): fit with
``backend="torch", device=DEVICE`` and with numba at the same ε, then compare
``transform``, ``inverse_transform``, ``displacement`` and ``interpolate``
(float64 within 1e-8 of the data scale, float32 within 1e-4), the perplexity
ε rule, a CSR input, and a pickle of the CUDA-fitted model loaded and used
with ``device="cpu"``. Prints one line per check and exits non-zero if any
fails. On a machine without CUDA, ``--device cpu`` runs the same checks.

Usage::

    python benchmarks/check_cuda.py [--device cuda]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time

import numpy as np
import scipy.sparse as sp

from skmonge import EntropicSparseMap

COSTS = ["sqeuclidean", "elastic_l1", "elastic_stvs", "elastic_kovlp"]


def clouds(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(300, 40))
    X1 = rng.normal(size=(320, 40))
    X1[:, :3] += 2.0
    X = np.vstack([X0, X1]).astype(dtype)
    y = np.r_[np.zeros(300), np.ones(320)]
    return X, y, rng.normal(size=(200, 40)).astype(dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    failures = 0

    def report(name, ok, detail):
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    for dtype in (np.float64, np.float32):
        X, y, X_new = clouds(dtype)
        scale = float(np.abs(X_new).max())
        bound = (1e-8 if dtype == np.float64 else 1e-4) * scale
        tol = 1e-11 if dtype == np.float64 else 1e-6
        for cost in COSTS:
            params = {"cost": cost, "gamma": 0.5, "k": 3, "tol": tol}
            start = time.perf_counter()
            gpu = EntropicSparseMap(backend="torch", device=args.device, **params)
            gpu.fit(X, y)
            seconds = time.perf_counter() - start
            cpu = EntropicSparseMap(epsilon=gpu.epsilon_, **params).fit(X, y)
            rule = EntropicSparseMap(**params).fit(X, y).epsilon_
            name = f"{cost} {np.dtype(dtype).name}"
            report(
                f"{name} epsilon rule",
                abs(gpu.epsilon_ - rule) <= 1e-2 * rule,
                f"torch {gpu.epsilon_:.4g}, numba {rule:.4g}; fit {seconds:.2f} s, "
                f"{gpu.n_iter_} iterations (numba {cpu.n_iter_})",
            )
            for method in ("transform", "inverse_transform", "displacement"):
                a = getattr(cpu, method)(X_new)
                b = getattr(gpu, method)(X_new)
                diff = float(np.abs(a - b).max())
                report(
                    f"{name} {method}",
                    diff <= bound and b.dtype == dtype,
                    f"max diff {diff:.2e} (bound {bound:.1e}), dtype {b.dtype}",
                )
            diff = float(
                np.abs(
                    gpu.interpolate(X_new, [0.3, 0.7])
                    - cpu.interpolate(X_new, [0.3, 0.7])
                ).max()
            )
            report(f"{name} interpolate", diff <= bound, f"max diff {diff:.2e}")
            loaded = pickle.loads(pickle.dumps(gpu)).set_params(device="cpu")
            diff = float(np.abs(loaded.transform(X_new) - gpu.transform(X_new)).max())
            report(f"{name} pickle -> cpu", diff <= bound, f"max diff {diff:.2e}")
        sparse = np.where(np.abs(X) < 1.0, 0.0, X).astype(dtype)
        dense = EntropicSparseMap(backend="torch", device=args.device, tol=tol)
        csr = EntropicSparseMap(backend="torch", device=args.device, tol=tol)
        diff = float(
            np.abs(
                dense.fit(sparse, y).transform(X_new)
                - csr.fit(sp.csr_matrix(sparse), y).transform(sp.csr_matrix(X_new))
            ).max()
        )
        report(
            f"CSR input {np.dtype(dtype).name}", diff <= bound, f"max diff {diff:.2e}"
        )
    print(f"{failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
