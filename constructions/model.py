"""A transformer as a series of residual sublayers over one named layout.

$H \\leftarrow H + \\mathrm{layer}(H)$ for each sublayer in order; a sublayer is a
:class:`~constructions.attention.MultiHeadAttention` or an
:class:`~constructions.mlp.MLP`. There is no LayerNorm (as in Tracr's compiled models).

Stacks compose like optax transformations: ``a + b`` runs ``a`` then ``b``,
``block * L`` repeats a block $L$ times (one algorithm iteration per repeat).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from .attention import MultiHeadAttention
from .mlp import MLP
from .residual import DEFAULT_DTYPE, ResidualLayout

Sublayer = Union[MultiHeadAttention, MLP]


@dataclass
class Trace:
    """Every residual stream of a forward pass: ``streams[0]`` is the input, ``streams[l+1]`` follows sublayer ``l``."""

    labels: list[str]
    streams: list[torch.Tensor]

    @property
    def output(self) -> torch.Tensor:
        return self.streams[-1]


class Transformer:
    """An inspectable stack of sublayers sharing one :class:`ResidualLayout`."""

    def __init__(self, layout: ResidualLayout, layers: list[Sublayer]):
        for layer in layers:
            if layer.layout is not layout:
                raise ValueError(f"sublayer {layer.label!r} was built for another residual layout")
        self.layout = layout
        self.layers = list(layers)

    def __add__(self, other: "Transformer") -> "Transformer":
        if other.layout is not self.layout:
            raise ValueError("cannot compose transformers over different residual layouts")
        return Transformer(self.layout, self.layers + other.layers)

    def __mul__(self, repeats: int) -> "Transformer":
        if int(repeats) != repeats or repeats < 0:
            raise ValueError(f"repeat count must be an integer >= 0, got {repeats}")
        return Transformer(self.layout, self.layers * int(repeats))

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def depth(self) -> int:
        """Number of attention sublayers (the usual 'layers' count; each may be followed by an MLP)."""
        return sum(1 for layer in self.layers if layer.kind == "attention")

    @property
    def max_heads(self) -> int:
        return max((len(l.heads) for l in self.layers if l.kind == "attention"), default=0)

    @property
    def max_mlp_width(self) -> int:
        return max((l.width for l in self.layers if l.kind == "mlp"), default=0)

    def forward(self, stream: torch.Tensor, *, trace: bool = False) -> torch.Tensor | Trace:
        """Run every sublayer; return the final stream, or a :class:`Trace` of all of them."""
        _check_stream(stream, self.layout)
        streams = [stream]
        for layer in self.layers:
            stream = stream + layer(stream)
            if trace:
                streams.append(stream)
        if trace:
            return Trace(["input"] + [l.label for l in self.layers], streams)
        return stream

    __call__ = forward

    def to(self, device: torch.device | str, dtype: torch.dtype = DEFAULT_DTYPE) -> "Transformer":
        """Move every weight matrix once (in place) so forward passes do no transfers."""
        for layer in self.layers:
            if layer.kind == "attention":
                for head in layer.heads:
                    head.qk.matrix = head.qk.matrix.to(device=device, dtype=dtype)
                    head.ov.matrix = head.ov.matrix.to(device=device, dtype=dtype)
            else:
                layer.w_in = layer.w_in.to(device=device, dtype=dtype)
                layer.w_out = layer.w_out.to(device=device, dtype=dtype)
        return self

    def named_weights(self) -> dict[str, torch.Tensor]:
        """All weight matrices, keyed ``"{index}.{layer label}.{block}"``."""
        weights: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            for name, matrix in layer.named_weights().items():
                weights[f"{i}.{layer.label}.{name}"] = matrix
        return weights

    def describe(self) -> str:
        head = f"{self.layout!r}\n{len(self.layers)} sublayers, {self.depth} attention, " \
               f"max {self.max_heads} heads, max MLP width {self.max_mlp_width}"
        return "\n".join([head] + [f"[{i}] {l.describe()}" for i, l in enumerate(self.layers)])


def _check_stream(stream: torch.Tensor, layout: ResidualLayout) -> None:
    if not isinstance(stream, torch.Tensor) or stream.ndim != 3 or stream.shape[-1] != layout.dim:
        shape = tuple(stream.shape) if isinstance(stream, torch.Tensor) else type(stream).__name__
        raise ValueError(f"stream must have shape (batch, tokens, {layout.dim}), got {shape}")
    if stream.dtype not in (DEFAULT_DTYPE, torch.float32):
        raise ValueError(f"stream dtype must be float64 or float32, got {stream.dtype}")
