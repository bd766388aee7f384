r"""Power iteration, deflation and 2-class spectral clustering in plain numpy, step by step.

Independent of :mod:`tfconstruct.constructions`: one instance at a time, no torch. The normaliser of a
step is pluggable, so the same loop gives both exact power iteration
($r(s) = s^{-1/2}$) and the iteration the transformer performs with its hinge MLP
($r = $ :func:`hinge_inverse_sqrt`, built here with ``numpy.interp``):

.. math::

    u_t = \Sigma_l v_t, \quad s_t = \|u_t\|^2, \quad v_{t+1} = r(s_t)\,u_t, \qquad
    \Sigma_l = \Sigma - \sum_{p<l} \lambda_p V_p V_p^\top .

``numpy.linalg.eigh`` gives the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Normaliser = Callable[[float], float]


def second_moment(X: np.ndarray, *, centre: bool = False) -> np.ndarray:
    r"""$\frac1n X^\top X$ for data ``X`` of shape (n, d); of $X - \bar x$ with ``centre``."""
    X = np.asarray(X, dtype=np.float64)
    if centre:
        X = X - X.mean(axis=0)
    return X.T @ X / X.shape[0]


def exact_inverse_sqrt(s: float) -> float:
    """$s^{-1/2}$: exact normalisation."""
    return float(s) ** -0.5


def hinge_inverse_sqrt(domain: tuple[float, float], width: int) -> Normaliser:
    """The piecewise-linear interpolant of $s^{-1/2}$ at $t_m = a(b/a)^{m/M}$, flat outside $[a, b]$."""
    low, high = domain
    knots = low * (high / low) ** (np.arange(width + 1) / width)
    values = knots**-0.5
    return lambda s: float(np.interp(s, knots, values))


@dataclass(frozen=True)
class PowerPath:
    r"""``iterates[t]`` is $v_t$ ($t = 0..T$); ``squared_norms[t]`` is $s_t = \|\Sigma_l v_t\|^2$ ($t < T$)."""

    iterates: np.ndarray
    squared_norms: np.ndarray


def deflated(sigma: np.ndarray, pairs: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    r"""$\Sigma - \sum_p \lambda_p V_p V_p^\top$."""
    out = np.array(sigma, dtype=np.float64)
    for value, vector in pairs:
        out = out - value * np.outer(vector, vector)
    return out


def power_iteration(
    sigma: np.ndarray,
    seed: np.ndarray,
    steps: int,
    *,
    normaliser: Normaliser = exact_inverse_sqrt,
    deflation: Sequence[tuple[float, np.ndarray]] = (),
) -> PowerPath:
    r"""$T$ steps $v_{t+1} = r(\|\Sigma_l v_t\|^2)\,\Sigma_l v_t$ from the unit vector along ``seed``."""
    matrix = deflated(sigma, deflation)
    v = np.asarray(seed, dtype=np.float64) / np.linalg.norm(seed)
    iterates, squared_norms = [v], []
    for _ in range(steps):
        u = matrix @ v
        s = float(u @ u)
        v = normaliser(s) * u
        iterates.append(v)
        squared_norms.append(s)
    return PowerPath(np.array(iterates), np.array(squared_norms))


def newton_normalise(v: np.ndarray, steps: int) -> np.ndarray:
    r"""``steps`` Newton steps $v \leftarrow (\tfrac32 - \tfrac12\|v\|^2)\,v$ towards $\|v\| = 1$."""
    for _ in range(steps):
        v = (1.5 - 0.5 * float(v @ v)) * v
    return v


@dataclass(frozen=True)
class DeflationResult:
    r"""``vectors[l]`` = $V_l$, ``values[l]`` = $\lambda_l = V_l^\top\Sigma_l V_l$, ``paths[l]`` its power iterates."""

    vectors: np.ndarray
    values: np.ndarray
    paths: list[PowerPath]


def deflated_power_method(
    sigma: np.ndarray,
    seeds: np.ndarray,
    steps: int,
    *,
    normaliser: Normaliser = exact_inverse_sqrt,
    newton: int = 0,
) -> DeflationResult:
    r"""Eigenvector $l = 0..k-1$: $T$ power steps on $\Sigma_l$ from ``seeds[l]``, ``newton`` norm refinements, then
    $V_l = v$, $\lambda_l = V_l^\top \Sigma_l V_l$."""
    pairs: list[tuple[float, np.ndarray]] = []
    paths = []
    for seed in np.atleast_2d(seeds):
        path = power_iteration(sigma, seed, steps, normaliser=normaliser, deflation=pairs)
        vector = newton_normalise(path.iterates[-1], newton)
        value = float(vector @ deflated(sigma, pairs) @ vector)
        pairs.append((value, vector))
        paths.append(path)
    return DeflationResult(np.array([p[1] for p in pairs]), np.array([p[0] for p in pairs]), paths)


def top_eigenpairs(sigma: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The $k$ largest eigenvalues (descending) and unit eigenvectors, shape (k,) and (k, d), by ``eigh``.

    Signs are canonical: the largest-magnitude entry of each eigenvector is positive.
    """
    values, vectors = np.linalg.eigh(np.asarray(sigma, dtype=np.float64))
    order = np.argsort(values)[::-1][:k]
    top = vectors[:, order].T
    signs = np.sign(top[np.arange(len(order)), np.argmax(np.abs(top), axis=1)])
    return values[order], top * signs[:, None]


def sin_angle(u: np.ndarray, v: np.ndarray) -> float:
    r"""$\sin\angle(u, v)$, sign-invariant, accurate for tiny angles: $\|\hat u - (\hat u\cdot\hat v)\hat v\|$."""
    u = np.asarray(u, dtype=np.float64) / np.linalg.norm(u)
    v = np.asarray(v, dtype=np.float64) / np.linalg.norm(v)
    return float(np.linalg.norm(u - (u @ v) * v))


def tan_angle(u: np.ndarray, v: np.ndarray) -> float:
    r"""$\tan\angle(u, v)$ for the sign-invariant angle in $[0, \pi/2]$."""
    u = np.asarray(u, dtype=np.float64) / np.linalg.norm(u)
    v = np.asarray(v, dtype=np.float64) / np.linalg.norm(v)
    return sin_angle(u, v) / abs(float(u @ v))


def spectral_labels(X: np.ndarray, direction: np.ndarray | None = None) -> np.ndarray:
    r"""$\hat y_i = \operatorname{sign}\langle x_i - \bar x, v\rangle$ ($\pm 1$; 0 maps to $+1$).

    ``direction`` defaults to the top eigenvector of the centred sample covariance (``eigh``).
    """
    centred = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    if direction is None:
        direction = top_eigenpairs(second_moment(centred), 1)[1][0]
    return np.where(centred @ direction >= 0, 1, -1)


def misclassification(labels: np.ndarray, truth: np.ndarray) -> float:
    r"""$\min_{s = \pm1} \frac1n \sum_i 1\{\hat y_i \ne s\,y_i\}$: the error up to a global label flip."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    wrong = float(np.mean(labels != truth))
    return min(wrong, 1.0 - wrong)
