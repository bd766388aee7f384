r"""Sweep studies behind ``tfconstruct sweep <study>``: declared parameters, bound columns, fitted rates, the CLI.

A :class:`Study` is a batched :class:`~tfconstruct.verify.sweep.Sweep` measure ``measure(config, seeds) ->
[metrics, ...]`` over the grid of its **declared parameters** (:class:`Param`: type, allowed range, default values,
label, help; each becomes a CLI flag of ``tfconstruct sweep <study>``). It builds one instance per seed, runs the
construction **once** on the whole batch, compares every replicate with the family's numpy reference, and returns
tidy metrics plus, for each metric a theorem covers, the bound evaluated at that instance (column ``<metric>_bound``;
NaN where the theorem's assumption does not hold for the row). Parameters marked ``knob`` (depth, width, ...) are the
construction's; the others describe the instance, and seeds depend on those only, so every knob value of one
replicate sees the same instance (common random numbers).

After the sweep, :meth:`Study.run` checks every :class:`BoundColumn` (measured <= bound up to a stated round-off) and
every :class:`Fit` (the fitted slope of a metric against one parameter, on its own window, against the expected
rate, a number or a per-row column), writes one figure per fit, prints a summary, and returns 1 on any violation.
Every number of a row is a function of its seed and grid point, except that batched products agree bit for bit only
for the same batch: a run interrupted *between two rows of one grid point* resumes with round-off-level differences.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

import numpy as np
import torch

from tfconstruct.theory.bound import Bound

from .executors import SchedulerUnavailable, TaskFailed, WorkerDied, scheduler_problem
from .plots import median_and_band, plot_errors
from .sweep import Sweep, SweepLocked, SweepMismatch, pivot

Config = Mapping[str, Any]
Metrics = dict[str, float]
Grid = Mapping[str, Sequence[Any]]
NOT_APPLICABLE = float("nan")
RESERVED_FLAGS = (
    "out",
    "replicates",
    "seed",
    "workers",
    "scheduler",
    "study",
    "plugin",
    "help",
)  # taken by `tfconstruct sweep` itself
RELATIVE = 1e-12  # relative float64 allowance of a bound check (bounds that are attained, large values)


@dataclass(frozen=True)
class Param:
    """A grid parameter and its CLI flag ``--name``: values of type ``kind`` with ``valid(value)`` true.

    ``knob`` marks a parameter of the construction (depth, width, ...), not of the instance: seeds do not depend on
    it, so every knob value of a replicate sees the same instance.
    """

    name: str
    kind: type
    default: tuple[Any, ...]
    valid: Callable[[Any], bool]
    requirement: str
    label: str
    help: str
    knob: bool = False

    def __post_init__(self) -> None:
        if not self.default:
            raise ValueError(f"parameter {self.name!r} needs at least one default value")
        bad = [v for v in self.default if not self.valid(v)]
        if bad:
            raise ValueError(f"parameter {self.name!r}: default values {bad} are not {self.requirement}")

    def problems(self, values: Sequence[Any]) -> list[str]:
        """What is wrong with ``values`` for this parameter (empty when nothing)."""
        errors = []
        bad = [v for v in values if not self.valid(v)]
        if bad:
            errors.append(f"--{self.name} must be {self.requirement}, got {' '.join(map(str, bad))}")
        if len(set(values)) != len(values):
            errors.append(f"--{self.name} has repeated values {' '.join(map(str, values))}")
        return errors


def prefix_values(config: Config, name: str) -> list[Any]:
    """The values of the prefix parameter ``name`` a measure is asked for: a list under a prefix study, one value
    otherwise (so one measure serves both)."""
    value = config[name]
    return list(value) if isinstance(value, (list, tuple)) else [value]


MAX_DEPTH = 100_000  # steps: the deepest model a sweep builds (its sublayers share weights, so memory stays small)
MAX_WIDTH = 65_536  # knot intervals: an MLP of M + 2 units per token
MAX_SIZE = 100_000  # tokens, dimensions, clusters: a stream of batch x tokens x D float64 values must fit memory


def depth_param(default: Sequence[int], help: str, *, minimum: int = 1, maximum: int = MAX_DEPTH) -> Param:
    """The number of algorithm steps a construction emulates (a knob), in ``[minimum, maximum]`` (0 allows a
    baseline)."""
    return Param(
        "depth", int, tuple(default), lambda v: minimum <= v <= maximum, f"an integer in [{minimum}, {maximum}]",
        "L", help, True,
    )  # fmt: skip


def width_param(default: Sequence[int], help: str, *, maximum: int = MAX_WIDTH) -> Param:
    """The width knob of a construction's approximating part (e.g. knot intervals $M$), in ``[1, maximum]``."""
    return Param(
        "width", int, tuple(default), lambda v: 1 <= v <= maximum, f"an integer in [1, {maximum}]", "M", help, True
    )


def positive_int(
    name: str, default: Sequence[int], label: str, help: str, *, minimum: int = 1, maximum: int = MAX_SIZE
) -> Param:
    """An integer instance parameter in ``[minimum, maximum]`` (the upper bound keeps its stream in memory)."""
    return Param(
        name, int, tuple(default), lambda v: minimum <= v <= maximum, f"an integer in [{minimum}, {maximum}]",
        label, help,
    )  # fmt: skip


def interval(name: str, default: Sequence[float], label: str, help: str, low: float, high: float) -> Param:
    """A float instance parameter in the open interval (``low``, ``high``) (``high`` may be ``inf``)."""
    return Param(name, float, tuple(default), lambda v: low < v < high, f"in ({low:g}, {high:g})", label, help)


@dataclass(frozen=True)
class BoundColumn:
    r"""The claim ``metric <= bound (1 + relative) + round_off`` on every row whose bound applies (a finite bound).

    ``bound`` defaults to the column ``<metric>_bound``; ``round_off`` is an absolute float64 allowance, or the
    name of a column holding it; ``relative`` allows for the float64 evaluation of a bound that is attained
    (e.g. the power angle bound is an equality in $d = 2$).

    ``theory`` is the registered :class:`~tfconstruct.theory.bound.Bound` the column evaluates (its name is recorded in
    ``config.json``); ``inputs`` maps a symbol of it to the row column holding its value where the names differ
    (``(("L", "depth"),)``; by default a symbol's column is its own name). When every input is a column of the rows,
    :meth:`evaluate` recomputes the bound column from a row alone (e.g. read back from ``results.csv``).
    """

    metric: str
    round_off: float | str = 0.0
    bound: str = ""
    relative: float = RELATIVE
    theory: Bound | None = None
    inputs: tuple[tuple[str, str], ...] = ()

    @property
    def bound_column(self) -> str:
        return self.bound or f"{self.metric}_bound"

    @property
    def bound_name(self) -> str | None:
        """The registered name of the bound this column evaluates (None: no registered bound, e.g. an exactness
        claim of 0)."""
        return self.theory.name if self.theory is not None else None

    @property
    def input_columns(self) -> dict[str, str]:
        """Symbol -> the row column holding its value, for every symbol of ``theory`` (empty without one)."""
        if self.theory is None:
            return {}
        renamed = dict(self.inputs)
        return {str(s): renamed.get(str(s), str(s)) for s in self.theory.symbols}

    def evaluate(self, row: Mapping[str, Any]) -> float:
        """``theory`` at the symbol values held by ``row``: the value of the bound column wherever it applies."""
        if self.theory is None:
            raise ValueError(f"bound column {self.bound_column!r} names no registered bound to evaluate")
        return self.theory(**{symbol: float(row[column]) for symbol, column in self.input_columns.items()})

    def applies(self, row: Mapping[str, Any]) -> bool:
        return math.isfinite(row[self.bound_column])

    def allowance(self, row: Mapping[str, Any]) -> float:
        return row[self.round_off] if isinstance(self.round_off, str) else self.round_off

    def violated(self, row: Mapping[str, Any]) -> bool:
        """True if the bound applies and the measured value is above it (a NaN measurement is a violation)."""
        bound = row[self.bound_column]
        return self.applies(row) and not row[self.metric] <= bound + self.relative * abs(bound) + self.allowance(row)


@dataclass(frozen=True)
class Fit:
    r"""A rate to fit: the median of ``metric`` over replicates against the parameter ``axis``.

    ``scale="semilog"`` fits $\log e = p\,x + c$ (a per-step rate $p = \log\rho$; depth), ``"loglog"`` fits
    $\log e = p \log x + c$ (an order; width). Points with ``x < fit_from`` (a number, or a column holding it per
    row) and medians within a factor 10 of ``floor`` are left out. ``expected`` is the theory's slope (a number, or
    a column holding it per row, e.g. $\log\max_i|1 - \eta\lambda_i|$); with a ``tolerance`` the fit is a check
    (``relative``: the tolerance is a fraction of $|$expected$|$).
    """

    metric: str
    axis: str
    scale: Literal["semilog", "loglog"]
    expected: float | str | None = None
    tolerance: float | None = None
    relative: bool = False
    fit_from: float | str | None = None
    floor: float | None = None

    def expected_for(self, rows: Sequence[Mapping[str, Any]]) -> float | None:
        """The expected slope of a curve drawn from ``rows`` (the median of a column, or the number)."""
        if self.expected is None or not isinstance(self.expected, str):
            return self.expected
        return float(np.median([r[self.expected] for r in rows]))

    def window_for(self, rows: Sequence[Mapping[str, Any]]) -> float | None:
        if self.fit_from is None or not isinstance(self.fit_from, str):
            return self.fit_from
        return float(np.max([r[self.fit_from] for r in rows]))

    def failed(self, slope: float, expected: float | None) -> bool:
        """True if the fit is a check and the slope is missing or off by more than the tolerance."""
        if self.tolerance is None or expected is None:
            return False
        allowed = self.tolerance * abs(expected) if self.relative else self.tolerance
        return not abs(slope - expected) <= allowed


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


class StudyError(ValueError):
    """A study cannot give the answer it promises: its measure returned a malformed row, or the grid holds too few
    points for one of its rate checks. The message names the study, the metric or flag, and what would work."""


class SweepCommand(Protocol):
    """What ``tfconstruct sweep <name>`` runs: a named study with declared parameters and replicates."""

    name: str
    description: str
    params: tuple[Param, ...]
    replicates: int

    def validate(self, grid: Grid) -> list[str]:
        """Cross-parameter problems with ``grid`` (empty when it can run)."""
        ...

    def run(
        self, out: Path, grid: Grid, replicates: int, seed: int, *, workers: int = 1, scheduler: str | None = None
    ) -> int:
        """Run (or resume) the sweep in ``out`` (here, in ``workers`` local processes, or on a dask ``scheduler``);
        1 if a measured value exceeds its bound or a rate check fails."""
        ...


@dataclass(frozen=True)
class Study:
    """A construction sweep: its measure over the grid of ``params``, bound columns, fitted rates and
    cross-parameter validation (``check_grid(grid) -> [problem, ...]``)."""

    name: str
    description: str
    measure: Callable[[Config, Sequence[int]], list[Metrics]]
    params: tuple[Param, ...]
    replicates: int
    bounds: tuple[BoundColumn, ...] = ()
    fits: tuple[Fit, ...] = ()
    constants: dict[str, Any] = field(default_factory=dict)
    check_grid: Callable[[Grid], list[str]] | None = None
    prefix: str | None = None
    metric_labels: Mapping[str, str] = field(default_factory=dict)  # metric -> display label (mathtext) for figures

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"study {self.name!r}: parameter names repeat: {names}")
        taken = sorted(set(names) & set(RESERVED_FLAGS))
        if taken:
            raise ValueError(
                f"study {self.name!r}: parameter names {taken} are taken by `tfconstruct sweep` itself "
                f"(reserved: {', '.join(RESERVED_FLAGS)}); rename them"
            )
        for fit in self.fits:
            if fit.axis not in names:
                raise ValueError(f"study {self.name!r}: fit of {fit.metric!r} is against {fit.axis!r}, not a parameter")
        if self.prefix is not None and self.prefix not in self.knobs:
            raise ValueError(f"study {self.name!r}: prefix {self.prefix!r} must be one of its knobs {self.knobs}")

    @property
    def columns(self) -> list[str]:
        """The metric columns every row of the measure must hold: each bound column's metric, bound and round-off
        column, and each fit's metric and its expected-slope and window columns."""
        needed: list[str] = []
        for column in self.bounds:
            needed += [column.metric, column.bound_column]
            needed += [column.round_off] if isinstance(column.round_off, str) else []
            needed += [c for c in column.input_columns.values() if c not in self.params_and_reserved]
        for fit in self.fits:
            needed += [fit.metric] + [c for c in (fit.expected, fit.fit_from) if isinstance(c, str)]
        return list(dict.fromkeys(needed))

    def check_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Raise :class:`StudyError` if a row lacks a column the study's bounds or fits read."""
        for row in rows:
            missing = [c for c in self.columns if c not in row]
            if missing:
                present = [k for k in row if k not in self.params_and_reserved]
                raise StudyError(
                    f"study {self.name!r}: its measure returned no column(s) {missing}, which its bounds or fits read; "
                    f"it returned {present}"
                )

    @property
    def bound_names(self) -> dict[str, str | None]:
        """Each bound column -> the name of the registered bound it evaluates (None where it names none)."""
        return {column.bound_column: column.bound_name for column in self.bounds}

    @property
    def params_and_reserved(self) -> set[str]:
        return {p.name for p in self.params} | {"replicate", "seed"}

    @property
    def instance_params(self) -> list[str]:
        """The parameters that describe the instance (seeds depend on these only)."""
        return [p.name for p in self.params if not p.knob]

    @property
    def knobs(self) -> list[str]:
        return [p.name for p in self.params if p.knob]

    def validate(self, grid: Grid) -> list[str]:
        return self.check_grid(grid) if self.check_grid else []

    def sweep(
        self,
        out_dir: str | Path,
        grid: Grid,
        replicates: int,
        *,
        base_seed: int = 0,
        progress: bool = True,
        fresh: bool = False,
        workers: int = 1,
        scheduler: str | None = None,
    ) -> Sweep:
        """The :class:`Sweep` (batched; seeds shared across the knobs; the study's constants recorded; the
        ``prefix`` knob's values measured by one call); ``fresh`` measures every row again (a report's),
        ``workers`` and ``scheduler`` say where tasks run, see :class:`~tfconstruct.verify.sweep.Sweep`."""
        ordered = {p.name: list(grid[p.name]) for p in self.params}
        return Sweep(
            ordered,
            replicates,
            self.measure,
            out_dir,
            base_seed=base_seed,
            batched=True,
            extra={"study": self.name, "constants": self.constants},
            identity=f"study {self.name}",
            seed_keys=self.instance_params,
            progress=progress,
            fresh=fresh,
            prefix=self.prefix,
            workers=workers,
            scheduler=scheduler,
            provenance={
                "device": str(torch.empty(0).device),
                "bounds": self.bound_names,
                "bound_inputs": {column.bound_column: column.input_columns for column in self.bounds},
            },
        )

    def run(
        self, out: Path, grid: Grid, replicates: int, seed: int, *, workers: int = 1, scheduler: str | None = None
    ) -> int:
        """Run (or resume) the study over ``grid`` in ``out``, plot, print the summary; 1 on a violated bound or a
        failed rate check.

        Raises:
            StudyError: if a row lacks a column the checks read, or a rate check has fewer than two usable points
                (after writing the rows, the plots and the bound table, so the measurements are kept).
        """
        started = time.perf_counter()
        rows = self.sweep(out, grid, replicates, base_seed=seed, workers=workers, scheduler=scheduler).run()
        self.check_rows(rows)
        print(f"{self.name}: {len(rows)} rows in {out / 'results.csv'} ({time.perf_counter() - started:.1f} s)")
        lines, failed_fits, unchecked = self.summarise(rows, out)
        for line in lines:
            print(line)
        lines, violations = check_table(rows, self.bounds)
        for line in lines:
            print(line)
        for row in rows:
            for column in self.bounds:
                if column.violated(row):
                    print(f"  BOUND VIOLATED ({column.metric}): {row}", file=sys.stderr)
        if violations or failed_fits:
            return 1
        if unchecked:
            raise StudyError(f"study {self.name!r}: rate checks not done: " + "; ".join(unchecked))
        return 0

    def summarise(self, rows: Sequence[Mapping[str, Any]], out: Path) -> tuple[list[str], int, list[str]]:
        """One figure ``<study>_<metric>_vs_<axis>.png`` per :class:`Fit` (the other knobs at their largest value,
        one curve per combination of the other parameters that vary, bounds dashed); return summary lines, the
        number of failed rate checks and the rate checks that could not be done (fewer than two usable points)."""
        lines, failed, unchecked = [], 0, []
        labels = {p.name: p.label for p in self.params}
        for fit in self.fits:
            xs = sorted({r[fit.axis] for r in rows})
            fixed = {k: max(r[k] for r in rows) for k in self.knobs if k != fit.axis}
            curves, bounds, slopes_expected = {}, {}, {}
            grouping = [p for p in self.instance_params if p != fit.axis]
            for label, where in _groups(rows, grouping, labels).items():
                selection = {**where, **fixed}
                chosen = [r for r in rows if all(r[k] == v for k, v in selection.items())]
                curves[label] = pivot(chosen, fit.axis, fit.metric)[1][fit.metric]
                if f"{fit.metric}_bound" in chosen[0]:
                    median = median_and_band(pivot(chosen, fit.axis, f"{fit.metric}_bound")[1][f"{fit.metric}_bound"])[
                        0
                    ]
                    if fit.floor is not None:
                        median = np.where(median > fit.floor, median, np.nan)  # drawn down to the float floor
                    if np.isfinite(median).any():
                        bounds[label] = median
                slopes_expected[label] = (fit.expected_for(chosen), fit.window_for(chosen))
            path = out / f"{self.name}_{fit.metric}_vs_{fit.axis}.png"
            at = ", ".join(f"{labels[k]} {v:g}" for k, v in fixed.items())
            title = f"{self.description}: {fit.metric} vs {fit.axis}" + (f" at {at}" if at else "") + " (dashed: bound)"
            constant = fit.expected if isinstance(fit.expected, (int, float)) and fit.scale == "loglog" else None
            slopes = plot_errors(
                path, xs, curves, scale=fit.scale, dashed=bounds, floor=fit.floor, expected_slope=constant,
                fit_from={label: window for label, (_, window) in slopes_expected.items()},
                title=title, ylabel=fit.metric, xlabel=labels[fit.axis],
            )  # fmt: skip
            lines.append(f"  {fit.metric} vs {fit.axis} -> {path}")
            for label, slope in slopes.items():
                expected, window = slopes_expected[label]
                if not math.isfinite(slope) and fit.tolerance is not None and expected is not None:
                    unchecked.append(_too_few_points(fit, label, window))
                    lines.append(f"    {label:27s} slope not fitted: fewer than two usable points")
                    continue
                bad = fit.failed(slope, expected)
                failed += bad
                versus = "" if expected is None else f" (theory {expected:.4g}{', FAILED' if bad else ''})"
                lines.append(f"    {label:27s} slope {slope:.4g}{versus}")
            lines.append(f"    {'median':27s}" + "".join(f"{labels[fit.axis] + '=' + format(x, 'g'):10s}" for x in xs))
            lines += [
                f"    {label:27s}" + "".join(f"{m:<10.2e}" for m in median_and_band(c)[0])
                for label, c in curves.items()
            ]
        return lines, failed, unchecked


def _too_few_points(fit: Fit, label: str, window: float | None) -> str:
    """Why a rate check of one curve could not be done, and the flag that fixes it."""
    where = f" >= {window:g} (the fit window)" if window is not None else ""
    floor = f" where the median error is above 10 x the float floor {fit.floor:.1e}" if fit.floor is not None else ""
    return f"{fit.metric} vs {fit.axis} ({label}) has fewer than two usable points: give --{fit.axis} at least two values{where}{floor}"


def _groups(rows: Sequence[Mapping[str, Any]], params: Sequence[str], labels: Mapping[str, str]) -> dict[str, dict]:
    """Label -> ``where`` filter for each combination of the parameters with several values (all of them, for the
    label only, when none varies)."""

    def label(names: Sequence[str], combo: Sequence[Any]) -> str:
        return ", ".join(f"{labels[p]}={v:g}" for p, v in zip(names, combo))

    values = {p: sorted({r[p] for r in rows}) for p in params}
    varying = [p for p in params if len(values[p]) > 1]
    if not varying:
        return {label(params, [values[p][0] for p in params]) or "all": {}}
    combos = sorted({tuple(r[p] for p in varying) for r in rows})
    return {label(varying, combo): dict(zip(varying, combo)) for combo in combos}


# ------------------------------------------------------------------------------------------- CLI


def folder(text: str) -> Path:
    """An ``--out`` value: a folder's path, not empty (an empty one would quietly mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string (use . for the current folder)")
    return Path(text)


def add_arguments(parser: argparse.ArgumentParser, commands: Mapping[str, SweepCommand]) -> argparse._SubParsersAction:
    """One sub-command per study, each with its own flags: ``--out``, one per declared parameter, ``--replicates``,
    ``--seed``, ``--workers`` and ``--scheduler``. Returns the sub-parsers (their ``prog`` names the study in error
    messages)."""
    studies = parser.add_subparsers(dest="study", required=True, metavar="STUDY")
    for name, command in commands.items():
        defaults = ", ".join(f"--{p.name} {' '.join(map(str, p.default))}" for p in command.params)
        sub = studies.add_parser(
            name, help=command.description, description=command.description,
            epilog=f"defaults: {defaults}, --replicates {command.replicates}",
        )  # fmt: skip
        sub.add_argument("--out", type=folder, required=True, help="output folder (re-running resumes it)")
        for param in command.params:
            sub.add_argument(
                f"--{param.name}", type=param.kind, nargs="+", metavar=param.label,
                help=f"{param.help} ({param.requirement}; default {' '.join(map(str, param.default))})",
            )  # fmt: skip
        sub.add_argument(
            "--replicates", type=int, help=f"random instances per grid point (default {command.replicates})"
        )
        sub.add_argument("--seed", type=int, default=0, help="base seed every row's seed is derived from")
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: this one)")
        where.add_argument(
            "--scheduler", metavar="ADDRESS",
            help='a dask.distributed scheduler to run on, tcp://HOST:PORT (needs the extra: pip install -e ".[scale]")',
        )  # fmt: skip
    return studies


def grid_from_args(args: argparse.Namespace, command: SweepCommand) -> tuple[dict[str, list[Any]], list[str]]:
    """The grid (given values or the defaults) and every problem with it: values outside a parameter's range,
    repeated values, a bad replicate count."""
    grid, errors = {}, []
    for param in command.params:
        given = getattr(args, param.name)
        values = list(param.default) if given is None else list(given)
        errors += param.problems(values)
        grid[param.name] = values
    if args.replicates is not None and args.replicates < 1:
        errors.append(f"--replicates must be an integer >= 1, got {args.replicates}")
    if args.workers < 1:
        errors.append(f"--workers must be an integer >= 1, got {args.workers}")
    if args.scheduler is not None and scheduler_problem(args.scheduler):
        errors.append(scheduler_problem(args.scheduler))
    return grid, errors


def run(args: argparse.Namespace, parsers: argparse._SubParsersAction, commands: Mapping[str, SweepCommand]) -> int:
    """Validate, run the sweep on one torch thread (tiny matrices), write the plots, print the summary.

    Returns 1 if a measured value exceeds its bound or a rate check fails, else 0; invalid arguments, and an output
    folder holding a different sweep or locked by another, exit through the study's ``parser.error`` (status 2); a worker that died or a
    scheduler that cannot be used is a runtime failure (status 3, one line: re-running resumes).
    """
    command = commands[args.study]
    parser = parsers.choices[args.study]
    grid, errors = grid_from_args(args, command)
    if not errors:
        errors = command.validate(grid)
    if errors:
        parser.error("; ".join(errors))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return command.run(
            args.out, grid, args.replicates or command.replicates, args.seed,
            workers=args.workers, scheduler=args.scheduler,
        )  # fmt: skip
    except (SweepMismatch, StudyError, SweepLocked) as error:
        parser.error(str(error))
    except (WorkerDied, SchedulerUnavailable, TaskFailed) as error:
        print(f"{parser.prog}: error: {error}; re-run the same command to resume", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted; the rows measured so far are saved, re-run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        torch.set_num_threads(threads)
