r"""The report's float32 section: every family's benchmark model run in float32 against float64, with the float32
round-off floor.

Any construction runs in float32 by giving it a float32 stream (``model(stream.float())``; the weights follow the
stream's dtype). Its exact parts then agree with the float64 pass only up to float32 round-off, the floor
$16\,\epsilon_{32}(1 + L)\,s$ with $\epsilon_{32} = 2^{-23} \approx 1.2\times10^{-7}$, $L$ the number of sublayers
and $s$ the largest output entry (:func:`~tfconstruct.verify.testing.round_off_allowance` with
``dtype=torch.float32``): an error study run in float32 cannot resolve errors below it, where float64's floor is
$2^{29}$ times lower. The section measures the largest float32 - float64 difference of each family's benchmark
model on $N = 256$ tokens, checks it against that floor, and times both.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .benchmark import median_seconds
from .family import Family
from .results import Check, ReportContext, SectionResult
from .testing import round_off_allowance

TOKENS = 256
BATCH = 2
EPS32 = float(torch.finfo(torch.float32).eps)


def run(context: ReportContext, families: Sequence[Family]) -> SectionResult:
    """One row and one check per family."""
    lines = [
        "A construction runs in float32 when given a float32 stream (`model(stream.float())`; the weights follow the "
        "stream's dtype). Its exact parts then match the float64 pass only up to float32 round-off: the floor "
        "$16\\,\\epsilon_{32}(1 + L)\\,s$, $\\epsilon_{32} = 2^{-23} \\approx 1.2\\times10^{-7}$, $L$ sublayers, $s$ the "
        "largest output entry. An error study run in float32 cannot resolve errors below it; float64's floor is "
        f"$2^{{29}}$ times lower. Each family's benchmark model on $N = {TOKENS}$ tokens, {BATCH} instances:",
        "",
        "| family | sublayers | largest entry $s$ | max \\|float32 - float64\\| | float32 floor | ratio | "
        "float64 s | float32 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    checks, data = [], []
    for family in families:
        case = family.benchmark(TOKENS)
        stream = case.stream(BATCH).to(context.device)
        case.model.to(context.device)
        double = case.model(stream)
        single = case.model(stream.float())
        scale = float(double.abs().max())
        deviation = float((single.double() - double).abs().max())
        floor = round_off_allowance(scale, depth=len(case.model), dtype=torch.float32)
        seconds = {
            dtype: median_seconds(lambda: case.model(stream.to(dtype)), 3, context.device)
            for dtype in (torch.float64, torch.float32)
        }
        case.model.to("cpu")
        row = {
            "family": family.name, "sublayers": len(case.model), "scale": scale, "deviation": deviation,
            "floor": floor, "float64_seconds": seconds[torch.float64], "float32_seconds": seconds[torch.float32],
        }  # fmt: skip
        data.append(row)
        lines.append(
            f"| {family.name} | {len(case.model)} | {scale:.3g} | {deviation:.2e} | {floor:.2e} | "
            f"{deviation / floor:.3f} | {seconds[torch.float64]:.4f} | {seconds[torch.float32]:.4f} |"
        )
        checks.append(
            Check(
                f"{family.name}: float32 pass within the float32 round-off floor",
                deviation <= floor,
                f"max |float32 - float64| = {deviation:.2e} ({deviation / floor:.3f} of the floor)",
                f"<= 16 eps32 (1 + L) s = {floor:.2e}",
            )
        )
    return SectionResult("\n".join(lines), data={"eps32": EPS32, "tokens": TOKENS, "rows": data}, checks=checks)
