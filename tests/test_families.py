"""Registration: every family, shipped or plugin, has every part; a plugin file works through every command; a broken
plugin gets one clear error; the GD family is written with the public interface only."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from tfconstruct.verify import BoundColumn, FamilyCheckFailed, check_family
from tfconstruct.verify.cli import main
from tfconstruct.verify.families import PluginError, load_plugin, registered

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "mean_family.py"
FAMILIES = registered([str(EXAMPLE)])

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_the_shipped_families_register_through_the_entry_point_group():
    assert [family.name for family in registered()] == ["power", "em", "tensor", "gd"]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_has_every_part_and_each_works(family, capsys):
    check_family(
        family
    )  # constructions, strategies, one measured row per study, tutorials (and their export), benchmark
    assert main(["--plugin", str(EXAMPLE), "bounds", *[f"--name={b.name}" for b in family.bounds]]) == 0
    printed = capsys.readouterr().out
    assert all(b.name in printed for b in family.bounds)


def test_check_family_lists_every_broken_part():
    family = next(f for f in FAMILIES if f.name == "mean")
    good = family.tutorials["mean"]()
    broken = dataclasses.replace(
        family,
        strategies={"nothing": lambda: st.nothing()},
        tutorials={"two": lambda: dataclasses.replace(good, stream=good.stream.repeat(2, 1, 1))},
        studies=(dataclasses.replace(family.studies[0], bounds=(BoundColumn("missing_metric"),)),),
    )
    with pytest.raises(FamilyCheckFailed) as failure:
        check_family(broken)
    message = str(failure.value)
    assert "strategy 'nothing'" in message and "tutorial 'two'" in message and "holds 2 instances" in message
    assert "study 'mean'" in message and "no column(s) ['missing_metric', 'missing_metric_bound']" in message


def test_a_plugin_file_works_through_every_command(tmp_path, capsys):
    plugin = tmp_path / "my_family.py"
    shutil.copy(EXAMPLE, plugin)
    options = ["--plugin", str(plugin)]
    assert main([*options, "report", "--quick", "--only", "mean", "--out", str(tmp_path / "report")]) == 0
    payload = json.loads((tmp_path / "report" / "report.json").read_text())
    assert list(payload["sections"]) == ["mean", "tutorials", "explore"]
    assert payload["sections"]["mean"]["checks"][0]["passed"]
    assert (tmp_path / "report" / "tutorials" / "tutorial_mean.md").exists()
    assert payload["sections"]["explore"]["data"]["mean"]["checkpoints"] == 1  # the plugin's own reference
    assert (tmp_path / "report" / "explore" / "mean.html").stat().st_size > 1_000_000
    assert main([*options, "sweep", "mean", "--out", str(tmp_path / "sweep"), "--dim", "3", "--replicates", "1"]) == 0
    config = json.loads((tmp_path / "sweep" / "config.json").read_text())
    assert config["measure"] == "study mean" and config["measure_function"] == "my_family.measure"
    assert config["grid"] == {"dim": [3], "tokens": [4, 64]}
    assert main([*options, "bounds", "--latex", "--name", "mean_exact"]) == 0
    assert r"\texttt{mean\_exact}" in capsys.readouterr().out
    assert main([*options, "docs", "--family", "mean", "gd", "--out", str(tmp_path / "docs")]) == 0
    assert {p.name for p in (tmp_path / "docs").glob("*.md")} == {"tutorial_mean.md", "tutorial_gd.md"}
    assert main([*options, "benchmark", "--family", "mean", "--batch", "1", "--repeats", "1", "--tokens", "8"]) == 0
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


def test_reserved_names_and_malformed_fields_are_named():
    family = next(f for f in FAMILIES if f.name == "mean")
    with pytest.raises(ValueError, match="name 'theory' is reserved"):
        dataclasses.replace(family, name="theory")
    with pytest.raises(ValueError, match="studies must be a non-empty tuple of studies .* got Study"):
        dataclasses.replace(family, studies=family.studies[0])


def test_a_section_that_raises_is_one_failed_check_the_others_are_reported_and_the_exit_status_is_3(tmp_path, capsys):
    plugin = tmp_path / "crashing.py"
    plugin.write_text(
        EXAMPLE.read_text().replace(
            "def section(context: ReportContext) -> SectionResult:\n",
            "def section(context):\n    raise RuntimeError('plugin bug')\n",
            1,
        )
    )
    assert (
        main(["--plugin", str(plugin), "report", "--quick", "--only", "mean", "gd", "--out", str(tmp_path / "r")]) == 3
    )
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    payload = json.loads((tmp_path / "r" / "report.json").read_text())
    assert payload["sections"]["mean"]["checks"] == [
        {
            "name": "the section ran to completion",
            "passed": False,
            "measured": "RuntimeError: plugin bug",
            "requirement": "no exception",
        }
    ]
    assert all(check["passed"] for check in payload["sections"]["gd"]["checks"])
    assert "RuntimeError: plugin bug" in (tmp_path / "r" / "errors.log").read_text()


def test_a_sweep_started_from_a_plugin_file_resumes_from_its_module_name(tmp_path, monkeypatch, capsys):
    package = tmp_path / "pkg"
    package.mkdir()
    shutil.copy(EXAMPLE, package / "my_means.py")
    sweep = ["sweep", "mean", "--out", str(tmp_path / "sweep"), "--dim", "2", "--replicates", "1"]
    assert main(["--plugin", str(package / "my_means.py"), *sweep]) == 0
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "my_means", raising=False)
    assert main(["--plugin", "my_means", *sweep]) == 0
    assert "2/2" in capsys.readouterr().err  # both rows were already there


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "--only", "bogus"], "tfconstruct report: error: unknown report section(s) ['bogus']"),
        (["benchmark", "--repeats", "0"], "tfconstruct benchmark: error: --repeats must be an integer >= 1, got 0"),
        (["benchmark", "--tokens", "2", "-1"], "--tokens must be integers >= 1, got [2, -1]"),
        (["docs", "--family", "bogus"], "argument --family: invalid choice: 'bogus'"),
    ],
)
def test_command_line_mistakes_exit_2_with_the_command_and_the_flag_named(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_a_plugin_file_sweeps_on_a_dask_cluster_whose_workers_cannot_import_it(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    plugin = tmp_path / "file_only_family.py"
    shutil.copy(EXAMPLE, plugin)
    sweep = ["--plugin", str(plugin), "sweep", "mean", "--dim", "2", "--replicates", "2"]
    assert main([*sweep, "--out", str(tmp_path / "serial")]) == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        assert main([*sweep, "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]) == 0
    assert (tmp_path / "dask" / "results.csv").read_text() == (tmp_path / "serial" / "results.csv").read_text()


@pytest.mark.parametrize("address", ["not-an-address", "tcp://127.0.0.1", "http://127.0.0.1:8786", "tcp://h:99999"])
def test_a_malformed_scheduler_address_is_a_usage_error_before_anything_is_written(address, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "gd", "--out", str(tmp_path / "out"), "--scheduler", address])
    assert stop.value.code == 2 and not (tmp_path / "out").exists()
    assert "--scheduler must be a dask scheduler address tcp://HOST:PORT" in capsys.readouterr().err
