"""Named residual layout and named weight builders."""

import numpy as np
import pytest
import torch

from tfconstruct.constructions import Bilinear, LinearMap, ResidualLayout


@pytest.fixture
def layout():
    return ResidualLayout([("x", 3), ("one", 1), ("mu", 3), ("s", 1), ("u", 3)])


def test_layout_positions_and_labels(layout):
    assert layout.dim == 11
    assert layout["mu"].slice == slice(4, 7)
    assert layout.labels()[:5] == ["x:0", "x:1", "x:2", "one", "mu:0"]
    assert "s" in layout and "nope" not in layout


def test_layout_rejects_bad_blocks():
    with pytest.raises(ValueError, match="used twice"):
        ResidualLayout([("x", 2), ("x", 1)])
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        ResidualLayout([("x", 0)])
    with pytest.raises(KeyError, match="no subspace named 'y'"):
        ResidualLayout([("x", 2)])["y"]


def test_embed_writes_named_blocks_and_checks_shapes(layout):
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    stream = layout.embed(2, 4, {"x": x, "one": 1.0})
    assert torch.equal(layout.read(stream, "x"), x)
    assert torch.all(layout.read(stream, "one") == 1.0)
    assert torch.all(layout.read(stream, "mu") == 0.0)
    with pytest.raises(
        ValueError, match="subspace 'x' has shape \\(5,\\): its last dimension must be the subspace's size 3"
    ):
        layout.embed(2, 4, {"x": torch.ones(5)})
    with pytest.raises(ValueError, match="subspace 'x' has shape \\(2, 4, 1\\)"):  # no silent spread of one number
        layout.embed(2, 4, {"x": torch.ones(2, 4, 1)})
    with pytest.raises(ValueError, match="subspace 'x' has shape \\(3, 4, 3\\).*broadcast"):
        layout.embed(2, 4, {"x": torch.ones(3, 4, 3)})
    with pytest.raises(ValueError, match="subspace 'x' contains non-finite"):
        layout.embed(2, 4, {"x": torch.full((3,), float("nan"))})


def test_bilinear_score_matches_explicit_formula(layout):
    rng = np.random.default_rng(0)
    x, mu = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    s = rng.normal(size=5)
    stream = layout.embed(
        1, 5, {"x": torch.tensor(x), "mu": torch.tensor(mu), "s": torch.tensor(s)[:, None], "one": 1.0}
    )
    beta = 1.7
    qk = Bilinear(layout).add("x", "mu", beta).add("one", "s", -beta / 2)
    scores = (stream[0] @ qk.matrix @ stream[0].T).numpy()
    expected = beta * (x @ mu.T) - beta / 2 * s[None, :]
    np.testing.assert_allclose(scores, expected, rtol=1e-14, atol=1e-14)
    assert "1.7<x_i, mu_j>" in qk.describe()


def test_bilinear_with_matrix_and_single_coordinate(layout):
    g = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    qk = Bilinear(layout).add("x", "u", matrix=g).add("s", "x", 2.0, key_index=1)
    h_i, h_j = torch.randn(11, dtype=torch.float64), torch.randn(11, dtype=torch.float64)
    got = h_i @ qk.matrix @ h_j
    want = h_i[0:3] @ g @ h_j[8:11] + 2.0 * h_i[7] * h_j[1]
    assert torch.isclose(got, want, rtol=1e-14)
    with pytest.raises(ValueError, match="matrix has shape"):
        Bilinear(layout).add("x", "u", matrix=torch.ones(2, 2))
    with pytest.raises(IndexError, match="outside subspace 'x'"):
        Bilinear(layout).add("x", "s", query_index=3)


def test_linear_map_moves_blocks(layout):
    ov = LinearMap(layout).add("x", "u", -2.0).add("one", "s", 0.5)
    h = torch.randn(11, dtype=torch.float64)
    out = h @ ov.matrix
    assert torch.allclose(out[8:11], -2.0 * h[0:3], rtol=1e-15)
    assert torch.isclose(out[7], 0.5 * h[3])
    assert torch.count_nonzero(out[:7]) == 0
    with pytest.raises(ValueError, match="cannot be paired by the identity"):
        LinearMap(ResidualLayout([("a", 2), ("b", 3)])).add("a", "b")
