r"""Exact per-token updates of the residual stream built from ReLU pairs.

Attention can only *add* to the stream, so every overwrite goes through an MLP.
All updates here are exact in exact arithmetic because

.. math::

    t = \sigma(t) - \sigma(-t), \qquad
    t\,f = \sigma\big(t - B(1-f)\big) - \sigma\big(-t - B(1-f)\big)
    \quad (f \in \{0,1\},\ |t| \le B).

Each function adds unit groups to an :class:`~tfconstruct.constructions.mlp.MLPBuilder`
and returns it, so updates chain: ``move(clear(b, "u"), "vn", "v")``.
"""

from __future__ import annotations

from .mlp import MLPBuilder
from .weights import Coefficient


def add_linear(
    builder: MLPBuilder, read: dict[str, Coefficient], write: dict[str, Coefficient], label: str
) -> MLPBuilder:
    r"""Add the *linear* update $h[w] \mathrel{+}= \gamma_w \sum_b c_b h[b]$ with a $\pm$ pair of unit groups."""
    negated = {name: -c for name, c in read.items()}
    builder.group(read, write, label=f"{label}+")
    builder.group(negated, {name: -c for name, c in write.items()}, label=f"{label}-")
    return builder


def move(builder: MLPBuilder, src: str, dst: str, scale: Coefficient = 1.0) -> MLPBuilder:
    r"""$dst \mathrel{+}= c\,src$, then $src \leftarrow 0$ (2·size units)."""
    return add_linear(builder, {src: 1.0}, {dst: scale, src: -1.0}, f"move {src}->{dst}")


def copy(builder: MLPBuilder, src: str, dst: str, scale: Coefficient = 1.0) -> MLPBuilder:
    r"""$dst \mathrel{+}= c\,src$, keeping $src$ (2·size units)."""
    return add_linear(builder, {src: 1.0}, {dst: scale}, f"copy {src}->{dst}")


def clear(builder: MLPBuilder, name: str) -> MLPBuilder:
    r"""$name \leftarrow 0$ (2·size units)."""
    return add_linear(builder, {name: 1.0}, {name: -1.0}, f"clear {name}")


def replace(builder: MLPBuilder, src: str, dst: str) -> MLPBuilder:
    r"""$dst \leftarrow src$ and $src \leftarrow 0$ (4·size units)."""
    return move(clear(builder, dst), src, dst)


def gated_add(builder: MLPBuilder, src: str, dst: str, flag: str, bound: float, scale: Coefficient = 1.0) -> MLPBuilder:
    r"""$dst \mathrel{+}= c\,src\cdot flag$ for a 0/1 flag, exact when $|src| \le B$ (2·size units)."""
    if not bound > 0:
        raise ValueError(f"gated_add: bound must be > 0, got {bound}")
    for sign in (1.0, -1.0):
        builder.group(
            {src: sign, flag: bound},
            {dst: sign * scale},
            bias=-bound,
            label=f"{'+' if sign > 0 else '-'}gate {src}->{dst} by {flag}",
        )
    return builder
