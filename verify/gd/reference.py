r"""Gradient descent on the in-context least-squares problem, step by step, in numpy (independent of the layers).

$w_{t+1} = w_t + \frac\eta n P X^\top (y - X w_t)$ from $w_0 = 0$, and the least-squares limit
$w_{LS} = \arg\min_w \lVert y - Xw\rVert$ (``numpy.linalg.lstsq``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GDPath:
    """``weights[t]`` $= w_t$ ($t = 0..L$) and ``predictions[t]`` $= x_q^\\top w_t$."""

    weights: np.ndarray
    predictions: np.ndarray


def gradient_descent(
    X: np.ndarray, y: np.ndarray, query: np.ndarray, eta: float, steps: int, preconditioner: np.ndarray | None = None
) -> GDPath:
    """``steps`` steps of (preconditioned) gradient descent on $\\frac1{2n}\\lVert y - Xw\\rVert^2$ from 0."""
    X, y, query = (np.asarray(a, dtype=np.float64) for a in (X, y, query))
    n, d = X.shape
    P = np.eye(d) if preconditioner is None else np.asarray(preconditioner, dtype=np.float64)
    weights = [np.zeros(d)]
    for _ in range(steps):
        weights.append(weights[-1] + eta / n * P @ X.T @ (y - X @ weights[-1]))
    weights = np.array(weights)
    return GDPath(weights, weights @ query)


def least_squares(X: np.ndarray, y: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, float]:
    """$w_{LS}$ and the prediction $x_q^\\top w_{LS}$ (the limit of gradient descent when it converges)."""
    weights = np.linalg.lstsq(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), rcond=None)[0]
    return weights, float(weights @ np.asarray(query, dtype=np.float64))


def preconditioned_spectrum(X: np.ndarray, preconditioner: np.ndarray | None = None) -> np.ndarray:
    r"""The eigenvalues $\mu_i$ of $P^{1/2}\,(X^\top X/n)\,P^{1/2}$ (those of $P\,X^\top X/n$), ascending."""
    X = np.asarray(X, dtype=np.float64)
    sigma = X.T @ X / X.shape[0]
    if preconditioner is None:
        return np.linalg.eigvalsh(sigma)
    values, vectors = np.linalg.eigh(np.asarray(preconditioner, dtype=np.float64))
    root = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    return np.linalg.eigvalsh(root @ sigma @ root)
