"""The explorer: page data read off any construction, reference checkpoints, the width study, the CLI, and a real
headless browser stepping through a page and reading back what it renders."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tfconstruct.constructions import Checkpoint
from tfconstruct.verify.cli import main
from tfconstruct.verify.em import reference as em_reference
from tfconstruct.verify.em.lesson import lesson as em_lesson
from tfconstruct.verify.explore.access import access, slot_status
from tfconstruct.verify.explore.browser import Page, find_browser
from tfconstruct.verify.explore.check import shown_numbers
from tfconstruct.verify.explore.data import forward, lesson_data
from tfconstruct.verify.explore.page import page_data, plotly_bundle, render_page, write_pages
from tfconstruct.verify.explore.reference import checkpoints, width_study
from tfconstruct.verify.explore.timeline import split_hook, steps
from tfconstruct.verify.families import registered, tutorials
from tfconstruct.verify.power.lesson import lesson as power_lesson

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "docs" / "examples" / "mean_family.py"


def test_hook_names_split_into_step_and_phase():
    assert split_hook("component0.iter3.inv_sqrt") == ("component0.iter3", "inv_sqrt")
    assert split_hook("iter2.estep.attn") == ("iter2", "estep.attn")
    assert split_hook("component0.finish.eigen") == ("component0", "finish.eigen")
    assert split_hook("readout") == ("readout", "readout")
    found = steps(["iter0.a", "iter0.b", "iter1.a", "readout"])
    assert [(s.name, s.first, s.last) for s in found] == [("iter0", 0, 1), ("iter1", 2, 2), ("readout", 3, 3)]


def test_reads_and_writes_come_from_the_weights():
    model = em_lesson().model
    estep = access(model["iter0.estep.attn"], model.layout)
    assert estep.writes == {"resp_new"}
    assert {"x", "mu", "sq_norm", "log_pi", "cluster", "is_centroid"} <= estep.reads
    mstep_mlp = access(model["iter0.mstep.mlp"], model.layout)
    assert "mu" not in mstep_mlp.reads  # clearing the old mean is not a use of it
    assert {"mu", "mu_new"} <= mstep_mlp.writes and "mu_new" in mstep_mlp.reads


def test_stale_slots():
    model = em_lesson().model
    status = slot_status(model, {"x": "input"})
    after_estep_mlp = model.names.index("iter0.estep.mlp") + 1
    assert status[after_estep_mlp]["mu"] == "stale"  # the M-step overwrites it without reading it again
    assert status[0]["mu"] == "live" and status[0]["x"] == "live"
    assert status[after_estep_mlp]["log_resp"] == "live"  # the M-step head scores it


def test_em_checkpoints_exact_head_and_approximate_logarithm():
    found = {c["label"]: c for c in checkpoints(em_lesson())}
    exact = [c for c in found.values() if c["exact"]]
    assert exact and max(c["relative"] for c in exact) <= 1e-12
    exact_em = next(c for label, c in found.items() if label.startswith("exact EM responsibilities"))
    example = em_lesson()
    layout, stream = example.model.layout, example.stream[0]
    data = (layout.read(stream, "is_data")[:, 0] > 0.5).numpy()
    centroid = (layout.read(stream, "is_centroid")[:, 0] > 0.5).numpy()
    points = layout.read(stream, "x").numpy()[data]
    state = em_reference.initial_state(
        layout.read(stream, "mu").numpy()[centroid], layout.read(stream, "pi").numpy()[centroid, 0], 1.0
    )
    truth = em_reference.responsibilities(points, state)
    np.testing.assert_allclose(np.asarray(exact_em["expected"])[:, centroid], truth, rtol=0, atol=1e-15)
    assert 0 < exact_em["difference"] < 0.05  # the log-pi interpolant's error, not zero and not large


@pytest.mark.parametrize("lesson", [power_lesson, em_lesson], ids=["power", "em"])
def test_width_study_falls_at_the_interpolation_rate(lesson):
    study = width_study(lesson())
    rows = study["rows"]
    assert [r["width"] for r in rows] == sorted(r["width"] for r in rows)
    assert -2.6 <= study["rate"] <= -1.4, study
    assert rows[-1]["approximate"] < rows[0]["approximate"] / 10
    assert max(r["exact"] for r in rows) <= 1e-12  # the exact parts stay exact at every width


def test_page_data_for_every_registered_family_and_a_plugin():
    families = registered([str(PLUGIN)])
    for key, factory in tutorials(families).items():
        example = factory()
        data = lesson_data(key, example, forward(key, example))
        assert len(data["streams"]) == len(example.model.layers) + 1
        assert len(data["sublayers"]) == len(example.model.layers)
        with torch.no_grad():
            final = example.model(example.stream)[0]
        assert data["streams"][-1] == final.tolist()
        heads = [h for s in data["sublayers"] for h in s.get("heads", [])]
        for head in heads:  # output = pattern @ values, as the page says
            np.testing.assert_allclose(
                np.asarray(head["pattern"]) @ np.asarray(head["values"]), np.asarray(head["output"]), atol=1e-12
            )


def test_mlp_interpolant_drawn_against_its_target():
    example = power_lesson()
    data = lesson_data("power", example, forward("power", example))
    inv_sqrt = next(s for s in data["sublayers"] if s["phase"] == "inv_sqrt")
    (function,) = inv_sqrt["functions"]
    assert function["name"] == "s^(-1/2)" and function["input"] == "norm_sq" and function["output"] == "inv_norm"
    s = np.asarray(function["current"])
    np.testing.assert_allclose(function["current_target"], s**-0.5, rtol=1e-12)
    overwrite = next(s for s in data["sublayers"] if s["phase"] == "overwrite")
    assert "v <- next" in overwrite["moves"] and "u <- 0" in overwrite["moves"]


def test_the_page_is_self_contained():
    html = render_page(page_data("power", power_lesson()), plotly_bundle())
    assert not re.search(r"<script[^>]*\ssrc=", html) and "<link" not in html
    assert "Plotly" in html and 'id="lesson"' in html or "id='lesson'" in html


def test_bad_lesson_data_is_refused_by_name():
    example = power_lesson()
    with pytest.raises(ValueError, match="roles"):
        dataclasses.replace(example, roles={"v": "temporary"})
    with pytest.raises(KeyError, match="no subspace|bogus"):
        dataclasses.replace(example, roles={"bogus": "state"})
    with pytest.raises(ValueError, match="exactly one of subspace= or head="):
        Checkpoint("component0.iter0.norm", "both", [[1.0]], subspace="v", head="h")
    with pytest.raises(KeyError, match="no sublayer named"):
        dataclasses.replace(example, checkpoints=(Checkpoint("nowhere", "x", [[1.0]], subspace="v"),))
    with pytest.raises(ValueError, match="widths needs at_width"):
        dataclasses.replace(example, at_width=None, widths=(4,))


def test_cli_writes_a_plugin_page_and_refuses_bad_input(tmp_path, capsys):
    assert main(["--plugin", str(PLUGIN), "explore", "mean", "--out", str(tmp_path / "pages")]) == 0
    assert (tmp_path / "pages" / "mean.html").stat().st_size > 1_000_000
    assert re.search(r"wrote .*mean\.html \(\d\.\d MB\)", capsys.readouterr().out)
    (tmp_path / "file").write_text("x")
    refused = {
        "invalid choice": ["explore", "nosuchfamily"],
        "--out must be a folder": ["explore", "gd", "--out", str(tmp_path / "file")],
        "must name a folder, got an empty string": ["explore", "gd", "--out", ""],
    }
    if Path("/proc").is_dir():  # writable by permissions (as root), refused by the file system
        refused["cannot be created"] = ["explore", "gd", "--out", "/proc/no_such_folder"]
    for message, argv in refused.items():
        with pytest.raises(SystemExit) as stop:
            main(argv)
        error = capsys.readouterr().err
        assert stop.value.code == 2 and message in error and "Traceback" not in error, (argv, error)


BROWSER = find_browser()
needs_browser = pytest.mark.skipif(bool(BROWSER.reason), reason=f"no headless browser here: {BROWSER.reason}")


@needs_browser
def test_em_page_in_a_real_browser(tmp_path):
    """Load the page, move the slider to the E-step, read back every rendered cell and reference row and compare them
    with a trace computed here; then the arrow keys and the whole-step toggle. (The report's section, tested in
    test_report.py, steps through every sublayer and writes the screenshot.)"""
    example = em_lesson()
    layout = example.model.layout
    with torch.no_grad():
        trace = example.model(example.stream, trace=True)
    path = write_pages(tmp_path / "report" / "explore", {"em": em_lesson})["em"]
    with Page(path, BROWSER) as page:
        assert page.errors == []
        estep = example.model.names.index("iter0.estep.attn")
        page.slide_to(estep)
        shown = page.snapshot()
        assert shown["hook"] == "iter0.estep.attn"
        after = trace["iter0.estep.attn"][0]
        assert len(shown["cells"]) >= example.stream.shape[1] * 5
        for cell in shown["cells"]:
            values = layout.read(after[cell["token"]], cell["block"]).tolist()
            assert cell["value"] == values
            assert np.allclose(shown_numbers(cell["text"]), values, rtol=5e-4, atol=1e-9), cell
        rows = [r for r in shown["checkpoints"] if r["label"].startswith("E-step from the stream's own")]
        pattern = example.model["iter0.estep.attn"].heads[0].pattern(trace.streams[estep])[0].numpy()
        assert len(rows) == 4 and all(np.array_equal(r["actual"], pattern[r["token"]]) for r in rows)
        assert all(np.allclose(r["actual"], r["expected"], rtol=0, atol=1e-15) for r in rows)
        exact_em = [r for r in shown["checkpoints"] if r["label"].startswith("exact EM responsibilities")]
        for row in exact_em:  # what the student reads: the E-step's responsibilities beside numpy's
            assert np.allclose(shown_numbers(row["actual_text"]), shown_numbers(row["expected_text"]), atol=2e-3)
        page.press("ArrowRight")
        assert page.snapshot()["hook"] == "iter0.estep.mlp"
        page.press("w")
        whole = page.snapshot()
        step = [i for i, hook in enumerate(example.model.names) if hook.startswith("iter0.")]
        assert (whole["first"], whole["last"]) == (step[0], step[-1]) and whole["hook"] == ""
        written = {c["block"] for c in whole["cells"] if "written" in c["classes"]}
        assert {"mu", "pi", "resp", "log_resp"} <= written


def test_no_browser_says_why(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    found = find_browser()
    assert found.reason and "chromium" in found.reason
    with pytest.raises(RuntimeError, match="no browser"):
        Page("nowhere.html", found)
