"""TransformerLens interop (optional extra ``lens``): every family's models run as a ``HookedTransformer`` reproduce
the hand-built residual stream, block by block, to round-off."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformer_lens", reason="the optional extra 'lens' (pip install -e '.[lens]')")

from tfconstruct.constructions.trainable import StandardTransformer  # noqa: E402
from tfconstruct.verify.families import load_plugin, registered  # noqa: E402
from tfconstruct.verify.lens import run_hooked, to_hooked_transformer  # noqa: E402

TOLERANCE = 1e-12
FAMILIES = registered() + load_plugin("docs/examples/mean_family.py")
CASES = [(f"{family.name} benchmark", family.benchmark(12)) for family in FAMILIES]


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.detach(), theirs.detach()
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-300))


@pytest.mark.parametrize("name, case", CASES, ids=[name for name, _ in CASES])
def test_every_block_of_a_hooked_transformer_is_the_hand_built_stream(name, case):
    stream = case.stream(2)
    standard = StandardTransformer.from_construction(case.model)
    hooked = to_hooked_transformer(standard)
    output, cache = run_hooked(hooked, stream)
    assert relative(output, case.model(stream)) < TOLERANCE
    blocks = standard(stream, return_blocks=True)
    for b in range(len(standard.blocks)):
        assert relative(cache[f"blocks.{b}.hook_resid_post"], blocks[b + 1]) < TOLERANCE, (name, b)
    assert hooked.cfg.normalization_type is None and hooked.cfg.attention_dir == "bidirectional"


@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_tutorial_models_keep_their_hook_names_in_the_cache(family):
    for key, factory in family.tutorials.items():
        example = factory()
        standard = StandardTransformer.from_construction(example.model)
        output, cache = run_hooked(to_hooked_transformer(standard), example.stream)
        assert relative(output, example.model(example.stream)) < TOLERANCE, key
        trace = example.model(example.stream, trace=True)
        last = standard.specs[-1].mlp_hook or standard.specs[-1].attention_hook
        assert relative(cache[f"blocks.{len(standard.blocks) - 1}.hook_resid_post"], trace[last]) < TOLERANCE
        assert {"blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.0.mlp.hook_post"} <= set(cache.keys())


def test_bad_inputs_are_named():
    case = CASES[0][1]
    with pytest.raises(TypeError, match="StandardTransformer.from_construction"):
        to_hooked_transformer(case.model)
    hooked = to_hooked_transformer(StandardTransformer.from_construction(case.model))
    stream = case.stream(1)
    for bad, message in (
        (stream[0], "must be a tensor of shape"),
        (stream[..., :-1], "must be a tensor of shape"),
        (stream.float(), "has dtype torch.float32, the model torch.float64"),
        (stream.numpy(), "must be a tensor of shape"),
        (torch.full_like(stream, float("nan")), "non-finite"),
    ):
        with pytest.raises(ValueError, match=message):
            run_hooked(hooked, bad)
