"""The plotting helpers write PNGs, return the slope of the plotted medians, and label heat-maps by subspace."""

import numpy as np
import pytest

from tfconstruct.constructions.attention import AttentionHead, MultiHeadAttention
from tfconstruct.constructions.mlp import MLPBuilder
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.piecewise import PiecewiseLinear, uniform_knots
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.weights import Bilinear, LinearMap
from tfconstruct.verify.plots import (
    HeatmapBlock,
    median_and_band,
    plot_error_vs_depth,
    plot_error_vs_width,
    unit_runs,
    weight_heatmap,
)
from tfconstruct.verify.rates import fit_slope

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC


def test_width_plot_returns_fit_slope_of_the_medians(tmp_path):
    rng = np.random.default_rng(1)
    widths = np.array([4, 8, 16, 32, 64])
    errors = widths[None, :] ** -2.0 * rng.uniform(0.5, 1.5, size=(7, widths.size))
    path = tmp_path / "width.png"
    slopes = plot_error_vs_width(
        path,
        widths,
        {"square": errors},
        bounds={"square": 2.0 * widths**-2.0},
        expected_slope=-2.0,
        floor=1e-16,
        title="t",
        ylabel="sup error",
    )
    assert _is_png(path)
    assert slopes["square"] == pytest.approx(fit_slope(widths, np.median(errors, axis=0)), rel=1e-12)
    assert abs(slopes["square"] + 2.0) < 0.3


def test_depth_plot_slope_is_log_rate_and_ignores_the_floor(tmp_path):
    depths = np.arange(0, 40)
    rate = 0.6
    errors = np.maximum(rate**depths, 1e-16)[None, :] * np.array([[1.0], [1.1], [0.9]])
    path = tmp_path / "depth.png"
    slopes = plot_error_vs_depth(
        path, depths, {"angle": errors}, reference={"rate^L": rate**depths}, floor=1e-16, title="t", ylabel="tan angle"
    )
    assert _is_png(path)
    above = np.median(errors, axis=0) > 1e-15
    assert slopes["angle"] == pytest.approx(fit_slope(depths[above], np.median(errors, axis=0)[above], "semilog"))
    assert slopes["angle"] == pytest.approx(np.log(rate), rel=1e-6)


def test_zeros_nans_and_infs_do_not_crash(tmp_path):
    widths = np.array([2, 4, 8])
    errors = np.array([[0.0, np.nan, 1e-3], [np.inf, 1e-2, 0.0], [1e-1, -1.0, 2e-3]])
    slopes = plot_error_vs_width(tmp_path / "w.png", widths, {"bad": errors}, title="t", ylabel="e")
    median, low, high = median_and_band(errors)
    assert median[0] == pytest.approx(0.05) and low[0] == 0.0 and high[0] == 0.1
    assert slopes["bad"] == pytest.approx(fit_slope([2, 8], [median[0], median[2]]))  # negative median skipped
    all_nan = plot_error_vs_depth(tmp_path / "d.png", [1, 2], {"nan": np.full((2, 2), np.nan)}, title="t", ylabel="e")
    assert np.isnan(all_nan["nan"])
    assert _is_png(tmp_path / "d.png")


def test_curve_shape_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="columns"):
        plot_error_vs_width(tmp_path / "w.png", [1, 2, 3], {"c": np.ones((2, 2))}, title="t", ylabel="e")


def _toy_model() -> Transformer:
    layout = ResidualLayout([("x", 2), ("one", 1), ("v", 2), ("s", 1)])
    head = AttentionHead(
        Bilinear(layout).add("x", "v", 2.0), LinearMap(layout).add("x", "v", -1.0), scoring="softmax", label="copy"
    )
    builder = MLPBuilder(layout, "square")
    PiecewiseLinear.interpolate(np.square, uniform_knots(-1.0, 1.0, 4)).add_to(builder, "s", "s")
    return Transformer(layout, [MultiHeadAttention([head], label="attend"), builder.build()])


def test_heatmap_panels_are_the_nonzero_blocks_labelled_by_subspace_and_unit_run(tmp_path):
    model = _toy_model()
    attention = weight_heatmap(tmp_path / "a.png", model, "attend")
    assert _is_png(tmp_path / "a.png")
    # W_QK = 2 <x_i, v_j> and W_OV = -1 x -> v: one non-zero block each, rows x, columns v
    assert list(attention) == ["copy: $W_{QK}$[x, v]", "copy: $W_{OV}$[x, v]"]
    assert attention["copy: $W_{QK}$[x, v]"] == HeatmapBlock("copy: $W_{QK}$", ("x:0", "x:1"), ("v:0", "v:1"), 2.0)
    assert attention["copy: $W_{OV}$[x, v]"] == HeatmapBlock("copy: $W_{OV}$", ("x:0", "x:1"), ("v:0", "v:1"), 1.0)
    axes_labels = {(a.get_ylabel(), a.get_xlabel()) for a in attention.figure.axes if a.get_ylabel()}
    assert ("query side $h_i$: residual coordinate", "key side $h_j$: residual coordinate") in axes_labels
    assert ("read from $h_j$: residual coordinate", "written to token $i$: residual coordinate") in axes_labels

    mlp = weight_heatmap(tmp_path / "m.png", model, "square")
    hinges = tuple(str(unit) for unit in range(5))  # 5 hinges of x^2 on [-1, 1] (the one at 0 has no bias), 1 offset
    assert [run.name for run in unit_runs(model.layers[1])] == ["hinge s", "offset s"]
    assert list(mlp) == [
        "$W_{in}$[one, hinge s]",
        "$W_{in}$[s, hinge s]",
        "$W_{in}$[one, offset s]",
        "$W_{out}$[hinge s, s]",
        "$W_{out}$[offset s, s]",
    ]
    assert mlp["$W_{in}$[s, hinge s]"].rows == ("s",) and mlp["$W_{in}$[s, hinge s]"].cols == hinges
    assert mlp["$W_{out}$[hinge s, s]"].rows == hinges and mlp["$W_{out}$[hinge s, s]"].cols == ("s",)
    with pytest.raises(KeyError, match="no sublayer named 'other'; names: attend, square"):
        weight_heatmap(tmp_path / "x.png", model, "other")


def test_each_block_of_a_heatmap_has_its_own_colour_scale(tmp_path):
    """An MLP whose blocks differ by 1000x: each panel's colour scale is its own block's max |w|, so the small block
    spans the whole colour map instead of vanishing next to the large one."""
    layout = ResidualLayout([("a", 2), ("b", 2), ("c", 1), ("one", 1)])
    builder = MLPBuilder(layout, "mixed")
    builder.group({"a": 1000.0}, {"b": 2000.0}, label="large")
    builder.group({"c": 0.5}, {"c": -1.0}, bias=0.25, label="small")
    model = Transformer(layout, [builder.build()], ["mixed"])
    panels = weight_heatmap(tmp_path / "mixed.png", model, "mixed", dpi=40)
    assert _is_png(tmp_path / "mixed.png")
    limits = {title: block.limit for title, block in panels.items()}
    assert limits == {
        "$W_{in}$[a, large]": 1000.0,
        "$W_{in}$[c, small]": 0.5,
        "$W_{in}$[one, small]": 0.25,
        "$W_{out}$[large, b]": 2000.0,
        "$W_{out}$[small, c]": 1.0,
    }
    drawn = [axes for axes in panels.figure.axes if axes.get_images()]
    assert len(drawn) == len(panels)
    for axes, (title, block) in zip(drawn, panels.items()):
        (image,) = axes.get_images()
        assert image.get_clim() == (-block.limit, block.limit), title  # symmetric, per block
        assert np.abs(image.get_array()).max() == block.limit, title  # the block's extreme reaches the scale's end
        written = [float(text.get_text()) for text in axes.texts]  # small blocks carry their values in the cells
        assert max(map(abs, written)) == block.limit, title


def test_a_zero_matrix_is_a_note_not_an_empty_panel(tmp_path):
    layout = ResidualLayout([("x", 2), ("m", 2)])
    head = AttentionHead(Bilinear(layout), LinearMap(layout).add("x", "m", 1.0), scoring="softmax", label="mean")
    model = Transformer(layout, [MultiHeadAttention([head])], ["mean"])
    panels = weight_heatmap(None, model, "mean")
    assert panels["mean: $W_{QK}$"] == HeatmapBlock("mean: $W_{QK}$", (), (), 0.0)
    assert list(panels) == ["mean: $W_{QK}$", "mean: $W_{OV}$[x, m]"]


def test_fit_from_restricts_the_slope_to_an_asymptotic_window(tmp_path):
    widths = np.array([2, 4, 8, 16, 32])
    errors = (widths**-1.0 + 5 * widths**-3.0)[None, :]  # pre-asymptotic bend at small widths
    full = plot_error_vs_width(tmp_path / "a.png", widths, {"e": errors}, title="t", ylabel="e")["e"]
    window = plot_error_vs_width(tmp_path / "b.png", widths, {"e": errors}, title="t", ylabel="e", fit_from=8)["e"]
    assert full == pytest.approx(fit_slope(widths, errors[0]))
    assert window == pytest.approx(fit_slope(widths[2:], errors[0, 2:]))
    assert abs(window + 1.0) < abs(full + 1.0)
