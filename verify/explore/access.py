r"""Which subspaces each sublayer reads and writes, and which slots of the stream are still to be read.

Read off the weights alone, for any construction: an attention head reads the blocks its $W_{QK}$ touches on the
query and key sides, the blocks its $W_{OV}$ reads and its key-mask flag, and writes the blocks $W_{OV}$ writes; an
MLP unit reads the blocks its input row touches and writes those its output column touches. A unit that reads a
block and writes only that block (the clearing half of an exact move, $v \leftarrow v - v$) is not a *use* of the
value, so it does not count as a read.

A slot (a subspace after sublayer $k$) is **live** when the next sublayer that touches it reads it, **stale** when
the next one only writes it (or clears it), or when nothing touches it again and its role is ``scratch``; inputs,
results and blocks without a role stay live to the end (the read-out may read them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from tfconstruct.constructions.attention import MultiHeadAttention
from tfconstruct.constructions.mlp import BIAS
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.residual import ResidualLayout

Status = Literal["live", "stale"]


@dataclass(frozen=True)
class Access:
    """The subspaces a sublayer reads (uses) and writes."""

    reads: frozenset[str]
    writes: frozenset[str]


def access(layer: object, layout: ResidualLayout) -> Access:
    """What ``layer`` (an attention layer or an MLP) reads and writes, by subspace name."""
    reads: set[str] = set()
    writes: set[str] = set()
    if isinstance(layer, MultiHeadAttention):
        for head in layer.heads:
            qk, ov = head.qk.matrix.abs(), head.ov.matrix.abs()  # ov maps h_j to the head's output: h_j @ ov
            reads.update(layout.touched(qk.sum(1)), layout.touched(qk.sum(0)), layout.touched(ov.sum(1)))
            writes.update(layout.touched(ov.sum(0)))
            if head.keys is not None:
                reads.add(head.keys)
        return Access(frozenset(reads), frozenset(writes))
    w_in, w_out = layer.w_in, layer.w_out
    for unit in range(w_in.shape[1]):
        unit_reads, unit_writes = set(layout.touched(w_in[:, unit])), set(layout.touched(w_out[unit]))
        writes |= unit_writes
        if unit_writes - unit_reads:  # a unit that only feeds its own block back is a clear, not a use
            reads |= unit_reads
    return Access(frozenset(reads), frozenset(writes))


def slot_status(model: Transformer, roles: Mapping[str, str] | None = None) -> list[dict[str, Status]]:
    """``status[k][name]`` for the stream after ``k`` sublayers (``k = 0`` is the input), ``len(model) + 1`` entries."""
    roles = roles or {}
    layout = model.layout
    accesses = [access(layer, layout) for layer in model.layers]
    statuses: list[dict[str, Status]] = []
    for k in range(len(accesses) + 1):
        status: dict[str, Status] = {}
        for name in layout.names:
            if roles.get(name) in ("input", "result") or name == BIAS:
                status[name] = "live"
                continue
            status[name] = "stale" if roles.get(name) == "scratch" else "live"
            for later in accesses[k:]:
                if name in later.reads or name in later.writes:
                    status[name] = "live" if name in later.reads else "stale"
                    break
        statuses.append(status)
    return statuses
