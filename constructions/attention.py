r"""Attention layers: softmax, ReLU and linear scoring; heads summed or averaged.

Tokens are rows of $H \in \mathbb{R}^{N \times D}$. One head with score form
$W_{QK}$ (a :class:`~tfconstruct.constructions.weights.Bilinear`) and output map $W_{OV}$
(a :class:`~tfconstruct.constructions.weights.LinearMap`) adds to token $i$

.. math::

    \text{softmax:}\quad \sum_j \operatorname{softmax}_j(s_{ij})\, W_{OV} h_j, \qquad
    \text{relu:}\quad \frac1N \sum_j \sigma(s_{ij})\, W_{OV} h_j, \qquad
    \text{linear:}\quad \frac1N \sum_j s_{ij}\, W_{OV} h_j,

with $s_{ij} = h_i^\top W_{QK} h_j$ and $\sigma = \mathrm{ReLU}$ (Bai et al. 2023's
normalisation by the number $N$ of **attended keys**: all tokens without a key mask, the tokens whose flag is 1
with one; pass ``normalise=False`` for the GPT-2 style ReLU attention without it). No $1/\sqrt{d_{head}}$ factor is applied: it is
folded into $W_{QK}$, and :mod:`tfconstruct.constructions.export` shows where it goes in the
standard $W_Q, W_K, W_V, W_O$ parameterisation.

``keys`` names a flag subspace (1 on tokens that may be attended to, 0 elsewhere);
it acts as an ordinary attention mask derived from the token type, and $N$ counts the keys it lets through
(a query token that is not a key itself, as in in-context regression, is not counted).

Multi-head: the heads' outputs are summed ("concatenated then projected", which
is the same map with $W_{OV}^{(m)} = W_O^{(m)} W_V^{(m)}$) or averaged (divided by
the number of heads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from .residual import ResidualLayout
from .weights import Bilinear, LinearMap

Scoring = Literal["softmax", "relu", "linear"]
SCORINGS: tuple[str, ...] = ("softmax", "relu", "linear")


@dataclass
class AttentionHead:
    """One head: a score form, an output map, a scoring rule and an optional key mask."""

    qk: Bilinear
    ov: LinearMap
    scoring: Scoring = "relu"
    label: str = ""
    keys: str | None = None
    normalise: bool = True

    def __post_init__(self) -> None:
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if self.qk.layout is not self.ov.layout:
            raise ValueError(f"head {self.label!r}: score form and output map use different layouts")
        if self.keys is not None:
            self.qk.layout[self.keys]  # raises a KeyError naming the layout's subspaces

    @property
    def layout(self) -> ResidualLayout:
        return self.qk.layout

    def scores(self, stream: torch.Tensor) -> torch.Tensor:
        r"""$s_{ij} = h_i^\top W_{QK} h_j$, shape ``(batch, N, N)``."""
        w_qk = self.qk.matrix.to(stream)
        return (stream @ w_qk) @ stream.transpose(-1, -2)

    def pattern(self, stream: torch.Tensor) -> torch.Tensor:
        r"""The weights $A_{ij}$ that multiply $W_{OV} h_j$ (softmax, $\sigma(s)/N$ or $s/N$, $N$ attended keys)."""
        s = self.scores(stream)
        mask = self._key_mask(stream)
        if self.scoring == "softmax":
            if mask is not None:
                s = s.masked_fill(~mask, float("-inf"))
            return torch.softmax(s, dim=-1)
        weights = torch.relu(s) if self.scoring == "relu" else s
        if mask is not None:
            weights = weights * mask
        if not self.normalise:
            return weights
        return weights / (stream.shape[-2] if mask is None else mask.sum(-1, keepdim=True).clamp(min=1))

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        """The head's output, to be added to the residual stream."""
        return self.pattern(stream) @ (stream @ self.ov.matrix.to(stream))

    def _key_mask(self, stream: torch.Tensor) -> torch.Tensor | None:
        if self.keys is None:
            return None
        flag = self.layout.read(stream, self.keys)[..., 0]
        return (flag > 0.5).unsqueeze(-2)

    def describe(self) -> str:
        mask = f", keys where {self.keys}=1" if self.keys else ""
        return f"{self.scoring} head {self.label!r}: score {self.qk.describe()}; {self.ov.describe()}{mask}"


@dataclass
class MultiHeadAttention:
    """Several heads read the same stream; their outputs are summed or averaged.

    With ``combine="average"`` each head's output is divided by the number of heads,
    so a construction written for summed heads must scale its output maps by that number.
    """

    heads: list[AttentionHead]
    combine: Literal["sum", "average"] = "sum"
    label: str = ""
    kind: str = field(default="attention", init=False)

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError(f"attention layer {self.label!r} needs at least one head")
        if self.combine not in ("sum", "average"):
            raise ValueError(f"combine must be 'sum' or 'average', got {self.combine!r}")
        layouts = {id(h.layout) for h in self.heads}
        if len(layouts) != 1:
            raise ValueError(f"attention layer {self.label!r}: heads use different layouts")

    @property
    def layout(self) -> ResidualLayout:
        return self.heads[0].layout

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        out = sum(head(stream) for head in self.heads)
        return out / len(self.heads) if self.combine == "average" else out

    def named_weights(self) -> dict[str, torch.Tensor]:
        weights: dict[str, torch.Tensor] = {}
        for m, head in enumerate(self.heads):
            name = head.label or f"head{m}"
            weights[f"{name}.qk"] = head.qk.matrix
            weights[f"{name}.ov"] = head.ov.matrix
        return weights

    def describe(self) -> str:
        lines = [f"attention {self.label!r} ({len(self.heads)} heads, {self.combine})"]
        lines += ["  " + head.describe() for head in self.heads]
        return "\n".join(lines)
