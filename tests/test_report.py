"""The main job end to end (quick study): every family's section runs, writes its figures, and every check passes."""

import json

import pytest

from tfconstruct.verify.families import FAMILIES
from tfconstruct.verify.report import ReportContext, run_report, select_families


def test_quick_report_runs_every_section_and_passes(tmp_path):
    assert [family.name for family in FAMILIES] == ["power", "em", "tensor", "theory"]
    assert run_report(ReportContext(tmp_path, quick=True)), (tmp_path / "report.md").read_text()
    markdown = (tmp_path / "report.md").read_text()
    payload = json.loads((tmp_path / "report.json").read_text())
    for family in FAMILIES:
        assert f"## {family.title}" in markdown
    assert list(payload["sections"]) == ["power", "em", "tensor", "theory", "tutorials"]
    checks = [c for section in payload["sections"].values() for c in section["checks"]]
    assert len(checks) >= 30 and all(c["passed"] for c in checks)
    figures = list((tmp_path / "figures").glob("*.png"))
    assert len(figures) >= 8 and all(f.stat().st_size > 10_000 for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in markdown
    assert len(list((tmp_path / "tutorials").glob("tutorial_*.md"))) == 4


def test_only_selects_families_and_names_the_unknown_ones():
    assert [family.name for family in select_families(["tensor", "power"])] == ["power", "tensor"]
    with pytest.raises(ValueError, match=r"unknown report section\(s\) \['pca'\]; available: \['power', 'em'"):
        select_families(["pca"])
