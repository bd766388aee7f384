r"""Check an explorer page in a real browser against the forward pass it shows.

:func:`check_page` opens the page in headless chromium, steps through every sublayer with the right-arrow key (as a
student does) and compares, at each step, every stream cell the page renders with the trace computed here: the
values a cell carries must equal the trace's bit for bit, and its text (four significant digits) must read as the
same numbers. At each sublayer with reference checkpoints it compares the rendered rows with the construction's
value read from the trace (:func:`~.reference.construction_value`) and with the reference's. It returns the
problems found (none: the page shows the trace) and can save a screenshot at a chosen sublayer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tfconstruct.constructions.construction import TutorialExample

from .browser import BrowserFound, Page
from .reference import construction_value

SHOWN_DIGITS_TOLERANCE = 5e-4  # four significant digits
ZERO_SHOWN = 1e-9  # values below this print as 0
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


@dataclass
class PageCheck:
    """What :func:`check_page` found: the sublayers visited, the cells and reference rows compared, the problems."""

    sublayers: int = 0
    cells: int = 0
    reference_rows: int = 0
    problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def shown_numbers(text: str) -> list[float]:
    """The numbers a cell shows after its arrow (``"(0, 1) → (0.5, 1)"`` reads ``[0.5, 1]``)."""
    return [float(x) for x in _NUMBER.findall(text.split("→")[-1])]


def _agrees(shown: list[float], values: list[float]) -> bool:
    return len(shown) == len(values) and all(
        abs(s - v) <= SHOWN_DIGITS_TOLERANCE * abs(v) if abs(v) >= ZERO_SHOWN else s == 0 for s, v in zip(shown, values)
    )


def check_page(
    path: str | Path,
    example: TutorialExample,
    found: BrowserFound | None = None,
    *,
    screenshot: Path | None = None,
    screenshot_at: str | None = None,
) -> PageCheck:
    """Step through the page at ``path`` (written for ``example``) and compare what it renders with the trace."""
    model, layout = example.model, example.model.layout
    with torch.no_grad():
        trace = model(example.stream, trace=True)
    result = PageCheck()
    by_hook: dict[str, list] = {}
    for checkpoint in example.checkpoints:
        by_hook.setdefault(checkpoint.hook, []).append(checkpoint)
    with Page(path, found) as page:
        result.problems += [f"browser console: {message}" for message in page.errors]
        for k, hook in enumerate(model.names):
            if k:
                page.press("ArrowRight")
            shown = page.snapshot()
            if shown["hook"] != hook:
                result.problems.append(f"after {k} right-arrow presses the page shows {shown['hook']!r}, not {hook!r}")
                break
            result.sublayers += 1
            after = trace.streams[k + 1][0]
            for cell in shown["cells"]:
                expected = layout.read(after[cell["token"]], cell["block"]).tolist()
                result.cells += 1
                if cell["value"] != expected:
                    result.problems.append(
                        f"{hook}: cell {cell['block']}[{cell['token']}] carries {cell['value']}, the trace {expected}"
                    )
                elif not _agrees(shown_numbers(cell["text"]), expected):
                    result.problems.append(
                        f"{hook}: cell {cell['block']}[{cell['token']}] shows {cell['text']!r}, the trace {expected}"
                    )
            for checkpoint in by_hook.get(hook, []):
                construction = construction_value(checkpoint, model, trace)
                rows = [row for row in shown["checkpoints"] if row["label"] == checkpoint.label]
                if len(rows) != len(construction):
                    result.problems.append(
                        f"{hook}: reference table {checkpoint.label!r} shows {len(rows)} rows, expected {len(construction)}"
                    )
                    continue
                for row, values in zip(rows, construction):
                    result.reference_rows += 1
                    shown_values = values if row["columns"] is None else values[row["columns"]]  # a pattern's keys
                    if not np.array_equal(np.asarray(row["actual"]), values) or not _agrees(
                        shown_numbers(row["actual_text"]), shown_values.tolist()
                    ):
                        result.problems.append(
                            f"{hook}: {checkpoint.label!r} token {row['token']} shows {row['actual_text']!r}, the trace {values.tolist()}"
                        )
            if screenshot is not None and hook == screenshot_at:
                result.screenshot = page.screenshot(screenshot)
        if screenshot is not None and result.screenshot is None:
            result.screenshot = page.screenshot(screenshot)
    return result
