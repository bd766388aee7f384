"""The main job: build every construction, verify it, write plots and a Markdown + JSON report.

One section per registered family (:mod:`tfconstruct.verify.families`), in the families' order (a section is the
family's ``section(context) -> SectionResult``), then the theory section (every registered bound, the approximating
parts; :mod:`tfconstruct.verify.approximation.section`), the float32 section (every family's model in float32
against float64; :mod:`tfconstruct.verify.precision`), the resource table (every variant's shape counted from its
model, against the papers' claims; :mod:`tfconstruct.verify.resources`), the training comparison (the
construction's architecture trained in three regimes against the hand-built weights;
:mod:`tfconstruct.verify.train_compare`), the tutorials of the families reported
on and their interactive explorer pages (:mod:`tfconstruct.verify.explore.section`).

A section that raises (a bug in a plugin, a device that fails) does not take the others down: it is reported as
one failed check naming the error, its traceback goes to ``errors.log`` in the output folder, and
:func:`run_report` says so (the CLI exits with status 3).
"""

from __future__ import annotations

import enum
import json
import platform
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import precision, resources, train_compare
from .approximation import section as theory
from .explore.section import explore_section
from .families import tutorials
from .family import Family
from .results import Check, ReportContext, SectionResult
from .tutorial import tutorial_section

Section = tuple[str, str, Callable[[ReportContext], SectionResult]]
THEORY: Section = ("theory", "Theory: bounds, slack and LaTeX", theory.run)
TRAINING: Section = ("training", "Training: trained versus constructed", train_compare.section)


def select_sections(families: Sequence[Family], only: Sequence[str] | None = None) -> list[Section]:
    """``(key, title, run)`` of the sections to report: every family's, the theory, the float32, the resources and
    the training section, or those in ``only`` (the float32 and resources sections cover the families named there, or all); then
    the tutorials of the families chosen.

    Raises:
        ValueError: naming the unknown names and the available ones.
    """
    named = [family for family in families if only and family.name in only]
    float32: Section = ("float32", "Precision: float32 against float64", lambda c: precision.run(c, named or families))
    table: Section = (
        "resources",
        "Resources: every variant's shape against the papers' claims",
        lambda c: resources.section(c, named or families),
    )
    sections = [(family.name, family.title, family.section) for family in families] + [THEORY, float32, table, TRAINING]
    known = [key for key, _, _ in sections]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; available: {known}")
    chosen = [family for family in families if not only or family.name in only]
    sections = [section for section in sections if not only or section[0] in only]
    examples = tutorials(chosen)
    if examples:
        sections.append(("tutorials", "Tutorials", lambda context: tutorial_section(context, examples)))
        sections.append(("explore", "Explorer pages", lambda context: explore_section(context, examples)))
    return sections


class Outcome(enum.IntEnum):
    """How a report ended; the value is the CLI's exit status."""

    PASSED = 0
    CHECK_FAILED = 1
    SECTION_CRASHED = 3


def run_report(context: ReportContext, families: Sequence[Family], only: Sequence[str] | None = None) -> Outcome:
    """Run the sections, write ``report.md`` and ``report.json``; return how it went (a crashed section outranks a
    failed check)."""
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
    all_passed, crashed = True, []
    errors = context.out_dir / "errors.log"
    errors.unlink(missing_ok=True)
    for key, title, section in sections:
        started = time.perf_counter()
        print(f"[report] {title} ...", flush=True)
        try:
            result = section(context)
            if not isinstance(result, SectionResult):
                raise TypeError(f"the section returned {type(result).__name__}, expected a SectionResult")
        except Exception as err:  # a section's bug is reported as its failure; the other sections still run
            crashed.append(key)
            with errors.open("a") as log:
                log.write(f"section {key!r}:\n{traceback.format_exc()}\n")
            result = _crashed(err, errors)
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
    if crashed:
        print(f"[report] section(s) {', '.join(crashed)} stopped with an error; tracebacks in {errors}", flush=True)
        return Outcome.SECTION_CRASHED
    return Outcome.PASSED if all_passed else Outcome.CHECK_FAILED


def _crashed(error: Exception, log: Path) -> SectionResult:
    """The result of a section that raised: one failed check naming the error."""
    message = f"{type(error).__name__}: {error}"
    return SectionResult(
        markdown=f"**This section stopped with an error**: `{message}` (traceback in `{log.name}`).",
        data={"error": message},
        checks=[Check("the section ran to completion", False, message, "no exception")],
    )


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (a bare ``|`` would end the cell)."""
    return text.replace("\\|", "|").replace("|", "\\|")
