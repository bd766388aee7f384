r"""Everything an explorer page shows, computed once in Python from a tutorial example and its forward pass.

:func:`lesson_data` returns plain lists and dicts (JSON): the layout with roles, the streams before and after each
sublayer, the timeline (steps, phases, pseudocode lines), and per sublayer what it reads and writes and its panel:

* attention: per head the scores $s_{ij} = h_i^\top W_{QK} h_j$, each score split into its block terms
  $h_i[a]^\top W_{QK}[a, b]\, h_j[b]$, the pattern $A_{ij}$ (with the key mask and the row sums), the values
  $W_{OV} h_j$ on the coordinates the head writes, the output $\sum_j A_{ij} W_{OV} h_j$, and the non-zero blocks
  of $W_{QK}$ and $W_{OV}$ (the tutorials' heat-map panels, :func:`~tfconstruct.verify.plots.head_matrices`, each
  drawn on its own colour scale);
* MLP: the interpolants it computes (target, knots, the values its input takes on the example) and its exact moves
  as statements (``v <- next``, ``u <- 0``), read off the unit groups' weights.

The reference checkpoints, the 2-D geometry and the width study are added by :mod:`.reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tfconstruct.constructions.attention import AttentionHead, MultiHeadAttention
from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.mlp import BIAS, MLP
from tfconstruct.constructions.model import Trace
from tfconstruct.constructions.residual import ResidualLayout

from ..plots import WeightMatrix, head_matrices, mlp_matrices
from .access import access, slot_status
from .timeline import pseudocode_line, split_hook, steps

BROADCAST_SPREAD = 1e-9  # a block whose tokens differ by less than this (relative) at every point is shown once
CURVE_POINTS = 240


def lesson_data(key: str, example: TutorialExample, trace: Trace) -> dict[str, Any]:
    """The page data of one example (a batch of one) from ``trace``, its forward pass (:func:`forward`)."""
    model, layout = example.model, example.model.layout
    streams = [s[0] for s in trace.streams]
    roles = dict(example.roles)
    return {
        "key": key,
        "title": example.title,
        "tokens": int(example.stream.shape[1]),
        "blocks": [
            {
                "name": b.name,
                "start": b.start,
                "size": b.size,
                "role": roles.get(b.name, "input" if b.name == BIAS else ""),
                "broadcast": _broadcast(streams, b.start, b.size),
            }
            for b in layout
        ],
        "streams": [s.tolist() for s in streams],
        "status": slot_status(model, roles),
        "steps": [{"name": s.name, "first": s.first, "last": s.last} for s in steps(model.names)],
        "pseudocode": [line.text for line in example.pseudocode],
        "sublayers": [
            _sublayer(hook, layer, layout, streams[k], example, k)
            for k, (hook, layer) in enumerate(zip(model.names, model.layers))
        ],
    }


def forward(key: str, example: TutorialExample) -> Trace:
    """The example's forward pass, every stream kept (the stream must be a batch of one)."""
    if example.stream.ndim != 3 or example.stream.shape[0] != 1:
        raise ValueError(
            f"explorer {key!r}: the example stream must be a batch of one, got {tuple(example.stream.shape)}"
        )
    with torch.no_grad():
        return example.model(example.stream, trace=True)


def _broadcast(streams: list[torch.Tensor], start: int, size: int) -> bool:
    """The block holds the same values in every token throughout the pass (round-off aside)."""
    if streams[0].shape[0] < 2:
        return False
    for stream in streams:
        block = stream[:, start : start + size]
        spread = float((block.amax(0) - block.amin(0)).abs().max())
        if spread > BROADCAST_SPREAD * (1.0 + float(block.abs().max())):
            return False
    return True


def _sublayer(
    hook: str, layer: Any, layout: ResidualLayout, before: torch.Tensor, example: TutorialExample, k: int
) -> dict:
    step, phase = split_hook(hook)
    used = access(layer, layout)
    entry: dict[str, Any] = {
        "hook": hook,
        "position": k,
        "step": step,
        "phase": phase,
        "kind": layer.kind,
        "describe": layer.describe(),
        "reads": sorted(used.reads, key=layout.names.index),
        "writes": sorted(used.writes, key=layout.names.index),
        "line": pseudocode_line(example.pseudocode, hook),
        "functions": [_function(d, layout, before) for d in layer.domains if d.interpolant is not None],
    }
    if isinstance(layer, MultiHeadAttention):
        scale = 1.0 / len(layer.heads) if layer.combine == "average" else 1.0
        entry["heads"] = [_head(head, m, layout, before, scale) for m, head in enumerate(layer.heads)]
    elif isinstance(layer, MLP):
        entry["moves"] = _moves(layer, layout)
        entry["weights"] = [piece for matrix in mlp_matrices(layer) for piece in _pieces(matrix)]
    return entry


def _pieces(matrix: WeightMatrix) -> list[dict]:
    """The non-zero blocks of ``matrix`` (the tutorials' heat-map panels), each with its own entries."""
    return [
        {
            "matrix": matrix.plain,
            "rows": list(rows.labels),
            "cols": list(cols.labels),
            "row_block": rows.name,
            "col_block": cols.name,
            "z": matrix.values[rows.start : rows.stop, cols.start : cols.stop].tolist(),
        }
        for rows, cols in matrix.blocks()
    ]


def _head(head: AttentionHead, index: int, layout: ResidualLayout, before: torch.Tensor, scale: float) -> dict:
    h = before.unsqueeze(0)
    scores = head.scores(h)[0]
    pattern = head.pattern(h)[0] * scale
    mask = head.key_mask(h)
    keys = torch.ones(h.shape[1], dtype=torch.bool) if mask is None else mask[0].reshape(-1).bool()
    ov = head.ov.matrix
    written = torch.nonzero(ov.abs().sum(0)).flatten().tolist()
    values = (before @ ov)[:, written]
    qk_weights, ov_weights = head_matrices(head, head.label or f"head {index}")
    terms = [
        {
            "label": f"{rows.name}_i . {cols.name}_j",
            "z": (
                before[:, rows.start : rows.stop] @ head.qk.matrix[rows.start : rows.stop, cols.start : cols.stop]
                @ before[:, cols.start : cols.stop].T
            ).tolist(),
        }
        for rows, cols in qk_weights.blocks()
    ]  # fmt: skip
    labels = layout.labels()
    return {
        "label": head.label,
        "scoring": head.scoring,
        "normalise": head.normalise,
        "describe": head.describe(),
        "scores": scores.tolist(),
        "terms": terms,
        "pattern": pattern.tolist(),
        "keys": keys.tolist(),
        "row_sums": pattern.sum(1).tolist(),
        "written": [labels[i] for i in written],
        "values": values.tolist(),
        "output": (pattern @ values).tolist(),
        "qk": _pieces(qk_weights),
        "ov": _pieces(ov_weights),
    }


def _function(domain: Any, layout: ResidualLayout, before: torch.Tensor) -> dict:
    r"""The interpolant $\hat f$ a sublayer computes, drawn against its target $f$ on and around its domain."""
    interpolant = domain.interpolant
    low, high = domain.low, domain.high
    geometric = low > 0 and high / low > 20
    margin = 2.0 if geometric else 0.1 * (high - low)
    grid = (
        np.geomspace(low / margin, high * margin, CURVE_POINTS)
        if geometric
        else np.linspace(low - margin, high + margin, CURVE_POINTS)
    )
    inside = (grid >= low) & (grid <= high)
    inputs = layout.read(before, domain.subspace)
    used = range(inputs.shape[0])
    if domain.tokens is not None:  # only the tokens whose result is used
        used = torch.nonzero(layout.flagged(before, domain.tokens)).flatten().tolist()
    holders: dict[float, list[int]] = {}
    for token in used:
        for value in inputs[token].tolist():
            holders.setdefault(round(value, 12), []).append(int(token))
    values = np.asarray(sorted(holders))
    approx = interpolant(values) if values.size else values
    with np.errstate(divide="ignore", invalid="ignore"):
        target = interpolant.target(values) if interpolant.target is not None and values.size else None
    return {
        "name": interpolant.name or "f",
        "input": domain.subspace,
        "output": domain.output,
        "scale": domain.scale,
        "anchor": domain.anchor,
        "low": low,
        "high": high,
        "log_axis": bool(geometric),
        "knots": interpolant.knots.tolist(),
        "knot_values": interpolant.values.tolist(),
        "grid": grid.tolist(),
        "approx": interpolant(grid).tolist(),
        "target": _gaps(interpolant.target(np.where(inside, grid, np.nan))) if interpolant.target else None,
        "tokens": domain.tokens,
        "current": values.tolist(),
        "current_tokens": [sorted(set(holders[v])) for v in values.tolist()],
        "current_approx": np.asarray(approx).tolist(),
        "current_target": None if target is None else _gaps(np.asarray(target)),
    }


def _gaps(values: np.ndarray) -> list[float | None]:
    """A curve for JSON: NaN (outside the domain) becomes a gap (None)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _moves(layer: MLP, layout: ResidualLayout) -> list[str]:
    r"""The MLP's unit groups read as statements: ``dst <- src`` for a move (reads src, writes dst and clears src),
    ``x <- 0`` for a clear, ``dst += f(src)`` otherwise; ReLU pairs (``+``/``-`` twins) are listed once."""
    statements: list[str] = []
    for group in layer.groups:
        units = slice(group.start, group.start + group.size)
        reads = set(layout.touched(layer.w_in[:, units].abs().sum(1))) - {BIAS}
        writes = set(layout.touched(layer.w_out[units].abs().sum(0)))
        if not writes:  # a unit group whose output weights are all zero adds nothing
            continue
        if writes == reads:
            text = ", ".join(sorted(writes)) + " <- 0"
        elif reads and reads < writes:
            text = ", ".join(sorted(writes - reads)) + " <- " + ", ".join(sorted(reads))
        elif not reads:
            text = ", ".join(sorted(writes)) + " += constant"
        else:
            text = ", ".join(sorted(writes)) + " += f(" + ", ".join(sorted(reads)) + ")"
        if text not in statements:
            statements.append(text)
    return statements
