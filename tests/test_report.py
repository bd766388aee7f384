"""The main job end to end (quick study): every family's section runs, writes its figures, and every check passes."""

import json

import pytest

from tfconstruct.verify.explore.browser import find_browser
from tfconstruct.verify.explore.section import explore_section
from tfconstruct.verify.families import registered, tutorials
from tfconstruct.verify.report import Outcome, ReportContext, run_report, select_sections

FAMILIES = registered()


def test_quick_report_runs_every_section_and_passes(tmp_path):
    names = [family.name for family in FAMILIES]
    assert names[:3] == ["power", "em", "tensor"]
    assert run_report(ReportContext(tmp_path, quick=True), FAMILIES) == Outcome.PASSED, (
        tmp_path / "report.md"
    ).read_text()
    markdown = (tmp_path / "report.md").read_text()
    payload = json.loads((tmp_path / "report.json").read_text())
    for family in FAMILIES:
        assert f"## {family.title}" in markdown
    assert list(payload["sections"]) == [*names, "theory", "float32", "resources", "training", "tutorials", "explore"]
    precision = payload["sections"]["float32"]["data"]["rows"]
    assert [row["family"] for row in precision] == names
    assert all(0 < row["deviation"] <= row["floor"] for row in precision)  # float32 is measurably not float64
    checks = [c for section in payload["sections"].values() for c in section["checks"]]
    assert len(checks) >= 30 and all(c["passed"] for c in checks)
    figures = list((tmp_path / "figures").glob("*.png"))
    assert len(figures) >= 8 and all(f.stat().st_size > 10_000 for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in markdown
    examples = sum(len(family.tutorials) for family in FAMILIES)
    assert len(list((tmp_path / "tutorials").glob("tutorial_*.md"))) == examples
    pages = list((tmp_path / "explore").glob("*.html"))
    assert len(pages) == examples and all(page.stat().st_size > 1_000_000 for page in pages)
    explore = payload["sections"]["explore"]["data"]
    assert explore["browser"] == "not run: quick mode" and "Browser check not run" in markdown  # says so


def test_the_full_explorer_section_drives_a_browser_or_says_why_not(tmp_path):
    em = next(family for family in FAMILIES if family.name == "em")
    result = explore_section(ReportContext(tmp_path), tutorials([em]))
    assert all(check.passed for check in result.checks), result.checks
    if find_browser().reason:  # the report says the browser check did not run, and why
        assert result.data["browser"].startswith("not run:") and "Browser check not run" in result.markdown
    else:
        assert result.data["browser"]["problems"] == [] and (tmp_path / "explore" / "em.png").stat().st_size > 20_000
        assert "![the em explorer page](explore/em.png)" in result.markdown


def test_only_selects_sections_and_names_the_unknown_ones():
    keys = [key for key, _, _ in select_sections(FAMILIES, ["theory", "power"])]
    assert keys == ["power", "theory", "tutorials", "explore"]
    assert [key for key, _, _ in select_sections(FAMILIES, ["theory"])] == ["theory"]
    assert [key for key, _, _ in select_sections(FAMILIES, ["gd", "float32"])] == [
        "gd",
        "float32",
        "tutorials",
        "explore",
    ]
    with pytest.raises(ValueError, match=r"unknown report section\(s\) \['pca'\]; available: \['power', 'em'"):
        select_sections(FAMILIES, ["pca"])
