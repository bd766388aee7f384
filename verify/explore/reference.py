r"""The reference algorithm beside the transformer: checkpoints compared, and the error as the width $M$ grows.

A :class:`~tfconstruct.constructions.lesson.Checkpoint` names a sublayer and a block (or a head's pattern); the
construction's value there is read from the trace and compared with the reference's. ``compare="direction"``
normalises both rows and fixes the sign first. The width study rebuilds the example at each ``widths`` entry
(``at_width``), measures the largest relative difference of the approximate checkpoints and of the exact ones, and
fits the rate of the first: the slope of $\log$ error against $\log M$ (the theory says $-2$ for hinge
interpolants).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.lesson import Checkpoint
from tfconstruct.constructions.model import Trace, Transformer

TINY = 1e-300


def construction_value(checkpoint: Checkpoint, model: Transformer, trace: Trace) -> np.ndarray:
    """The construction's value at ``checkpoint``, shaped like ``checkpoint.expected``."""
    layout = model.layout
    if checkpoint.subspace is not None:
        values = layout.read(trace[checkpoint.hook][0], checkpoint.subspace)
    else:
        layer = model[checkpoint.hook]
        heads = {head.label: head for head in getattr(layer, "heads", [])}
        if checkpoint.head not in heads:
            raise KeyError(
                f"checkpoint {checkpoint.label!r}: sublayer {checkpoint.hook!r} has no head {checkpoint.head!r}"
            )
        before = trace.streams[trace.names.index(checkpoint.hook) - 1]
        values = heads[checkpoint.head].pattern(before)[0]
        if layer.combine == "average":
            values = values / len(layer.heads)
    if checkpoint.tokens is not None:
        values = values[list(checkpoint.tokens)]
    found = values.detach().cpu().numpy().astype(np.float64).reshape(checkpoint.expected.shape)
    if checkpoint.compare == "direction":
        found = found / np.maximum(np.linalg.norm(found, axis=1, keepdims=True), TINY)
        found = found * np.where(np.sum(found * _unit(checkpoint.expected), axis=1, keepdims=True) < 0, -1.0, 1.0)
    return found


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), TINY)


def compared(checkpoint: Checkpoint, model: Transformer, trace: Trace) -> dict[str, Any]:
    """The checkpoint's page entry: both values, the largest absolute and relative difference."""
    expected = _unit(checkpoint.expected) if checkpoint.compare == "direction" else checkpoint.expected
    actual = construction_value(checkpoint, model, trace)
    difference = float(np.max(np.abs(actual - expected)))
    return {
        "hook": checkpoint.hook,
        "label": checkpoint.label,
        "exact": checkpoint.exact,
        "compare": checkpoint.compare,
        "block": checkpoint.subspace,
        "head": checkpoint.head,
        "tokens": list(checkpoint.tokens) if checkpoint.tokens is not None else None,
        "expected": expected.tolist(),
        "actual": actual.tolist(),
        "difference": difference,
        "relative": difference / max(float(np.max(np.abs(expected))), TINY),
    }


def checkpoints(example: TutorialExample, trace: Trace | None = None) -> list[dict[str, Any]]:
    """Every checkpoint of ``example`` compared on its forward pass (``trace``, computed here when not given)."""
    if trace is None:
        with torch.no_grad():
            trace = example.model(example.stream, trace=True)
    return [compared(c, example.model, trace) for c in example.checkpoints]


def width_study(example: TutorialExample) -> dict[str, Any] | None:
    """The approximate and exact checkpoints' largest relative difference at each width, and the fitted rate."""
    if example.at_width is None or not example.widths:
        return None
    rows = []
    for width in example.widths:
        found = checkpoints(example.at_width(width))
        approximate = [c["relative"] for c in found if not c["exact"]]
        exact = [c["relative"] for c in found if c["exact"]]
        rows.append(
            {
                "width": int(width),
                "approximate": max(approximate) if approximate else None,
                "exact": max(exact) if exact else None,
            }
        )
    usable = [(r["width"], r["approximate"]) for r in rows if r["approximate"]]
    rate = None
    if len(usable) >= 2:
        widths, errors = np.log([w for w, _ in usable]), np.log([e for _, e in usable])
        rate = float(np.polyfit(widths, errors, 1)[0])
    return {"rows": rows, "rate": rate, "own": example.width}
