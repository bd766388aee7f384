"""`tfconstruct plot DIR`: re-plotting a sweep folder (png, pdf, svg; styles; --at; bad inputs) and the ``ax=`` helpers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from matplotlib.figure import Figure

from tfconstruct.verify.cli import main
from tfconstruct.verify.plots import plot_error_vs_depth, plot_error_vs_width, save


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    grid = ["--dim", "4", "--tokens", "40", "--gap", "0.5", "--depth", "2", "4", "8", "--width", "8", "16"]
    assert main(["sweep", "power", "--out", str(out), *grid, "--replicates", "2"]) == 0
    return out


def test_plot_writes_valid_png_pdf_and_svg_without_type3_fonts(sweep, tmp_path):
    assert main(["plot", str(sweep), "--format", "pdf", "svg", "png", "--out", str(tmp_path)]) == 0
    for stem in ("power_sin_eigh_vs_depth", "power_norm_error_vs_width"):
        pdf = (tmp_path / f"{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"/Type3" not in pdf
        svg = (tmp_path / f"{stem}.svg").read_bytes()
        ElementTree.fromstring(svg)
        assert b"<text" in svg  # svg.fonttype none: text stays text
        assert (tmp_path / f"{stem}.png").read_bytes().startswith(b"\x89PNG")


def test_bound_curves_are_labelled_with_the_registered_bound(sweep, tmp_path):
    assert main(["plot", str(sweep), "--format", "svg", "--metric", "sin_eigh", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["power_sin_eigh_vs_depth.svg"]
    name = json.loads((sweep / "config.json").read_text())["provenance"]["bounds"]["sin_eigh_bound"]
    svg = (tmp_path / "power_sin_eigh_vs_depth.svg").read_text()
    assert f"bound: {name} (median over seeds)" in svg


def test_replotting_twice_gives_identical_svg_bytes(sweep, tmp_path):
    for folder in ("a", "b"):
        assert main(["plot", str(sweep), "--format", "svg", "--out", str(tmp_path / folder)]) == 0
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_at_selects_a_slice_and_the_paper_style_applies(sweep, tmp_path):
    common = ["--format", "svg", "--metric", "sin_eigh"]
    assert main(["plot", str(sweep), *common, "--out", str(tmp_path / "default")]) == 0
    assert main(["plot", str(sweep), *common, "--at", "width=8", "--out", str(tmp_path / "w8")]) == 0
    assert main(["plot", str(sweep), *common, "--style", "paper", "--out", str(tmp_path / "paper")]) == 0
    default = (tmp_path / "default" / "power_sin_eigh_vs_depth.svg").read_text()
    w8 = (tmp_path / "w8" / "power_sin_eigh_vs_depth.svg").read_text()
    assert "at M = 16" in default and "at M = 8" in w8
    assert "serif" in (tmp_path / "paper" / "power_sin_eigh_vs_depth.svg").read_text()


@pytest.mark.parametrize(
    "extra",
    [["--metric", "nope"], ["--at", "width=5"], ["--at", "nope=1"], ["--at", "width"], ["--style", "nope"]],
)
def test_bad_inputs_exit_2_in_one_line(sweep, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as stop:
        main(["plot", str(sweep), "--out", str(tmp_path), *extra])
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in errors[0]
    assert not list(tmp_path.iterdir())


def test_a_folder_that_is_no_sweep_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["plot", str(tmp_path)])
    assert stop.value.code == 2
    assert "config.json" in capsys.readouterr().err


def test_helpers_draw_two_panels_into_one_figure(tmp_path):
    fig = Figure(figsize=(8, 3))
    left, right = fig.subplots(1, 2)
    depths, widths = np.array([1, 2, 4, 8]), np.array([4, 8, 16, 32])
    rng = np.random.default_rng(0)
    same = 0.5**depths * (1 + 0.1 * rng.random((3, 4)))
    depth = plot_error_vs_depth(None, depths, {"a": same, "b": same.copy()}, floor=1e-16, ax=left, footnote=False)
    width = plot_error_vs_width(
        None, widths, {"e": widths**-2.0}, ax=right, slope_labels=False, show_title=False, title="hidden"
    )
    assert depth.figure is fig and width.figure is fig and len(fig.axes) == 2
    assert set(depth) == {"a", "b"} and depth["a"] == depth["b"]
    # identical curves are drawn once, with one legend entry naming both
    legend = [t.get_text() for t in left.get_legend().get_texts()]
    assert sum(text.startswith("a = b") for text in legend) == 1 and len(left.get_lines()) == 2
    # a float floor far below the data does not stretch the axis
    assert left.get_ylim()[0] > 1e-6 and any("below the axis" in text for text in legend)
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["e"] and right.get_title() == ""
    for suffix in ("png", "pdf", "svg"):
        save(fig, tmp_path / f"two.{suffix}")
        assert (tmp_path / f"two.{suffix}").stat().st_size > 0


def test_a_style_file_matplotlib_would_skip_lines_of_is_refused(tmp_path):
    from tfconstruct.verify.replot import ReplotError, style_path

    bad = tmp_path / "bad.mplstyle"
    bad.write_text("lines.linewidth: fat\n")
    with pytest.raises(ReplotError, match="not a valid matplotlib style file .*Could not convert 'fat'"):
        style_path(str(bad))
    junk = tmp_path / "junk.mplstyle"
    junk.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ReplotError, match="Bad key root"):
        style_path(str(junk))
