"""Tutorials are generated deterministically, and the committed docs/ match what the code generates now."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tfconstruct.constructions.attention import AttentionHead, MultiHeadAttention
from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.em.construction import tutorial_example as em_example
from tfconstruct.constructions.mlp import MLPBuilder
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.piecewise import PiecewiseLinear, uniform_knots
from tfconstruct.constructions.power.covariance import tutorial_example as power_example
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.weights import Bilinear, LinearMap
from tfconstruct.verify.em.reference import MixtureState, initial_state, responsibilities
from tfconstruct.verify.families import registered, tutorials
from tfconstruct.verify.results import ReportContext
from tfconstruct.verify.tutorial import generate_tutorials, tutorial_section

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
    # the mean head's pattern: score 1 everywhere, linear, divided by N = 3 keys, the same row for every query
    assert "| every $i$ | 0.3333 | 0.3333 | 0.3333 |" in text and "The rows sum to" not in text
    # conventions before the layout, the explorer link near the top
    assert text.index("## What a head and an MLP compute here") < text.index("## Residual layout")
    assert r"$s_{ij} = h_i^\top W_{QK}\, h_j$" in text and "no\n$1/\\sqrt{d_{head}}$ factor" in text
    assert "Step through it interactively: [explore/toy.html](../report/explore/toy.html)" in text.split("##")[0]


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


def test_explorer_link_follows_explore_dir_and_the_report_links_its_own_pages(tmp_path):
    none = generate_tutorials(tmp_path / "a", {"toy": toy_example}, heatmaps="none", explore_dir=None)[0].read_text()
    assert "Step through it interactively" not in none
    section = tutorial_section(ReportContext(tmp_path / "report", quick=True), {"toy": toy_example})
    assert section.checks[0].passed
    text = (tmp_path / "report" / "tutorials" / "tutorial_toy.md").read_text()
    assert "[explore/toy.html](../explore/toy.html)" in text  # report/tutorials/ -> report/explore/


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, str]:
    """The registered tutorials' Markdown (no heat-maps), by key."""
    folder = tmp_path_factory.mktemp("shipped")
    paths = generate_tutorials(folder, tutorials(registered()), heatmaps="none")
    return {path.stem.removeprefix("tutorial_"): path.read_text() for path in paths}


def test_every_tutorial_defines_heads_and_mlps_roles_and_links_its_explorer(shipped):
    assert set(shipped) == {"power", "em", "tensor", "tensor_gmm", "gd"}
    for key, factory in tutorials(registered()).items():
        text, example = shipped[key], factory()
        assert text.index("## What a head and an MLP compute here") < text.index("## Residual layout"), key
        assert f"[explore/{key}.html](../report/explore/{key}.html)" in text, key
        assert set(example.roles) == set(example.model.layout.names), f"{key}: every subspace has a role"
        layout_rows = text.split("## Residual layout")[1].split("## How it works")[0]
        assert all(f"| `{name}` |" in layout_rows and role in layout_rows for name, role in example.roles.items())
        # one notation: ReLU by name (sigma is a standard deviation), "sublayer", never "Layer k"
        assert r"\sigma(" not in example.notes and "Layer " not in example.notes, key


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading`` (header row first, separator left out)."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_em_estep_pattern_rows_are_the_responsibilities(shipped):
    """The E-step pattern's data rows are the softmax responsibilities the reference computes from the stream's own
    means and log-weights (exact, to 4 significant digits); against textbook EM (the true log pi) they differ by what
    the notes state, through the width-4 log interpolant."""
    example = em_example()
    layout = example.model.layout
    with torch.no_grad():
        keys = example.model(example.stream, trace=True)["iter0.refresh.mlp"][0]
    n = 4
    points = layout.read(example.stream[0], "x")[:n].numpy()
    means, pi = layout.read(keys, "mu")[n:].numpy(), layout.read(keys, "pi")[n:, 0].numpy()
    own = responsibilities(points, MixtureState(means, np.exp(layout.read(keys, "log_pi")[n:, 0].numpy()), np.ones(2)))
    table = _table_after(shipped["em"], "Attention pattern $A_{ij}$ of head 'responsibilities'")
    assert table[0] == ["query $i$ \\ key $j$", "0", "1", "2", "3", "4", "5"]
    for i in range(n):
        assert table[1 + i][:5] == [str(i), "-", "-", "-", "-"]  # the data tokens are masked keys
        assert table[1 + i][5:] == [f"{w:.4g}" for w in own[i]]
    exact = responsibilities(points, initial_state(means, pi, 1.0))
    stated = next(r for r in _table_after(shipped["em"], "**What is exact") if "every data token" in r[1])
    assert stated[0] == "0" and float(stated[4]) == pytest.approx(np.abs(own - exact).max(), rel=1e-3)
    assert 1e-4 < np.abs(own - exact).max() < 1e-2  # approximate (log pi), not exact EM
    assert "its pattern's data rows are the responsibilities" in shipped["em"]


def test_power_eigenvalue_is_within_the_stated_error_of_eigh(shipped):
    example = power_example()
    layout = example.model.layout
    estimate = float(layout.read(example.model(example.stream), "eigenvalue0")[0, 0, 0])
    X = layout.read(example.stream[0], "x").numpy()
    top = np.linalg.eigh(X.T @ X / len(X))[0][-1]
    rows = {r[0].split(" ")[0]: r[1:] for r in _table_after(shipped["power"], "whose error is not divided out:")[1:]}
    value, stated = rows["`eigenvalue0`"]
    assert float(value) == pytest.approx(estimate, rel=1e-3) and float(rows["top"][0]) == pytest.approx(top, rel=1e-3)
    error = abs(estimate - top) / top
    assert error == pytest.approx(float(stated), rel=1e-3) and error < 0.01  # what the text says, under 1 %
    bound = float(shipped["power"].split(r"$(1 + \delta_M)^2 - 1 = ")[1].split("$")[0])
    assert error <= bound  # the norm's share bounds it (the two steps' own share is 2e-6 here)
    assert (
        "| `eigenvalue0` $= \\hat\\lambda_0$ (this transformer, $M = 4$) | 2.936 | 0.2724 |"
        in power_example(width=4).notes
    )  # the width the lecturer saw, 27 % high, rebuilt by the keyword


def test_stale_slots_are_marked_in_the_stream_tables(shipped):
    output = _table_after(shipped["em"], "## Output: the final stream, read by name")
    header = output[0]
    sq_norm, mu = header.index("`sq_norm` (scratch)"), header.index("`mu` (state)")
    assert all(row[sq_norm].startswith("*\\~") and row[sq_norm].endswith("*") for row in output[1:])
    assert output[5][sq_norm] == "*\\~2.943*"  # ||mu_0||^2 of the last refresh, left over
    assert not any(row[mu].startswith("*") for row in output[1:])  # the state is live
    assert "*\\~value*: stale" in shipped["em"].split("## Output")[1]
