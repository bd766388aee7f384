"""What a verification produces: checked claims (:class:`Check`), report sections and the context they run in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """One verified claim: ``passed`` is whether ``measured`` met ``requirement``."""

    name: str
    passed: bool
    measured: str
    requirement: str


@dataclass
class SectionResult:
    """A report section's Markdown, the figures it wrote, its data (for ``report.json``) and its checks."""

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


def counted(number: int, noun: str) -> str:
    """``"1 sublayer"``, ``"3 sublayers"``: a count with its noun in the right number."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
