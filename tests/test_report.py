"""The main job end to end (quick study): every section runs, writes its figures, and every check passes."""

import json

from verify.report import ReportContext, discover_sections, run_report


def test_quick_report_runs_every_section_and_passes(tmp_path):
    sections = discover_sections()
    assert [m.__name__.rsplit(".", 1)[-1] for m in sections] == ["power", "em", "tensor", "theory"]
    assert run_report(ReportContext(tmp_path, quick=True)), (tmp_path / "report.md").read_text()
    markdown = (tmp_path / "report.md").read_text()
    payload = json.loads((tmp_path / "report.json").read_text())
    for module in sections:
        assert f"## {module.TITLE}" in markdown
    checks = [c for section in payload["sections"].values() for c in section["checks"]]
    assert len(checks) >= 30 and all(c["passed"] for c in checks)
    figures = list((tmp_path / "figures").glob("*.png"))
    assert len(figures) >= 8 and all(f.stat().st_size > 10_000 for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in markdown
