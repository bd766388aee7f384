"""The main job: build every construction, verify it, write plots and a Markdown + JSON report.

Sections are modules in :mod:`verify.sections`; each defines ``TITLE``, ``ORDER`` and
``run(context) -> SectionResult``. They are discovered, so adding a construction
means adding one module.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from . import sections as sections_package


@dataclass
class Check:
    """One verified claim: ``passed`` is whether ``measured`` met ``requirement``."""

    name: str
    passed: bool
    measured: str
    requirement: str


@dataclass
class SectionResult:
    markdown: str
    figures: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)


@dataclass
class ReportContext:
    """What a section may use: where to write, how big to make the study, on which device."""

    out_dir: Path
    quick: bool = False
    device: str = "cpu"
    seed: int = 0

    def figure_path(self, name: str) -> Path:
        path = self.out_dir / "figures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def discover_sections(only: list[str] | None = None) -> list[ModuleType]:
    modules = [
        importlib.import_module(f"{sections_package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(sections_package.__path__)
    ]
    modules = [m for m in modules if hasattr(m, "run")]
    for module in modules:
        if not isinstance(getattr(module, "ORDER", None), int) or not isinstance(getattr(module, "TITLE", None), str):
            raise TypeError(f"report section {module.__name__} must define ORDER: int and TITLE: str")
    if only:
        known = {m.__name__.rsplit(".", 1)[-1] for m in modules}
        unknown = set(only) - known
        if unknown:
            raise ValueError(f"unknown report section(s) {sorted(unknown)}; available: {sorted(known)}")
        modules = [m for m in modules if m.__name__.rsplit(".", 1)[-1] in only]
    return sorted(modules, key=lambda m: m.ORDER)


def run_report(context: ReportContext, only: list[str] | None = None) -> bool:
    """Run the sections, write ``report.md`` and ``report.json``; return whether every check passed."""
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
    for module in discover_sections(only):
        key = module.__name__.rsplit(".", 1)[-1]
        started = time.perf_counter()
        print(f"[report] {module.TITLE} ...", flush=True)
        result: SectionResult = module.run(context)
        seconds = time.perf_counter() - started
        passed = all(c.passed for c in result.checks)
        all_passed &= passed
        summary.append(f"| {module.TITLE} | {sum(c.passed for c in result.checks)}/{len(result.checks)} | {seconds:.1f} s |")
        lines += [f"## {module.TITLE}", "", result.markdown.strip(), ""]
        if result.checks:
            lines += ["| check | measured | requirement | result |", "|---|---|---|---|"]
            lines += [f"| {c.name} | {c.measured} | {c.requirement} | {'pass' if c.passed else '**FAIL**'} |" for c in result.checks]
            lines.append("")
        for figure in result.figures:
            lines += [f"![{Path(figure).stem}]({Path(figure).relative_to(context.out_dir).as_posix()})", ""]
        payload["sections"][key] = {
            "title": module.TITLE,
            "seconds": seconds,
            "data": result.data,
            "checks": [c.__dict__ for c in result.checks],
        }
        print(f"[report] {module.TITLE}: {'all checks pass' if passed else 'CHECK FAILED'} ({seconds:.1f} s)", flush=True)
    header = ["## Summary", "", "| section | checks passed | time |", "|---|---|---|", *summary, ""]
    lines[4:4] = header
    (context.out_dir / "report.md").write_text("\n".join(lines))
    (context.out_dir / "report.json").write_text(json.dumps(payload, indent=2, default=float))
    return all_passed
