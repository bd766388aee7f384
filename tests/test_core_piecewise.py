"""Hinge MLPs: the ReLU expansion interpolates exactly, the MLP computes it, the error obeys theory/ at rate M^-2."""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from tfconstruct.constructions import MLPBuilder, PiecewiseLinear, ResidualLayout, geometric_knots, uniform_knots
from tfconstruct.constructions.checks import as_batch, integer_in, positive
from tfconstruct.theory.interpolation import INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE
from tfconstruct.verify.rates import assert_rate


@given(low=st.floats(1e-3, 1.0), ratio=st.floats(2.0, 1e4), intervals=st.integers(1, 64))
def test_hinge_expansion_is_the_interpolant_and_flat_outside(low, ratio, intervals):
    knots = geometric_knots(low, low * ratio, intervals)
    f = PiecewiseLinear.interpolate(lambda s: s**-0.5, knots)
    s = np.geomspace(low, low * ratio, 257)
    np.testing.assert_allclose(f(s), np.interp(s, knots, knots**-0.5), rtol=1e-10)
    assert f(np.array(low / 10)) == pytest.approx(low**-0.5, rel=1e-12)
    assert f(np.array(low * ratio * 10)) == pytest.approx((low * ratio) ** -0.5, rel=1e-9)


def test_mlp_computes_the_hinge_expansion_elementwise():
    layout = ResidualLayout([("s", 3), ("one", 1), ("f", 3)])
    f = PiecewiseLinear.interpolate(np.log, geometric_knots(1e-3, 1.0, 12))
    mlp = f.add_to(MLPBuilder(layout, "log"), "s", "f", scale=2.0).build()
    s = torch.rand(2, 5, 3, dtype=torch.float64) * 1.2
    out = layout.read(mlp(layout.embed(2, 5, {"s": s, "one": 1.0})), "f")
    # the hinge sum cancels terms of size |w_m| (s - t_m); round-off scales with their total
    cancellation = 2.0 * np.abs(f.hinge_weights).sum() * 1.2 * np.finfo(np.float64).eps
    np.testing.assert_allclose(out.numpy(), 2.0 * f(s.numpy()), rtol=1e-13, atol=8 * cancellation)
    assert mlp.width == 3 * (12 + 2)


@pytest.mark.parametrize(
    "name, f, knots, grid, bound, relative",
    [
        (
            "inv_sqrt",
            lambda s: s**-0.5,
            lambda m: geometric_knots(1e-2, 1e2, m),
            np.geomspace(1e-2, 1e2, 40001),
            lambda m: INV_SQRT_RELATIVE(M=m, a=1e-2, b=1e2),
            True,
        ),
        (
            "log",
            np.log,
            lambda m: geometric_knots(1e-4, 1.0, m),
            np.geomspace(1e-4, 1.0, 40001),
            lambda m: LOG_ABSOLUTE(M=m, a=1e-4, b=1.0),
            False,
        ),
        (
            "square",
            np.square,
            lambda m: uniform_knots(-3.0, 3.0, m),
            np.linspace(-3.0, 3.0, 40001),
            lambda m: SQUARE_ABSOLUTE(M=m, R=3.0),
            False,
        ),
    ],
)
def test_interpolation_error_below_bound_at_rate_minus_two(name, f, knots, grid, bound, relative):
    widths = [8, 16, 32, 64, 128]
    errors = []
    for m in widths:
        approx = PiecewiseLinear.interpolate(f, knots(m))(grid)
        err = np.abs(approx / f(grid) - 1) if relative else np.abs(approx - f(grid))
        errors.append(err.max())
        # the square bound is attained at knot midpoints, so allow the hinge sum's round-off on top of it
        assert errors[-1] <= bound(m) * (1 + 1e-10), f"{name}: M={m} measured {errors[-1]:.3e} > bound {bound(m):.3e}"
    assert_rate(widths, errors, expected=-2.0, tolerance=0.15)


def test_knot_and_input_validation():
    with pytest.raises(ValueError, match="width .* must be an integer >= 1, got 0"):
        geometric_knots(0.1, 1.0, 0)
    with pytest.raises(ValueError, match="low > 0"):
        geometric_knots(0.0, 1.0, 4)
    with pytest.raises(ValueError, match="low < high"):
        uniform_knots(1.0, 1.0, 4)
    with pytest.raises(ValueError, match="strictly increasing"):
        PiecewiseLinear.interpolate(np.log, np.array([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="X contains non-finite"):
        as_batch("X", np.array([[1.0, np.nan]]), 3)
    with pytest.raises(ValueError, match="X must have 2 or 3 dimensions"):
        as_batch("X", np.ones(3), 3)
    with pytest.raises(ValueError, match="k must be an integer >= 1 and <= 4, got 5"):
        integer_in("k", 5, 1, 4)
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        positive("beta", float("inf"))
