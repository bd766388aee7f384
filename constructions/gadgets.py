r"""Reusable hand-built parts, parameterised by the subspaces they read and write (as Tracr's chamber).

Every gadget takes the residual layout and the **names** of its inputs and outputs, so the same
weights serve any construction that lays out those subspaces; none hard-codes a name. Attention
gadgets take the scoring rule: ``"relu"`` (exact for signed products through $\pm$ pairs, see
:func:`signed_heads`) or ``"linear"`` (one head). ReLU and linear heads divide by the number of
tokens $N$ (:mod:`~tfconstruct.constructions.attention`); every gadget here reads *broadcast*
blocks (the same value in every token) on the key side, so $\frac1N\sum_j$ is an exact read.

=========================  ================================================================
gadget                     adds
=========================  ================================================================
:func:`signed_heads`       $\frac1N\sum_j s_{ij} W_{OV} h_j$ for a score of either sign
:func:`squared_norm_head`  ``dst`` $\mathrel{+}= \lVert src\rVert^2$
:func:`rescale_head`       ``dst`` $\mathrel{+}= f\,$``src`` for a broadcast scalar $f > 0$
:func:`newton_heads`       ``dst`` $\mathrel{+}= (\tfrac32 - \tfrac12 r)\,$``src``
:class:`InverseSqrt`       ``dst`` $\mathrel{+}= \hat\phi_M(src) \approx src^{-1/2}$ (hinge MLP)
:func:`inverse_sqrt_heads` ``dst`` $\mathrel{+}= \hat\phi_M(s)\,$``vec`` in one layer of $M + 2$ heads
=========================  ================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from .attention import AttentionHead, MultiHeadAttention
from .checks import integer_in, positive
from .domains import InputDomain
from .mlp import MLPBuilder
from .piecewise import PiecewiseLinear, geometric_knots
from .residual import ResidualLayout
from .weights import Bilinear, LinearMap

ExactScoring = Literal["relu", "linear"]
EXACT_SCORINGS: tuple[str, ...] = ("relu", "linear")

ScoreBuilder = Callable[[Bilinear, float], Bilinear]
ValueBuilder = Callable[[LinearMap, float], LinearMap]


def check_scoring(scoring: str) -> ExactScoring:
    """``scoring`` if it is one of :data:`EXACT_SCORINGS`, else a ``ValueError`` naming them."""
    if scoring not in EXACT_SCORINGS:
        raise ValueError(f"attention must be one of {EXACT_SCORINGS}, got {scoring!r}")
    return scoring  # type: ignore[return-value]


def signed_heads(
    layout: ResidualLayout, label: str, score: ScoreBuilder, value: ValueBuilder, scoring: ExactScoring = "relu"
) -> list[AttentionHead]:
    r"""Heads that add exactly $\frac1N\sum_j s_{ij} W_{OV} h_j$ for a score $s_{ij}$ of either sign.

    ``score(qk, sign)`` and ``value(ov, sign)`` fill an empty score form and output map scaled by
    ``sign``. Linear scoring uses sign $+1$ alone; ReLU scoring adds the heads for $+1$ and $-1$,
    because $\sigma(s)\,W - \sigma(-s)\,W = s\,W$. When $s \ge 0$ the second head adds exact zeros.
    """
    signs = (1.0,) if scoring == "linear" else (1.0, -1.0)
    return [
        AttentionHead(
            score(Bilinear(layout), sign),
            value(LinearMap(layout), sign),
            scoring,
            label if scoring == "linear" else f"{label}{'+' if sign > 0 else '-'}",
        )
        for sign in signs
    ]


def squared_norm_head(layout: ResidualLayout, src: str, dst: str, scoring: ExactScoring = "relu") -> AttentionHead:
    r"""``dst`` $\mathrel{+}= \lVert src\rVert^2$: score $\langle src_i, src_j\rangle = \lVert src\rVert^2 \ge 0$
    (``src`` broadcast, so one head is exact under either scoring), value ``one`` $\to$ ``dst``."""
    return AttentionHead(
        Bilinear(layout).add(src, src), LinearMap(layout).add("one", dst), scoring, f"|{src}|^2 -> {dst}"
    )


def rescale_head(
    layout: ResidualLayout, scale: str, src: str, dst: str, scoring: ExactScoring = "relu"
) -> AttentionHead:
    r"""``dst`` $\mathrel{+}= f\,src$ for a broadcast scalar $f$ = ``scale`` $> 0$: score $f_i\cdot\mathrm{one}_j$,
    value ``src`` $\to$ ``dst``. The factor is positive, so the direction of ``src`` is kept exactly."""
    return AttentionHead(
        Bilinear(layout).add(scale, "one"), LinearMap(layout).add(src, dst), scoring, f"{scale} * {src} -> {dst}"
    )


def newton_heads(
    layout: ResidualLayout, norm_sq: str, src: str, dst: str, scoring: ExactScoring = "relu"
) -> list[AttentionHead]:
    r"""``dst`` $\mathrel{+}= (\tfrac32 - \tfrac12 r)\,src$ with $r$ = ``norm_sq`` $= \lVert src\rVert^2$: one Newton
    step for $\lVert src\rVert^{-1}$ from $1$. With $\lVert src\rVert = 1 + e$ the result has norm $1 + e'$,
    $e' = -e^2(3+e)/2$ exactly. The scalar is a query-side score against the constant key, in signed heads,
    so it is exact for every $r$."""
    return signed_heads(
        layout,
        f"(3/2 - {norm_sq}/2) {src}",
        lambda qk, s: qk.add("one", "one", 1.5 * s).add(norm_sq, "one", -0.5 * s),
        lambda ov, s: ov.add(src, dst, s),
        scoring,
    )


@dataclass(frozen=True)
class NormalisationDomain:
    r"""$[a, b]$ = [``low``, ``high``]: the range of $r = \lVert u\rVert^2$ the $r^{-1/2}$ hinges cover.

    Raises:
        ValueError: unless $0 < a < b < \infty$.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        positive("domain lower end a", self.low)
        if not (math.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"domain must satisfy 0 < a < b < inf, got a={self.low!r}, b={self.high!r}")

    @classmethod
    def of(cls, domain: "NormalisationDomain | tuple[float, float]") -> "NormalisationDomain":
        """``domain`` itself, or the domain of a pair ``(a, b)``."""
        if isinstance(domain, NormalisationDomain):
            return domain
        try:
            low, high = (float(value) for value in domain)
        except (TypeError, ValueError):
            raise ValueError(
                f"domain must be a NormalisationDomain or a pair (a, b) of numbers with 0 < a < b, got {domain!r}"
            ) from None
        return cls(low, high)

    @classmethod
    def for_weights(cls, low: float, high: float, floor: float = 1e-9) -> "NormalisationDomain":
        r"""For an (approximately) odeco tensor with weights in $[\lambda_-, \lambda_+]$:
        $[\text{floor}\cdot\lambda_-^2,\ 1.5\,\lambda_+^2]$. The top covers $\lambda_+^2 (1+\delta)^4$ for
        $\delta \le 0.1$; ``floor`` covers seeds whose overlaps $c$ with the remaining components have
        $\sum c^4 \ge$ floor."""
        positive("weight low", low)
        positive("weight high", high)
        if low > high:
            raise ValueError(f"weights must be given as (lowest, highest), got low={low!r} > high={high!r}")
        return cls(floor * low**2, 1.5 * high**2)


@dataclass(frozen=True)
class InverseSqrt:
    r"""The hinge MLP $\hat\phi_M \approx s^{-1/2}$ on $M$ = ``width`` geometric knot intervals of the domain.

    $\hat\phi_M$ interpolates $s^{-1/2}$ at $t_m = a(b/a)^{m/M}$ and is flat outside $[a, b]$, so
    $\hat\phi_M \ge b^{-1/2} > 0$ everywhere. It is built **right-anchored**,
    $\hat\phi(s) = b^{-1/2} + \sum_m w_m\,\sigma(t_m - s)$ ($M + 2$ units): on $[a, b]$ every active term is
    $\ge 0$ (convex, decreasing $f$), so nothing cancels, whereas the left-anchored form sums terms of size
    $(s/a)^{3/2}\hat\phi(s)$ (a relative round-off of $10^{-12}$ at $s/a = 2000$ in float64, $10^{-3}$ in
    float32).

    :attr:`relative_error` is the exact $\sup_{[a,b]}|\sqrt s\,\hat\phi_M(s) - 1|$ of these weights: on a knot
    interval the chord $c(s) = \alpha + \beta s$ lies above $s^{-1/2}$ and $\sqrt s\,c(s)$ peaks at
    $s^* = -\alpha/(3\beta)$. (The closed-form bound is ``tfconstruct.theory.interpolation.INV_SQRT_RELATIVE``.)
    """

    domain: NormalisationDomain
    width: int
    interpolant: PiecewiseLinear = field(init=False, repr=False)

    def __post_init__(self) -> None:
        integer_in("width", self.width, 1)
        knots = geometric_knots(self.domain.low, self.domain.high, self.width)
        object.__setattr__(self, "interpolant", PiecewiseLinear.interpolate(lambda s: s**-0.5, knots, "s^(-1/2)"))

    @property
    def relative_error(self) -> float:
        knots, values = self.interpolant.knots, self.interpolant.values
        slope = np.diff(values) / np.diff(knots)
        intercept = values[:-1] - slope * knots[:-1]
        peak = np.clip(-intercept / (3.0 * slope), knots[:-1], knots[1:])
        return float(np.max(np.sqrt(peak) * (intercept + slope * peak) - 1.0))

    @classmethod
    def min_width(cls, domain: NormalisationDomain, tolerance: float, max_width: int = 1 << 20) -> int:
        """The smallest width whose :attr:`relative_error` is at most ``tolerance`` (bisection; the error falls with $M$)."""
        positive("tolerance", tolerance)
        low, high = 1, 1
        while cls(domain, high).relative_error > tolerance:
            low, high = high + 1, 2 * high
            if high > max_width:
                raise ValueError(f"no width up to {max_width} reaches a relative error {tolerance:g} on {domain}")
        while low < high:
            middle = (low + high) // 2
            if cls(domain, middle).relative_error <= tolerance:
                high = middle
            else:
                low = middle + 1
        return high

    def add_to(self, builder: MLPBuilder, src: str, dst: str, *, parameter: str = "domain=(a, b)") -> MLPBuilder:
        r"""Units computing ``dst`` $\mathrel{+}= \hat\phi_M(src)$ ($M + 2$ units, right-anchored); the forward pass
        checks that ``src`` stays in the domain $[a, b]$ and names ``parameter`` (what sets it) when it does not."""
        return self.interpolant.add_to(builder, src, dst, anchor="right", parameter=parameter)


def inverse_sqrt_heads(
    layout: ResidualLayout,
    src: str,
    vec: str,
    dst: str,
    normaliser: InverseSqrt,
    scoring: ExactScoring = "relu",
    *,
    parameter: str = "domain=(a, b)",
    label: str = "rescale",
    anchor: Literal["left", "right"] = "right",
) -> MultiHeadAttention:
    r"""``dst`` $\mathrel{+}= \hat\phi_M(s)\,$``vec`` with $s$ = ``src`` (broadcast): the normaliser's hinges as
    ReLU attention heads (the shape of Lemma B.2 of *Learning Spectral Methods by Transformers*), so the width is
    the number of heads and no MLP computes $\hat\phi_M$ into a slot of its own.

    With the knots $t_m$, hinge weights $w_m$ and end values of ``normaliser.interpolant``
    (:mod:`~tfconstruct.constructions.piecewise`), ``anchor="right"`` (the MLP's form) has one head per knot with
    score $t_m\,\mathrm{one}_i\mathrm{one}_j - s_i\,\mathrm{one}_j$ and value $w_m\,$``vec``,

    .. math::

        \frac1N\sum_j \sigma(t_m - s)\,w_m\,\mathrm{vec}_j = w_m\,\sigma(t_m - s)\,\mathrm{vec}
        \qquad (\mathrm{vec}\text{ broadcast}),

    and one constant head (score $\mathrm{one}_i\mathrm{one}_j = 1$, value $\hat\phi_M(b)\,$``vec``): $M + 2$
    heads adding $\big(\hat\phi_M(b) + \sum_m w_m\sigma(t_m - s)\big)\mathrm{vec} = \hat\phi_M(s)\,\mathrm{vec}$,
    the same function as the MLP's, exactly in exact arithmetic. On $[a, b]$ every active term is $\ge 0$ (only
    $w_0 < 0$, whose hinge opens below $a$), so nothing cancels. ``anchor="left"`` scores $s - t_m$ with the
    constant $\hat\phi_M(a)$: the same function again, but at $s$ its terms reach $|w_0|(s - a) \sim
    (s/a)^{3/2}\hat\phi_M(s)$ and cancel. Each head rounds its own multiple of ``vec`` coordinate by coordinate,
    so unlike a rounded scalar times ``vec`` (the MLP variant) that cancellation's round-off is not parallel to
    ``vec``: it turns the direction.

    The hinge heads score with ReLU whatever ``scoring`` is (the hinge is the point); the constant head uses
    ``scoring``. The layer records the domain $[a, b]$ of ``src`` (``parameter`` names what sets it), which the
    forward pass checks as it does an MLP's (:mod:`~tfconstruct.constructions.domains`).

    Raises:
        ValueError: on an ``anchor`` other than ``"left"`` or ``"right"``.
    """
    if anchor not in ("left", "right"):
        raise ValueError(f"anchor must be 'left' or 'right', got {anchor!r}")
    interpolant = normaliser.interpolant
    sign = 1.0 if anchor == "left" else -1.0
    heads = [
        AttentionHead(
            Bilinear(layout).add(src, "one", sign).add("one", "one", -sign * float(t)),
            LinearMap(layout).add(vec, dst, float(w)),
            "relu",
            f"hinge{m} {vec} -> {dst}",
        )
        for m, (t, w) in enumerate(zip(interpolant.knots, interpolant.hinge_weights))
    ]
    constant = float(interpolant.values[0] if anchor == "left" else interpolant.values[-1])
    heads.append(
        AttentionHead(
            Bilinear(layout).add("one", "one"),
            LinearMap(layout).add(vec, dst, constant),
            scoring,
            f"const {vec} -> {dst}",
        )
    )
    domain = InputDomain(
        src,
        normaliser.domain.low,
        normaliser.domain.high,
        parameter,
        interpolant=interpolant,
        output=dst,
        anchor=anchor,
    )
    return MultiHeadAttention(heads, label=label, domains=(domain,))
