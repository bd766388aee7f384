r"""Error-vs-depth, error-vs-width and weight heat-map figures (PNG, Agg backend).

Conventions (those of numerical-analysis rate tests and of the constructive-transformer papers' plots):

* **depth** (number of emulated algorithm steps): semilog-y against $L$; the fitted slope
  is $p = \log\rho$ per layer from $\log e_L \approx p L + c$; reference curves such as
  $(\lambda_2/\lambda_1)^L$ are dashed.
* **width** (MLP hinges, heads, ...): log-log; the fitted slope is the order $p$ in
  $e \approx C w^{p}$; theory bounds are dashed in the colour of their measurement and an
  optional reference line shows the slope the theorem predicts.
* every curve is the **median over seeds** with a **min-max band**; the float64 floor is a
  dotted horizontal line, so flattening at round-off is not mistaken for a failed rate.

Errors that are zero, negative, NaN or infinite never crash a plot: NaN/inf are dropped from
the median, and values on log axes are clipped to a tiny positive floor for display only.
The returned slopes are ``verify.rates.fit_slope`` of the medians over the points where the
median is finite, positive, (if ``floor`` is given) above ``10 * floor`` and (if ``fit_from``
is given) at ``x >= fit_from``; ``nan`` when fewer than two such points remain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tfconstruct.constructions.attention import AttentionHead  # noqa: E402
from tfconstruct.constructions.mlp import BIAS, MLP  # noqa: E402
from tfconstruct.constructions.model import Transformer  # noqa: E402
from tfconstruct.constructions.residual import ResidualLayout  # noqa: E402

from .rates import fit_slope  # noqa: E402

DPI = 120
FLOAT64_EPS = float(np.finfo(np.float64).eps)
_FLOOR_FACTOR = 10.0  # medians within this factor of the floor are left out of the slope fit


def median_and_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over seeds (axis 0), ignoring NaN and inf entries."""
    array = np.atleast_2d(np.asarray(values, dtype=np.float64)).copy()
    array[~np.isfinite(array)] = np.nan
    with np.errstate(all="ignore"):
        columns_with_data = ~np.all(np.isnan(array), axis=0)
        median = np.full(array.shape[1], np.nan)
        low = np.full(array.shape[1], np.nan)
        high = np.full(array.shape[1], np.nan)
        data = array[:, columns_with_data]
        median[columns_with_data] = np.nanmedian(data, axis=0)
        low[columns_with_data] = np.nanmin(data, axis=0)
        high[columns_with_data] = np.nanmax(data, axis=0)
    return median, low, high


def fitted_slope(
    x: Sequence[float], medians: np.ndarray, scale: str, floor: float | None = None, fit_from: float | None = None
) -> float:
    """``fit_slope`` over the usable points (finite, > 0, above ``10 * floor``, ``x >= fit_from``); ``nan`` if < 2."""
    x = np.asarray(x, dtype=np.float64)
    usable = np.isfinite(medians) & (medians > 0) & np.isfinite(x)
    if fit_from is not None:
        usable &= x >= fit_from
    if scale == "loglog":
        usable &= x > 0
    if floor is not None:
        usable &= medians > _FLOOR_FACTOR * floor
    if usable.sum() < 2:
        return float("nan")
    return fit_slope(x[usable], medians[usable], scale)  # type: ignore[arg-type]


def plot_error_vs_depth(
    path: str | Path,
    depths: Sequence[int],
    curves: Mapping[str, np.ndarray],
    *,
    reference: Mapping[str, np.ndarray] | None = None,
    floor: float | None = None,
    title: str = "",
    ylabel: str = "error",
    xlabel: str = "depth $L$",
    fit_from: float | None = None,
    **options,
) -> Slopes:
    r"""Semilog-y error against depth; returns each curve's fitted slope $\log\rho$ per layer.

    Args:
        path: PNG file to write (parent folders are created).
        depths: the $L$ values, shape ``(n,)``.
        curves: label -> errors of shape ``(seeds, n)`` (a 1-D array is one seed).
        reference: label -> theory/reference values of shape ``(n,)``, drawn dashed.
        floor: the float64 floor (e.g. ``eps * scale``), drawn dotted; fitted slopes ignore
            medians within a factor 10 of it.
        fit_from: fit the slope only on depths >= this (an asymptotic window).
        options: ``ax``, ``slope_labels``, ``footnote``, ``show_title``, ``figsize``, as in :func:`plot_errors`.
    """
    return plot_errors(
        path, depths, curves, scale="semilog", dashed=reference, floor=floor, title=title, xlabel=xlabel, ylabel=ylabel,
        fit_from=fit_from, **options,
    )  # fmt: skip


def plot_error_vs_width(
    path: str | Path,
    widths: Sequence[float],
    curves: Mapping[str, np.ndarray],
    *,
    bounds: Mapping[str, np.ndarray] | None = None,
    expected_slope: float | None = None,
    floor: float | None = None,
    title: str = "",
    ylabel: str = "error",
    xlabel: str = "width $M$",
    fit_from: float | None = None,
    **options,
) -> Slopes:
    """Log-log error against width; returns each curve's fitted log-log slope.

    Args:
        path: PNG file to write.
        widths: the widths, shape ``(n,)``, all > 0.
        curves: label -> errors of shape ``(seeds, n)`` (a 1-D array is one seed).
        bounds: label -> bound values of shape ``(n,)``, dashed (same colour as the curve
            of the same label).
        expected_slope: the theorem's order; drawn as a grey reference line through the
            first curve's first usable median, shifted down by a factor 2.
        floor: the float64 floor, drawn dotted; ignored by the slope fit within a factor 10.
        fit_from: fit the slope only on widths >= this (an asymptotic window).
        options: ``ax``, ``slope_labels``, ``footnote``, ``show_title``, ``figsize``, as in :func:`plot_errors`.
    """
    return plot_errors(
        path, widths, curves, scale="loglog", dashed=bounds, floor=floor, expected_slope=expected_slope, title=title,
        xlabel=xlabel, ylabel=ylabel, fit_from=fit_from, **options,
    )  # fmt: skip


class Slopes(dict):
    """Curve label -> fitted slope (a plain ``dict``), with the drawn :class:`~matplotlib.figure.Figure` as
    ``.figure``."""

    figure: Figure


class Panels(dict):
    """Panel title -> :class:`HeatmapBlock` (what :func:`weight_heatmap` drew), with the figure as ``.figure``."""

    figure: Figure


def plot_errors(
    path: str | Path | None,
    x: Sequence[float],
    curves: Mapping[str, np.ndarray],
    *,
    scale: str,
    dashed: Mapping[str, np.ndarray] | None = None,
    floor: float | None = None,
    expected_slope: float | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "error",
    fit_from: float | Mapping[str, float | None] | None = None,
    dashed_labels: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    slope_labels: bool = True,
    footnote: bool = True,
    show_title: bool = True,
    figsize: tuple[float, float] | None = None,
    style_sizes: bool = False,
) -> Slopes:
    """Errors against ``x`` on a log y-axis (``scale="semilog"``, or ``"loglog"`` with a log x-axis); returns each
    curve's fitted slope (a :class:`Slopes` dict; the figure is ``.figure``). ``fit_from`` is one window for every
    curve or a window per curve label; the rest as in :func:`plot_error_vs_depth` and :func:`plot_error_vs_width`.

    ``ax`` draws into that axes (of a figure the caller owns; ``path=None`` saves nothing), else a new figure of
    ``figsize`` (default 6.4 x 4.4 in). ``slope_labels``, ``footnote`` and ``show_title`` switch the fitted slope in
    each legend entry, the "median over seeds" note under the axes and the title. ``dashed_labels`` gives a dashed
    curve's legend entry (default: ``"<label> (bound)"``). Curves (or dashed curves) with identical data are drawn
    once, with one legend entry naming them all; a float floor below every datum is not drawn (its legend entry
    says so) and does not stretch the axis. ``style_sizes`` takes the title and legend font sizes from the
    matplotlib style in effect (an ``.mplstyle``) instead of the fixed 10 and 7 pt.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x values must be a non-empty 1-D sequence, got shape {x.shape}")
    dashed = dict(dashed or {})
    dashed_labels = dict(dashed_labels or {})
    summaries = {}
    for label, values in curves.items():
        array = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if array.shape[1] != x.size:
            raise ValueError(f"curve {label!r} has {array.shape[1]} columns, expected one per x value ({x.size})")
        summaries[label] = median_and_band(array)
    for label, values in dashed.items():
        if np.asarray(values).shape != x.shape:
            raise ValueError(f"dashed curve {label!r} has shape {np.asarray(values).shape}, expected {x.shape}")

    display_floor = _display_floor([s[1] for s in summaries.values()] + list(dashed.values()), floor)
    clip = lambda v: np.where(np.isfinite(v), np.maximum(v, display_floor), np.nan)  # noqa: E731

    if ax is None:
        fig = Figure(figsize=figsize or (6.4, 4.4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.set_yscale("log")
    if scale == "loglog":
        ax.set_xscale("log")
        _plain_ticks(ax, x)
    colours = _colour_cycle()
    colour_of: dict[str, str] = {}
    slopes = Slopes()
    drawn: dict[bytes, list[str]] = {}  # identical data -> the labels of every curve holding it
    for label, (median, low, high) in summaries.items():
        window = fit_from.get(label) if isinstance(fit_from, Mapping) else fit_from
        slopes[label] = fitted_slope(x, median, scale, floor, window)
        drawn.setdefault(np.stack([median, low, high]).tobytes(), []).append(label)
    for labels in drawn.values():
        median, low, high = summaries[labels[0]]
        colour = next(colours)
        for label in labels:
            colour_of[label] = colour
        slope = slopes[labels[0]] if slope_labels else float("nan")
        ax.fill_between(x, clip(low), clip(high), color=colour, alpha=0.2, linewidth=0)
        ax.plot(
            x,
            clip(median),
            "o-",
            color=colour,
            markersize=3.5,
            label=_slope_label(" = ".join(labels), slope, scale, xlabel),
        )
    dashed_drawn: dict[bytes, list[str]] = {}
    for label, values in dashed.items():
        dashed_drawn.setdefault(np.asarray(values, dtype=np.float64).tobytes(), []).append(label)
    for labels in dashed_drawn.values():
        colour = colour_of.get(labels[0]) or colour_of.setdefault(labels[0], next(colours))
        names = [dashed_labels.get(label, f"{label} (bound)" if label in summaries else label) for label in labels]
        name = " = ".join(dict.fromkeys(names))
        ax.plot(x, clip(np.asarray(dashed[labels[0]], dtype=np.float64)), "--", color=colour, linewidth=1.3, label=name)
    if expected_slope is not None and summaries:
        _reference_line(ax, x, next(iter(summaries.values()))[0], expected_slope, scale, floor, xlabel)
    if floor is not None:
        data_limits = ax.get_ylim()
        below = floor < data_limits[0]
        ax.axhline(
            floor, color="black", linestyle=":", linewidth=1.0,
            label=f"float64 floor ({floor:.1e}{', below the axis' if below else ''})",
        )  # fmt: skip
        if below:  # clipped to the data's range: a floor far below the data does not stretch the axis
            ax.set_ylim(*data_limits)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title and show_title:
        ax.set_title(title, fontsize=None if style_sizes else 10)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.6)
    ax.tick_params(direction="in", which="both")
    ax.legend(fontsize=None if style_sizes else 7, loc="best")
    if footnote:
        ax.annotate(
            "line: median over seeds; band: min-max",
            xy=(0.0, 0.0),
            xycoords="axes fraction",
            xytext=(0, -40),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=6,
            color="dimgray",
        )
    if path is not None:
        save(fig, path)
    slopes.figure = fig
    return slopes


def _plain_ticks(ax: Axes, x: np.ndarray) -> None:
    """Label a log x-axis at the measured x values in plain numbers (4, 8, 16, ...)."""
    if x.size <= 12 and np.all(x > 0):
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _display_floor(arrays: list[np.ndarray], floor: float | None) -> float:
    """A positive value below every positive datum (and the float floor), for log axes."""
    positives = [np.asarray(a, dtype=np.float64) for a in arrays]
    values = np.concatenate([a[np.isfinite(a) & (a > 0)].ravel() for a in positives] or [np.array([])])
    smallest = float(values.min()) if values.size else 1.0
    if floor is not None and floor > 0:
        smallest = min(smallest, floor)
    return smallest / 10.0


def _slope_label(label: str, slope: float, scale: str, xlabel: str = "") -> str:
    """A curve's legend entry with its fitted slope (per unit of the x-axis, and the factor per unit, on semilog)."""
    if not np.isfinite(slope):
        return label
    if scale == "loglog":
        return f"{label} (slope {slope:.2f})"
    return f"{label} (slope {slope:.3f} per unit of {xlabel or 'x'}, factor {np.exp(slope):.3g})"


def _reference_line(
    ax: Axes, x: np.ndarray, median: np.ndarray, slope: float, scale: str, floor: float | None, xlabel: str = ""
) -> None:
    usable = np.flatnonzero(np.isfinite(median) & (median > 0))
    if usable.size == 0:
        return
    x0, y0 = x[usable[0]], median[usable[0]] / 2.0
    if scale == "loglog":
        values = y0 * (x / x0) ** slope
        text = f"reference slope {slope:g}"
    else:
        values = y0 * np.exp(slope * (x - x0))
        text = f"reference factor {np.exp(slope):.3g} per unit of {xlabel or 'x'}"
    if floor is not None:
        values = np.where(values > floor, values, np.nan)
    ax.plot(x, values, "-.", color="gray", linewidth=1.0, label=text)


def _colour_cycle():
    palette = [f"C{i}" for i in range(10)]
    while True:
        yield from palette


# --------------------------------------------------------------------------- weight heat-maps

_PANEL_COLUMNS = 4  # panels per row of a heat-map figure
_CELL_VALUES = 6  # blocks at most this many rows and columns carry their values in the cells (others a colour bar)
_MAX_TICKS = 16  # above this many rows/columns in a block, label every few


@dataclass(frozen=True)
class Span:
    """Consecutive rows or columns of a weight matrix drawn as one side of a panel: a subspace of the residual stream
    or a run of hidden units, ``name``-d, from index ``start``, one label per row/column."""

    name: str
    start: int
    labels: tuple[str, ...]

    @property
    def stop(self) -> int:
        return self.start + len(self.labels)


@dataclass(frozen=True)
class HeatmapBlock:
    r"""One panel of :func:`weight_heatmap`: the block of ``matrix`` on the rows and columns labelled ``rows`` and
    ``cols``, drawn on its own colour scale $[-\ell, \ell]$ with $\ell$ = ``limit`` $= \max |w|$ over the block (0,
    with no rows or columns, for a matrix that is zero everywhere, which is drawn as a note)."""

    matrix: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    limit: float


@dataclass(frozen=True)
class WeightMatrix:
    """A weight matrix to show block by block, with what its rows and columns are (``plain``: its name without
    LaTeX, for pages that do not typeset it)."""

    name: str
    plain: str
    values: np.ndarray
    rows: list[Span]
    cols: list[Span]
    row_axis: str
    col_axis: str
    note: str = ""
    by_column: bool = False  # panels in column order (an MLP's W_in: the blocks each run of units reads together)

    def blocks(self) -> list[tuple[Span, Span]]:
        """The (row span, column span) pairs where the matrix is not zero, in reading order."""
        pairs = [(rows, cols) for rows in self.rows for cols in self.cols]
        if self.by_column:
            pairs = [(rows, cols) for cols in self.cols for rows in self.rows]
        return [(r, c) for r, c in pairs if np.any(self.values[r.start : r.stop, c.start : c.stop])]


def stream_spans(layout: ResidualLayout) -> list[Span]:
    """One span per subspace of the residual stream, labelled coordinate by coordinate."""
    return [Span(block.name, block.start, tuple(block.labels())) for block in layout]


def head_matrices(head: AttentionHead, name: str) -> tuple[WeightMatrix, WeightMatrix]:
    r"""A head's $W_{QK}$ (rows: the query side $h_i$, columns: the key side $h_j$) and $W_{OV}$ (rows: read from
    $h_j$, columns: written to token $i$), both over residual coordinates."""
    streams = stream_spans(head.layout)
    query, key = "query side $h_i$: residual coordinate", "key side $h_j$: residual coordinate"
    read, written = "read from $h_j$: residual coordinate", "written to token $i$: residual coordinate"
    qk, ov = _numpy(head.qk.matrix), _numpy(head.ov.matrix)
    return (
        WeightMatrix(f"{name}: $W_{{QK}}$", f"{name}: W_QK", qk, streams, streams, query, key, head.scoring),
        WeightMatrix(f"{name}: $W_{{OV}}$", f"{name}: W_OV", ov, streams, streams, read, written),
    )


def mlp_matrices(mlp: MLP) -> tuple[WeightMatrix, WeightMatrix]:
    r"""An MLP's $W_{in}$ (rows: coordinates read, columns: hidden units in :func:`unit_runs`) and $W_{out}$ (rows:
    hidden units, columns: coordinates written)."""
    streams, runs = stream_spans(mlp.layout), unit_runs(mlp)
    read, written = "read from $h$: residual coordinate", "written to $h$: residual coordinate"
    return (
        WeightMatrix("$W_{in}$", "W_in", _numpy(mlp.w_in), streams, runs, read, "hidden unit", by_column=True),
        WeightMatrix("$W_{out}$", "W_out", _numpy(mlp.w_out), runs, streams, "hidden unit", written),
    )


def weight_heatmap(
    path: str | Path | None,
    model: Transformer,
    hook: str,
    *,
    dpi: int = DPI,
    ax: Axes | None = None,
    title: bool = True,
) -> Panels:
    r"""Heat-maps of the non-zero blocks of the weights of the sublayer called ``hook``, each on its own colour scale.

    A block is the part of a matrix on one row span and one column span: a subspace of the residual stream, or, for
    an MLP's hidden side, a run of units that read the same subspaces and write the same ones (:func:`unit_runs`).
    An attention sublayer shows each head's $W_{QK}$ (rows: the query side $h_i$, columns: the key side $h_j$, both
    residual coordinates, so $s_{ij} = h_i^\top W_{QK} h_j$) and $W_{OV}$ (rows: coordinates read from $h_j$, columns:
    coordinates written to token $i$); an MLP shows $W_{in}$ (rows: coordinates read, columns: hidden units) and
    $W_{out}$ (rows: hidden units, columns: coordinates written). Each panel has its own symmetric diverging scale
    $\pm\max|w|$ over the block (in its title), so a block of $\pm 1$ moves is as visible as one of $\pm 2558$ hinge
    slopes; blocks of at most 6 x 6 entries have their values written in the cells, larger ones a colour bar. A
    matrix that is zero everywhere (a head scoring 0) is a note in place of a panel.

    ``ax`` draws every panel into that axes' place of its figure (split into a grid there; ``path=None`` saves
    nothing); ``title=False`` leaves out the panel titles and the suptitle.

    Returns:
        panel title (``"<matrix>[<row span>, <column span>]"``, or the matrix name for a zero matrix) ->
        :class:`HeatmapBlock` (a :class:`Panels` dict; the figure is ``.figure``).
    """
    layer = model[hook]
    if layer.kind == "attention":
        matrices = [m for i, head in enumerate(layer.heads) for m in head_matrices(head, head.label or f"head {i}")]
    else:
        matrices = list(mlp_matrices(layer))

    panels: list[tuple[WeightMatrix, Span | None, Span | None]] = []
    for matrix in matrices:
        panels += [(matrix, rows, cols) for rows, cols in matrix.blocks()] or [(matrix, None, None)]
    columns = min(_PANEL_COLUMNS, len(panels))
    grid_rows = -(-len(panels) // columns)
    own = ax is None
    if own:
        fig = Figure(figsize=(columns * 3.0, grid_rows * 2.7 + 0.4))
        places = fig.add_gridspec(grid_rows, columns, wspace=0.75, hspace=0.95)
    else:
        fig = ax.figure
        places = ax.get_subplotspec().subgridspec(grid_rows, columns, wspace=0.75, hspace=0.95)
        ax.remove()
    result = Panels()
    for index, (matrix, rows, cols) in enumerate(panels):
        panel = fig.add_subplot(places[index // columns, index % columns])
        if rows is None or cols is None:
            panel.axis("off")
            panel.text(0.5, 0.5, f"{matrix.name} = 0\n(every entry is zero)", ha="center", va="center", fontsize=8)
            result[matrix.name] = HeatmapBlock(matrix.name, (), (), 0.0)
            continue
        key = f"{matrix.name}[{rows.name}, {cols.name}]"
        limit = _draw_block(fig, panel, matrix.values[rows.start : rows.stop, cols.start : cols.stop], rows, cols)
        if title:
            scale = f"scale $\\pm${limit:.4g}" + (f"; {matrix.note}" if matrix.note else "")
            panel.set_title(f"{key}\n{scale}", fontsize=7)
        panel.set_ylabel(matrix.row_axis, fontsize=6)
        panel.set_xlabel(matrix.col_axis, fontsize=6)
        result[key] = HeatmapBlock(matrix.name, rows.labels, cols.labels, limit)
    if own:
        if title:
            fig.suptitle(f"{hook} ({layer.kind}): the non-zero blocks, each on its own colour scale", fontsize=9)
        # fixed margins (in inches) for the tick labels, instead of tight_layout, which draws the figure once more
        fig.subplots_adjust(
            left=0.9 / fig.get_figwidth(),
            right=1 - 0.4 / fig.get_figwidth(),
            bottom=0.9 / fig.get_figheight(),
            top=1 - 0.75 / fig.get_figheight(),
        )
    if path is not None:
        save(fig, path, crop=False, dpi=dpi)
    result.figure = fig
    return result


def hidden_unit_labels(mlp) -> list[str]:
    """One label per hidden unit: its group's label, with ``:i`` for groups of several units."""
    labels: list[str] = []
    for group in mlp.groups:
        labels += [group.label] if group.size == 1 else [f"{group.label}:{i}" for i in range(group.size)]
    return labels


def unit_runs(mlp: MLP) -> list[Span]:
    """An MLP's hidden units in runs of consecutive units that read the same subspaces (biases, read from ``one``,
    aside) and write the same ones (the hinges of one interpolant, the halves of one exact move), each named by its
    groups' labels without knot, sign and unit index (``hinge s@0.1`` -> ``hinge s``); a name that repeats gets its
    unit range. A unit's label in the run is its index in the MLP."""

    def touched(weights: torch.Tensor) -> frozenset[str]:
        return frozenset(mlp.layout.touched(weights)) - {BIAS}  # a knot at 0 has no bias, still the same run

    signatures = [(touched(mlp.w_in[:, unit]), touched(mlp.w_out[unit])) for unit in range(mlp.width)]
    labels = hidden_unit_labels(mlp)
    runs: list[Span] = []
    start = 0
    for stop in range(1, mlp.width + 1):
        if stop < mlp.width and signatures[stop] == signatures[start]:
            continue
        name = ", ".join(dict.fromkeys(_UNIT_SUFFIX.sub("", label) for label in labels[start:stop]))
        if any(run.name == name for run in runs):
            name += f" (unit {start})" if stop == start + 1 else f" (units {start}-{stop - 1})"
        runs.append(Span(name, start, tuple(str(unit) for unit in range(start, stop))))
        start = stop
    return runs


_UNIT_SUFFIX = re.compile(r"(@[^:]*)?[+-]?(:\d+)?$")  # a hinge's knot, a ReLU pair's sign, a unit's index in its group


def _draw_block(fig: Figure, ax: Axes, values: np.ndarray, rows: Span, cols: Span) -> float:
    """Draw one non-zero block on its own symmetric scale; return the scale's half-width $\\max |w|$."""
    limit = float(np.abs(values).max())
    image = ax.imshow(
        values,
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
        aspect="auto",
        interpolation="nearest",
    )
    if max(values.shape) <= _CELL_VALUES:
        for (row, col), value in np.ndenumerate(values):
            if value != 0:
                colour = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=6, color=colour)
    else:
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03).ax.tick_params(labelsize=5)
    _ticks(ax.set_yticks, rows.labels)
    _ticks(ax.set_xticks, cols.labels, rotation=90)
    return limit


def _ticks(setter, labels: Sequence[str], rotation: int = 0) -> None:
    """One tick per row/column, or every few when there are more than ``_MAX_TICKS``."""
    step = -(-len(labels) // _MAX_TICKS)
    positions = range(0, len(labels), step)
    setter(positions, [labels[p] for p in positions], fontsize=6, rotation=rotation)


def _numpy(matrix) -> np.ndarray:
    return matrix.detach().to("cpu").double().numpy()


SAVE_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "tfconstruct"}
_NO_METADATA = {
    ".png": {"Software": None},
    ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    ".svg": {"Creator": None, "Date": None},
}


def save(fig: Figure, path: str | Path, *, crop: bool = True, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG, PDF or SVG (by the suffix) without a timestamp or creator, fonts embedded as TrueType
    (PDF) or kept as text (SVG), SVG ids from a fixed salt (the same figure gives the same bytes); ``crop`` trims
    the margins (one more draw of the figure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(SAVE_RC):
        fig.savefig(
            path, dpi=dpi, bbox_inches="tight" if crop else None, metadata=_NO_METADATA.get(path.suffix.lower())
        )
    return path
