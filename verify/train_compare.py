r"""Trained versus constructed: the three training regimes against the hand-built weights, on held-out instances.

For each task and depth (and a width sweep for ``em``), each regime of :mod:`tfconstruct.verify.train` is trained for
the same number of steps from the same seed, then measured on the same held-out instances (the training distribution
and every shift of :attr:`~tfconstruct.verify.train_tasks.Task.shifts`) next to

* the **construction**: the hand-built weights, untrained, in the same float32 architecture;
* the **reference**: the numpy algorithm itself, whose error against its own output is 0; its error against the
  ground truth (true centres, top eigenvector, nearest odeco component) is given as well.

The report section (``training``) runs a small comparison; ``tfconstruct train compare --out DIR`` the long one.
Its checks are what must hold whatever training achieves: the construction-initialised model at step 0 *is* the
construction (its held-out error is the construction's), every regime's training loss falls, and every error is
finite. Whether a regime reaches the construction's error is the finding the table shows, not a check.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from .results import Check, ReportContext, SectionResult
from .train import REGIMES, TrainConfig, TrainDiverged, construction_module, held_out_error, held_out_seeds, train
from .train_tasks import build_task


@dataclass(frozen=True)
class Plan:
    """What to compare: per task its depths, the width (and the extra widths of the ``em`` width sweep), steps,
    instances per step and held-out instances."""

    depths: dict[str, tuple[int, ...]]
    width: int
    em_widths: tuple[int, ...]
    steps: int
    batch: int
    held_out: int
    quick: bool


QUICK = Plan({"em": (1,), "pca": (1,), "tensor": (1,)}, 8, (), 12, 8, 16, True)
SECTION = Plan({"em": (1, 2), "pca": (1, 3), "tensor": (1, 3)}, 8, (4, 32), 150, 16, 64, False)
LONG = Plan({"em": (1, 2, 3), "pca": (1, 3, 6), "tensor": (1, 3, 6)}, 8, (4, 16, 32), 400, 16, 128, False)


def run_comparison(plan: Plan, seed: int = 0, device: str = "cpu", progress: bool = False) -> list[dict[str, Any]]:
    """One row per (task, depth, width, regime, shift): held-out errors (mean and median), the construction's and
    the reference's against the truth, the first and last training losses, and the step-0 error."""
    rows = []
    for task_name, depths in plan.depths.items():
        cases = [(depth, plan.width) for depth in depths]
        if task_name == "em":
            cases += [(depths[0], width) for width in plan.em_widths]
        for depth, width in cases:
            task = build_task(task_name, depth, width, plan.quick)
            seeds = held_out_seeds(seed, plan.held_out)
            batches = {None: task.batch(seeds), **{s: task.batch(seeds, s) for s in task.shifts}}
            built = {shift: held_out_error(construction_module(task), task, batch) for shift, batch in batches.items()}
            for regime in REGIMES:
                config = TrainConfig(
                    task_name, regime, depth, width, seed, plan.quick, plan.batch, held_out=plan.held_out
                )
                initial = train(config, 0, progress=False)
                start = held_out_error(initial.module, task, batches[None])
                try:
                    result = train(config, plan.steps, device=device, progress=progress)
                except TrainDiverged as diverged:  # a finding, shown in the table, not a NaN
                    rows += [
                        _row(task_name, depth, width, regime, shift, batch, built[shift], start, diverged=diverged.step)
                        for shift, batch in batches.items()
                    ]
                    continue
                for shift, batch in batches.items():
                    trained = held_out_error(result.module, task, batch, device)
                    rows.append(
                        _row(task_name, depth, width, regime, shift, batch, built[shift], start, trained, result)
                    )
    return rows


def _row(
    task: str,
    depth: int,
    width: int,
    regime: str,
    shift: str | None,
    batch: Any,
    built: np.ndarray,
    start: np.ndarray,
    trained: np.ndarray | None = None,
    result: Any = None,
    diverged: int | None = None,
) -> dict[str, Any]:
    """One table row; a diverged run has no held-out error but the step where its loss stopped being finite."""
    tenth = max(1, len(result.losses) // 10) if result is not None else 1
    return {
        "task": task,
        "depth": depth,
        "width": width,
        "regime": regime,
        "shift": shift or "none",
        "error": None if trained is None else float(trained.mean()),
        "median": None if trained is None else float(np.median(trained)),
        "construction": float(built.mean()),
        "reference_truth": float(batch.reference_truth.mean()),
        "step0": float(start.mean()),
        "first_loss": None if result is None else float(np.mean(result.losses[:tenth])),
        "last_loss": None if result is None else float(np.mean(result.losses[-tenth:])),
        "diverged_at": diverged,
        "seconds": None if result is None else result.seconds,
    }


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Task x depth x width x shift: each regime's held-out error after training, the construction's and the
    reference's (0 against itself; against the truth in the last column)."""
    keys = sorted({(r["task"], r["depth"], r["width"], r["shift"]) for r in rows}, key=_order)
    lines = [
        "| task | L | M | held-out instances | "
        + " | ".join(f"{regime} (trained)" for regime in REGIMES)
        + " | construction | reference | reference vs truth |",
        "|---|---|---|---|" + "---|" * (len(REGIMES) + 3),
    ]
    for key in keys:
        cells = {r["regime"]: r for r in rows if (r["task"], r["depth"], r["width"], r["shift"]) == key}
        first = next(iter(cells.values()))
        errors = " | ".join(_cell(cells.get(regime)) for regime in REGIMES)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {errors} | {first['construction']:.2e} | 0 | "
            f"{first['reference_truth']:.2e} |"
        )
    return "\n".join(lines)


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    return f"diverged at step {row['diverged_at']}" if row["diverged_at"] is not None else f"{row['error']:.2e}"


def _order(key: tuple[str, int, int, str]) -> tuple[str, int, int, bool, str]:
    return key[0], key[1], key[2], key[3] != "none", key[3]


def checks(rows: Sequence[dict[str, Any]]) -> list[Check]:
    """What must hold whatever training achieves (module docstring)."""
    found = []
    start = [r for r in rows if r["regime"] == "construction" and r["shift"] == "none"]
    gap = max((abs(r["step0"] - r["construction"]) / max(r["construction"], 1e-30) for r in start), default=math.nan)
    found.append(
        Check(
            "construction-initialised model at step 0 has the construction's held-out error",
            gap == 0.0,
            f"largest relative difference {gap:.1e} over {len(start)} cases",
            "0 (the same float32 weights)",
        )
    )
    for regime in ("random", "trace"):
        runs = [r for r in rows if r["regime"] == regime and r["shift"] == "none" and r["diverged_at"] is None]
        falling = sum(r["last_loss"] < r["first_loss"] for r in runs)
        found.append(
            Check(
                f"{regime}: the training loss falls",
                falling == len(runs) > 0,
                f"{falling}/{len(runs)} runs (last tenth below first tenth)",
                "every run",
            )
        )
    finite = all(r["diverged_at"] is not None or math.isfinite(r["error"]) for r in rows)
    diverged = sum(r["diverged_at"] is not None and r["shift"] == "none" for r in rows)
    found.append(
        Check(
            "every held-out error is finite, or its run is reported as diverged",
            finite,
            f"{len(rows)} rows, {diverged} runs diverged",
            "no NaN or inf in the table",
        )
    )
    return found


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Held-out error against depth, one panel per task: each regime after training, the construction (dashed)."""
    tasks = sorted({r["task"] for r in rows})
    figure = Figure(figsize=(4.2 * len(tasks), 3.4))
    for i, task in enumerate(tasks):
        axes = figure.add_subplot(1, len(tasks), i + 1)
        width = min(r["width"] for r in rows if r["task"] == task and r["shift"] == "none")
        chosen = [r for r in rows if r["task"] == task and r["shift"] == "none" and r["width"] == width]
        depths = sorted({r["depth"] for r in chosen})
        for regime in REGIMES:
            errors = [
                next(
                    math.nan if r["error"] is None else r["error"]
                    for r in chosen
                    if r["depth"] == d and r["regime"] == regime
                )
                for d in depths
            ]  # a diverged run leaves a gap
            axes.plot(depths, np.maximum(errors, 1e-12), "o-", label=f"{regime} (trained)")
        built = [next(r["construction"] for r in chosen if r["depth"] == d) for d in depths]
        axes.plot(depths, np.maximum(built, 1e-12), "k--", label="construction")
        axes.set_yscale("log")
        axes.set_xlabel("depth L (algorithm steps)")
        axes.set_ylabel("held-out error vs reference")
        axes.set_title(f"{task} (M = {width})")
        axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def section(context: ReportContext) -> SectionResult:
    """The report section ``training`` (quick: one depth per task, a few steps; full: about two minutes)."""
    plan = QUICK if context.quick else SECTION
    rows = run_comparison(plan, context.seed, context.device)
    figure = plot(rows, context.figure_path("training.png"))
    notes = (
        f"Each regime trains the construction's architecture (float32, AdamW lr 1e-3, {plan.steps} steps of "
        f"{plan.batch} fresh instances) and is measured on {plan.held_out} held-out instances: mean error against "
        "the reference algorithm's output after L steps (`em`: largest mean error; `pca`, `tensor`: sine of the "
        "angle). *construction*: the hand-built weights, untrained; *reference*: the numpy algorithm (0 against "
        "itself), and its error against the ground truth. The shifts change the separation, n, the eigengap or the "
        "weights (K, d and k fix the architecture). The long comparison: `tfconstruct train compare --out DIR`."
    )
    return SectionResult(
        markdown=notes + "\n\n" + markdown_table(rows),
        figures=[str(figure)],
        data={"plan": plan.__dict__, "rows": rows},
        checks=checks(rows),
    )


def write_comparison(out: Path, plan: Plan = LONG, seed: int = 0, device: str = "cpu") -> list[Check]:
    """Run ``plan`` and write ``comparison.md``, ``comparison.json`` and ``training.png`` to ``out``."""
    rows = run_comparison(plan, seed, device, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    found = checks(rows)
    figure = plot(rows, out / "training.png")
    lines = [markdown_table(rows), "", *(f"- {'pass' if c.passed else 'FAIL'}: {c.name}: {c.measured}" for c in found)]
    (out / "comparison.md").write_text("\n".join(lines) + f"\n\n![training]({figure.name})\n")
    (out / "comparison.json").write_text(json.dumps({"plan": plan.__dict__, "rows": rows}, indent=1))
    return found
