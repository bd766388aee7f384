"""A resumable, reproducible sweep over a parameter grid x seeds, saved as tidy rows.

``Sweep(grid={"depth": [1, 2, 4], "width": [8, 16]}, replicates=5, measure=f, out_dir=...)``
runs ``f(config, seed) -> {metric: value}`` for every grid point and replicate and writes

* ``config.json``: the full study (grid, replicates, base seed, measure name, package version,
  any ``extra`` settings), and beside it its ``provenance``: package version, the git commit of the installed source
  (with a dirty flag; None without git), the Python, torch, numpy and sympy versions, the command line, torch threads,
  the device when known, and what the caller adds (a study: the registered bound behind each ``*_bound`` column);
* ``results.jsonl``: one row per (config, replicate), appended and flushed as soon as it is
  measured (a batched grid point as soon as its batch is), so an interruption loses at most the row (the batch)
  in progress;
* ``results.csv``: the same tidy table (grid columns, ``replicate``, ``seed``, metrics), written
  at the end in grid order.

**Reproducible:** each row's seed is derived from (base seed, config, replicate) by a hash,
not from the order of evaluation, so a re-run (or a resumed run) reproduces every number. One exception, for a
batched measure: its batched products agree bit for bit only for the same batch, so another batch of seeds (another
``replicates``, or a resume that measures part of a grid point) can change some numbers at round-off (checked: the
power study's replicate-0 rows with 1 and with 5 replicates differ in 10 of 88 cells, by at most 9e-16; the gd
study's not at all).
``seed_keys`` restricts the hash to some grid parameters: with ``seed_keys=["part"]`` every
width of a width sweep sees the same random instance per replicate (common random numbers),
so the curves over width are not blurred by instance-to-instance variation.
**Resumable:** a second ``run()`` on the same folder skips the rows already in
``results.jsonl``; it refuses to resume if ``config.json`` describes a different study. The fields that determine the
numbers are compared (each parameter's grid values as a set: the same values in another order resume, compared
exactly, ``16`` is not ``16.0``); ``provenance`` and ``measure_function`` are recorded, refreshed by every run, never
compared.
**Batched:** with ``batched=True`` the measure takes the list of seeds of one grid point and
returns one metrics dict per seed (e.g. one batched forward pass for all seeds).
**Prefix:** with ``prefix="depth"`` the grid points that differ only in depth are measured by one call, whose
config holds the list of depths (the construction at depth $L$ is a prefix of the deepest one, so one traced pass
reads them all); the measure returns the rows depth by depth. The rows are the ones separate calls would give.
**Scale-out:** the grid is cut into independent tasks (a grid point, or a prefix group) that run here, in
``workers`` local processes or on a dask.distributed ``scheduler`` (:mod:`tfconstruct.verify.executors`); only
this process writes rows, as each task finishes.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

import numpy as np

from .executors import run_tasks

Metrics = Mapping[str, float]
RESERVED = ("replicate", "seed")
NOT_COMPARED = ("measure_function", "provenance")  # recorded in config.json for the reader, not compared on resume


def importable_name(function: Callable[..., Any]) -> str:
    """``module.qualname`` of ``function``, with the module as another entry point would import it: a function of a
    script run as ``python my_study.py`` (module ``__main__``) is recorded as ``my_study.<name>``, the name it has when
    ``my_study`` is imported (or loaded with ``--plugin my_study.py``), so a sweep resumes from either."""
    module = getattr(function, "__module__", None) or "?"
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name  # python -m package.module
        elif getattr(main, "__file__", None):
            module = Path(main.__file__).stem
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


class SweepMismatch(ValueError):
    """An output folder's ``config.json`` describes a different sweep, so it cannot be resumed."""


@dataclass(frozen=True)
class Task:
    """Grid points measured by one call (several only for a prefix group), for the same replicates and seeds."""

    configs: tuple[dict[str, Any], ...]
    replicates: tuple[int, ...]
    seeds: tuple[int, ...]


def evaluate(measure: Callable[..., Any], batched: bool, prefix: str | None, task: Task) -> list[list[Metrics]]:
    """The metrics of each of ``task``'s grid points, one per seed (runs wherever the task is sent)."""
    seeds = list(task.seeds)
    if prefix is not None:
        values = [config[prefix] for config in task.configs]
        results = list(measure({**task.configs[0], prefix: values}, seeds))
        expected = len(values) * len(seeds)
        if len(results) != expected:
            raise ValueError(
                f"measure returned {len(results)} results for {len(values)} values of {prefix} x {len(seeds)} seeds "
                f"at {task.configs[0]}"
            )
        return [results[i * len(seeds) : (i + 1) * len(seeds)] for i in range(len(values))]
    (config,) = task.configs
    if batched:
        results = list(measure(dict(config), seeds))
        if len(results) != len(seeds):
            raise ValueError(f"batched measure returned {len(results)} results for {len(seeds)} seeds at {config}")
        return [results]
    return [[measure(dict(config), seed) for seed in seeds]]


def derived_seed(base_seed: int, config: Mapping[str, Any], replicate: int) -> int:
    """A 32-bit seed from a hash of (base seed, config, replicate): independent of evaluation order."""
    key = json.dumps({"base_seed": base_seed, "config": dict(config), "replicate": replicate}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


class Sweep:
    """A grid of configurations x replicates, measured by a user function and saved as tidy rows.

    Args:
        grid: parameter name -> values (JSON scalars); the sweep is their Cartesian product.
        replicates: number of seeds per grid point.
        measure: ``measure(config, seed) -> {metric: float}``, or with ``batched=True``
            ``measure(config, [seed, ...]) -> [{metric: float}, ...]``.
        out_dir: folder for ``config.json``, ``results.jsonl`` and ``results.csv``.
        base_seed: the seed everything is derived from.
        batched: call ``measure`` once per grid point with all missing seeds.
        extra: further JSON settings to record in ``config.json`` (and to match on resume).
        seed_keys: the grid parameters the seeds depend on (default: all of them).
        identity: what names the measure in ``config.json`` and must match on resume (default: its importable name,
            :func:`importable_name`). A :class:`~tfconstruct.verify.study.Study` passes ``"study <name>"``, so its
            sweep resumes however the module defining it was loaded (a file, a module name, an entry point); the
            importable name is recorded beside it (``measure_function``) for the reader, not compared.
        fresh: discard whatever the folder holds and measure every row (a report's sweeps are outputs, not caches:
            resuming one after a code change would mix rows of the old code with the new).
        prefix: a knob (not in ``seed_keys``) whose grid points one batched call measures together (see above).
        workers: local processes to run tasks in (1: this process).
        scheduler: the address of a dask.distributed scheduler to run tasks on instead.
        progress: write a text progress bar to ``stream`` (stderr by default): redrawn in place on a terminal, a line
            every 10 s into a log.
        provenance: further JSON facts recorded under ``provenance`` in ``config.json`` (e.g. ``device``, the bound
            behind each bound column), beside :func:`provenance`'s; refreshed by every run, not compared on resume.
    """

    def __init__(
        self,
        grid: Mapping[str, Sequence[Any]],
        replicates: int,
        measure: Callable[..., Any],
        out_dir: str | Path,
        *,
        base_seed: int = 0,
        batched: bool = False,
        extra: Mapping[str, Any] | None = None,
        seed_keys: Sequence[str] | None = None,
        identity: str | None = None,
        fresh: bool = False,
        prefix: str | None = None,
        workers: int = 1,
        scheduler: str | None = None,
        progress: bool = True,
        stream: TextIO | None = None,
        provenance: Mapping[str, Any] | None = None,
    ):
        if not grid:
            raise ValueError("grid must name at least one parameter")
        if int(replicates) != replicates or replicates < 1:
            raise ValueError(f"replicates must be an integer >= 1, got {replicates}")
        clash = set(grid) & set(RESERVED)
        if clash:
            raise ValueError(f"grid parameters may not be called {sorted(clash)} (reserved row columns)")
        self.grid = {name: [_json_scalar(name, v) for v in values] for name, values in grid.items()}
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"grid parameter {name!r} has no values")
        self.replicates = int(replicates)
        self.measure = measure
        self.out_dir = Path(out_dir)
        self.base_seed = int(base_seed)
        self.batched = batched
        self.extra = json.loads(json.dumps(dict(extra or {})))
        self.seed_keys = list(self.grid) if seed_keys is None else list(seed_keys)
        self.fresh = fresh
        self.identity = identity or importable_name(measure)
        unknown = set(self.seed_keys) - set(self.grid)
        if unknown:
            raise ValueError(f"seed_keys {sorted(unknown)} are not grid parameters; the grid has {list(self.grid)}")
        if prefix is not None and (prefix not in self.grid or prefix in self.seed_keys or not batched):
            raise ValueError(f"prefix {prefix!r} must be a batched sweep's grid parameter that seeds do not depend on")
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.prefix, self.workers, self.scheduler = prefix, int(workers), scheduler
        self.progress = progress
        self.provenance_extra = json.loads(json.dumps(dict(provenance or {})))
        self.stream = stream if stream is not None else sys.stderr
        self._last_drawn = 0.0
        self._terminal = bool(getattr(self.stream, "isatty", lambda: False)())

    # ------------------------------------------------------------------ the study

    @property
    def config(self) -> dict[str, Any]:
        """Everything that determines the numbers (written to ``config.json``)."""
        return {
            "grid": self.grid,
            "replicates": self.replicates,
            "base_seed": self.base_seed,
            "batched": self.batched,
            "seed_keys": self.seed_keys,
            "measure": self.identity,
            "package_version": package_version(),
            "extra": self.extra,
        }

    def configs(self) -> list[dict[str, Any]]:
        """The grid points in order (last parameter varies fastest)."""
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*self.grid.values())]

    def seed(self, config: Mapping[str, Any], replicate: int) -> int:
        """The seed of one row: :func:`derived_seed` of the ``seed_keys`` part of ``config``."""
        return derived_seed(self.base_seed, {k: config[k] for k in self.seed_keys}, replicate)

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.jsonl"

    # ------------------------------------------------------------------ running

    def run(self) -> list[dict[str, Any]]:
        """Measure every missing (config, replicate), append rows, write the CSV; return all rows in grid order.

        Raises:
            SweepLocked: if another live process is running a sweep in the same folder.
            SweepMismatch: if the folder holds a different sweep, or a row that is not one of this sweep's.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with _FolderLock(self.out_dir / ".lock"):
            return self._run()

    def _run(self) -> list[dict[str, Any]]:
        self._check_or_write_config()
        done = {self._key(row): row for row in self._read_rows()}
        tasks = self.tasks(done)
        total = len(self.configs()) * self.replicates
        finished = already = total - sum(len(t.configs) * len(t.replicates) for t in tasks)
        started = time.perf_counter()
        self._show(finished, total, started, already)
        function = partial(evaluate, self.measure, self.batched, self.prefix)
        by_value = [self.measure.__module__] if not self.measure.__module__.startswith("tfconstruct.") else []
        with self.results_path.open("a") as sink:
            for task, results in run_tasks(
                tasks, function, workers=self.workers, scheduler=self.scheduler, by_value=by_value
            ):
                for config, metrics_per_seed in zip(task.configs, results):
                    for replicate, seed, metrics in zip(task.replicates, task.seeds, metrics_per_seed):
                        row = self._row(config, replicate, seed, metrics)
                        sink.write(json.dumps(row) + "\n")
                        done[self._key(row)] = row
                        finished += 1
                _sync(sink)  # a task is measured in one call, so it is saved as one
                self._show(finished, total, started, already)
        if self.progress and self._terminal:
            self.stream.write("\n")
        rows = [done[self._key({**c, "replicate": r})] for c in self.configs() for r in range(self.replicates)]
        write_csv(self.out_dir / "results.csv", rows)
        return rows

    def tasks(self, done: Mapping[str, Any]) -> list[Task]:
        """The rows still to measure, as tasks: one per grid point (its missing replicates; one per row when
        unbatched, so each row is saved as soon as it is measured), or with ``prefix`` one per group of grid points
        that differ only in the prefix parameter and miss the same replicates."""
        groups: dict[str, list[dict[str, Any]]] = {}
        missing: dict[str, tuple[int, ...]] = {}
        for config in self.configs():
            reps = tuple(r for r in range(self.replicates) if self._key({**config, "replicate": r}) not in done)
            if not reps:
                continue
            rest = {k: v for k, v in config.items() if k != self.prefix} if self.prefix else config
            key = json.dumps([rest, reps], sort_keys=True) if self.prefix else self._key({**config, "replicate": -1})
            groups.setdefault(key, []).append(config)
            missing[key] = reps
        tasks = [
            Task(tuple(configs), missing[key], tuple(self.seed(configs[0], r) for r in missing[key]))
            for key, configs in groups.items()
        ]
        if self.batched:
            return tasks
        return [Task(t.configs, (r,), (seed,)) for t in tasks for r, seed in zip(t.replicates, t.seeds)]  # row by row

    def _row(self, config: dict[str, Any], replicate: int, seed: int, metrics: Metrics) -> dict[str, Any]:
        if not isinstance(metrics, Mapping):
            raise TypeError(f"measure must return a dict of metrics, got {type(metrics).__name__} at {config}")
        clash = set(metrics) & (set(config) | set(RESERVED))
        if clash:
            raise ValueError(f"metric names {sorted(clash)} clash with grid parameters or {RESERVED}")
        return {**config, "replicate": replicate, "seed": seed, **{k: float(v) for k, v in metrics.items()}}

    def _key(self, row: Mapping[str, Any]) -> str:
        return json.dumps({**{name: row[name] for name in self.grid}, "replicate": row["replicate"]}, sort_keys=True)

    def _check_or_write_config(self) -> None:
        """Refuse a folder whose ``config.json`` describes another sweep (the fields of :attr:`config`, grids as sets);
        (re)write it with this run's provenance."""
        path = self.out_dir / "config.json"
        current = self.config
        if self.fresh:
            self.results_path.unlink(missing_ok=True)
        elif path.exists():
            saved = json.loads(path.read_text())
            for name in NOT_COMPARED:
                saved.pop(name, None)
            if _comparable(saved) != _comparable(current):
                old, new = _comparable(saved), _comparable(current)
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise SweepMismatch(
                    f"{path} describes a different sweep (fields {changed} differ); refusing to resume. "
                    "Use a new output folder or delete the old one."
                )
        recorded = {
            **current,
            "measure_function": importable_name(self.measure),
            "provenance": {**provenance(), **self.provenance_extra},
        }
        path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")

    def _read_rows(self) -> list[dict[str, Any]]:
        """Rows already measured. A truncated last line (a crash mid-write: no newline) is dropped from the file; any
        other line that is not a row of this grid (unparsable, missing columns, off the grid, a repeat) is refused."""
        if not self.results_path.exists():
            return []
        lines = self.results_path.read_text().splitlines(keepends=True)
        torn = bool(lines) and not lines[-1].endswith("\n")
        rows, seen = [], {}
        columns = [*self.grid, "replicate", "seed"]
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if torn and number == len(lines):
                    break
                row = None
            problem = self._row_problem(row, columns, seen)
            if problem:
                raise SweepMismatch(
                    f"{self.results_path} line {number} {problem}: {line.strip()[:80]}; delete that line (or the "
                    "folder) and run again"
                )
            seen[self._row_key(row)] = number
            rows.append(row)
        if torn:
            self.results_path.write_text("".join(lines[: len(rows)]))
        return rows

    def _row_key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return (*(row[name] for name in self.grid), row["replicate"])

    def _row_problem(self, row: Any, columns: Sequence[str], seen: Mapping[tuple[Any, ...], int]) -> str | None:
        """Why ``row`` (a parsed line, None if unparsable) is not a new row of this sweep, or None."""
        if not isinstance(row, dict) or any(column not in row for column in columns):
            return f"is not a row of this sweep (it needs the columns {list(columns)})"
        off = [name for name, values in self.grid.items() if row[name] not in values]
        if off or row["replicate"] not in range(self.replicates):
            return f"is off this sweep's grid ({off or ['replicate']})"
        if self._row_key(row) in seen:
            return f"repeats the row of line {seen[self._row_key(row)]}"
        return None

    def _show(self, finished: int, total: int, started: float, already: int) -> None:
        """Redraw the bar at most every 0.2 s on a terminal, every 10 s in a log (and always at the start and the end)."""
        if not self.progress:
            return
        now = time.perf_counter()
        if finished not in (already, total) and now - self._last_drawn < (0.2 if self._terminal else 10.0):
            return
        self._last_drawn = now
        elapsed = now - started
        fresh = finished - already
        eta = f"{elapsed / fresh * (total - finished):6.1f}s" if fresh else "     ?"
        bar = "#" * round(30 * finished / total)
        line = f"[sweep] {finished}/{total} |{bar:<30}| {elapsed:6.1f}s elapsed, eta {eta}"
        self.stream.write(f"\r{line}" if self._terminal else f"{line}\n")
        self.stream.flush()


class SweepLocked(RuntimeError):
    """Another process is running a sweep in the same folder (two writers would interleave their rows)."""


class _FolderLock:
    """A lock file holding the owner's pid, created atomically; a lock whose process has ended is taken over."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "_FolderLock":
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = _lock_owner(self.path)
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise SweepLocked(
                        f"another sweep (process {owner}) is writing {self.path.parent}; wait for it, or remove "
                        f"{self.path} if that process is gone"
                    ) from None
                self.path.unlink(missing_ok=True)  # a stale lock: its process has ended
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise SweepLocked(f"could not take the lock {self.path}")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync(sink: TextIO) -> None:
    """Push what was written to the disk (an interruption after this loses nothing written before)."""
    sink.flush()
    os.fsync(sink.fileno())


# ---------------------------------------------------------------------- reading results


def load_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a sweep folder's ``results.jsonl`` (complete lines only)."""
    path = Path(out_dir) / "results.jsonl"
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def load_results(out_dir: str | Path, *, as_frame: bool = False) -> Any:
    """A sweep folder's rows, typed: from ``results.jsonl`` (JSON types) when it exists, else from ``results.csv`` with
    every cell that reads as an integer, a float (``nan``, ``inf`` included) or a bool turned back into one (so
    :func:`pivot` sorts widths 8, 16, 128 numerically, not as text). A string grid value that looks like a number
    comes back as the number from a CSV (the CSV does not say which it was).

    With ``as_frame=True`` a ``pandas.DataFrame`` (pandas is optional: :class:`ImportError` naming the install
    command when it is missing).

    Raises:
        FileNotFoundError: if the folder holds neither file.
        ImportError: ``as_frame=True`` without pandas.
    """
    if as_frame:
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "load_results(..., as_frame=True) needs pandas, which is not installed: pip install pandas "
                "(or call it without as_frame for a list of dicts)"
            ) from error
    folder = Path(out_dir)
    if (folder / "results.jsonl").exists():
        rows = load_rows(folder)
    elif (folder / "results.csv").exists():
        with (folder / "results.csv").open(newline="") as handle:
            rows = [{k: _typed(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    else:
        raise FileNotFoundError(f"{folder} holds no results.jsonl or results.csv (not a sweep folder?)")
    return pandas.DataFrame(rows) if as_frame else rows


_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _typed(cell: str | None) -> Any:
    """A CSV cell as the JSON scalar it was written from: int, float, bool, or the string."""
    if cell is None:
        return None
    if _INTEGER.fullmatch(cell):
        return int(cell)
    if _FLOAT.fullmatch(cell):
        return float(cell)
    return {"True": True, "False": False}.get(cell, cell)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """A tidy CSV with the union of the rows' columns, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def pivot(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    metric: str,
    group: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Arrays for :mod:`tfconstruct.verify.plots`: sorted ``x`` values and, per ``group`` value, ``(replicates,
    len(x))``.

    ``where`` keeps only rows whose columns equal the given values. Missing cells are NaN.

    Raises:
        ValueError: if the ``x`` or ``group`` column mixes kinds of values (e.g. ``'128'`` and ``16``: rows read
            untyped from a CSV; :func:`load_results` types them), which would not sort as numbers.
    """
    selected = [r for r in rows if all(r.get(k) == v for k, v in (where or {}).items())]
    for axis in (x, group) if group else (x,):
        _check_one_kind(selected, axis)
    xs = sorted({r[x] for r in selected})
    groups = sorted({str(r[group]) for r in selected}) if group else [metric]
    replicates = sorted({r["replicate"] for r in selected})
    curves = {g: np.full((len(replicates), len(xs)), np.nan) for g in groups}
    for r in selected:
        label = str(r[group]) if group else metric
        curves[label][replicates.index(r["replicate"]), xs.index(r[x])] = r[metric]
    return np.asarray(xs), curves


def _check_one_kind(rows: Sequence[Mapping[str, Any]], column: str) -> None:
    """Refuse a column whose values are of more than one kind (number, string, bool)."""

    def kind(value: Any) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, (int, float, np.integer, np.floating)):
            return "number"
        return type(value).__name__

    kinds: dict[str, Any] = {}
    for row in rows:
        kinds.setdefault(kind(row[column]), row[column])
    if len(kinds) > 1:
        examples = ", ".join(f"{k} {v!r}" for k, v in sorted(kinds.items()))
        raise ValueError(
            f"pivot: column {column!r} mixes kinds of values ({examples}), which do not sort together; read the rows "
            "with load_results, which types them"
        )


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with each grid parameter's values as a sorted list of their JSON texts: the order of a grid's values
    does not change the rows, their types do (``16`` and ``16.0`` are different values). The seed keys are a set too
    (a seed hashes its config with sorted keys)."""
    out = dict(config)
    if isinstance(config.get("seed_keys"), list):
        out["seed_keys"] = sorted(config["seed_keys"])
    grid = config.get("grid")
    if isinstance(grid, Mapping):
        out["grid"] = {
            name: sorted(json.dumps(v) for v in values) if isinstance(values, list) else values
            for name, values in grid.items()
        }
    return out


def _json_scalar(name: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (int, float, str, bool)) or value is None:
        raise ValueError(f"grid values must be JSON scalars (int, float, str, bool); {name!r} has {value!r}")
    return value


def package_version() -> str:
    """The installed version of the ``tfconstruct`` distribution (``"unknown"`` when run from a bare checkout)."""
    try:
        return metadata.version("tfconstruct")
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance() -> dict[str, Any]:
    """Where a sweep's numbers came from (recorded in ``config.json``, never compared): the package version, the git
    commit of the installed source and whether it had uncommitted changes (None when git or the repository is not
    there), the Python, torch, numpy, sympy and matplotlib versions, when it was written (UTC), the command line, the
    torch thread count. Never fails: what cannot be found is None."""
    return {
        "package_version": package_version(),
        "git": git_state(Path(__file__).resolve().parent.parent),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "sympy": _version("sympy"),
        "matplotlib": _version("matplotlib"),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "torch_threads": _torch_threads(),
        "device": None,
    }


def git_state(source: Path) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``source`` (dirty: tracked files changed), or
    None when git is missing, ``source`` is not in a checkout, or git fails or hangs."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())} if commit else None


def _version(distribution: str) -> str | None:
    module = sys.modules.get(distribution)
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    try:
        return int(torch.get_num_threads()) if torch is not None else None
    except Exception:  # noqa: BLE001 - provenance never fails a sweep
        return None
