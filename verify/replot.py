"""``tfconstruct plot DIR``: re-plot a sweep folder from its ``config.json`` and rows, without measuring anything.

One figure per fitted metric and axis, as the sweep drew it: for a registered :class:`~tfconstruct.verify.study.Study`
its :class:`~tfconstruct.verify.study.Fit` s and parameter labels, otherwise every metric column against every grid
parameter with several values (semilog against ``depth``, log-log otherwise) labelled by column name. The other knobs
sit at their largest value unless ``--at NAME=VALUE`` fixes them (a fixed instance parameter gives one curve instead
of one per value). Bound curves are labelled with the registered bound recorded in ``config.json``'s provenance.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.style
import numpy as np

from .plots import median_and_band, plot_errors, save
from .sweep import _typed, load_results, pivot

STYLES = Path(__file__).parent / "styles"
FORMATS = ("png", "pdf", "svg")


class ReplotError(ValueError):
    """A folder, metric, ``--at`` or style that cannot be re-plotted (one line: exit 2)."""


@dataclass(frozen=True)
class Panel:
    """One figure: ``metric`` against ``axis`` on ``scale``, with the study's window, floor and expected slope."""

    metric: str
    axis: str
    scale: str
    floor: float | None = None
    expected: float | None = None
    fit_from: Any = None


def style_path(style: str) -> Path:
    """A shipped style by name (``paper``) or a ``.mplstyle`` file."""
    shipped = STYLES / f"{style}.mplstyle"
    if shipped.is_file():
        return shipped
    path = Path(style)
    if not path.is_file():
        names = sorted(p.stem for p in STYLES.glob("*.mplstyle"))
        raise ReplotError(f"--style {style}: no such file, and not a shipped style ({', '.join(names)})")
    problems = _style_problems(path)
    if problems:
        raise ReplotError(f"--style {style}: not a valid matplotlib style file ({problems[0]})")
    return path


def _style_problems(path: Path) -> list[str]:
    """What matplotlib logs (and skips) reading ``path``: bad keys, values and lines, the first line of each."""
    found: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = found.append
    logger = logging.getLogger("matplotlib")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        matplotlib.rc_params_from_file(str(path), use_default_template=False)
    except (ValueError, UnicodeDecodeError) as bad:
        return [str(bad).splitlines()[0]]
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    return [next(line for line in record.getMessage().splitlines() + ["?"] if line.strip()) for record in found]


def parse_at(specs: Sequence[str], grid: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs -> {name: the grid's value}; every name a grid parameter, every value one of its values."""
    fixed = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or name not in grid:
            raise ReplotError(f"--at {spec}: expected NAME=VALUE with NAME one of the grid's parameters {list(grid)}")
        value = _typed(text)
        matches = [v for v in grid[name] if v == value or str(v) == text]
        if not matches:
            raise ReplotError(f"--at {spec}: {name} has no value {text} in this sweep (its values: {grid[name]})")
        fixed[name] = matches[0]
    return fixed


def replot(
    folder: Path,
    studies: Mapping[str, Any],
    *,
    formats: Sequence[str] = ("png",),
    style: str | None = None,
    at: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    out: Path | None = None,
) -> list[Path]:
    """Re-plot the sweep in ``folder`` into ``out`` (default: the folder itself); return the files written.

    Raises:
        ReplotError: a folder without ``config.json`` or rows, an unknown metric, a bad ``--at`` or style.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ReplotError(f"{folder} holds no config.json (not a sweep folder?)")
    try:
        config = json.loads(config_path.read_text())
        grid = dict(config["grid"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ReplotError(f"{config_path} is not a sweep's config.json ({error})") from None
    try:
        rows = load_results(folder)
    except FileNotFoundError as error:
        raise ReplotError(str(error)) from None
    if not rows:
        raise ReplotError(f"{folder} holds no rows yet")
    name = (config.get("extra") or {}).get("study") or folder.name
    study = studies.get(name)
    if not (hasattr(study, "fits") and hasattr(study, "params")):
        study = None
    labels = {p.name: p.label for p in study.params} if study else {k: k for k in grid}
    labels |= dict(getattr(study, "metric_labels", {}) or {})
    knobs = study.knobs if study else [k for k in grid if k in ("depth", "width")]
    fixed_by_user = parse_at(at, grid)
    bound_names = ((config.get("provenance") or {}).get("bounds")) or {}
    panels = _panels(study, rows, grid)
    available = sorted({p.metric for p in panels})
    for metric in metrics or ():
        if metric not in available:
            raise ReplotError(
                f"--metric {metric}: not a plotted metric of this sweep (metrics: {', '.join(available)})"
            )
    panels = [p for p in panels if not metrics or p.metric in metrics]
    panels = [p for p in panels if p.axis not in fixed_by_user]
    if not panels:
        raise ReplotError("nothing to plot: every plotted axis is fixed by --at")
    for unknown in sorted(set(formats) - set(FORMATS)):
        raise ReplotError(f"--format {unknown}: one of {', '.join(FORMATS)}")
    target = out or folder
    written: list[Path] = []
    context = matplotlib.style.context(str(style_path(style))) if style else matplotlib.rc_context()
    with context:
        figsize = tuple(matplotlib.rcParams["figure.figsize"]) if style else None
        for panel in panels:
            fig = _draw(panel, rows, grid, labels, knobs, fixed_by_user, bound_names, figsize, name, study)
            for fmt in formats:
                path = target / f"{name}_{panel.metric}_vs_{panel.axis}.{fmt}"
                save(fig, path)
                written.append(path)
    return written


def _panels(study: Any, rows: Sequence[Mapping[str, Any]], grid: Mapping[str, Sequence[Any]]) -> list[Panel]:
    if study is not None:
        return [
            Panel(
                f.metric,
                f.axis,
                f.scale,
                f.floor,
                f.expected if isinstance(f.expected, (int, float)) and f.scale == "loglog" else None,
                f.fit_from,
            )  # fmt: skip
            for f in study.fits
        ]
    reserved = set(grid) | {"replicate", "seed"}
    metrics = [
        k for k in rows[0]
        if k not in reserved and not k.endswith("_bound") and isinstance(rows[0][k], (int, float))
        and not isinstance(rows[0][k], bool)
    ]  # fmt: skip
    axes = [k for k, values in grid.items() if len(values) > 1 and all(isinstance(v, (int, float)) for v in values)]
    return [Panel(m, a, "semilog" if a == "depth" else "loglog") for a in axes for m in metrics]


def _draw(panel, rows, grid, labels, knobs, fixed_by_user, bound_names, figsize, name, study):
    fixed = {k: max(grid[k]) for k in knobs if k != panel.axis and len(grid[k]) > 1}
    fixed.update(fixed_by_user)
    instance = [k for k in grid if k not in knobs and k != panel.axis and k not in fixed]
    rows = [r for r in rows if all(r[k] == v for k, v in fixed.items())]
    xs = sorted({r[panel.axis] for r in rows})
    curves, bounds, windows = {}, {}, {}
    bound_column = f"{panel.metric}_bound"
    bound_name = bound_names.get(bound_column)
    for label, where in _curve_groups(rows, instance, labels).items():
        chosen = [r for r in rows if all(r[k] == v for k, v in where.items())]
        curves[label] = pivot(chosen, panel.axis, panel.metric)[1][panel.metric]
        if isinstance(panel.fit_from, str):
            windows[label] = float(np.max([r[panel.fit_from] for r in chosen]))
        else:
            windows[label] = panel.fit_from
        if bound_column in chosen[0]:
            median = median_and_band(pivot(chosen, panel.axis, bound_column)[1][bound_column])[0]
            if panel.floor is not None:
                median = np.where(median > panel.floor, median, np.nan)
            if np.isfinite(median).any():
                bounds[label] = median
    what = f"bound: {bound_name or bound_column} (median over seeds)"
    dashed_labels = {label: what if len(curves) == 1 else f"{label}: {what}" for label in bounds}
    at = ", ".join(
        f"{labels.get(k, k)} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}" for k, v in fixed.items()
    )
    description = study.description if study is not None else name
    metric, axis = labels.get(panel.metric, panel.metric), labels.get(panel.axis, panel.axis)
    title = f"{description}: {metric} vs {axis}" + (f" at {at}" if at else "")
    return plot_errors(
        None, xs, curves, scale=panel.scale, dashed=bounds, dashed_labels=dashed_labels, floor=panel.floor,
        expected_slope=panel.expected, fit_from=windows, title=title, ylabel=metric,
        xlabel=labels.get(panel.axis, panel.axis), figsize=figsize, style_sizes=figsize is not None,
    ).figure  # fmt: skip


def _curve_groups(
    rows: Sequence[Mapping[str, Any]], params: Sequence[str], labels: Mapping[str, str]
) -> dict[str, dict]:
    """Label -> ``where`` filter per combination of the parameters with several values among ``rows``."""
    values = {p: _sorted({r[p] for r in rows}) for p in params}
    varying = [p for p in params if len(values[p]) > 1]

    def show(value: Any) -> str:
        return format(value, "g") if isinstance(value, (int, float)) and not math.isnan(value) else str(value)

    if not varying:
        return {", ".join(f"{labels.get(p, p)}={show(values[p][0])}" for p in params if values[p]) or "all": {}}
    combos = _sorted({tuple(r[p] for p in varying) for r in rows})
    return {
        ", ".join(f"{labels.get(p, p)}={show(v)}" for p, v in zip(varying, combo)): dict(zip(varying, combo))
        for combo in combos
    }


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed kinds: by their text
        return sorted(values, key=str)
