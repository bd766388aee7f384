r"""Piecewise-linear approximation of a scalar function by ReLU hinges.

On knots $t_0 < \dots < t_M$ with values $f_m = f(t_m)$ and slopes
$\sigma_m = (f_{m+1}-f_m)/(t_{m+1}-t_m)$,

.. math::

    \hat f(s) = f_0 + \sum_{m=0}^{M} w_m\,\sigma(s - t_m), \qquad
    w_0 = \sigma_0,\ w_m = \sigma_m - \sigma_{m-1}\ (1 \le m < M),\ w_M = -\sigma_{M-1},

interpolates $f$ on $[t_0, t_M]$ and is flat outside it ($\hat f = f_0$ below,
$f_M$ above). The MLP that computes it has $M + 2$ units: $M + 1$ hinges and one
unit $\sigma(\mathrm{one})$ for the constant $f_0$. Its error bounds are in
:mod:`tfconstruct.theory.interpolation`.

Since $\sum_m w_m = 0$, the same weights also give the *right-anchored* form
$\hat f(s) = f_M + \sum_m w_m\,\sigma(t_m - s)$ (``add_to``'s default, ``anchor="right"``). It is the
better-conditioned one when $|f'|$ decreases along the knots (e.g. $s^{-1/2}$ on geometric
knots): the left form at large $s$ cancels terms of size $|w_0|\,s \sim (s/t_0)^{3/2} f(s)$,
the right form only sums terms of the size of $f(s)$.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from .domains import InputDomain
from .mlp import MLPBuilder


def geometric_knots(low: float, high: float, intervals: int) -> np.ndarray:
    r"""$t_m = a\,(b/a)^{m/M}$, $m = 0..M$: equal relative spacing (for $s^{-1/2}$, $\log s$)."""
    _check_range(low, high, intervals)
    if low <= 0:
        raise ValueError(f"geometric knots need low > 0, got low={low}")
    return low * (high / low) ** (np.arange(intervals + 1) / intervals)


def uniform_knots(low: float, high: float, intervals: int) -> np.ndarray:
    r"""$t_m = a + (b-a)\,m/M$, $m = 0..M$ (for $s^2$)."""
    _check_range(low, high, intervals)
    return np.linspace(low, high, intervals + 1)


def _check_range(low: float, high: float, intervals: int) -> None:
    if int(intervals) != intervals or intervals < 1:
        raise ValueError(f"width (number of knot intervals) must be an integer >= 1, got {intervals}")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"knot range must be finite with low < high, got [{low}, {high}]")


@dataclass(frozen=True)
class PiecewiseLinear:
    """The hinge expansion of the interpolant of ``f`` on ``knots``; ``target`` is ``f`` itself and ``name`` its
    name (plain text), kept so that a reader can draw the interpolant against what it approximates."""

    knots: np.ndarray
    values: np.ndarray
    target: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False, repr=False)
    name: str = ""

    @classmethod
    def interpolate(cls, f: Callable[[np.ndarray], np.ndarray], knots: np.ndarray, name: str = "") -> "PiecewiseLinear":
        knots = np.asarray(knots, dtype=np.float64)
        if knots.ndim != 1 or knots.size < 2 or np.any(np.diff(knots) <= 0):
            raise ValueError("knots must be a strictly increasing 1-D array with at least 2 entries")
        return cls(knots, np.asarray(f(knots), dtype=np.float64), f, name or getattr(f, "__name__", ""))

    @property
    def intervals(self) -> int:
        return self.knots.size - 1

    @property
    def hinge_weights(self) -> np.ndarray:
        """$w_0..w_M$ as in the module docstring."""
        slopes = np.diff(self.values) / np.diff(self.knots)
        return np.diff(np.concatenate([[0.0], slopes, [0.0]]))

    @property
    def offset(self) -> float:
        return float(self.values[0])

    def __call__(self, s: np.ndarray) -> np.ndarray:
        r"""Evaluate the right-anchored hinge expansion $f_M + \sum_m w_m\sigma(t_m - s)$ (what the MLP computes by default)."""
        s = np.asarray(s, dtype=np.float64)
        hinges = np.maximum(self.knots - s[..., None], 0.0)
        return float(self.values[-1]) + hinges @ self.hinge_weights

    def add_to(
        self,
        builder: MLPBuilder,
        src: str,
        dst: str,
        scale: float = 1.0,
        anchor: Literal["left", "right"] = "right",
        *,
        parameter: str = "",
        clamp_below: bool = False,
        tokens: str | None = None,
    ) -> MLPBuilder:
        r"""Add units computing $dst \mathrel{+}= c\,\hat f(src)$ elementwise ($M+2$ groups of size ``src``), and
        record the knot range as the MLP's input domain for ``src``
        (:class:`~tfconstruct.constructions.domains.InputDomain`: ``parameter`` names what sets it,
        ``clamp_below`` marks a lower end that clips by design, ``tokens`` a flag subspace selecting the tokens whose
        result is used).

        ``anchor="left"`` uses $f_0 + \sum_m w_m\sigma(s - t_m)$, ``"right"`` the same function as
        $f_M + \sum_m w_m\sigma(t_m - s)$ (see the module docstring for which is better conditioned).
        """
        if anchor not in ("left", "right"):
            raise ValueError(f"anchor must be 'left' or 'right', got {anchor!r}")
        if builder.layout.size(src) != builder.layout.size(dst):
            raise ValueError(
                f"the interpolant acts elementwise: source {src!r} (size {builder.layout.size(src)}) and destination "
                f"{dst!r} (size {builder.layout.size(dst)}) must have the same size"
            )
        sign = 1.0 if anchor == "left" else -1.0
        for t, w in zip(self.knots, self.hinge_weights):
            builder.group({src: sign}, {dst: scale * w}, bias=-sign * t, label=f"hinge {src}@{t:.3g}")
        constant = self.offset if anchor == "left" else float(self.values[-1])
        builder.group({}, {dst: scale * constant}, bias=1.0, label=f"offset {dst}")
        domain = InputDomain(
            src, float(self.knots[0]), float(self.knots[-1]), parameter, clamp_below, tokens, self, dst, scale, anchor
        )
        return builder.check_domain(domain)
