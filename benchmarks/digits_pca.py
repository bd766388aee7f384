"""Top-3 PCA of scikit-learn's digits (n = 1797, d = 64) by the power-iteration transformer, T = 400 steps per
eigenvector: seconds, the angle to ``eigh`` and the numpy power method's seconds on the same steps, in one run.

    python benchmarks/digits_pca.py [--steps 400] [--attention relu linear] [--dense]

``--dense`` also times the full-matrix reference path (slow: minutes per run at T = 400).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from tfconstruct.constructions.power import PowerIteration, default_seeds
from tfconstruct.verify.power.reference import deflated_power_method, second_moment, sin_angle, top_eigenpairs

COMPONENTS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--steps", type=int, default=400, help="power steps per eigenvector")
    parser.add_argument("--attention", nargs="+", default=["relu", "linear"], choices=["relu", "linear"])
    parser.add_argument("--dense", action="store_true", help="also time the dense reference path")
    args = parser.parse_args()
    X = load_digits().data.astype(np.float64)
    sigma = second_moment(X, centre=True)
    _, truth = top_eigenpairs(sigma, COMPONENTS)
    seeds = default_seeds(X.shape[1], COMPONENTS)
    started = time.perf_counter()
    numpy_result = deflated_power_method(sigma, seeds, args.steps, newton=1)
    covariance_seconds = time.perf_counter() - started
    started = time.perf_counter()
    from_data(X, seeds, args.steps)
    numpy_seconds = time.perf_counter() - started
    print(
        f"digits n={X.shape[0]} d={X.shape[1]}, top {COMPONENTS}, T={args.steps} steps each, {torch.get_num_threads()} threads"
    )
    print(f"numpy power method from the data, u = X^T (X v) / n: {numpy_seconds:.3f} s")
    print(f"numpy power method on the d x d covariance: {covariance_seconds:.3f} s")
    for attention in args.attention:
        for dense in (False, True) if args.dense else (False,):
            started = time.perf_counter()
            pca = PowerIteration.for_data(
                X, components=COMPONENTS, iterations=args.steps, width=64, newton_steps=1, centre=True,
                attention=attention,
            )  # fmt: skip
            built = time.perf_counter() - started
            result = pca.readout(pca.model(pca.embed(X, seeds), dense=dense))
            seconds = time.perf_counter() - started
            sines = [sin_angle(result.vectors[0, j].numpy(), truth[j]) for j in range(COMPONENTS)]
            agree = max(sin_angle(result.vectors[0, j].numpy(), numpy_result.vectors[j]) for j in range(COMPONENTS))
            print(
                f"transformer ({attention}, {'dense' if dense else 'factored'}, D={pca.layout.dim}, "
                f"{len(pca.model)} sublayers): {seconds:.1f} s (build {built:.1f} s), "
                f"{seconds / (COMPONENTS * args.steps) * 1e3:.1f} ms per power step, {seconds / numpy_seconds:.0f}x numpy; "
                f"sin to eigh {', '.join(f'{s:.1e}' for s in sines)}; sin to numpy power method {agree:.1e}"
            )


def from_data(X: np.ndarray, seeds: np.ndarray, steps: int) -> np.ndarray:
    r"""Deflated power iteration computing $\hat\Sigma v$ from the centred data tokens each step, as the transformer
    does (the numpy reference the transformer is timed against)."""
    centred = X - X.mean(axis=0)
    found: list[tuple[float, np.ndarray]] = []
    for seed in seeds:
        v = seed / np.linalg.norm(seed)
        for _ in range(steps):
            u = centred.T @ (centred @ v) / len(X) - sum(value * w * (w @ v) for value, w in found)
            v = u / np.linalg.norm(u)
        found.append((float(v @ (centred.T @ (centred @ v))) / len(X), v))
    return np.array([w for _, w in found])


if __name__ == "__main__":
    main()
