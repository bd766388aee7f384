"""Registration: every family, shipped or plugin, has every part; a plugin file works through every command; a broken
plugin gets one clear error; the GD family is written with the public interface only."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import find

from tfconstruct.constructions import Construction, TutorialExample
from tfconstruct.constructions.export import export_attention
from tfconstruct.theory import Bound
from tfconstruct.verify.cli import main
from tfconstruct.verify.families import PluginError, load_plugin, registered
from tfconstruct.verify.family import BenchmarkCase

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "mean_family.py"
FAMILIES = registered([str(EXAMPLE)])

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_the_shipped_families_register_through_the_entry_point_group():
    assert [family.name for family in registered()] == ["power", "em", "tensor", "gd"]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_has_every_part(family, capsys):
    for name, builder in family.constructions.items():
        assert isinstance(builder, type) and Construction in builder.__mro__, name
    for name, strategy in family.strategies.items():
        example = find(strategy(), lambda _: True)  # builds an instance with the defaults
        assert example is not None, name
    assert all(isinstance(bound, Bound) for bound in family.bounds)
    assert main(["--plugin", str(EXAMPLE), "bounds", *[f"--name={b.name}" for b in family.bounds]]) == 0
    printed = capsys.readouterr().out
    assert all(b.name in printed for b in family.bounds)
    assert all(study.params for study in family.studies)
    for name, factory in family.tutorials.items():
        example = factory()
        assert isinstance(example, TutorialExample) and example.stream.shape[0] == 1, name
    case = family.benchmark(8)
    assert isinstance(case, BenchmarkCase)
    output = case.model(case.stream(2))
    assert output.shape[0] == 2 and torch.isfinite(output).all()
    assert case.reference(2) is not None
    assert callable(family.section) and all(callable(r) for r in family.references.values())


def test_a_plugin_file_works_through_every_command(tmp_path, capsys):
    plugin = tmp_path / "my_family.py"
    shutil.copy(EXAMPLE, plugin)
    options = ["--plugin", str(plugin)]
    assert main([*options, "report", "--quick", "--only", "mean", "--out", str(tmp_path / "report")]) == 0
    payload = json.loads((tmp_path / "report" / "report.json").read_text())
    assert list(payload["sections"]) == ["mean", "tutorials"] and payload["sections"]["mean"]["checks"][0]["passed"]
    assert (tmp_path / "report" / "tutorials" / "tutorial_mean.md").exists()
    assert main([*options, "sweep", "mean", "--out", str(tmp_path / "sweep"), "--dim", "3", "--replicates", "1"]) == 0
    config = json.loads((tmp_path / "sweep" / "config.json").read_text())
    assert config["measure"] == "my_family.measure" and config["grid"] == {"dim": [3], "tokens": [4, 64]}
    assert main([*options, "bounds", "--latex", "--name", "mean_exact"]) == 0
    assert r"\texttt{mean\_exact}" in capsys.readouterr().out
    assert main([*options, "docs", "--family", "mean", "gd", "--out", str(tmp_path / "docs")]) == 0
    assert {p.name for p in (tmp_path / "docs").glob("*.md")} == {"tutorial_mean.md", "tutorial_gd.md"}
    assert main([*options, "benchmark", "--family", "mean", "--batches", "1", "--repeats", "1", "--tokens", "8"]) == 0
    assert "mean (d=8)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = 1\n", r"registers no family: define FAMILY = tfconstruct.verify.Family\(...\)"),
        ("FAMILY = 3\n", "FAMILY must be a tfconstruct.verify.Family"),
        ("raise RuntimeError('boom')\n", "failed to import: RuntimeError: boom"),
        (
            EXAMPLE.read_text().replace('strategies={"data_sets": data_sets}', "strategies={}"),
            "family 'mean' is incomplete: strategies must be a non-empty mapping",
        ),
        (
            EXAMPLE.read_text().replace("    benchmark=benchmark,\n", ""),
            "missing 1 required positional argument: 'benchmark'",
        ),
    ],
)
def test_a_broken_plugin_gets_one_clear_error_naming_it(source, message, tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text(source)
    with pytest.raises(PluginError, match=message):
        load_plugin(str(plugin))
    assert main(["--plugin", str(plugin), "bounds"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tfconstruct: error: plugin {str(plugin)!r}") and "Traceback" not in error


def test_missing_plugins_and_duplicate_names_are_refused(tmp_path):
    with pytest.raises(PluginError, match="no such file"):
        load_plugin(str(tmp_path / "nope.py"))
    with pytest.raises(PluginError, match="no module named 'no_such_module'"):
        load_plugin("no_such_module")
    twin = tmp_path / "twin.py"
    twin.write_text(EXAMPLE.read_text())
    with pytest.raises(PluginError, match="two families are named 'mean'"):
        registered([str(EXAMPLE), str(twin)])


def test_the_gd_family_uses_only_the_public_interface():
    """Its modules import from tfconstruct only the three public packages and the family's own modules."""
    files = [*sorted((ROOT / "constructions" / "gd").glob("*.py")), ROOT / "theory" / "gd.py"]
    files += sorted((ROOT / "verify" / "gd").glob("*.py"))
    public = {"tfconstruct.constructions", "tfconstruct.theory", "tfconstruct.verify"}
    own = ("tfconstruct.constructions.gd", "tfconstruct.theory.gd", "tfconstruct.verify.gd")
    private = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfconstruct"):
                if node.module not in public and not node.module.startswith(own):
                    private.append(f"{path.relative_to(ROOT)}: from {node.module}")
            if isinstance(node, ast.ImportFrom) and node.level and node.level > 1:
                private.append(f"{path.relative_to(ROOT)}: relative import beyond the family")
    assert not private, private


def test_the_example_plugin_family_computes_the_mean():
    family = load_plugin(str(EXAMPLE))[0]
    X = np.random.default_rng(0).standard_normal((2, 7, 3))
    ours = family.constructions["MeanByAttention"](3).run(X).numpy()
    np.testing.assert_allclose(ours, family.references["numpy_mean"](X), rtol=0, atol=1e-15)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_exports_to_the_standard_heads_exactly(family):
    """Each attention sublayer of each tutorial model, exported to W_Q, W_K, W_V, W_O (with 1/sqrt(d_head) and the
    key masks), adds what the hand-built sublayer adds."""
    for factory in family.tutorials.values():
        example = factory()
        trace = example.model(example.stream, trace=True)
        for index, (name, layer) in enumerate(zip(example.model.names, example.model.layers)):
            if layer.kind != "attention":
                continue
            before = trace.streams[index]
            expected = layer(before)
            torch.testing.assert_close(
                export_attention(layer)(before), expected, rtol=1e-12, atol=1e-12 * float(expected.abs().max() + 1)
            )
