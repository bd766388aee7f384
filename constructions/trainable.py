r"""A hand-built :class:`~tfconstruct.constructions.model.Transformer` as a standard, trainable ``torch.nn.Module``.

:class:`StandardTransformer` holds the weights in the usual parameterisation, named as in TransformerLens
(``blocks.{b}.attn.W_Q`` ...), as ``nn.Parameter`` s (float64 by default; ``.float()`` converts them), so the
hand-built weights are an initialisation that can be trained, saved and compared with a trained model. Block $b$ is

.. math::

    H \leftarrow H + \operatorname{attn}_b(H), \qquad H \leftarrow H + \sigma(H W_{in} + b_{in}) W_{out} + b_{out},

with no LayerNorm, bidirectional attention (every token attends to every key) and

.. math::

    \operatorname{attn}_b(H)_i = \sum_m z^{(m)}_i W_O^{(m)}, \qquad z^{(m)}_i = \sum_j A^{(m)}_{ij}\, h_j W_V^{(m)},
    \qquad s^{(m)}_{ij} = \frac{(h_i W_Q^{(m)}) \cdot (h_j W_K^{(m)})}{\sqrt{d_{head}}},

where $A^{(m)}$ follows the head's own scoring rule (heads of one block may differ): $\operatorname{softmax}_j
s_{ij}$, $\sigma(s_{ij})/N$ or $s_{ij}/N$, with $N$ the number of attended keys (``normalise=False``: no $1/N$;
softmax never divides). A head with a **key mask** attends only to the tokens whose residual coordinate
``key_coordinate`` (a 0/1 token-type flag, the first coordinate of the subspace ``keys``) exceeds 1/2, and then $N$
counts those keys, as in :mod:`~tfconstruct.constructions.attention`.

**Blocks from sublayers.** :meth:`StandardTransformer.from_construction` pairs the hand-built sublayers greedily:
an attention sublayer and the MLP right after it form one block; an attention sublayer followed by another
attention sublayer (or ending the model) gets an **empty MLP** ($d_{mlp} = 0$: it adds only $b_{out} = 0$); an MLP
not preceded by an attention sublayer gets an **attention with zero heads** (it adds nothing). Each block records
the hook names of the sublayers it came from, so the stream after block $b$ is the hand-built stream at
:attr:`BlockSpec.hook`.

**Heads.** Every head is factored exactly by :func:`~tfconstruct.constructions.export.export_attention`
($W_Q = \sqrt{d_{head}}\,W_{QK}[:, c]$, $W_K = I[:, c]$, $W_V = I[:, r]$, $W_O = W_{OV}[r, :]$, the $1/M$ of averaged
heads folded into $W_O$, so the forward pass always sums heads); the block's $d_{head}$ is the larger of the query-key
and value widths, the shorter side zero-padded and $W_Q$ rescaled to the block's $\sqrt{d_{head}}$. The hand-built
MLPs read their biases from the constant subspace ``one``, so $b_{in} = 0$ and $b_{out} = 0$ at construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .attention import SCORINGS, MultiHeadAttention
from .export import export_attention
from .mlp import MLP
from .model import Transformer
from .residual import DEFAULT_DTYPE

COMBINES: tuple[str, ...] = ("sum", "average")


@dataclass(frozen=True)
class HeadSpec:
    """One head's rule: ``scoring`` (softmax, relu or linear), ``normalise`` (divide ReLU and linear scores by the
    number of attended keys), ``key_coordinate`` (the residual coordinate of its 0/1 key flag, None: every token is a
    key), ``keys`` (that flag's subspace name, for reading only) and the hand-built head's ``label``."""

    scoring: str
    normalise: bool = True
    key_coordinate: int | None = None
    keys: str | None = None
    label: str = ""


@dataclass(frozen=True)
class BlockSpec:
    """The shape and rules of one block: its ``heads``, ``d_head``, ``d_mlp``, the source layer's ``combine`` (already
    folded into $W_O$) and the hook names of the hand-built sublayers it came from (None where the part is empty)."""

    heads: tuple[HeadSpec, ...]
    d_head: int
    d_mlp: int
    combine: str = "sum"
    attention_hook: str | None = None
    mlp_hook: str | None = None

    @property
    def hook(self) -> str | None:
        """The hook name of the hand-built stream that equals the stream after this block."""
        return self.mlp_hook if self.mlp_hook is not None else self.attention_hook


class StandardAttention(nn.Module):
    r"""Bidirectional multi-head attention in the standard parameterisation, each head with its own rule.

    ``W_Q``, ``W_K``, ``W_V``: ``(n_heads, d_model, d_head)``; ``W_O``: ``(n_heads, d_head, d_model)``.
    """

    def __init__(self, d_model: int, spec: BlockSpec, dtype: torch.dtype):
        super().__init__()
        shape = (len(spec.heads), d_model, spec.d_head)
        self.W_Q = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.W_K = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.W_V = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.W_O = nn.Parameter(torch.zeros(len(spec.heads), spec.d_head, d_model, dtype=dtype))
        self.d_head = spec.d_head
        coordinates = [-1 if h.key_coordinate is None else h.key_coordinate for h in spec.heads]
        self.register_buffer("key_coordinate", torch.tensor(coordinates, dtype=torch.long), persistent=False)
        self.register_buffer("masked", torch.tensor([c >= 0 for c in coordinates], dtype=torch.bool), persistent=False)
        divides = [h.normalise and h.scoring != "softmax" for h in spec.heads]
        self.register_buffer("divides", torch.tensor(divides, dtype=torch.bool), persistent=False)
        # heads grouped by scoring rule (buffer ``{scoring}_heads``); ``order`` puts the groups back in head order
        self.scorings = tuple(scoring for scoring in SCORINGS if any(h.scoring == scoring for h in spec.heads))
        grouped = []
        for scoring in self.scorings:
            heads = [m for m, h in enumerate(spec.heads) if h.scoring == scoring]
            self.register_buffer(f"{scoring}_heads", torch.tensor(heads, dtype=torch.long), persistent=False)
            grouped += heads
        order = sorted(range(len(grouped)), key=grouped.__getitem__)
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)

    def pattern(self, stream: torch.Tensor) -> torch.Tensor:
        r"""The weights $A^{(m)}_{ij}$ of every head, shape ``(batch, n_heads, tokens, tokens)``."""
        q = torch.einsum("btd,hde->bhte", stream, self.W_Q)
        k = torch.einsum("btd,hde->bhte", stream, self.W_K)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        flags = stream[..., self.key_coordinate.clamp(min=0)].transpose(1, 2).unsqueeze(-2) > 0.5  # (b, h, 1, t)
        keys = flags | ~self.masked.view(1, -1, 1, 1)
        pieces = []
        for scoring in self.scorings:
            heads = getattr(self, f"{scoring}_heads")
            s, mask = scores.index_select(1, heads), keys.index_select(1, heads)
            if scoring == "softmax":
                # a finite fill, then the mask again: a query with no key (possible once training moves a flag)
                # gets zero weights instead of NaN; with keys, the weights are the same bit for bit
                filled = s.masked_fill(~mask, torch.finfo(s.dtype).min)
                pieces.append(torch.softmax(filled, dim=-1) * mask)
            else:
                pieces.append((torch.relu(s) if scoring == "relu" else s) * mask)
        weights = torch.cat(pieces, dim=1).index_select(1, self.order)
        count = keys.sum(-1, keepdim=True).clamp(min=1).to(weights.dtype)
        return torch.where(self.divides.view(1, -1, 1, 1), weights / count, weights)

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        """The sum of the heads' outputs (zero without heads)."""
        if not self.scorings:
            return torch.zeros_like(stream)
        v = torch.einsum("btd,hde->bhte", stream, self.W_V)
        z = self.pattern(stream) @ v
        return torch.einsum("bhte,hed->btd", z, self.W_O)


class StandardMLP(nn.Module):
    r"""$\sigma(H W_{in} + b_{in}) W_{out} + b_{out}$; ``W_in`` ``(d_model, d_mlp)``, ``W_out`` ``(d_mlp, d_model)``."""

    def __init__(self, d_model: int, d_mlp: int, dtype: torch.dtype):
        super().__init__()
        self.W_in = nn.Parameter(torch.zeros(d_model, d_mlp, dtype=dtype))
        self.b_in = nn.Parameter(torch.zeros(d_mlp, dtype=dtype))
        self.W_out = nn.Parameter(torch.zeros(d_mlp, d_model, dtype=dtype))
        self.b_out = nn.Parameter(torch.zeros(d_model, dtype=dtype))

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        return torch.relu(stream @ self.W_in + self.b_in) @ self.W_out + self.b_out


class StandardBlock(nn.Module):
    """One attention sublayer then one MLP sublayer, each added to the residual stream."""

    def __init__(self, d_model: int, spec: BlockSpec, dtype: torch.dtype):
        super().__init__()
        self.attn = StandardAttention(d_model, spec, dtype)
        self.mlp = StandardMLP(d_model, spec.d_mlp, dtype)

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        stream = stream + self.attn(stream)
        return stream + self.mlp(stream)


class StandardTransformer(nn.Module):
    """Blocks of (attention, MLP) over a residual stream of width ``d_model``, with no embedding and no LayerNorm.

    Args:
        d_model: the residual width $D$.
        blocks: one :class:`BlockSpec` per block (the parameters start at zero; :meth:`from_construction` fills them).
        layout: the residual layout's ``(name, size)`` pairs (sizes summing to ``d_model``), or empty.
        dtype: the parameters' dtype, float64 or float32.

    Raises:
        ValueError: naming the parameter (and the block and head) on a malformed shape or rule.
    """

    def __init__(
        self,
        d_model: int,
        blocks: Sequence[BlockSpec],
        layout: Sequence[tuple[str, int]] = (),
        dtype: torch.dtype = DEFAULT_DTYPE,
    ):
        super().__init__()
        _check_count("d_model", d_model, minimum=1)
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        self.layout = tuple((name, size) for name, size in layout)
        names = [name for name, _ in self.layout]
        sizes_ok = all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for _, s in self.layout)
        if not sizes_ok or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError(f"layout must be (name, size) pairs with unique names and sizes >= 1, got {list(layout)}")
        if self.layout and sum(size for _, size in self.layout) != d_model:
            raise ValueError(f"layout sizes sum to {sum(s for _, s in self.layout)}, not d_model = {d_model}")
        for b, spec in enumerate(blocks):
            _check_block(f"blocks[{b}]", spec, d_model)
        self.d_model = d_model
        self.specs = tuple(blocks)
        self.blocks = nn.ModuleList(StandardBlock(d_model, spec, dtype) for spec in self.specs)

    @classmethod
    def from_construction(cls, model: Transformer) -> "StandardTransformer":
        """The standard form of ``model``: the same map, block by block (see the module docstring for the pairing).

        Raises:
            ValueError: naming ``model`` if it is not a :class:`~tfconstruct.constructions.model.Transformer`.
        """
        if not isinstance(model, Transformer):
            raise ValueError(f"model must be a tfconstruct Transformer, got {type(model).__name__}")
        pairs: list[tuple[tuple[str, MultiHeadAttention] | None, tuple[str, MLP] | None]] = []
        for name, layer in zip(model.names, model.layers):
            if layer.kind == "attention":
                pairs.append(((name, layer), None))
            elif pairs and pairs[-1][0] is not None and pairs[-1][1] is None:
                pairs[-1] = (pairs[-1][0], (name, layer))
            else:
                pairs.append((None, (name, layer)))
        exported = [None if attn is None else export_attention(attn[1]) for attn, _ in pairs]
        specs = []
        for (attn, mlp), std in zip(pairs, exported):
            heads: tuple[HeadSpec, ...] = ()
            d_head = 0
            if attn is not None:
                heads = tuple(
                    HeadSpec(
                        h.scoring, h.normalise, None if h.keys is None else h.layout[h.keys].start, h.keys, h.label
                    )
                    for h in attn[1].heads
                )
                d_head = max(std.w_q.shape[-1], std.w_v.shape[-1])
            specs.append(
                BlockSpec(
                    heads,
                    d_head,
                    0 if mlp is None else mlp[1].width,
                    "sum" if attn is None else attn[1].combine,
                    None if attn is None else attn[0],
                    None if mlp is None else mlp[0],
                )
            )
        standard = cls(model.layout.dim, specs, [(s.name, s.size) for s in model.layout])
        with torch.no_grad():
            for block, (_, mlp), std in zip(standard.blocks, pairs, exported):
                if std is not None:
                    _fill_attention(block.attn, std.w_q, std.w_k, std.w_v, std.w_o)
                if mlp is not None:
                    block.mlp.W_in.copy_(mlp[1].w_in)
                    block.mlp.W_out.copy_(mlp[1].w_out)
        return standard

    def forward(self, stream: torch.Tensor, *, return_blocks: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """The final stream; with ``return_blocks`` the list of streams at every block boundary (``[0]`` the input,
        ``[b + 1]`` after block ``b``).

        Raises:
            ValueError: naming ``stream`` unless it is a finite ``(batch, tokens, d_model)`` tensor in the parameters'
                dtype.
        """
        dtype = next(self.parameters()).dtype if self.specs else stream.dtype
        if not isinstance(stream, torch.Tensor) or stream.ndim != 3 or stream.shape[-1] != self.d_model:
            shape = tuple(stream.shape) if isinstance(stream, torch.Tensor) else type(stream).__name__
            raise ValueError(f"stream must have shape (batch, tokens, {self.d_model}), got {shape}")
        if stream.dtype != dtype:
            raise ValueError(f"stream has dtype {stream.dtype}, the parameters {dtype}; convert one of them")
        if not bool(torch.isfinite(stream).all()):
            raise ValueError("stream contains non-finite values (NaN or inf); all entries must be finite")
        streams = [stream]
        for block in self.blocks:
            streams.append(block(streams[-1]))
        return streams if return_blocks else streams[-1]

    def config(self) -> dict[str, Any]:
        """Everything but the parameters, JSON-serialisable: :meth:`from_config` rebuilds the module's shape."""
        return {
            "d_model": self.d_model,
            "layout": [[name, size] for name, size in self.layout],
            "blocks": [
                {
                    "n_heads": len(spec.heads),
                    "d_head": spec.d_head,
                    "d_mlp": spec.d_mlp,
                    "combine": spec.combine,
                    "attention_hook": spec.attention_hook,
                    "mlp_hook": spec.mlp_hook,
                    "heads": [
                        {
                            "scoring": h.scoring,
                            "normalise": h.normalise,
                            "key_coordinate": h.key_coordinate,
                            "keys": h.keys,
                            "label": h.label,
                        }
                        for h in spec.heads
                    ],
                }
                for spec in self.specs
            ],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: torch.dtype = DEFAULT_DTYPE) -> "StandardTransformer":
        """A module of the shape :meth:`config` describes, parameters zero.

        Raises:
            ValueError: naming the entry of ``config`` that is missing or malformed.
        """
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        layout = _entry(config, "config", "layout", list)
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in layout):
            raise ValueError(f"config['layout'] must be a list of [name, size] pairs, got {layout!r}")
        blocks = []
        for b, block in enumerate(_entry(config, "config", "blocks", list)):
            where = f"config['blocks'][{b}]"
            if not isinstance(block, dict):
                raise ValueError(f"{where} must be a dict, got {type(block).__name__}")
            heads = []
            for m, head in enumerate(_entry(block, where, "heads", list)):
                at = f"{where}['heads'][{m}]"
                if not isinstance(head, dict):
                    raise ValueError(f"{at} must be a dict, got {type(head).__name__}")
                heads.append(
                    HeadSpec(
                        _entry(head, at, "scoring", str),
                        _entry(head, at, "normalise", bool),
                        _entry(head, at, "key_coordinate", (int, type(None))),
                        _entry(head, at, "keys", (str, type(None))),
                        _entry(head, at, "label", str),
                    )
                )
            if _entry(block, where, "n_heads", int) != len(heads):
                raise ValueError(f"{where}['n_heads'] is {block['n_heads']} but {len(heads)} heads are described")
            blocks.append(
                BlockSpec(
                    tuple(heads),
                    _entry(block, where, "d_head", int),
                    _entry(block, where, "d_mlp", int),
                    _entry(block, where, "combine", str),
                    _entry(block, where, "attention_hook", (str, type(None))),
                    _entry(block, where, "mlp_hook", (str, type(None))),
                )
            )
        return cls(_entry(config, "config", "d_model", int), blocks, [tuple(p) for p in layout], dtype)


def _fill_attention(
    attn: StandardAttention, w_q: torch.Tensor, w_k: torch.Tensor, w_v: torch.Tensor, w_o: torch.Tensor
) -> None:
    r"""Copy the exported heads into the block's padded parameters (``w_o`` is ``(heads * d_v, D)``); $W_Q$ was
    scaled by $\sqrt{d_{qk}}$ and is rescaled to the block's $\sqrt{d_{head}}$."""
    heads, d_qk, d_v = w_q.shape[0], w_q.shape[-1], w_v.shape[-1]
    attn.W_Q[..., :d_qk] = w_q if d_qk == attn.d_head else w_q * math.sqrt(attn.d_head / d_qk)
    attn.W_K[..., :d_qk] = w_k
    attn.W_V[..., :d_v] = w_v
    attn.W_O[:, :d_v] = w_o.reshape(heads, d_v, -1)


def _entry(mapping: dict[str, Any], where: str, key: str, kind: type | tuple[type, ...]) -> Any:
    """``mapping[key]``, checked to be of ``kind`` (a bool is not an int), else a ValueError naming ``where[key]``."""
    if key not in mapping:
        raise ValueError(f"{where} has no entry {key!r}")
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}[{key!r}] must be {names}, got {value!r}")
    return value


def _check_count(name: str, value: object, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_block(where: str, spec: BlockSpec, d_model: int) -> None:
    if not isinstance(spec, BlockSpec):
        raise ValueError(f"{where} must be a BlockSpec, got {type(spec).__name__}")
    _check_count(f"{where}.d_head", spec.d_head, minimum=1 if spec.heads else 0)
    _check_count(f"{where}.d_mlp", spec.d_mlp)
    if spec.combine not in COMBINES:
        raise ValueError(f"{where}.combine must be one of {COMBINES}, got {spec.combine!r}")
    for m, head in enumerate(spec.heads):
        if head.scoring not in SCORINGS:
            raise ValueError(f"{where}.heads[{m}].scoring must be one of {SCORINGS}, got {head.scoring!r}")
        if not isinstance(head.normalise, bool):
            raise ValueError(f"{where}.heads[{m}].normalise must be a bool, got {head.normalise!r}")
        if head.key_coordinate is not None:
            _check_count(f"{where}.heads[{m}].key_coordinate", head.key_coordinate)
            if head.key_coordinate >= d_model:
                raise ValueError(
                    f"{where}.heads[{m}].key_coordinate must be below d_model = {d_model}, got {head.key_coordinate}"
                )
