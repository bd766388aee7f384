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

**Two paths, one map.** :meth:`AttentionHead.dense_output` is the reference: $(H W_{QK}) H^\top$ and
$A (H W_{OV})$ with the full $D \times D$ matrices. The forward pass uses :meth:`AttentionHead.update`, which
computes the same sum in the heads' factors (:mod:`~tfconstruct.constructions.factored`): with $R, C$ the
coordinates $W_{QK}$ reads on the query and key side, $r = \min(|R|, |C|)$ and $W_{OV}$ writing $d_v$
coordinates, the scores cost $O(N^2 r)$ and the values $O(N^2 d_v)$; linear scoring uses associativity,
$\frac1N Q (K^\top V)$ in $O(N r d_v)$; ReLU and softmax scores are formed for a block of queries at a time,
so memory is $O(\text{batch} \times \text{chunk} \times N)$ per head, and a query that is the same in every token
(a head that reads only broadcast blocks on the query side, as power iteration's $\langle v, x_j\rangle$) is scored
once, in $O(N r)$. Tests check that both paths agree to
round-off on every construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from .domains import InputDomain
from .factored import Index, add_into, factor, same_in_every_token, take
from .residual import ResidualLayout
from .weights import Bilinear, LinearMap

Scoring = Literal["softmax", "relu", "linear"]
SCORINGS: tuple[str, ...] = ("softmax", "relu", "linear")
CHUNK_ENTRIES = 1 << 22  # scores formed at once per head when the chunk is automatic (32 MiB in float64)
Update = tuple[Index, torch.Tensor]  # (coordinates written, values added there), shape (batch, tokens, |coords|)


def check_query_chunk(chunk: int | None) -> None:
    """A ``ValueError`` naming ``query_chunk`` unless it is None or an integer >= 1."""
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"query_chunk must be None (automatic) or an integer >= 1, got {chunk!r}")


def query_chunk(batch: int, tokens: int, chunk: int | None = None) -> int:
    """Queries per block: ``chunk``, or as many as keep ``batch x chunk x tokens`` within :data:`CHUNK_ENTRIES`."""
    if chunk is not None:
        check_query_chunk(chunk)
        return int(chunk)
    return max(1, min(tokens, CHUNK_ENTRIES // max(1, batch * tokens)))


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
        return self._weights(self.scores(stream), self.key_mask(stream), stream.shape[-2])

    def dense_output(self, stream: torch.Tensor) -> torch.Tensor:
        r"""The head's output with the full $D \times D$ matrices (the reference for :meth:`update`)."""
        return self.pattern(stream) @ (stream @ self.ov.matrix.to(stream))

    def update(self, stream: torch.Tensor, chunk: int | None = None, known: torch.Tensor | None = None) -> Update:
        r"""The head's output in its factors: the coordinates $W_{OV}$ writes and the values added there.

        With $W_{QK} = P_R^\top B\,P_C$ and $W_{OV} = P_{R'}^\top B' P_{C'}$ the output is
        $\mathrm{weights}(H_R B H_C^\top)\,H_{R'} B'$, and the products are ordered to be cheapest: when every
        token's query $H_R$ is the same row (it reads only broadcast blocks) one row of weights is computed and
        $B'$ applied after the weighted sum, $O(N(|C| + |R'|))$; otherwise the smaller side of each block is kept.
        ``chunk``: queries per block of scores (default: automatic, see :func:`query_chunk`); ``known``: the
        coordinates known to be the same in every token (tracked by the forward pass; otherwise they are compared).
        """
        qk, ov = factor(self.qk.matrix, stream), factor(self.ov.matrix, stream)
        batch, tokens = stream.shape[:2]
        if ov.empty:
            return ov.cols, stream.new_zeros(batch, tokens, ov.block.shape[1])  # an empty score form still attends
        queries = take(stream, qk.rows)
        shared = same_in_every_token(queries, qk.rows, known)
        if shared:  # one query row: the score block goes on its side
            queries, keys = queries[:, :1] @ qk.block, take(stream, qk.cols)
        elif qk.block.shape[0] <= qk.block.shape[1]:
            keys = take(stream, qk.cols) @ qk.block.T
        else:
            queries, keys = queries @ qk.block, take(stream, qk.cols)
        values = take(stream, ov.rows)
        mask = self.key_mask(stream)
        tokens_attended = tokens
        if mask is not None and mask[0, 0].any() and torch.equal(mask, mask[:1].expand_as(mask)):
            # the same keys in every instance (token types fixed by position): attend to those keys only
            attended = torch.nonzero(mask[0, 0]).flatten()
            keys, values, mask = keys.index_select(1, attended), values.index_select(1, attended), None
            tokens_attended = len(attended)
        late = shared or ov.block.shape[0] <= ov.block.shape[1]  # apply B' after the weighted sum
        values = values if late else values @ ov.block
        if self.scoring == "softmax":
            out = self._chunked(queries, keys, values, chunk, lambda s: self._weights(s, mask, tokens_attended))
        else:  # ReLU and linear: mask the values (a masked key adds nothing), divide the output, not the weights
            values = values if mask is None else values * mask.transpose(-1, -2)
            if self.scoring == "relu":
                out = self._chunked(queries, keys, values, chunk, torch.relu_)
            elif shared:
                out = (queries @ keys.transpose(-1, -2)) @ values  # one row of scores
            else:
                out = queries @ (keys.transpose(-1, -2) @ values)  # (Q K^T) V = Q (K^T V)
            out = out / self._count(mask, tokens_attended) if self.normalise else out
        out = out @ ov.block if late else out
        return ov.cols, out.expand(-1, tokens, -1) if shared else out

    @staticmethod
    def _chunked(
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        chunk: int | None,
        weights: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        r"""$\mathrm{weights}(Q K^\top) V$, ``chunk`` queries at a time (the scores of one block in memory at once)."""
        batch, tokens = queries.shape[:2]
        out = values.new_empty(batch, tokens, values.shape[-1])
        step = query_chunk(batch, tokens, chunk)
        for start in range(0, tokens, step):
            scores = queries[:, start : start + step] @ keys.transpose(-1, -2)
            out[:, start : start + step] = weights(scores) @ values
        return out

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        """The head's output, to be added to the residual stream (computed in its factors)."""
        cols, values = self.update(stream)
        out = torch.zeros_like(stream)
        out[..., cols] = values
        return out

    def _weights(self, scores: torch.Tensor, mask: torch.Tensor | None, tokens: int) -> torch.Tensor:
        if self.scoring == "softmax":
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            return torch.softmax(scores, dim=-1)
        weights = torch.relu(scores) if self.scoring == "relu" else scores
        if mask is not None:
            weights = weights * mask
        return weights / self._count(mask, tokens) if self.normalise else weights

    @staticmethod
    def _count(mask: torch.Tensor | None, tokens: int) -> torch.Tensor | int:
        """$N$: the attended keys (the same for every query, since a mask selects keys)."""
        return tokens if mask is None else mask.sum(-1, keepdim=True).clamp(min=1)

    def key_mask(self, stream: torch.Tensor) -> torch.Tensor | None:
        """The keys each query may attend to, shape ``(batch, 1, N)`` (None: every token is a key)."""
        if self.keys is None:
            return None
        return self.layout.flagged(stream, self.keys).unsqueeze(-2)

    def describe(self) -> str:
        mask = f", keys where {self.keys}=1" if self.keys else ""
        return f"{self.scoring} head {self.label!r}: score {self.qk.describe()}; {self.ov.describe()}{mask}"


@dataclass
class MultiHeadAttention:
    """Several heads read the same stream; their outputs are summed or averaged.

    With ``combine="average"`` each head's output is divided by the number of heads,
    so a construction written for summed heads must scale its output maps by that number.
    ``domains``: the inputs on which an approximating layer (hinge heads,
    :func:`~tfconstruct.constructions.gadgets.inverse_sqrt_heads`) is accurate; the forward pass checks them before
    the layer runs, as it does an approximating MLP's (:mod:`~tfconstruct.constructions.domains`).
    """

    heads: list[AttentionHead]
    combine: Literal["sum", "average"] = "sum"
    label: str = ""
    domains: tuple[InputDomain, ...] = ()
    kind: str = field(default="attention", init=False)

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError(f"attention layer {self.label!r} needs at least one head")
        if self.combine not in ("sum", "average"):
            raise ValueError(f"combine must be 'sum' or 'average', got {self.combine!r}")
        layouts = {id(h.layout) for h in self.heads}
        if len(layouts) != 1:
            raise ValueError(f"attention layer {self.label!r}: heads use different layouts")
        for domain in self.domains:
            for name in (domain.subspace, domain.tokens or domain.subspace):
                self.layout[name]  # a KeyError naming the layout's subspaces

    @property
    def layout(self) -> ResidualLayout:
        return self.heads[0].layout

    def updates(
        self, stream: torch.Tensor, chunk: int | None = None, known: torch.Tensor | None = None
    ) -> list[Update]:
        """Each head's :meth:`AttentionHead.update` (divided by the number of heads when averaged)."""
        scale = 1.0 / len(self.heads) if self.combine == "average" else None
        found = [head.update(stream, chunk, known) for head in self.heads]
        return found if scale is None else [(cols, values * scale) for cols, values in found]

    def dense_output(self, stream: torch.Tensor) -> torch.Tensor:
        """The layer's output with the full matrices (the reference for :meth:`updates`)."""
        out = sum(head.dense_output(stream) for head in self.heads)
        return out / len(self.heads) if self.combine == "average" else out

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        """The layer's output, to be added to the residual stream (computed in the heads' factors)."""
        out = torch.zeros_like(stream)
        for cols, values in self.updates(stream):
            add_into(out, cols, values)
        return out

    def named_weights(self) -> dict[str, torch.Tensor]:
        weights: dict[str, torch.Tensor] = {}
        for m, head in enumerate(self.heads):
            name = head.label or f"head{m}"
            weights[f"{name}.qk"] = head.qk.matrix
            weights[f"{name}.ov"] = head.ov.matrix
        return weights

    def describe(self) -> str:
        count = f"{len(self.heads)} head{'s' if len(self.heads) != 1 else ''}"
        lines = [f"attention {self.label!r} ({count}, {self.combine})"]
        lines += ["  " + head.describe() for head in self.heads]
        return "\n".join(lines)
