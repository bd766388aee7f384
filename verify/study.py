r"""The sweep framework behind ``tfconstruct sweep <study>``: grid parameters, bound columns, studies and their CLI.

A :class:`Study` is a batched :class:`~tfconstruct.verify.sweep.Sweep` measure
``measure(config, seeds) -> [metrics, ...]`` over the grid *instance parameters x depth x width*: it builds one
instance per seed, runs the construction **once** on the whole batch, compares every replicate with the family's
numpy reference, and returns tidy metrics plus, for each metric a theorem covers, the bound evaluated at that
instance (column ``<metric>_bound``; NaN where the theorem's assumption does not hold for the row). Seeds depend on
the instance parameters only (``seed_keys``), so every depth and width of one replicate sees the same instance
(common random numbers). The families' studies live in ``verify/<family>/sweep.py``.

A measured value violates a :class:`BoundColumn` when it exceeds its bound by more than the column's round-off
allowance; :meth:`Study.run` then plots error vs depth (semilog, at the largest width) and vs width (log-log, at
the largest depth), prints a summary and returns 1 on any violation. Every number of a row is a function of its
seed and grid point, except that batched products agree bit for bit only for the same batch: a run interrupted
*between two rows of one grid point* resumes with round-off-level differences in that grid point.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from .plots import median_and_band, plot_error_vs_depth, plot_error_vs_width
from .sweep import Sweep, SweepMismatch, pivot

Config = Mapping[str, Any]
Metrics = dict[str, float]
Grid = Mapping[str, Sequence[Any]]
NOT_APPLICABLE = float("nan")
RELATIVE = 1e-12  # relative float64 allowance of a bound check (bounds that are attained, large values)


@dataclass(frozen=True)
class Param:
    """A grid parameter and its CLI flag ``--name``: values of type ``kind`` with ``valid(value)`` true."""

    name: str
    kind: type
    valid: Callable[[float], bool]
    requirement: str
    label: str
    help: str


PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        Param(
            "depth",
            int,
            lambda v: v >= 1,
            "an integer >= 1",
            "L",
            "algorithm steps emulated: power steps, EM iterations, tensor iterations per component",
        ),
        Param(
            "width",
            int,
            lambda v: v >= 1,
            "an integer >= 1",
            "M",
            "knot intervals M of the approximating MLPs (approximation study: the part's width)",
        ),
        Param("dim", int, lambda v: v >= 1, "an integer >= 1", "d", "data dimension d"),
        Param("tokens", int, lambda v: v >= 1, "an integer >= 1", "n", "data points n"),
        Param("clusters", int, lambda v: v >= 1, "an integer >= 1", "K", "mixture components K"),
        Param("gap", float, lambda v: 0 < v < 1, "in (0, 1)", "gap", "eigengap lambda_2 / lambda_1"),
        Param(
            "separation",
            float,
            lambda v: 0 < v < math.inf,
            "finite and > 0",
            "sep",
            "distance Delta between the cluster centres (in units of the noise sigma = 1)",
        ),
    ]
}


@dataclass(frozen=True)
class BoundColumn:
    r"""The claim ``metric <= bound (1 + relative) + round_off`` on every row whose bound applies (a finite bound).

    ``bound`` defaults to the column ``<metric>_bound``; ``round_off`` is an absolute float64 allowance, or the
    name of a column holding it; ``relative`` allows for the float64 evaluation of a bound that is attained
    (e.g. the power angle bound is an equality in $d = 2$).
    """

    metric: str
    round_off: float | str = 0.0
    bound: str = ""
    relative: float = RELATIVE

    @property
    def bound_column(self) -> str:
        return self.bound or f"{self.metric}_bound"

    def applies(self, row: Mapping[str, Any]) -> bool:
        return math.isfinite(row[self.bound_column])

    def allowance(self, row: Mapping[str, Any]) -> float:
        return row[self.round_off] if isinstance(self.round_off, str) else self.round_off

    def violated(self, row: Mapping[str, Any]) -> bool:
        """True if the bound applies and the measured value is above it (a NaN measurement is a violation)."""
        bound = row[self.bound_column]
        return self.applies(row) and not row[self.metric] <= bound + self.relative * abs(bound) + self.allowance(row)


def check_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[BoundColumn]) -> tuple[list[str], int]:
    """Lines of a table and the total number of violations. Per column: the rows where the bound applies, the
    violations, the largest measured value and the smallest slack bound/measured over the rows measured above
    the round-off allowance (below it the comparison is with round-off, not with the bound)."""
    lines = [f"  {'metric':18s} {'bound applies':>13s} {'violations':>10s} {'min slack':>10s} {'max measured':>12s}"]
    total = 0
    for column in columns:
        applicable = [r for r in rows if column.applies(r)]
        violations = sum(column.violated(r) for r in applicable)
        total += violations
        slacks = [
            r[column.bound_column] / r[column.metric]
            for r in applicable
            if r[column.metric] > column.allowance(r) and r[column.bound_column] > 0
        ]
        slack = f"{min(slacks):10.3g}" if slacks else f"{'-':>10s}"
        largest = max((r[column.metric] for r in rows), default=math.nan)
        lines.append(
            f"  {column.metric:18s} {len(applicable):>6d} of {len(rows):<4d} {violations:10d} {slack} {largest:12.3g}"
        )
    return lines, total


class SweepCommand(Protocol):
    """What ``tfconstruct sweep <name>`` runs: a named study with default grid values and replicates."""

    name: str
    description: str
    defaults: dict[str, list[Any]]
    replicates: int

    def validate(self, grid: Grid) -> list[str]:
        """Cross-parameter problems with ``grid`` (empty when it can run)."""
        ...

    def run(self, out: Path, grid: Grid, replicates: int, seed: int) -> int:
        """Run (or resume) the sweep in ``out``; 1 if a measured value exceeds its bound, else 0."""
        ...


@dataclass(frozen=True)
class Study:
    """A construction sweep: its measure, default grid (instance parameters, then ``depth`` and ``width``), bound
    columns, the metrics plotted against depth (semilog) and width (log-log), and cross-parameter validation."""

    name: str
    description: str
    measure: Callable[[Config, Sequence[int]], list[Metrics]]
    defaults: dict[str, list[Any]]
    replicates: int
    bounds: tuple[BoundColumn, ...]
    depth_metric: str
    width_metric: str
    expected_width_slope: float
    floor: float | None  # float64 floor of the depth metric (drawn; slopes and bounds stop above it)
    constants: dict[str, Any]
    check_grid: Callable[[Grid], list[str]]

    @property
    def instance_params(self) -> list[str]:
        return [name for name in self.defaults if name not in ("depth", "width")]

    def validate(self, grid: Grid) -> list[str]:
        return self.check_grid(grid)

    def sweep(
        self, out_dir: str | Path, grid: Grid, replicates: int, *, base_seed: int = 0, progress: bool = True
    ) -> Sweep:
        """The :class:`Sweep` (batched; seeds shared across depth and width; the study's constants recorded)."""
        ordered = {name: list(grid[name]) for name in self.defaults}
        return Sweep(
            ordered,
            replicates,
            self.measure,
            out_dir,
            base_seed=base_seed,
            batched=True,
            extra={"study": self.name, "constants": self.constants},
            seed_keys=self.instance_params,
            progress=progress,
        )

    def run(self, out: Path, grid: Grid, replicates: int, seed: int) -> int:
        """Run (or resume) the study over ``grid`` in ``out``, plot, print the summary; 1 on a bound violation."""
        started = time.perf_counter()
        rows = self.sweep(out, grid, replicates, base_seed=seed).run()
        print(f"{self.name}: {len(rows)} rows in {out / 'results.csv'} ({time.perf_counter() - started:.1f} s)")
        for line in self.summarise(rows, out):
            print(line)
        lines, violations = check_table(rows, self.bounds)
        for line in lines:
            print(line)
        for row in rows:
            for column in self.bounds:
                if column.violated(row):
                    print(f"  BOUND VIOLATED ({column.metric}): {row}", file=sys.stderr)
        return 1 if violations else 0

    def summarise(self, rows: Sequence[Mapping[str, Any]], out: Path) -> list[str]:
        """Write ``<study>_error_vs_depth.png`` (at the largest width) and ``<study>_error_vs_width.png`` (at the
        largest depth), one curve per combination of the instance parameters that vary, bounds dashed; return lines
        with the fitted slopes and the medians."""
        depths = sorted({r["depth"] for r in rows})
        widths = sorted({r["width"] for r in rows})
        groups = _groups(rows, self.instance_params)
        lines = []
        for axis, fixed, metric, xs in (
            ("depth", ("width", widths[-1]), self.depth_metric, depths),
            ("width", ("depth", depths[-1]), self.width_metric, widths),
        ):
            curves, bounds = {}, {}
            for label, where in groups.items():
                selection = {**where, fixed[0]: fixed[1]}
                curves[label] = pivot(rows, axis, metric, where=selection)[1][metric]
                bound = pivot(rows, axis, f"{metric}_bound", where=selection)[1][f"{metric}_bound"]
                median = median_and_band(bound)[0]
                if axis == "depth" and self.floor is not None:
                    median = np.where(median > self.floor, median, np.nan)  # drawn down to the float floor
                if np.isfinite(median).any():
                    bounds[label] = median
            path = out / f"{self.name}_error_vs_{axis}.png"
            title = f"{self.description}: {metric} vs {axis} at {fixed[0]} {fixed[1]} (dashed: bound)"
            if axis == "depth":
                slopes = plot_error_vs_depth(
                    path, xs, curves, reference=bounds, floor=self.floor, title=title, ylabel=metric
                )
                fitted = ", ".join(f"{label}: rate {math.exp(s):.3g}/step" for label, s in slopes.items())
            else:
                slopes = plot_error_vs_width(
                    path,
                    xs,
                    curves,
                    bounds=bounds,
                    expected_slope=self.expected_width_slope,
                    title=title,
                    ylabel=metric,
                )
                fitted = ", ".join(f"{label}: slope {s:.2f}" for label, s in slopes.items())
                fitted += f" (theory {self.expected_width_slope:g})"
            lines.append(f"  {metric} vs {axis} ({fixed[0]} {fixed[1]}) -> {path}: {fitted}")
            lines.append(
                f"    {'median':27s}" + "".join(f"{PARAMS[axis].label + '=' + format(x, 'g'):10s}" for x in xs)
            )
            lines += [
                f"    {label:27s}" + "".join(f"{m:<10.2e}" for m in median_and_band(c)[0])
                for label, c in curves.items()
            ]
        return lines


def _groups(rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Label -> ``where`` filter for each combination of the parameters with several values (all of them, for the
    label only, when none varies)."""

    def label(names: Sequence[str], combo: Sequence[Any]) -> str:
        return ", ".join(f"{PARAMS[p].label}={v:g}" for p, v in zip(names, combo))

    values = {p: sorted({r[p] for r in rows}) for p in params}
    varying = [p for p in params if len(values[p]) > 1]
    if not varying:
        return {label(params, [values[p][0] for p in params]): {}}
    combos = sorted({tuple(r[p] for p in varying) for r in rows})
    return {label(varying, combo): dict(zip(varying, combo)) for combo in combos}


# ------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser, commands: Mapping[str, SweepCommand]) -> None:
    """The ``sweep`` subcommand's arguments: the study, the output folder, one flag per grid parameter."""
    parser.add_argument(
        "study",
        choices=list(commands),
        help="; ".join(f"{name}: {command.description}" for name, command in commands.items()),
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (re-running resumes it)")
    for param in PARAMS.values():
        flags = ["--width", "--widths"] if param.name == "width" else [f"--{param.name}"]
        parser.add_argument(*flags, dest=param.name, type=param.kind, nargs="+", metavar=param.label, help=param.help)
    parser.add_argument("--replicates", type=int, help="random instances per grid point (default: per study)")
    parser.add_argument("--seed", type=int, default=0, help="base seed every row's seed is derived from")
    defaults = [
        f"{name}: "
        + ", ".join(f"--{k} {' '.join(map(str, v))}" for k, v in command.defaults.items())
        + f", --replicates {command.replicates}"
        for name, command in commands.items()
    ]
    parser.epilog = "defaults per study -- " + "; ".join(defaults)


def grid_from_args(
    args: argparse.Namespace, defaults: Mapping[str, list[Any]]
) -> tuple[dict[str, list[Any]], list[str]]:
    """The grid (given values or the study's defaults) and every problem with it: flags the study does not use,
    values outside a parameter's range, duplicates."""
    grid, errors = {}, []
    for name, param in PARAMS.items():
        given = getattr(args, name)
        if name not in defaults:
            if given is not None:
                errors.append(
                    f"--{name} does not apply to the {args.study} study (it takes "
                    + ", ".join(f"--{k}" for k in defaults)
                    + ")"
                )
            continue
        values = defaults[name] if given is None else given
        bad = [v for v in values if not param.valid(v)]
        if bad:
            errors.append(f"--{name} must be {param.requirement}, got {' '.join(map(str, bad))}")
        if len(set(values)) != len(values):
            errors.append(f"--{name} has repeated values {' '.join(map(str, values))}")
        grid[name] = list(values)
    if args.replicates is not None and args.replicates < 1:
        errors.append(f"--replicates must be an integer >= 1, got {args.replicates}")
    return grid, errors


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, commands: Mapping[str, SweepCommand]) -> int:
    """Validate, run the sweep on one torch thread (tiny matrices), write the plots, print the summary.

    Returns 1 if a measured value exceeds its bound, else 0; invalid arguments, and an output folder holding a
    different sweep, exit through ``parser.error`` (status 2).
    """
    command = commands[args.study]
    grid, errors = grid_from_args(args, command.defaults)
    if not errors:
        errors = command.validate(grid)
    if errors:
        parser.error("; ".join(errors))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return command.run(args.out, grid, args.replicates or command.replicates, args.seed)
    except SweepMismatch as mismatch:
        parser.error(str(mismatch))
    finally:
        torch.set_num_threads(threads)
