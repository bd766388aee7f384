r"""Measured error against a proved bound: pass with a slack, or fail loudly with the instance.

A bound from :mod:`tfconstruct.theory` is a claim ``measured <= bound(values)`` for every instance
inside the theorem's assumptions. :func:`check_bound` evaluates the bound at the instance's
symbol values, compares, and raises :class:`BoundViolation` (an ``AssertionError``, so
pytest and hypothesis report it as a failure and shrink the instance) with everything needed
to reproduce it: the bound's name and LaTeX, both numbers and the full instance. A violated
bound means the proof (or the construction) is wrong.

The slack $\text{bound}/\text{measured}$ says how tight the bound is: $\ge 1$ always,
close to 1 for a sharp bound ($\infty$ when the measured error is exactly 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from tfconstruct.theory.bound import Bound


@dataclass(frozen=True)
class BoundCheck:
    """One comparison of a measured error with a bound evaluated at the same instance."""

    name: str
    measured: float
    bound: float
    slack: float
    passed: bool
    instance: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    atol: float = 0.0

    @property
    def at_round_off(self) -> bool:
        """Measured within the round-off allowance: a comparison with round-off, not with the bound."""
        return math.isfinite(self.measured) and self.measured <= self.atol


class BoundViolation(AssertionError):
    """A measured error exceeded its bound; the message names the bound and the instance."""

    def __init__(self, bound: Bound, check: BoundCheck):
        self.check = check
        lines = [
            f"BOUND VIOLATED: {bound.name!r}",
            f"  claim:    {bound.latex()}",
            f"  assumes:  {bound.assumptions}",
            f"  measured {check.measured!r} > bound {check.bound!r} (slack {check.slack:.4g} < 1)",
            f"  symbol values: {_format_mapping(check.values)}",
            f"  instance: {_format_mapping(check.instance)}",
        ]
        super().__init__("\n".join(lines))


def check_bound(
    bound: Bound,
    measured: float,
    *,
    instance: dict[str, Any],
    raise_on_violation: bool = True,
    atol: float = 0.0,
    **values: float,
) -> BoundCheck:
    """Compare ``measured`` with ``bound(**values)``.

    Args:
        bound: the claim.
        measured: the observed error on this instance (NaN or inf counts as a violation).
        instance: what generated the measurement (seed, sizes, parameters, ...); printed on failure.
        raise_on_violation: raise :class:`BoundViolation` when the bound fails (default); with
            ``False`` the failing :class:`BoundCheck` is returned for collection.
        atol: an absolute round-off allowance (e.g. a few float64 ulps of the output scale),
            for bounds that are exact up to floating point.
        **values: the bound's symbols by name (e.g. ``M=16, a=0.1, b=10``).

    Raises:
        BoundViolation: if ``measured > bound + atol`` and ``raise_on_violation``.
        ValueError: if a symbol value is missing, or ``atol`` is negative.
    """
    if not atol >= 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    value = bound(**values)
    measured = float(measured)
    passed = math.isfinite(measured) and measured <= value + atol
    check = BoundCheck(
        name=bound.name,
        measured=measured,
        bound=value,
        slack=_slack(value, measured),
        passed=passed,
        instance=dict(instance),
        values={k: float(v) for k, v in values.items()},
        atol=float(atol),
    )
    if not passed and raise_on_violation:
        raise BoundViolation(bound, check)
    return check


def slack_table(checks: Iterable[BoundCheck]) -> str:
    """A Markdown table per bound: checks, failures, checks at round-off, min / median slack, largest measured error.

    A check measured within its round-off allowance ``atol`` (e.g. an exactness bound of 0 met to round-off) is
    counted as at round-off and left out of the slack, which compares a measurement with its bound.
    """
    by_name: dict[str, list[BoundCheck]] = {}
    for check in checks:
        by_name.setdefault(check.name, []).append(check)
    lines = [
        "| bound | checks | violations | at round-off | min slack | median slack | max measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, group in by_name.items():
        slacks = np.array([c.slack for c in group if not c.at_round_off], dtype=np.float64)
        failures = sum(not c.passed for c in group)
        marker = f"**{failures}**" if failures else "0"
        slack = f"{np.min(slacks):.3g} | {np.median(slacks):.3g}" if slacks.size else "— | —"
        lines.append(
            f"| `{name}` | {len(group)} | {marker} | {sum(c.at_round_off for c in group)} | {slack} "
            f"| {max(c.measured for c in group):.3g} |"
        )
    return "\n".join(lines)


def _slack(bound: float, measured: float) -> float:
    if not math.isfinite(measured):
        return 0.0
    if measured == 0:
        return math.inf
    return bound / measured


def _format_mapping(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={_short(v)}" for k, v in mapping.items()) + "}" if mapping else "{}"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=17, threshold=10_000, max_line_width=10_000)
    return repr(value)
