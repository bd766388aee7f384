"""Measured error vs bound for each approximating part, on random instances inside the assumptions.

A *part* pairs a bound from :mod:`tfconstruct.theory` with (1) a random instance drawn inside the bound's
assumptions and (2) the measured sup error of the approximant of that width on the instance.
:func:`measure_part` is a :class:`~tfconstruct.verify.sweep.Sweep` measure (``config = {"part", "width"}``),
used by the theory report section and by ``tfconstruct sweep approximation``.

Sup errors are maxima over grids fine enough to contain (or come within round-off of) the
worst points, so measured <= true sup <= bound must hold; a grid that misses the worst point
can only make the check easier, never wrong.

Every row holds its instance's values (the bound's inputs but $M$ = ``width``), so its ``bound`` recomputes from
``results.csv`` alone with the part's registered bound (:attr:`Part.column`; ``config.json`` records each part's
bound under ``provenance.part_bounds``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tfconstruct.constructions.piecewise import PiecewiseLinear, geometric_knots, uniform_knots
from tfconstruct.theory.approximation import PRODUCT_VIA_SQUARES, SIGMOID_STAIRCASE_SCALED
from tfconstruct.theory.bound import Bound
from tfconstruct.theory.interpolation import INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE

from ..plots import plot_error_vs_width
from ..study import BoundColumn, Grid, width_param
from ..sweep import Sweep, pivot
from .approximants import product_via_squares, sigmoid_staircase

Instance = dict[str, float]
ROUND_OFF = 1e-12  # float64 allowance relative to the function's scale on the range (sums of ~M hinges)


@dataclass(frozen=True)
class Part:
    """An approximating part: its bound, an instance sampler, the measured error at a width,
    and the round-off allowance (absolute) for the bound check on an instance."""

    name: str
    bound: Bound
    draw: Callable[[np.random.Generator], Instance]
    error: Callable[[int, Instance], float]
    round_off: Callable[[Instance], float]
    expected_slope: float
    description: str

    @property
    def column(self) -> BoundColumn:
        """The claim error <= bound + round_off on this part's rows; the bound recomputes from a row alone (the
        instance's values are columns of it, $M$ is ``width``)."""
        return BoundColumn(
            "error", "round_off", bound="bound", relative=0.0, theory=self.bound, inputs=(("M", "width"),)
        )


def _geometric_range(rng: np.random.Generator) -> Instance:
    low = 10 ** rng.uniform(-3.0, 0.0)
    return {"a": low, "b": low * 10 ** rng.uniform(1.0, 4.0)}


def _inv_sqrt_error(width: int, inst: Instance) -> float:
    phi = PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(inst["a"], inst["b"], width))
    grid = geometric_knots(inst["a"], inst["b"], 32 * width)
    return float(np.max(np.abs(np.sqrt(grid) * phi(grid) - 1.0)))


def _log_error(width: int, inst: Instance) -> float:
    ell = PiecewiseLinear.interpolate(np.log, geometric_knots(inst["a"], inst["b"], width))
    grid = geometric_knots(inst["a"], inst["b"], 32 * width)
    return float(np.max(np.abs(ell(grid) - np.log(grid))))


def _square_error(width: int, inst: Instance) -> float:
    square = PiecewiseLinear.interpolate(np.square, uniform_knots(-inst["R"], inst["R"], width))
    grid = uniform_knots(-inst["R"], inst["R"], 32 * width)  # contains every knot-interval midpoint
    return float(np.max(np.abs(square(grid) - grid**2)))


def _product_error(width: int, inst: Instance) -> float:
    radius = inst["R"]
    grid = np.linspace(-radius, radius, min(4 * width, 400) + 1)  # spacing h/8 for width <= 100
    x, y = np.meshgrid(grid, grid)
    return float(np.max(np.abs(product_via_squares(x, y, radius, width) - x * y)))


def _sine(inst: Instance) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: inst["amplitude"] * np.sin(inst["frequency"] * u + inst["phase"])


def _draw_sine(rng: np.random.Generator) -> Instance:
    amplitude, frequency = rng.uniform(0.5, 2.0), rng.uniform(1.0, 6.0)
    low = rng.uniform(-1.0, 1.0)
    return {
        "amplitude": amplitude,
        "frequency": frequency,
        "phase": rng.uniform(0.0, 2 * np.pi),
        "a": low,
        "b": low + rng.uniform(1.0, 4.0),
        "L_g": amplitude * frequency,
        "c": 8.0,
    }


def _staircase_error(width: int, inst: Instance) -> float:
    g = _sine(inst)
    sharpness = inst["c"] * width / (inst["b"] - inst["a"])
    grid = np.linspace(inst["a"], inst["b"], 32 * width + 1)
    return float(np.max(np.abs(sigmoid_staircase(g, inst["a"], inst["b"], width, sharpness)(grid) - g(grid))))


PARTS: dict[str, Part] = {
    part.name: part
    for part in [
        Part(
            "inv_sqrt",
            INV_SQRT_RELATIVE,
            _geometric_range,
            _inv_sqrt_error,
            lambda inst: ROUND_OFF,
            -2.0,
            r"$s^{-1/2}$ on $M$ geometric intervals of $[a, b]$, relative error",
        ),
        Part(
            "log",
            LOG_ABSOLUTE,
            _geometric_range,
            _log_error,
            lambda inst: ROUND_OFF * max(abs(np.log(inst["a"])), abs(np.log(inst["b"])), 1.0),
            -2.0,
            r"$\log s$ on $M$ geometric intervals of $[a, b]$",
        ),
        Part(
            "square",
            SQUARE_ABSOLUTE,
            lambda rng: {"R": rng.uniform(0.5, 5.0)},
            _square_error,
            lambda inst: ROUND_OFF * inst["R"] ** 2,
            -2.0,
            r"$s^2$ on $M$ uniform intervals of $[-R, R]$",
        ),
        Part(
            "product",
            PRODUCT_VIA_SQUARES,
            lambda rng: {"R": rng.uniform(0.5, 3.0)},
            _product_error,
            lambda inst: ROUND_OFF * 4 * inst["R"] ** 2,
            -2.0,
            r"$xy$ from two squares on $[-2R, 2R]$, $|x|, |y| \leq R$",
        ),
        Part(
            "staircase",
            SIGMOID_STAIRCASE_SCALED,
            _draw_sine,
            _staircase_error,
            lambda inst: ROUND_OFF * inst["amplitude"],
            -1.0,
            r"$A\sin(\omega u + \phi)$ by $M$ softmax-head sigmoids, $\gamma h = 8$",
        ),
    ]
}


def measure_part(config: dict, seed: int) -> dict[str, float]:
    """Sweep measure: the error, bound and slack of ``config["part"]`` at ``config["width"]`` on a random instance."""
    part = PARTS[config["part"]]
    instance = part.draw(np.random.default_rng(seed))
    width = int(config["width"])
    error = part.error(width, instance)
    bound = part.bound(M=width, **instance)
    return {
        "error": error,
        "bound": bound,
        "slack": bound / error if error > 0 else float("inf"),
        "round_off": part.round_off(instance),
        **instance,
    }


def approximation_sweep(
    out_dir: str | Path,
    parts: list[str],
    widths: list[int],
    replicates: int,
    *,
    base_seed: int = 0,
    progress: bool = True,
    fresh: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
) -> Sweep:
    """The width sweep of the named parts (same instance at every width: ``seed_keys=["part"]``)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown approximating parts {sorted(unknown)}; available: {sorted(PARTS)}")
    return Sweep(
        {"part": parts, "width": widths},
        replicates,
        measure_part,
        out_dir,
        base_seed=base_seed,
        seed_keys=["part"],
        fresh=fresh,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        provenance={"part_bounds": {name: PARTS[name].bound.name for name in parts}},
    )


class ApproximationStudy:
    """``tfconstruct sweep approximation``: error vs width of every approximating part, one PNG per part."""

    name = "approximation"
    description = "error vs width of every approximating part (hinge interpolants, product, softmax staircase)"
    params = (width_param([8, 16, 32, 64, 128, 256], "the parts' width M (knot intervals, or heads)"),)
    replicates = 8

    def validate(self, grid: Grid) -> list[str]:
        return []

    def run(
        self, out: Path, grid: Grid, replicates: int, seed: int, *, workers: int = 1, scheduler: str | None = None
    ) -> int:
        rows = approximation_sweep(
            out, list(PARTS), list(grid["width"]), replicates, base_seed=seed, workers=workers, scheduler=scheduler
        ).run()
        print(f"{len(rows)} rows in {out / 'results.csv'}")
        failed = False
        for name, part in PARTS.items():
            column = part.column
            xs, errors = pivot(rows, "width", "error", where={"part": name})
            _, bounds = pivot(rows, "width", "bound", where={"part": name})
            mine = [r for r in rows if r["part"] == name]
            violations = [r for r in mine if column.violated(r)]
            failed |= bool(violations)
            slope = plot_error_vs_width(
                out / f"{name}.png",
                xs,
                {name: errors["error"]},
                bounds={name: np.median(bounds["bound"], axis=0)},
                expected_slope=part.expected_slope,
                title=part.description,
                ylabel="sup error",
            )[name]
            print(
                f"{name:10s} slope {slope:6.3f} (theory {part.expected_slope:g}), "
                f"min slack {min(r['slack'] for r in mine):.4g}, violations {len(violations)}  -> {out / (name + '.png')}"
            )
            for row in violations:
                print(f"  BOUND VIOLATED: {row}", file=sys.stderr)
        return 1 if failed else 0


STUDY = ApproximationStudy()
