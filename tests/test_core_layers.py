"""Attention scorings, multi-head combination, MLP unit groups, exact moves and the stack."""

import numpy as np
import pytest
import torch

from tfconstruct.constructions import (
    AttentionHead,
    Bilinear,
    LinearMap,
    MLPBuilder,
    MultiHeadAttention,
    ResidualLayout,
    Transformer,
    moves,
)
from tfconstruct.constructions.export import export_attention, state_dict

LAYOUT = ResidualLayout([("x", 3), ("one", 1), ("v", 3), ("u", 3), ("flag", 1), ("s", 1)])


def random_stream(batch=2, tokens=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, 3, generator=g, dtype=torch.float64)
    v = torch.randn(batch, 1, 3, generator=g, dtype=torch.float64)
    flag = (torch.arange(tokens) % 2 == 0).to(torch.float64)[None, :, None]
    return LAYOUT.embed(batch, tokens, {"x": x, "v": v, "one": 1.0, "flag": flag})


def head(scoring, keys=None, normalise=True):
    return AttentionHead(
        Bilinear(LAYOUT).add("v", "x"), LinearMap(LAYOUT).add("x", "u"), scoring, keys=keys, normalise=normalise
    )


def numpy_reference(stream, scoring, mask=None, normalise=True):
    """Loop-free numpy version of the three scorings for the head <v_i, x_j> -> x_j into u; ReLU and linear
    scoring divide by the number of attended keys (all tokens, or those the mask lets through)."""
    h = stream.numpy()
    x, v = h[..., 0:3], h[..., 4:7]
    s = np.einsum("bid,bjd->bij", v, x)
    n = h.shape[1] if mask is None else mask.sum(-1, keepdims=True)
    if scoring == "softmax":
        s = np.where(mask, s, -np.inf) if mask is not None else s
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
    else:
        a = np.maximum(s, 0) if scoring == "relu" else s
        a = a * mask if mask is not None else a
        a = a / n if normalise else a
    return np.einsum("bij,bjd->bid", a, x)


@pytest.mark.parametrize("scoring", ["softmax", "relu", "linear"])
@pytest.mark.parametrize("masked", [False, True])
def test_head_scorings_match_numpy(scoring, masked):
    stream = random_stream()
    mask = (LAYOUT.read(stream, "flag")[..., 0] > 0.5).numpy()[:, None, :] if masked else None
    out = head(scoring, keys="flag" if masked else None)(stream)
    np.testing.assert_allclose(
        LAYOUT.read(out, "u").numpy(), numpy_reference(stream, scoring, mask), rtol=1e-13, atol=1e-14
    )
    others = [n for n in LAYOUT.names if n != "u"]
    assert all(torch.count_nonzero(LAYOUT.read(out, n)) == 0 for n in others)


def test_relu_without_normalisation_and_signed_pair_is_linear():
    stream = random_stream()
    pos = head("relu", normalise=False)
    neg = AttentionHead(
        Bilinear(LAYOUT).add("v", "x", -1.0), LinearMap(LAYOUT).add("x", "u", -1.0), "relu", normalise=False
    )
    pair = MultiHeadAttention([pos, neg])(stream)
    linear = head("linear", normalise=False)(stream)
    torch.testing.assert_close(pair, linear, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(
        LAYOUT.read(pos(stream), "u").numpy(), numpy_reference(stream, "relu", normalise=False), rtol=1e-13
    )


def test_average_divides_by_head_count():
    stream = random_stream()
    heads = [head("relu"), head("linear"), head("softmax")]
    summed = MultiHeadAttention(heads, "sum")(stream)
    averaged = MultiHeadAttention(heads, "average")(stream)
    torch.testing.assert_close(averaged * 3, summed, rtol=1e-14, atol=1e-15)


def test_attention_rejects_bad_configuration():
    with pytest.raises(ValueError, match="scoring must be one of"):
        head("tanh")
    with pytest.raises(ValueError, match="at least one head"):
        MultiHeadAttention([])
    with pytest.raises(KeyError, match="no subspace named 'mask'"):
        head("relu", keys="mask")


@pytest.mark.parametrize("combine", ["sum", "average"])
def test_export_to_concatenated_heads_is_exact(combine):
    stream = random_stream(tokens=7, seed=3)
    heads = [
        head("softmax", keys="flag"),
        head("relu"),
        AttentionHead(
            Bilinear(LAYOUT).add("x", "x").add("one", "s", 2.0),
            LinearMap(LAYOUT).add("one", "s", 1.0).add("v", "u", -1.0),
            "linear",
        ),
    ]
    layer = MultiHeadAttention(heads, combine)
    std = export_attention(layer)
    assert std.w_q.shape == (3, LAYOUT.dim, std.d_head) and std.w_o.shape[0] % 3 == 0
    torch.testing.assert_close(std(stream), layer(stream), rtol=1e-12, atol=1e-13)


def test_mlp_groups_compute_declared_units():
    b = MLPBuilder(LAYOUT, "test")
    b.group({"x": 2.0, "s": -1.0}, {"u": 3.0}, bias=0.5, label="a")
    b.group({"x": torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)}, {"v": 1.0, "s": -1.0}, label="b")
    mlp = b.build()
    stream = random_stream()
    stream[..., LAYOUT["s"].slice] = 0.3
    out = mlp(stream).numpy()
    h = stream.numpy()
    x = h[..., 0:3]
    unit_a = np.maximum(2 * x - 0.3 + 0.5, 0)
    unit_b = np.maximum(x * np.array([1.0, -1.0, 0.5]), 0)
    np.testing.assert_allclose(out[..., 7:10], 3 * unit_a, rtol=1e-14)
    np.testing.assert_allclose(out[..., 4:7], unit_b, rtol=1e-14)
    np.testing.assert_allclose(out[..., 11], -unit_b.sum(-1), rtol=1e-14)
    assert mlp.width == 6 and [g.label for g in mlp.groups] == ["a", "b"]


def test_exact_moves_and_gating():
    stream = random_stream()
    stream[..., LAYOUT["u"].slice] = torch.randn(2, 6, 3, dtype=torch.float64)
    u, v = LAYOUT.read(stream, "u").clone(), LAYOUT.read(stream, "v").clone()
    flag = LAYOUT.read(stream, "flag")
    replaced = stream + moves.replace(MLPBuilder(LAYOUT), "u", "v").build()(stream)
    # exact up to the one rounding of v + (u - v) in the residual add
    torch.testing.assert_close(LAYOUT.read(replaced, "v"), u, rtol=4e-16, atol=4e-16)
    assert torch.count_nonzero(LAYOUT.read(replaced, "u")) == 0
    gated = stream + moves.gated_add(MLPBuilder(LAYOUT), "u", "x", "flag", bound=10.0).build()(stream)
    torch.testing.assert_close(LAYOUT.read(gated, "x"), LAYOUT.read(stream, "x") + u * flag, rtol=1e-15, atol=1e-14)
    copied = stream + moves.copy(MLPBuilder(LAYOUT), "v", "u", 2.0).build()(stream)
    torch.testing.assert_close(LAYOUT.read(copied, "u"), u + 2 * v, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="bound must be > 0"):
        moves.gated_add(MLPBuilder(LAYOUT), "u", "x", "flag", bound=0.0)


def test_mlp_needs_a_bias_subspace_only_for_biases_and_needs_units():
    no_one = ResidualLayout([("x", 2), ("y", 2)])
    mlp = MLPBuilder(no_one, "move").group({"x": 1.0}, {"y": 1.0}).build()  # no bias, no `one` needed
    stream = no_one.embed(1, 2, {"x": torch.tensor([[1.0, -2.0], [3.0, 0.5]])})
    torch.testing.assert_close(no_one.read(mlp(stream), "y"), torch.relu(no_one.read(stream, "x")), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"group 'hinge' has a bias, which is read from a constant subspace 'one'"):
        MLPBuilder(no_one).group({"x": 1.0}, {"y": 1.0}, bias=-1.0, label="hinge")
    with pytest.raises(ValueError, match="no hidden units"):
        MLPBuilder(LAYOUT, "empty").build()
    with pytest.raises(ValueError, match="different sizes"):
        MLPBuilder(ResidualLayout([("a", 2), ("b", 3), ("one", 1)])).group({"a": 1.0}, {"b": 1.0})


def test_transformer_composes_repeats_and_traces_by_hook_name():
    stream = random_stream()
    step = Transformer(
        LAYOUT,
        [MultiHeadAttention([head("linear")], label="Sv"), moves.replace(MLPBuilder(LAYOUT, "v<-u"), "u", "v").build()],
        ["matvec", "overwrite"],
    )
    three = step * 3
    trace = three(stream, trace=True)
    assert len(three) == 6 and three.depth == 3 and len(trace.streams) == 7
    assert trace.names == ["input"] + [f"iter{t}.{name}" for t in range(3) for name in ("matvec", "overwrite")]
    x = LAYOUT.read(stream, "x")
    sigma = x.transpose(-1, -2) @ x / x.shape[-2]
    v = LAYOUT.read(stream, "v")[:, :1]
    for t in range(3):
        v = v @ sigma.transpose(-1, -2)
        torch.testing.assert_close(LAYOUT.read(trace.after(f"iter{t}"), "v")[:, :1], v, rtol=1e-13, atol=1e-13)
    assert torch.equal(trace.before("iter1"), trace["iter0.overwrite"]) and torch.equal(trace.before("iter0"), stream)
    assert torch.equal(trace.output, three(stream))
    assert set(state_dict(three)) >= {"blocks.0.attn.W_Q", "blocks.1.mlp.W_in"}
    with pytest.raises(ValueError, match=r"shape \(batch, tokens, 12\), got \(4, 13\)"):
        three(torch.zeros(4, 13, dtype=torch.float64))
    with pytest.raises(ValueError, match="repeat count"):
        step * -1


def test_hook_names_address_parts_of_a_model_and_partial_traces_record_only_them():
    stream = random_stream()
    step = Transformer(
        LAYOUT,
        [MultiHeadAttention([head("linear")], label="Sv"), moves.replace(MLPBuilder(LAYOUT, "v<-u"), "u", "v").build()],
        ["matvec", "overwrite"],
    )
    model = (step * 2).scoped("first") + step.repeat(2, "round").scoped("second")
    assert model.names[0] == "first.iter0.matvec" and model.names[-1] == "second.round1.overwrite"
    assert (
        model.hook_after("first") == "first.iter1.overwrite" and model.hook_before("second") == "first.iter1.overwrite"
    )
    assert model.hook_before("first.iter0") == "input"
    assert model["second.round0.matvec"] is step.layers[0]
    assert len(model.part("second")) == 4 and model.upto("first.iter1.matvec").names[-1] == "first.iter1.matvec"
    torch.testing.assert_close(model.part("second")(model.part("first")(stream)), model(stream), rtol=0, atol=0)
    partial = model(stream, trace=["first.iter1.overwrite"])
    assert torch.equal(partial["first"], model.upto("first")(stream)) and torch.equal(partial.output, model(stream))
    with pytest.raises(KeyError, match="was not recorded"):
        partial["second.round0.matvec"]
    with pytest.raises(KeyError, match="no hook named 'third'"):
        partial["third"]
    with pytest.raises(KeyError, match="no sublayer named 'first.iter9.matvec'"):
        model(stream, trace=["first.iter9.matvec"])
    with pytest.raises(ValueError, match=r"hook names must be unique; repeated: \['matvec', 'overwrite'\]"):
        step + step
    with pytest.raises(ValueError, match="dot-separated identifiers"):
        Transformer(LAYOUT, step.layers, ["a b", "c"])


def scattered_head(scoring, keys, normalise, seed):
    """A head whose score form reads non-contiguous coordinates (x and s against v and one) of unequal counts and
    writes two separated blocks, with random matrices."""
    g = torch.Generator().manual_seed(seed)
    qk = Bilinear(LAYOUT).add("x", "v", matrix=torch.randn(3, 3, generator=g, dtype=torch.float64)).add("s", "one", 0.7)
    ov = LinearMap(LAYOUT).add("v", "u", matrix=torch.randn(3, 3, generator=g, dtype=torch.float64)).add("x", "s", 0.3)
    return AttentionHead(qk, ov, scoring, keys=keys, normalise=normalise)


@pytest.mark.parametrize("scoring", ["softmax", "relu", "linear"])
@pytest.mark.parametrize("keys", [None, "flag"])
@pytest.mark.parametrize("chunk", [1, 4, None])
def test_heads_in_their_factors_equal_the_dense_computation(scoring, keys, chunk):
    stream = random_stream(batch=3, tokens=11, seed=5)
    stream = stream + LAYOUT.embed(3, 11, {"s": torch.randn(3, 11, 1, dtype=torch.float64)})
    other_keys = stream.clone()
    other_keys[1, :, LAYOUT["flag"].start] = 1.0 - other_keys[1, :, LAYOUT["flag"].start]  # keys differ by instance
    for normalise, stream in [(True, stream), (False, stream), (True, other_keys)]:
        scattered = scattered_head(scoring, keys, normalise, seed=1)
        cols, values = scattered.update(stream, chunk)
        out = torch.zeros_like(stream)
        out[..., cols] = values
        dense = scattered.dense_output(stream)
        torch.testing.assert_close(out, dense, rtol=1e-13, atol=1e-13 * float(dense.abs().max()))
        assert not LAYOUT.read(out, "x").any() and not LAYOUT.read(out, "v").any()  # written only where W_OV writes
    broadcast = head(scoring, keys)  # its query reads v, the same in every token: scored once
    cols, values = broadcast.update(stream, chunk)
    dense = broadcast.dense_output(stream)
    torch.testing.assert_close(values, dense[..., cols], rtol=1e-13, atol=1e-13 * float(dense.abs().max()))


def test_an_empty_score_form_still_attends_uniformly_and_the_stack_agrees_with_the_dense_path():
    uniform = AttentionHead(Bilinear(LAYOUT), LinearMap(LAYOUT).add("x", "u"), "softmax", keys="flag")
    stream = random_stream(tokens=7)
    flag = LAYOUT.read(stream, "flag")
    expected = (LAYOUT.read(stream, "x") * flag).sum(1, keepdim=True) / flag.sum(1, keepdim=True)
    torch.testing.assert_close(LAYOUT.read(uniform(stream), "u"), expected.expand(-1, 7, -1), rtol=1e-15, atol=1e-15)
    mlp = MLPBuilder(LAYOUT).group({"x": 1.0}, {"u": -1.0}, bias=0.5).group({"s": 2.0}, {"v": 1.0}).build()
    model = Transformer(
        LAYOUT, [MultiHeadAttention([uniform, scattered_head("relu", None, True, 2)]), mlp], ["attn", "mlp"]
    )
    factored, dense = model(stream, trace=True), model(stream, trace=True, dense=True)
    for ours, reference in zip(factored.streams, dense.streams):
        torch.testing.assert_close(ours, reference, rtol=1e-14, atol=1e-14)


def test_ten_thousand_tokens_run_in_query_chunks_and_match_rows_computed_directly():
    """A softmax head whose query differs in every token, N = 10^4, scores 1000 queries at a time (80 MB, not the
    800 MB of the full N x N score matrix); sampled rows against numpy."""
    tokens = 10_000
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, tokens, 3, generator=g, dtype=torch.float64)
    stream = LAYOUT.embed(1, tokens, {"x": x, "one": 1.0, "flag": 1.0})
    softmax = AttentionHead(Bilinear(LAYOUT).add("x", "x"), LinearMap(LAYOUT).add("x", "u"), "softmax")
    cols, values = softmax.update(stream, chunk=1000)
    h = x[0].numpy()
    for i in (0, 4321, tokens - 1):
        weights = np.exp(h[i] @ h.T - (h[i] @ h.T).max())
        np.testing.assert_allclose(values[0, i].numpy(), weights @ h / weights.sum(), rtol=1e-12, atol=1e-14)
    assert cols == LAYOUT["u"].slice


def test_a_broadcast_block_overwritten_per_token_is_no_longer_treated_as_shared():
    """v starts the same in every token; an MLP adds x (different per token) to it; a head then queries v. The
    forward pass must see that v now differs between tokens (and give the dense answer)."""
    stream = random_stream(tokens=9)
    spread = MLPBuilder(LAYOUT).group({"x": 1.0}, {"v": 1.0}).group({"x": -1.0}, {"v": -1.0}).build()
    model = Transformer(LAYOUT, [spread, MultiHeadAttention([head("relu")])], ["spread", "attend"])
    ours, dense = model(stream), model(stream, dense=True)
    assert not torch.equal(LAYOUT.read(dense, "u")[:, 0], LAYOUT.read(dense, "u")[:, 1])  # the answer differs per token
    torch.testing.assert_close(ours, dense, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True, "a"])
def test_a_bad_query_chunk_or_a_stream_that_is_not_a_tensor_is_named(chunk):
    model = Transformer(LAYOUT, [MultiHeadAttention([head("relu")])], ["attend"])
    stream = random_stream()
    for dense in (False, True):
        with pytest.raises(ValueError, match=r"query_chunk must be None \(automatic\) or an integer >= 1"):
            model(stream, query_chunk=chunk, dense=dense)
    with pytest.raises(TypeError, match=r"stream must be a torch.Tensor of shape \(batch, tokens, 12\)"):
        model(stream.numpy())
