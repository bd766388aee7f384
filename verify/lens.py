r"""TransformerLens interop: any construction as a ``HookedTransformer`` (optional extra ``lens``:
``transformer-lens>=2.16,<4``; version 4 removed ``HookedTransformer``).

:func:`to_hooked_transformer` loads a :class:`~tfconstruct.constructions.trainable.StandardTransformer` (one block =
one attention + one MLP sublayer) into a ``HookedTransformer`` with ``n_layers`` = its blocks, bidirectional
attention, no LayerNorm, ReLU MLPs and zero biases. TransformerLens uses one ``n_heads``, ``d_head`` and ``d_mlp``
for every layer, so each block is padded to the largest: extra heads have $W_O = 0$, extra head and MLP units are
zero, which changes nothing. The block's $1/\sqrt{d_{head}}$ is folded into $W_Q$ (``use_attn_scale=False``).

TransformerLens computes the scores $q_i \cdot k_j$ with its own $W_Q, W_K$ (hook ``blocks.{b}.attn.hook_attn_scores``)
and then a softmax. Our constructions also use ReLU and linear scoring, the $1/N$ over attended keys and token-type
key masks, none of which TransformerLens has; they enter through its own hook points: permanent hooks read the
token-type flags from ``blocks.{b}.hook_resid_pre`` and replace ``blocks.{b}.attn.hook_pattern`` by each head's rule
applied to TransformerLens's scores:

.. math::
    A_{ij} = \operatorname{softmax}_{j \in \mathcal K_i}(s_{ij}), \qquad
    A_{ij} = \frac{\sigma(s_{ij})\,1[j \in \mathcal K]}{|\mathcal K|}, \qquad
    A_{ij} = \frac{s_{ij}\,1[j \in \mathcal K]}{|\mathcal K|}

(softmax, ReLU, linear; $\mathcal K$ the keys the head's flag selects, all tokens without a mask; no division when
``normalise`` is off). Everything else (the projections, $W_O$, the MLPs, the residual additions, the cache and its
names ``blocks.{b}.hook_resid_post``, ``blocks.{b}.attn.hook_z``, ...) is TransformerLens's own. The stream after
block $b$ equals the hand-built stream after the block's last sublayer to round-off (``tests/test_lens.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

try:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.hook_points import HookPoint
except ImportError as missing:  # the optional extra is not installed
    raise ImportError(
        "tfconstruct.verify.lens needs TransformerLens below version 4 (the optional extra 'lens'): "
        'pip install -e ".[lens]" or pip install "transformer-lens>=2.16,<4"'
    ) from missing

from tfconstruct.constructions.trainable import HeadSpec, StandardTransformer


def to_hooked_transformer(standard: StandardTransformer) -> HookedTransformer:
    """The ``HookedTransformer`` computing ``standard``'s blocks (module docstring). Run it on a stream with
    :func:`run_hooked`: block ``b`` of TransformerLens is ``standard.specs[b]``, whose ``hook`` names the hand-built
    sublayer after which the streams agree. Its position embedding is never used (the stream enters at layer 0), so
    any number of tokens runs. ``hooked.reset_hooks(including_permanent=True)`` removes the heads' rules and turns
    every head back into TransformerLens's plain softmax: the model then no longer computes the construction.

    Raises:
        TypeError: unless ``standard`` is a :class:`StandardTransformer` (build one with
            ``StandardTransformer.from_construction(model)``).
    """
    if not isinstance(standard, StandardTransformer):
        raise TypeError(
            f"standard must be a StandardTransformer, got {type(standard).__name__}; convert a construction's model "
            "with StandardTransformer.from_construction(model)"
        )
    specs = standard.specs
    dtype = next(standard.parameters()).dtype
    config = HookedTransformerConfig(
        n_layers=len(specs),
        d_model=standard.d_model,
        n_ctx=1,
        d_head=max(1, *(spec.d_head for spec in specs)),
        n_heads=max(1, *(len(spec.heads) for spec in specs)),
        d_mlp=max(1, *(spec.d_mlp for spec in specs)),
        d_vocab=1,
        act_fn="relu",
        normalization_type=None,
        attention_dir="bidirectional",
        use_attn_scale=False,
        positional_embedding_type="standard",
        default_prepend_bos=False,
        dtype=dtype,
    )
    hooked = HookedTransformer(config)
    state = {name: torch.zeros_like(value) for name, value in hooked.state_dict().items()}
    for b, (block, spec) in enumerate(zip(standard.blocks, specs)):
        heads, d_head, d_mlp = len(spec.heads), spec.d_head, spec.d_mlp
        attn, mlp = block.attn, block.mlp
        state[f"blocks.{b}.attn.W_Q"][:heads, :, :d_head] = attn.W_Q.detach() / math.sqrt(max(d_head, 1))
        state[f"blocks.{b}.attn.W_K"][:heads, :, :d_head] = attn.W_K.detach()
        state[f"blocks.{b}.attn.W_V"][:heads, :, :d_head] = attn.W_V.detach()
        state[f"blocks.{b}.attn.W_O"][:heads, :d_head, :] = attn.W_O.detach()
        state[f"blocks.{b}.mlp.W_in"][:, :d_mlp] = mlp.W_in.detach()
        state[f"blocks.{b}.mlp.b_in"][:d_mlp] = mlp.b_in.detach()
        state[f"blocks.{b}.mlp.W_out"][:d_mlp, :] = mlp.W_out.detach()
        state[f"blocks.{b}.mlp.b_out"][:] = mlp.b_out.detach()
    hooked.load_state_dict(state, strict=False)
    for b, spec in enumerate(specs):
        _attach_rules(hooked, b, spec.heads)
    return hooked


def run_hooked(hooked: HookedTransformer, stream: torch.Tensor, **cache_options: Any) -> tuple[torch.Tensor, Any]:
    """``(final stream, cache)``: every block run on ``stream`` ``(batch, tokens, d_model)`` from layer 0 (no
    embedding, no unembedding) with ``run_with_cache``.

    Raises:
        ValueError: naming ``stream`` unless it is a finite tensor of shape ``(batch, tokens, d_model)`` in the
            model's dtype.
    """
    d_model, dtype = hooked.cfg.d_model, hooked.cfg.dtype
    if not isinstance(stream, torch.Tensor) or stream.ndim != 3 or stream.shape[-1] != d_model:
        shape = tuple(stream.shape) if isinstance(stream, torch.Tensor) else type(stream).__name__
        raise ValueError(f"stream must be a tensor of shape (batch, tokens, {d_model}), got {shape}")
    if stream.dtype != dtype:
        raise ValueError(f"stream has dtype {stream.dtype}, the model {dtype}; convert one of them")
    if not bool(torch.isfinite(stream).all()):
        raise ValueError("stream contains non-finite values (NaN or inf); all entries must be finite")
    return hooked.run_with_cache(stream, start_at_layer=0, stop_at_layer=hooked.cfg.n_layers, **cache_options)


def _attach_rules(hooked: HookedTransformer, block: int, heads: tuple[HeadSpec, ...]) -> None:
    """Permanent hooks: remember the block's input stream (for the key flags), replace its pattern by the rules."""
    seen: dict[str, torch.Tensor] = {}

    def remember(resid: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        seen["resid"] = resid
        return resid

    def scores(values: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        seen["scores"] = values
        return values

    def pattern(softmax: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        weights = torch.zeros_like(softmax)
        for m, head in enumerate(heads):
            weights[:, m] = _rule(seen["scores"][:, m], seen["resid"], head)
        return weights

    hooked.add_hook(f"blocks.{block}.hook_resid_pre", remember, is_permanent=True)
    hooked.add_hook(f"blocks.{block}.attn.hook_attn_scores", scores, is_permanent=True)
    hooked.add_hook(f"blocks.{block}.attn.hook_pattern", pattern, is_permanent=True)


def _rule(scores: torch.Tensor, resid: torch.Tensor, head: HeadSpec) -> torch.Tensor:
    """One head's weights ``(batch, queries, keys)`` from its scores and the keys its flag selects."""
    keys = (
        torch.ones_like(resid[..., 0], dtype=torch.bool)
        if head.key_coordinate is None
        else resid[..., head.key_coordinate] > 0.5
    ).unsqueeze(1)
    if head.scoring == "softmax":
        return torch.softmax(scores.masked_fill(~keys, float("-inf")), dim=-1)
    weights = (torch.relu(scores) if head.scoring == "relu" else scores) * keys
    if not head.normalise:
        return weights
    return weights / keys.sum(-1, keepdim=True).clamp(min=1).to(weights.dtype)
