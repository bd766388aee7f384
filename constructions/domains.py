r"""The input domains of approximating MLPs, and what a forward pass does when an input leaves one.

A hinge interpolant $\hat f$ of $f$ on knots $t_0 < \dots < t_M$ is accurate on $[t_0, t_M]$ only; outside it is
flat, so $\hat f(s)$ is a plausible number far from $f(s)$ (the $s^{-1/2}$ normaliser at $s = 10^{-4}$ with
$[a, b] = [10^{-2}, 10^2]$ returns $10$ where $100$ is right). Every
:meth:`~tfconstruct.constructions.piecewise.PiecewiseLinear.add_to` therefore records an :class:`InputDomain` on
the MLP it builds: the subspace it reads, $[t_0, t_M]$, and the construction parameter that sets it (an attention
layer whose heads sum hinges, :func:`~tfconstruct.constructions.gadgets.inverse_sqrt_heads`, records one in its
``domains`` the same way). The forward pass checks each such sublayer's input (its minimum and maximum per
instance, cheap) and, by default, raises a :class:`DomainError` naming the sublayer, the instance, the value and
the domain. ``outside="record"`` instead
counts each :class:`DomainViolation` in the trace, for studies that probe outside on purpose.

Round-off at the ends is not a violation: a value within ``RELATIVE_SLACK`` of an end is inside. A domain whose
lower side is clamped by design (``clamp_below``: EM's $\log w$ floors responsibilities at $\varepsilon$, a
clipping its error bound accounts for) is checked above only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

RELATIVE_SLACK = 1e-9


@dataclass(frozen=True)
class InputDomain:
    r"""An approximating MLP is accurate while ``subspace`` stays in [``low``, ``high``] on the tokens whose flag
    ``tokens`` is 1 (all tokens when None: the others' outputs are not used); ``parameter`` names what sets the domain
    (for the error message); ``clamp_below`` marks a lower end that clips by design. ``interpolant`` (a
    :class:`~tfconstruct.constructions.piecewise.PiecewiseLinear`, when the sublayer computes one) adds
    ``scale`` times its value into ``output`` in its ``anchor`` form (``"right"``: hinges $\sigma(t_m - s)$, open
    below their knot; ``"left"``: $\sigma(s - t_m)$): what a reader draws against the target function."""

    subspace: str
    low: float
    high: float
    parameter: str = ""
    clamp_below: bool = False
    tokens: str | None = None
    interpolant: Any = field(default=None, compare=False, repr=False)
    output: str | None = None
    scale: float = 1.0
    anchor: str = "right"

    def outside(self, values: torch.Tensor, used: torch.Tensor | None = None) -> list[tuple[int, float]]:
        """``(instance, value)`` for each instance of ``values`` ``(batch, tokens, k)`` with an entry outside, on the
        ``used`` tokens ``(batch, tokens)`` (all when None): the entry farthest outside."""
        if used is not None:
            keep = used.unsqueeze(-1)
            lowest = values.masked_fill(~keep, float("inf")).amin(dim=(1, 2))
            highest = values.masked_fill(~keep, float("-inf")).amax(dim=(1, 2))
        else:
            lowest, highest = values.amin(dim=(1, 2)), values.amax(dim=(1, 2))
        found = []
        below = (
            lowest < self.low - RELATIVE_SLACK * abs(self.low)
            if not self.clamp_below
            else torch.zeros_like(lowest, dtype=torch.bool)
        )
        above = highest > self.high + RELATIVE_SLACK * abs(self.high)
        for b in torch.nonzero(below | above).flatten().tolist():
            found.append((b, float(lowest[b]) if bool(below[b]) else float(highest[b])))
        return found


@dataclass(frozen=True)
class DomainViolation:
    """An approximating sublayer saw ``value`` in ``subspace`` of instance ``instance``, outside ``domain``."""

    sublayer: str
    instance: int
    subspace: str
    value: float
    domain: InputDomain

    def describe(self) -> str:
        end = "lower end" if self.value < self.domain.low else "upper end"
        setter = f" (set by {self.domain.parameter})" if self.domain.parameter else ""
        return (
            f"sublayer {self.sublayer!r} read {self.subspace} = {self.value:.6g} in instance {self.instance}, outside "
            f"the domain [{self.domain.low:.6g}, {self.domain.high:.6g}] its interpolant is accurate on; move the "
            f"domain's {end}{setter} past {self.value:.3g}, with a margin (later steps may go further)"
        )


class DomainError(ValueError):
    """An approximating sublayer's input left its domain (the result would be a plausible wrong number)."""

    def __init__(self, violation: DomainViolation):
        super().__init__(violation.describe())
        self.violation = violation
