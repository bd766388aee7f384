"""Tutorials are generated deterministically, and the committed docs/ match what the code generates now."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tfconstruct.constructions.attention import AttentionHead, MultiHeadAttention
from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.mlp import MLPBuilder
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.piecewise import PiecewiseLinear, uniform_knots
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.weights import Bilinear, LinearMap
from tfconstruct.verify.families import registered, tutorials
from tfconstruct.verify.tutorial import generate_tutorials

DOCS = Path(__file__).resolve().parent.parent / "docs"


def toy_example() -> TutorialExample:
    """Copy the mean of `x` into `m` (linear head, 1/N), then square `s` with a hinge MLP."""
    layout = ResidualLayout([("x", 2), ("one", 1), ("m", 2), ("s", 1), ("sq", 1)])
    mean = AttentionHead(
        Bilinear(layout).add("one", "one", 1.0), LinearMap(layout).add("x", "m", 1.0), scoring="linear", label="mean"
    )
    builder = MLPBuilder(layout, "square s")
    PiecewiseLinear.interpolate(np.square, uniform_knots(-2.0, 2.0, 4)).add_to(builder, "s", "sq")
    model = Transformer(layout, [MultiHeadAttention([mean], label="mean of x"), builder.build()], ["mean", "square"])
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [-1.0, 0.5]], dtype=torch.float64)
    stream = layout.embed(1, 3, {"x": x, "one": 1.0, "s": torch.tensor([[0.5], [1.5], [-1.0]])})
    return TutorialExample(
        "Toy: a mean and a square", model, stream, r"**Toy.** `m` gets $\bar x$, `sq` gets $\hat q(s)$."
    )


def test_toy_tutorial_is_deterministic_and_complete(tmp_path):
    first = generate_tutorials(tmp_path / "a", {"toy": toy_example})
    second = generate_tutorials(tmp_path / "b", {"toy": toy_example})
    text = first[0].read_text()
    assert first[0].name == "tutorial_toy.md" and text == second[0].read_text()
    assert text.startswith("# Tutorial: Toy: a mean and a square\n")
    assert f"from `{__name__}.toy_example()`" in text  # the example's real source
    assert "| `m` | 2 | 3-4 |" in text and "| `sq` | 1 | 6 |" in text  # layout table
    assert r"**Toy.** `m` gets $\bar x$" in text  # the notes
    assert "linear head 'mean': score 1<one_i, one_j>; m += 1*x" in text  # describe() of the head
    assert "Writes on this example: `m` (max |change| 1)." in text  # mean of x = (1, 0.5)
    assert "Writes on this example: `sq` (max |change| 2.5)." in text  # q(1.5) on knots -2..2 step 1: 2.5
    for hook in ("mean", "square"):
        assert f"![weights of {hook}](figures/tutorial_toy_{hook}.png)" in text
        assert (tmp_path / "a" / "figures" / f"tutorial_toy_{hook}.png").read_bytes()[:4] == b"\x89PNG"
    output = text.split("## Output: the final stream, read by name")[1]
    assert "| 0 | (1, 2) | 1 | (1, 0.5) | 0.5 | 0.5 |" in output  # q(0.5) = 0.5 (between knots 0 and 1)
    assert "| 2 | (-1, 0.5) | 1 | (1, 0.5) | -1 | 1 |" in output


def test_repeated_sublayers_reuse_the_first_heat_map(tmp_path):
    def repeated() -> TutorialExample:
        example = toy_example()
        return TutorialExample(example.title, example.model * 2, example.stream, example.notes)

    text = generate_tutorials(tmp_path, {"rep": repeated})[0].read_text()
    assert "Same weights as `iter0.mean`." in text and "Same weights as `iter0.square`." in text
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["tutorial_rep_iter0.mean.png", "tutorial_rep_iter0.square.png"]


def test_without_heatmaps_the_markdown_links_no_image(tmp_path):
    text = generate_tutorials(tmp_path, {"toy": toy_example}, heatmaps="none")[0].read_text()
    assert "![" not in text and not (tmp_path / "figures").exists()
    assert "### `square` (mlp)" in text  # the sublayer sections are all there


def test_a_failing_example_names_its_module(tmp_path):
    def broken() -> TutorialExample:
        raise ValueError("bad weights")

    with pytest.raises(RuntimeError, match=r"tutorial 'broken' \(.*broken\(\)\) failed: bad weights"):
        generate_tutorials(tmp_path, {"broken": broken})


def test_committed_docs_match_regeneration(tmp_path):
    """The docs/ tutorials are what the code generates now (the toy test above covers the generator itself)."""
    examples = tutorials(registered())
    generated = generate_tutorials(tmp_path, examples, heatmaps="link")
    stale = []
    for path in generated:
        committed = DOCS / path.name
        if not committed.exists() or committed.read_text() != path.read_text():
            stale.append(path.name)
    assert not stale, f"docs/{stale} are missing or stale: run `tfconstruct docs` to regenerate them"
