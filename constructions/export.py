r"""Export to the standard concatenated-heads parameterisation ($W_Q, W_K, W_V, W_O$).

A hand-built head is a pair $(W_{QK}, W_{OV})$. Standard multi-head attention
(PyTorch, TransformerLens, GPT-2) instead stores per head $W_Q^{(m)}, W_K^{(m)} \in
\mathbb{R}^{D \times d_{head}}$, $W_V^{(m)} \in \mathbb{R}^{D \times d_v}$, concatenates
the head outputs and projects with $W_O \in \mathbb{R}^{M d_v \times D}$:

.. math::

    \operatorname{out}_i = \big[z^{(1)}_i, \dots, z^{(M)}_i\big]\,W_O, \qquad
    z^{(m)}_i = \sum_j A^{(m)}_{ij}\, h_j W_V^{(m)}, \qquad
    s^{(m)}_{ij} = \frac{(h_i W_Q^{(m)}) \cdot (h_j W_K^{(m)})}{\sqrt{d_{head}}} .

The factorisation used here is exact (no SVD): with $c$ the nonzero columns of
$W_{QK}$, $W_Q = \sqrt{d_{head}}\,W_{QK}[:, c]$ and $W_K = I[:, c]$, so
$W_Q W_K^\top/\sqrt{d_{head}} = W_{QK}$; with $r$ the nonzero rows of $W_{OV}$,
$W_V = I[:, r]$ and $W_O^{(m)} = W_{OV}[r, :]$. Heads are zero-padded to a common
$d_{head}$ and $d_v$. Averaged heads fold $1/M$ into $W_O$. This is the
$1/\sqrt{d_{head}}$ that Tracr's compiled models apply without a word (its Haiku attention divides the logits
by $\sqrt{\text{key size}}$ while its craft layer does not):
here it is explicit and tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .attention import MultiHeadAttention
from .model import Transformer


@dataclass
class StandardAttention:
    """One attention layer in the concatenated-heads form (shapes ``(heads, D, d)`` and ``(heads*d_v, D)``)."""

    w_q: torch.Tensor
    w_k: torch.Tensor
    w_v: torch.Tensor
    w_o: torch.Tensor
    scoring: list[str]
    normalise: list[bool]
    key_masks: list[torch.Tensor | None]

    @property
    def d_head(self) -> int:
        return self.w_q.shape[-1]

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        z = []
        for m in range(self.w_q.shape[0]):
            q, k, v = stream @ self.w_q[m], stream @ self.w_k[m], stream @ self.w_v[m]
            s = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
            mask = None if self.key_masks[m] is None else (stream @ self.key_masks[m] > 0.5).unsqueeze(-2)
            if self.scoring[m] == "softmax":
                a = torch.softmax(s if mask is None else s.masked_fill(~mask, float("-inf")), dim=-1)
            else:
                a = torch.relu(s) if self.scoring[m] == "relu" else s
                a = a if mask is None else a * mask
                if self.normalise[m]:  # the number of attended keys, as the hand-built head divides by
                    a = a / (stream.shape[-2] if mask is None else mask.sum(-1, keepdim=True).clamp(min=1))
            z.append(a @ v)
        return torch.cat(z, dim=-1) @ self.w_o


def export_attention(layer: MultiHeadAttention) -> StandardAttention:
    """Factor every head of ``layer`` exactly into $W_Q, W_K, W_V$ and the concatenated $W_O$."""
    qk_cols = [torch.nonzero(h.qk.matrix.abs().sum(0)).flatten() for h in layer.heads]
    ov_rows = [torch.nonzero(h.ov.matrix.abs().sum(1)).flatten() for h in layer.heads]
    d_head = max(1, max(len(c) for c in qk_cols))
    d_v = max(1, max(len(r) for r in ov_rows))
    dim = layer.layout.dim
    heads = len(layer.heads)
    dtype = layer.heads[0].qk.matrix.dtype
    w_q = torch.zeros(heads, dim, d_head, dtype=dtype)
    w_k = torch.zeros(heads, dim, d_head, dtype=dtype)
    w_v = torch.zeros(heads, dim, d_v, dtype=dtype)
    w_o = torch.zeros(heads * d_v, dim, dtype=dtype)
    scale = 1.0 / heads if layer.combine == "average" else 1.0
    masks: list[torch.Tensor | None] = []
    for m, (head, cols, rows) in enumerate(zip(layer.heads, qk_cols, ov_rows)):
        slots = torch.arange(len(cols))
        w_q[m, :, slots] = math.sqrt(d_head) * head.qk.matrix[:, cols]
        w_k[m, cols, slots] = 1.0
        value_slots = torch.arange(len(rows))
        w_v[m, rows, value_slots] = 1.0
        w_o[m * d_v + value_slots] = scale * head.ov.matrix[rows]
        if head.keys is None:
            masks.append(None)
        else:
            selector = torch.zeros(dim, dtype=dtype)
            selector[head.layout[head.keys].start] = 1.0
            masks.append(selector)
    return StandardAttention(
        w_q,
        w_k,
        w_v,
        w_o,
        scoring=[h.scoring for h in layer.heads],
        normalise=[h.normalise for h in layer.heads],
        key_masks=masks,
    )


def state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """TransformerLens-style names: ``blocks.{i}.attn.W_Q`` ``(heads, D, d_head)``, ``blocks.{i}.mlp.W_in`` …

    Sublayer ``i`` is numbered in the order of ``model.layers``.
    """
    params: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(model.layers):
        if layer.kind == "attention":
            std = export_attention(layer)
            params.update(
                {
                    f"blocks.{i}.attn.W_Q": std.w_q,
                    f"blocks.{i}.attn.W_K": std.w_k,
                    f"blocks.{i}.attn.W_V": std.w_v,
                    f"blocks.{i}.attn.W_O": std.w_o,
                }
            )
        else:
            params[f"blocks.{i}.mlp.W_in"] = layer.w_in
            params[f"blocks.{i}.mlp.W_out"] = layer.w_out
    return params
