r"""Observed convergence rates: least-squares slopes in log-log or semilog space.

The numerical-analysis convention (firedrake's rate tests): assert the observed
order, not only a final error. ``fit_slope`` fits $\log e = p \log w + c$
(``loglog``) or $\log e = p\,L + c$ (``semilog``, $p = \log\rho$ per step).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np


def fit_slope(x: Sequence[float], errors: Sequence[float], scale: Literal["loglog", "semilog"] = "loglog") -> float:
    """Least-squares slope of log(error) against log(x) (``loglog``) or x (``semilog``)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if x.shape != e.shape or x.size < 2:
        raise ValueError(f"need at least 2 (x, error) pairs of equal length, got {x.size} and {e.size}")
    if np.any(e <= 0) or not np.all(np.isfinite(e)):
        raise ValueError(f"errors must be finite and > 0 to fit a slope, got {e}")
    xs = np.log(x) if scale == "loglog" else x
    return float(np.polyfit(xs, np.log(e), 1)[0])


def assert_rate(
    x: Sequence[float],
    errors: Sequence[float],
    expected: float,
    tolerance: float,
    scale: Literal["loglog", "semilog"] = "loglog",
) -> float:
    """Fit the slope and raise ``AssertionError`` unless it is within ``tolerance`` of ``expected``."""
    slope = fit_slope(x, errors, scale)
    if abs(slope - expected) > tolerance:
        raise AssertionError(
            f"observed {scale} slope {slope:.3f}, expected {expected:.3f} ± {tolerance:.3f}; "
            f"x={list(np.round(np.asarray(x, float), 6))}, errors={list(np.asarray(errors, float))}"
        )
    return slope
