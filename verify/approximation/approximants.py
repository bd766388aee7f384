r"""The approximants whose error bounds are in :mod:`tfconstruct.theory.approximation`, in numpy.

Each is exactly the object its bound is about, so a measured error is a test of the claim: the product of two
hinge squares, the sigmoid staircase that $M$ anchor-softmax heads output, and the softmax differences that
emulate a linear head.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tfconstruct.constructions.piecewise import PiecewiseLinear, uniform_knots


def product_via_squares(x: np.ndarray, y: np.ndarray, radius: float, width: int) -> np.ndarray:
    r"""$\tfrac14(\hat q_M(x+y) - \hat q_M(x-y))$ with $\hat q_M$ the hinge interpolant of $s^2$ on $[-2R, 2R]$."""
    square = PiecewiseLinear.interpolate(np.square, uniform_knots(-2.0 * radius, 2.0 * radius, width))
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return (square(x + y) - square(x - y)) / 4.0


def sigmoid_staircase(
    g_fn: Callable[[np.ndarray], np.ndarray], low: float, high: float, heads: int, sharpness: float
) -> Callable[[np.ndarray], np.ndarray]:
    r"""$\hat g(u) = g(a) + \sum_m \Delta_m \sigma(\gamma(u - \tau_m))$: what $M$ anchor-softmax heads output."""
    knots = uniform_knots(low, high, heads)
    values = np.asarray(g_fn(knots), dtype=np.float64)
    steps = np.diff(values)
    midpoints = (knots[:-1] + knots[1:]) / 2.0

    def approximant(u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        logits = sharpness * (u[..., None] - midpoints)
        return values[0] + (0.5 * (1.0 + np.tanh(logits / 2.0))) @ steps  # sigma(z) = (1 + tanh(z/2))/2

    return approximant


def softmax_head(scores: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    r"""$A(\tau) = \sum_j \operatorname{softmax}_j(\tau t_{ij})\,y_j$ for each query row ``i``; ``values`` is ``(N, p)``."""
    logits = tau * np.asarray(scores, dtype=np.float64)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return (weights / weights.sum(axis=-1, keepdims=True)) @ values


def central_difference_head(scores: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    r"""$(A(\tau) - A(-\tau))/(2\tau)$: a softmax pair emulating the linear head on centred scores."""
    return (softmax_head(scores, values, tau) - softmax_head(scores, values, -tau)) / (2.0 * tau)


def one_sided_difference_head(scores: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    r"""$(A(\tau) - A(0))/\tau$: the first-order variant."""
    return (softmax_head(scores, values, tau) - softmax_head(scores, values, 0.0)) / tau


def centred_linear_head(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    r"""$\tfrac1N\sum_j (t_{ij} - \bar t_i)\,y_j$: the target of the softmax differences."""
    scores = np.asarray(scores, dtype=np.float64)
    centred = scores - scores.mean(axis=-1, keepdims=True)
    return centred @ values / scores.shape[-1]


def central_difference_leading_order(scores: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    r"""Leading-order **estimate** (not a bound) of the central-difference error, per query row.

    $\|\tfrac{\tau^2}{6}A'''(0)\|$ with $A'''(0) = \kappa(t,t,t,y)$ under the uniform law over keys:
    the error is this plus $O(\tau^4)$, so it predicts the measured error closely for small
    $\tau$ while :data:`CENTRAL_DIFFERENCE` is a worst case over all score/value configurations.
    """
    scores = np.asarray(scores, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    t = scores - scores.mean(axis=-1, keepdims=True)
    y = values - values.mean(axis=0, keepdims=True)
    keys = scores.shape[-1]
    third = (t**3) @ y / keys
    covariance = t @ y / keys
    variance = (t**2).mean(axis=-1, keepdims=True)
    return tau**2 / 6.0 * np.linalg.norm(third - 3.0 * variance * covariance, axis=-1)
