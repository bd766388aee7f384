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

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tfconstruct.constructions.model import Transformer  # noqa: E402

from .rates import fit_slope  # noqa: E402

DPI = 120
FLOAT64_EPS = float(np.finfo(np.float64).eps)
_FLOOR_FACTOR = 10.0  # medians within this factor of the floor are left out of the slope fit
_MAX_TICKS = 24  # above this many coordinates, label one tick per subspace / unit group


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
    """Panel title -> (row labels, column labels), with the drawn figure as ``.figure``."""

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


def weight_heatmap(
    path: str | Path | None,
    model: Transformer,
    hook: str,
    *,
    dpi: int = DPI,
    ax: Axes | None = None,
    title: bool = True,
) -> Panels:
    """Heat-map of the weights of the sublayer called ``hook`` with the named subspaces on the axes.

    An attention sublayer shows each head's $W_{QK}$ (query coordinate x key coordinate) and
    $W_{OV}$ (read coordinate x written coordinate); an MLP shows $W_{in}$ (residual coordinate
    x hidden unit) and $W_{out}$ (hidden unit x residual coordinate). Colours are a diverging
    map centred at 0; zero rows and columns are kept so the block structure is visible, and
    thin lines separate the subspaces (and the MLP's unit groups).

    ``ax`` draws every panel into that axes' place of its figure (split into a grid of panels there; ``path=None``
    saves nothing); ``title=False`` leaves out the panel titles and the suptitle.

    Returns:
        panel title -> (row labels, column labels), one label per matrix row/column (a :class:`Panels` dict; the figure
        is ``.figure``).
    """
    layer = model[hook]
    layout = model.layout
    coordinates = layout.labels()
    stream_edges = [s.start for s in layout][1:]
    panels: list[tuple[str, np.ndarray, list[str], list[str], list[int], list[int], str, str]] = []
    if layer.kind == "attention":
        for m, head in enumerate(layer.heads):
            name = head.label or f"head {m}"
            panels.append(
                (
                    f"{name}: $W_{{QK}}$ ({head.scoring})",
                    _numpy(head.qk.matrix),
                    coordinates,
                    coordinates,
                    stream_edges,
                    stream_edges,
                    "query token",
                    "key token",
                )
            )
            panels.append(
                (
                    f"{name}: $W_{{OV}}$",
                    _numpy(head.ov.matrix),
                    coordinates,
                    coordinates,
                    stream_edges,
                    stream_edges,
                    "read from",
                    "written to",
                )
            )
    else:
        units = hidden_unit_labels(layer)
        unit_edges = [g.start for g in layer.groups][1:]
        panels.append(
            (
                "$W_{in}$",
                _numpy(layer.w_in),
                coordinates,
                units,
                stream_edges,
                unit_edges,
                "residual coordinate (read)",
                "hidden unit",
            )
        )
        panels.append(
            (
                "$W_{out}$",
                _numpy(layer.w_out),
                units,
                coordinates,
                unit_edges,
                stream_edges,
                "hidden unit",
                "residual coordinate (written)",
            )
        )

    columns = 2
    rows = len(panels) // columns
    size = min(max(3.2, 0.16 * max(max(m.shape) for _, m, *_ in panels)), 9.0)
    own = ax is None
    if own:
        fig = Figure(figsize=(columns * (size + 1.6), rows * (size + 1.0)))
        places = fig.add_gridspec(rows, columns, wspace=0.5, hspace=0.55)
    else:
        fig = ax.figure
        places = ax.get_subplotspec().subgridspec(rows, columns, wspace=0.5, hspace=0.55)
        ax.remove()
    result = Panels()
    for index, (name, matrix, row_labels, col_labels, row_edges, col_edges, ylabel, xlabel) in enumerate(panels):
        panel = fig.add_subplot(places[index // columns, index % columns])
        _draw_matrix(fig, panel, matrix, row_labels, col_labels, row_edges, col_edges)
        if title:
            panel.set_title(name, fontsize=9)
        panel.set_ylabel(ylabel, fontsize=8)
        panel.set_xlabel(xlabel, fontsize=8)
        result[name] = (list(row_labels), list(col_labels))
    if own:
        if title:
            fig.suptitle(f"{hook} ({layer.kind})", fontsize=10)
        # fixed margins (in inches) for the tick labels, instead of tight_layout, which draws the figure once more
        fig.subplots_adjust(
            left=1.2 / fig.get_figwidth(),
            right=1 - 0.3 / fig.get_figwidth(),
            bottom=1.3 / fig.get_figheight(),
            top=1 - 0.6 / fig.get_figheight(),
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


def _draw_matrix(
    fig: Figure,
    ax: Axes,
    matrix: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    row_edges: list[int],
    col_edges: list[int],
) -> None:
    finite = np.abs(matrix[np.isfinite(matrix)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    image = ax.imshow(
        matrix,
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
        aspect="auto",
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    for edge in row_edges:
        ax.axhline(edge - 0.5, color="black", linewidth=0.5, alpha=0.6)
    for edge in col_edges:
        ax.axvline(edge - 0.5, color="black", linewidth=0.5, alpha=0.6)
    _ticks(ax.set_yticks, row_labels, row_edges)
    _ticks(ax.set_xticks, col_labels, col_edges, rotation=90)


def _ticks(setter, labels: list[str], edges: list[int], rotation: int = 0) -> None:
    """One tick per row/column, or one per block (at its centre) when there are too many."""
    fontsize = 7 if len(labels) <= 24 else 5
    if len(labels) <= _MAX_TICKS:
        setter(range(len(labels)), labels, fontsize=fontsize, rotation=rotation)
        return
    bounds = [0, *edges, len(labels)]
    centres = [(lo + hi - 1) / 2 for lo, hi in zip(bounds[:-1], bounds[1:])]
    names = [labels[lo].split(":")[0] for lo in bounds[:-1]]
    setter(centres, names, fontsize=fontsize, rotation=rotation)


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
