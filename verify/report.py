"""The main job: build every construction, verify it, write plots and a Markdown + JSON report.

One section per registered family (:mod:`tfconstruct.verify.families`), in the families' order (a section is the
family's ``section(context) -> SectionResult``), then the theory section (every registered bound, the approximating
parts; :mod:`tfconstruct.verify.approximation.section`) and the tutorials of the families reported on.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .approximation import section as theory
from .families import tutorials
from .family import Family
from .results import ReportContext, SectionResult
from .tutorial import tutorial_section

Section = tuple[str, str, Callable[[ReportContext], SectionResult]]
THEORY: Section = ("theory", "Theory: bounds, slack and LaTeX", theory.run)


def select_sections(families: Sequence[Family], only: Sequence[str] | None = None) -> list[Section]:
    """``(key, title, run)`` of the sections to report: every family's and the theory section, or those in ``only``;
    then the tutorials of the families chosen.

    Raises:
        ValueError: naming the unknown names and the available ones.
    """
    sections = [(family.name, family.title, family.section) for family in families] + [THEORY]
    known = [key for key, _, _ in sections]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; available: {known}")
    chosen = [family for family in families if not only or family.name in only]
    sections = [section for section in sections if not only or section[0] in only]
    examples = tutorials(chosen)
    if examples:
        sections.append(("tutorials", "Tutorials", lambda context: tutorial_section(context, examples)))
    return sections


def run_report(context: ReportContext, families: Sequence[Family], only: Sequence[str] | None = None) -> bool:
    """Run the sections, write ``report.md`` and ``report.json``; return whether every check passed."""
    sections = select_sections(families, only)
    context.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(context.seed)
    lines = [
        "# Construction verification report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} on {platform.platform()}, torch {torch.__version__}, "
        f"device {context.device}, {'quick' if context.quick else 'full'} study, seed {context.seed}.",
        "",
    ]
    summary: list[str] = []
    payload: dict[str, Any] = {"device": context.device, "quick": context.quick, "seed": context.seed, "sections": {}}
    all_passed = True
    for key, title, section in sections:
        started = time.perf_counter()
        print(f"[report] {title} ...", flush=True)
        result: SectionResult = section(context)
        seconds = time.perf_counter() - started
        passed = all(c.passed for c in result.checks)
        all_passed &= passed
        summary.append(f"| {title} | {sum(c.passed for c in result.checks)}/{len(result.checks)} | {seconds:.1f} s |")
        lines += [f"## {title}", "", result.markdown.strip(), ""]
        if result.checks:
            lines += ["| check | measured | requirement | result |", "|---|---|---|---|"]
            lines += [
                f"| {_cell(c.name)} | {_cell(c.measured)} | {_cell(c.requirement)} | {'pass' if c.passed else '**FAIL**'} |"
                for c in result.checks
            ]
            lines.append("")
        for figure in map(Path, result.figures):
            lines += [f"![{figure.stem}]({figure.relative_to(context.out_dir).as_posix()})", ""]
        payload["sections"][key] = {
            "title": title,
            "seconds": seconds,
            "data": result.data,
            "checks": [c.__dict__ for c in result.checks],
        }
        print(f"[report] {title}: {'all checks pass' if passed else 'CHECK FAILED'} ({seconds:.1f} s)", flush=True)
    header = ["## Summary", "", "| section | checks passed | time |", "|---|---|---|", *summary, ""]
    lines[4:4] = header
    (context.out_dir / "report.md").write_text("\n".join(lines))
    (context.out_dir / "report.json").write_text(json.dumps(payload, indent=2, default=float))
    return all_passed


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (a bare ``|`` would end the cell)."""
    return text.replace("\\|", "|").replace("|", "\\|")
