"""The standard trainable form (``StandardTransformer``) and its safetensors checkpoint.

For every registered family's benchmark model and every tutorial example: the standard form reproduces the hand-built
stream at every block boundary to round-off, a save/load round trip reproduces it bit for bit, float32 runs and
gradients reach every parameter. A synthetic model covers what the families do not: blocks with zero heads or an empty
MLP, heads with different scoring rules and masks in one layer, averaged heads and per-instance key masks. Foreign or
inconsistent files are refused with a ``CheckpointError``.
"""

from __future__ import annotations

import json
from functools import cache

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tfconstruct.constructions import (
    AttentionHead,
    Bilinear,
    LinearMap,
    MLPBuilder,
    MultiHeadAttention,
    ResidualLayout,
    Transformer,
)
from tfconstruct.constructions.trainable import BlockSpec, HeadSpec, StandardTransformer
from tfconstruct.verify.checkpoint import FORMAT, CheckpointError, load, save
from tfconstruct.verify.families import registered

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TOKENS = 12  # benchmark models' token count
ROUND_OFF = 1e-12  # relative to the largest entry of the hand-built stream at that block boundary

LAYOUT = ResidualLayout([("x", 3), ("one", 1), ("v", 3), ("u", 3), ("flag", 1), ("s", 1)])


def synthetic() -> tuple[Transformer, torch.Tensor]:
    """MLP, mixed heads (averaged), a second attention, two MLPs: blocks (0 heads + MLP), (3 heads + empty MLP),
    (1 head + MLP), (0 heads + MLP); the key flags differ between instances."""
    heads = [
        AttentionHead(Bilinear(LAYOUT).add("v", "x"), LinearMap(LAYOUT).add("x", "u"), "softmax", keys="flag"),
        AttentionHead(Bilinear(LAYOUT).add("x", "x", 0.5), LinearMap(LAYOUT).add("x", "u", -1.0), "relu"),
        AttentionHead(
            Bilinear(LAYOUT).add("x", "x").add("one", "s", 2.0),
            LinearMap(LAYOUT).add("one", "s", 1.0).add("v", "u", -1.0),
            "linear",
            keys="flag",
        ),
    ]
    second = AttentionHead(
        Bilinear(LAYOUT).add("u", "x"), LinearMap(LAYOUT).add("u", "v", 0.3), "relu", keys="flag", normalise=False
    )
    first = MLPBuilder(LAYOUT, "first").group({"x": 1.0}, {"u": 0.5}, bias=0.1).build()
    third = MLPBuilder(LAYOUT, "third").group({"u": 1.0, "s": -1.0}, {"v": 1.0}).build()
    fourth = MLPBuilder(LAYOUT, "fourth").group({"v": -1.0}, {"s": 2.0}, bias=0.2).build()
    layers = [first, MultiHeadAttention(heads, "average"), MultiHeadAttention([second]), third, fourth]
    model = Transformer(LAYOUT, layers, ["pre.mlp", "mixed", "masked", "post.mlp", "last"])
    g = torch.Generator().manual_seed(5)
    batch, tokens = 3, 7
    flag = (torch.rand(batch, tokens, 1, generator=g) < 0.6).to(torch.float64)
    flag[:, 0] = 1.0  # at least one key per instance
    values = {
        "x": torch.randn(batch, tokens, 3, generator=g, dtype=torch.float64),
        "v": torch.randn(batch, 1, 3, generator=g, dtype=torch.float64),
        "one": 1.0,
        "flag": flag,
    }
    return model, LAYOUT.embed(batch, tokens, values)


def _cases() -> list[str]:
    found = ["synthetic"]
    for family in registered():
        found.append(f"{family.name}/benchmark")
        found += [f"{family.name}/tutorial/{key}" for key in family.tutorials]
    return found


@cache
def case(name: str) -> tuple[Transformer, torch.Tensor]:
    """The hand-built model and an input stream for the case ``name``."""
    if name == "synthetic":
        return synthetic()
    family_name, kind, *key = name.split("/")
    family = next(f for f in registered() if f.name == family_name)
    if kind == "benchmark":
        bench = family.benchmark(TOKENS)
        return bench.model, bench.stream(2)
    example = family.tutorials[key[0]]()
    return example.model, example.stream


@cache
def standard(name: str) -> StandardTransformer:
    return StandardTransformer.from_construction(case(name)[0])


CASES = _cases()


@pytest.mark.parametrize("name", CASES)
def test_standard_form_matches_the_hand_built_stream_at_every_block_boundary(name):
    model, stream = case(name)
    module = standard(name)
    with torch.no_grad():
        trace = model(stream, trace=True)
        streams = module(stream, return_blocks=True)
    assert len(streams) == len(module.specs) + 1 and torch.equal(streams[0], stream)
    hooks = [spec.hook for spec in module.specs]
    assert hooks[-1] == model.names[-1] and len(set(hooks)) == len(hooks)
    for b, (spec, ours) in enumerate(zip(module.specs, streams[1:])):
        expected = trace[spec.hook]
        error = float((ours - expected).abs().max())
        assert error <= ROUND_OFF * float(expected.abs().max()), f"block {b} ({spec.hook}): {error:.2e}"
    torch.testing.assert_close(streams[-1], trace.output, rtol=0, atol=ROUND_OFF * float(trace.output.abs().max()))


@pytest.mark.parametrize("name", CASES)
def test_checkpoint_round_trip_is_bit_for_bit(name, tmp_path):
    model, stream = case(name)
    module = standard(name)
    path = tmp_path / "model.safetensors"
    save(module, path)
    loaded = load(path)
    assert loaded.config() == module.config() and loaded.specs == module.specs
    original, restored = module.state_dict(), loaded.state_dict()
    assert list(restored) == list(original)
    assert all(torch.equal(restored[key], original[key]) and restored[key].dtype == torch.float64 for key in original)
    with torch.no_grad():
        for ours, theirs in zip(module(stream, return_blocks=True), loaded(stream, return_blocks=True)):
            assert torch.equal(ours, theirs)
    config = json.loads(safe_open(str(path), framework="pt").metadata()["config"])
    assert [b["attention_hook"] for b in config["blocks"]] == [s.attention_hook for s in module.specs]
    assert config["layout"] == [[s.name, s.size] for s in model.layout]


@pytest.mark.parametrize("name", CASES)
def test_float32_runs_and_gradients_reach_every_parameter(name, tmp_path):
    model, stream = case(name)
    module = StandardTransformer.from_construction(model)
    single = StandardTransformer.from_construction(model).float()
    with torch.no_grad():
        output = single(stream.float())
    assert output.dtype == torch.float32 and bool(torch.isfinite(output).all())
    save(single, tmp_path / "single.safetensors")
    assert next(load(tmp_path / "single.safetensors").parameters()).dtype == torch.float32
    module(stream).pow(2).mean().backward()
    for key, parameter in module.named_parameters():
        if parameter.numel():
            assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all()), key
    assert any(float(b.attn.W_Q.grad.abs().max()) > 0 for b in module.blocks if b.attn.W_Q.numel())


def test_blocks_pair_sublayers_with_zero_heads_and_empty_mlps():
    module = standard("synthetic")
    shape = [(len(s.heads), s.d_mlp, s.attention_hook, s.mlp_hook) for s in module.specs]
    assert shape == [(0, 3, None, "pre.mlp"), (3, 0, "mixed", None), (1, 3, "masked", "post.mlp"), (0, 3, None, "last")]
    mixed = module.specs[1]
    assert [h.scoring for h in mixed.heads] == ["softmax", "relu", "linear"] and mixed.combine == "average"
    assert [h.key_coordinate for h in mixed.heads] == [LAYOUT["flag"].start, None, LAYOUT["flag"].start]
    assert module.specs[2].heads[0].normalise is False
    names = dict(module.named_parameters())
    assert names["blocks.1.attn.W_Q"].shape == (3, LAYOUT.dim, mixed.d_head)
    assert names["blocks.1.attn.W_O"].shape == (3, mixed.d_head, LAYOUT.dim)
    assert names["blocks.0.attn.W_Q"].numel() == 0 and names["blocks.1.mlp.W_in"].shape == (LAYOUT.dim, 0)


def test_bad_input_is_refused_naming_the_parameter():
    module = standard("synthetic")
    _, stream = case("synthetic")
    with pytest.raises(ValueError, match="stream must have shape"):
        module(stream[..., :-1])
    with pytest.raises(ValueError, match="stream has dtype torch.float32"):
        module(stream.float())
    with pytest.raises(ValueError, match="model must be a tfconstruct Transformer"):
        StandardTransformer.from_construction(module)
    with pytest.raises(ValueError, match=r"blocks\[0\].heads\[0\].scoring"):
        StandardTransformer(4, [BlockSpec((HeadSpec("tanh"),), 2, 0)])
    with pytest.raises(ValueError, match=r"key_coordinate must be below d_model"):
        StandardTransformer(4, [BlockSpec((HeadSpec("relu", key_coordinate=4),), 2, 0)])
    with pytest.raises(ValueError, match="layout sizes sum to 3"):
        StandardTransformer(4, [], [("a", 3)])
    with pytest.raises(ValueError, match="module must be a StandardTransformer"):
        save(case("synthetic")[0], "unused.safetensors")


def _rewrite(path, tensors=None, **header):
    """Rewrite the checkpoint at ``path`` with some tensors or header entries replaced (None: removed)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        stored = {key: handle.get_tensor(key) for key in handle.keys()}
    stored.update(tensors or {})
    metadata.update(header)
    save_file(
        {k: v for k, v in stored.items() if v is not None},
        str(path),
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def test_foreign_or_inconsistent_files_are_refused(tmp_path):
    module = standard("synthetic")
    path = tmp_path / "model.safetensors"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file" * 4)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(CheckpointError, match=f"not a {FORMAT} checkpoint"):
        load(foreign)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.safetensors")
    config = module.config()
    config["blocks"][1]["n_heads"] = 2
    problems = [
        ({"version": "99"}, None, "format version '99'"),
        ({"config": None}, None, "no 'config' entry"),
        ({"config": "{not json"}, None, "config is not JSON"),
        ({"config": json.dumps(config)}, None, r"config is inconsistent: config\['blocks'\]\[1\]\['n_heads'\]"),
        ({}, {"blocks.1.attn.W_Q": torch.zeros(3, LAYOUT.dim, 1, dtype=torch.float64)}, "blocks.1.attn.W_Q' has shape"),
        ({}, {"blocks.2.mlp.b_in": None}, r"missing \['blocks.2.mlp.b_in'\]"),
        ({}, {"blocks.9.mlp.b_in": torch.zeros(1, dtype=torch.float64)}, r"unexpected \['blocks.9.mlp.b_in'\]"),
        ({}, {"blocks.2.mlp.b_in": torch.zeros(3)}, "must all be float64 or all float32"),
        ({}, {"blocks.2.mlp.b_in": torch.full((3,), float("nan"), dtype=torch.float64)}, "non-finite"),
    ]
    for header, tensors, message in problems:
        save(module, path)
        _rewrite(path, tensors, **header)
        with pytest.raises(CheckpointError, match=message):
            load(path)
