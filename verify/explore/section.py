r"""The report's explorer section: one page per tutorial example in ``explore/``, checked.

Checks: every page is written; every exact reference checkpoint matches to round-off; where an example has a width
study, the approximate checkpoints' error falls at the interpolants' rate ($M^{-2}$, fitted slope within
``RATE_WINDOW``); and, where a headless chromium can be driven (:func:`~.browser.find_browser`), one page is stepped
through in the browser and what it renders is compared with the trace (:func:`~.check.check_page`), with a
screenshot saved next to it (not in quick mode). Without a browser the section says so, and why; it never claims a
browser check it did not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tfconstruct.constructions.construction import TutorialExample

from ..results import Check, ReportContext, SectionResult, counted
from .browser import find_browser
from .check import check_page
from .page import page_data, plotly_bundle, render_page

EXACT_TOLERANCE = 1e-12  # relative: float64 round-off
RATE_WINDOW = (-2.6, -1.4)
BROWSER_PAGE = "em"  # the page stepped through in the browser, when present (else the first)


def explore_section(context: ReportContext, examples: dict[str, Callable[[], TutorialExample]]) -> SectionResult:
    folder = context.out_dir / "explore"
    folder.mkdir(parents=True, exist_ok=True)
    bundle = plotly_bundle()
    lines = [
        "One self-contained HTML page per tutorial example (open it in any browser, no server or network needed): "
        "step through the forward pass sublayer by sublayer (arrow keys) or step by step, with the stream, the "
        "attention scores and patterns, the MLPs as functions and the reference algorithm beside it.",
        "",
        "| page | size | sublayers | reference checkpoints | largest exact difference (relative) | width study |",
        "|---|---|---|---|---|---|",
    ]
    checks, written, data = [], {}, {}
    for key, factory in examples.items():
        try:
            example = factory()
            page = page_data(key, example)
            path = folder / f"{key}.html"
            path.write_text(render_page(page, bundle), encoding="utf-8")
        except Exception as err:  # one broken example is a failed check, the others still run
            checks.append(Check(f"explorer page `{key}` written", False, f"{type(err).__name__}: {err}", "renders"))
            continue
        written[key] = (path, example)
        exact = [c["relative"] for c in page["checkpoints"] if c["exact"]]
        study = page["width"]
        rate = None if study is None else study["rate"]
        lines.append(
            f"| [{key}](explore/{key}.html) | {path.stat().st_size / 1e6:.1f} MB | {len(page['sublayers'])} | "
            f"{len(page['checkpoints'])} | {max(exact):.1e} |"
            if exact
            else f"| [{key}](explore/{key}.html) | {path.stat().st_size / 1e6:.1f} MB | {len(page['sublayers'])} | "
            f"{len(page['checkpoints'])} | none |"
        )
        lines[-1] += f" {'-' if rate is None else f'M^{rate:.2f}'} |"
        data[key] = {"bytes": path.stat().st_size, "checkpoints": len(page["checkpoints"]), "rate": rate}
        if exact:
            checks.append(
                Check(
                    f"`{key}`: exact checkpoints",
                    max(exact) <= EXACT_TOLERANCE,
                    f"{max(exact):.1e}",
                    f"<= {EXACT_TOLERANCE:g} relative",
                )
            )
        if rate is not None:
            low, high = RATE_WINDOW
            checks.append(
                Check(
                    f"`{key}`: error against width M",
                    low <= rate <= high,
                    f"M^{rate:.2f}",
                    f"slope in [{low}, {high}] (theory: -2)",
                )
            )
    checks.append(
        Check("explorer pages written", len(written) == len(examples), f"{len(written)} of {len(examples)}", "all")
    )
    lines.append("")
    if context.quick:  # a smoke run: the pages and their checkpoints, not the browser (the tests drive one)
        data["browser"] = "not run: quick mode"
        lines.append("**Browser check not run** in quick mode (the full report steps through one page in chromium).")
    else:
        lines += _browser_check(folder, written, data, checks)
    return SectionResult("\n".join(lines), checks=checks, data=data)


def _browser_check(folder: Path, written: dict, data: dict, checks: list[Check]) -> list[str]:
    """Step through one page in headless chromium; the Markdown lines saying what was checked (or why not)."""
    found = find_browser()
    if found.reason:
        data["browser"] = f"not run: {found.reason}"
        return [f"**Browser check not run**: {found.reason}."]
    if not written:
        return []
    key = BROWSER_PAGE if BROWSER_PAGE in written else next(iter(written))
    path, example = written[key]
    at = next((c.hook for c in example.checkpoints if c.head is not None), None)
    result = check_page(path, example, found, screenshot=folder / f"{key}.png", screenshot_at=at)
    data["browser"] = {
        "page": key,
        "sublayers": result.sublayers,
        "cells": result.cells,
        "problems": result.problems[:20],
    }
    checks.append(
        Check(
            f"`{key}` page in headless chromium renders the trace",
            not result.problems and result.sublayers == len(example.model.layers),
            f"{counted(result.sublayers, 'sublayer')}, {counted(result.cells, 'cell')}, "
            f"{counted(result.reference_rows, 'reference row')}; "
            f"{len(result.problems)} problems" + (f" (first: {result.problems[0]})" if result.problems else ""),
            "every cell equals the trace",
        )
    )
    shot = result.screenshot.relative_to(folder.parent).as_posix() if result.screenshot else None
    return [
        f"Browser check: `{key}.html` stepped through in headless chromium ({counted(result.sublayers, 'sublayer')}, "
        f"{counted(result.cells, 'stream cell')} and {counted(result.reference_rows, 'reference row')} compared with "
        "the trace).",
        "",
        f"![the {key} explorer page]({shot})" if shot else "",
    ]
