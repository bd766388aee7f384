"""The bound checker catches a wrong bound with the instance that broke it, and passes a right one."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, strategies as st

from tfconstruct.constructions.piecewise import PiecewiseLinear, geometric_knots
from tfconstruct.theory.bound import Bound
from tfconstruct.theory.interpolation import INV_SQRT_RELATIVE
from tfconstruct.verify.bound_check import BoundCheck, BoundViolation, check_bound, slack_table

# The inverse-square-root bound with its constant 3/32 replaced by 1/1000: a "proof" with an error.
WRONG_INV_SQRT = Bound(
    name="inv_sqrt_wrong_constant",
    quantity=INV_SQRT_RELATIVE.quantity,
    expression=INV_SQRT_RELATIVE.expression * sp.Rational(32, 3) / 1000,
    assumptions=INV_SQRT_RELATIVE.assumptions,
)

# Instances inside the theorem's assumptions, built directly: 0 < a < b, M >= 1.
instances = st.fixed_dictionaries(
    {
        "a": st.floats(min_value=1e-3, max_value=10.0),
        "ratio": st.floats(min_value=1.5, max_value=1e4),
        "M": st.integers(min_value=1, max_value=64),
    }
)


def inv_sqrt_relative_error(low: float, high: float, width: int) -> float:
    r"""$\max_s |\sqrt{s}\,\hat\phi_M(s) - 1|$ of the hinge interpolant, on a grid 64x finer than the knots."""
    interpolant = PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(low, high, width))
    grid = geometric_knots(low, high, 64 * width)
    return float(np.max(np.abs(np.sqrt(grid) * interpolant(grid) - 1.0)))


@given(instances)
def test_right_bound_holds_with_slack_at_least_one(instance):
    low, width = instance["a"], instance["M"]
    high = low * instance["ratio"]
    measured = inv_sqrt_relative_error(low, high, width)
    check = check_bound(INV_SQRT_RELATIVE, measured, instance=instance, M=width, a=low, b=high)
    assert check.passed and check.slack >= 1.0


def test_wrong_bound_is_caught_with_the_instance_in_the_message():
    seen: list[dict] = []

    @given(instances)
    def check_wrong_bound(instance):
        seen.append(instance)
        low, width = instance["a"], instance["M"]
        high = low * instance["ratio"]
        measured = inv_sqrt_relative_error(low, high, width)
        check_bound(WRONG_INV_SQRT, measured, instance=instance, M=width, a=low, b=high)

    with pytest.raises(BoundViolation) as caught:
        check_wrong_bound()
    message = str(caught.value)
    assert "BOUND VIOLATED: 'inv_sqrt_wrong_constant'" in message
    assert WRONG_INV_SQRT.latex() in message
    failing = caught.value.check
    assert not failing.passed and failing.slack < 1.0
    assert failing.measured > failing.bound
    assert failing.instance in seen
    for key, value in failing.instance.items():  # the full (shrunk) instance, reproducible from the message
        assert f"{key}={value!r}" in message
    low, width = failing.instance["a"], failing.instance["M"]
    remeasured = inv_sqrt_relative_error(low, low * failing.instance["ratio"], width)
    assert remeasured == failing.measured


def test_collecting_instead_of_raising_and_the_slack_table():
    right = check_bound(INV_SQRT_RELATIVE, 1e-3, instance={"seed": 1}, M=16, a=0.1, b=10.0)
    wrong = check_bound(WRONG_INV_SQRT, 1e-3, instance={"seed": 1}, raise_on_violation=False, M=16, a=0.1, b=10.0)
    exact = check_bound(INV_SQRT_RELATIVE, 0.0, instance={"seed": 2}, M=16, a=0.1, b=10.0)
    assert isinstance(wrong, BoundCheck) and not wrong.passed
    assert right.slack == pytest.approx(INV_SQRT_RELATIVE(M=16, a=0.1, b=10.0) / 1e-3)
    assert exact.passed and math.isinf(exact.slack)
    table = slack_table([right, exact, wrong])
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(rows) == {"`inv_sqrt_geometric`", "`inv_sqrt_wrong_constant`"}
    assert "| **1** |" in rows["`inv_sqrt_wrong_constant`"]
    assert f"| 1 | {right.slack:.3g} | {right.slack:.3g} |" in rows["`inv_sqrt_geometric`"]  # exact: at round-off


def test_an_exactness_bound_met_to_round_off_shows_no_slack():
    """A bound of 0 (an exact part) met within atol is 'at round-off', not 'min slack 0'."""
    exact = Bound("exact_part", "e", sp.Integer(0) * sp.Symbol("M"), "an exact part")
    checks = [check_bound(exact, e, instance={}, atol=1e-14, M=1) for e in (3e-16, 0.0)]
    assert all(c.passed and c.at_round_off for c in checks)
    row = slack_table(checks).splitlines()[2]
    assert row == "| `exact_part` | 2 | 0 | 2 | — | — | 3e-16 |"


def test_nan_measurement_is_a_violation_and_atol_allows_round_off():
    with pytest.raises(BoundViolation, match="nan"):
        check_bound(INV_SQRT_RELATIVE, float("nan"), instance={}, M=4, a=1.0, b=2.0)
    value = INV_SQRT_RELATIVE(M=4, a=1.0, b=2.0)
    with pytest.raises(BoundViolation):
        check_bound(INV_SQRT_RELATIVE, value * (1 + 1e-9), instance={}, M=4, a=1.0, b=2.0)
    assert check_bound(INV_SQRT_RELATIVE, value + 1e-15, instance={}, atol=1e-14, M=4, a=1.0, b=2.0).passed
    with pytest.raises(ValueError, match="atol"):
        check_bound(INV_SQRT_RELATIVE, 0.0, instance={}, atol=-1.0, M=4, a=1.0, b=2.0)


def test_missing_symbol_value_is_a_clear_error():
    with pytest.raises(ValueError, match=r"needs values for \['b'\]"):
        check_bound(INV_SQRT_RELATIVE, 0.0, instance={}, M=4, a=1.0)
