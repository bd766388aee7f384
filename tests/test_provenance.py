"""A sweep folder says where its numbers came from, resumes a reordered grid, reads back typed from its CSV alone,
and every bound column (power, gd, tensor, em, approximation) recomputes from the CSV alone with the registered bound."""

from __future__ import annotations

import builtins
import json
import math
import shutil
import sys

import numpy as np
import pytest

from tfconstruct.verify.approximation.study import PARTS, approximation_sweep
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em import sweep as em_sweep
from tfconstruct.verify.gd import sweep as gd_sweep
from tfconstruct.verify.power import sweep as power_sweep
from tfconstruct.verify.sweep import Sweep, SweepMismatch, load_results, pivot
from tfconstruct.verify.tensor import sweep as tensor_sweep

GRID = {"width": [16, 8, 128], "d": [2, 3]}


def measure(config, seed):
    rng = np.random.default_rng(seed)
    return {"error": float(config["width"] ** -2.0 * rng.uniform(0.5, 1.5) * config["d"])}


def test_config_json_records_provenance_and_resume_refreshes_it_without_comparing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tfconstruct", "sweep", "first"])
    Sweep(GRID, 1, measure, tmp_path, progress=False, provenance={"device": "cpu"}).run()
    config = json.loads((tmp_path / "config.json").read_text())
    facts = config["provenance"]
    assert {"package_version", "git", "python", "torch", "numpy", "sympy", "argv", "torch_threads", "device"} <= set(
        facts
    )
    assert facts["argv"] == ["tfconstruct", "sweep", "first"] and facts["device"] == "cpu"
    assert facts["numpy"] == np.__version__ and facts["python"].count(".") == 2
    assert facts["git"] is None or (len(facts["git"]["commit"]) == 40 and isinstance(facts["git"]["dirty"], bool))
    # another command line (and other recorded facts) resumes, and the record is refreshed
    monkeypatch.setattr(sys, "argv", ["tfconstruct", "sweep", "second"])
    Sweep(GRID, 1, measure, tmp_path, progress=False, provenance={"device": "elsewhere"}).run()
    facts = json.loads((tmp_path / "config.json").read_text())["provenance"]
    assert facts["argv"] == ["tfconstruct", "sweep", "second"] and facts["device"] == "elsewhere"


def test_git_missing_is_none_not_a_failure(tmp_path, monkeypatch):
    from tfconstruct.verify import sweep as sweep_module

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(sweep_module.subprocess, "run", no_git)
    assert sweep_module.git_state(tmp_path) is None
    assert sweep_module.git_state(tmp_path / "not-a-repo") is None
    Sweep(GRID, 1, measure, tmp_path, progress=False).run()
    assert json.loads((tmp_path / "config.json").read_text())["provenance"]["git"] is None


def test_a_grid_in_another_order_resumes_but_other_values_do_not(tmp_path):
    first = Sweep(GRID, 2, measure, tmp_path, progress=False).run()
    reordered = {"d": [3, 2], "width": [128, 16, 8]}
    again = Sweep(reordered, 2, lambda c, s: pytest.fail("resumed rows are not measured again"), tmp_path,
                  progress=False, identity=Sweep(GRID, 2, measure, tmp_path).identity).run()  # fmt: skip
    key = lambda r: (r["width"], r["d"], r["replicate"])  # noqa: E731
    assert sorted(again, key=key) == sorted(first, key=key)
    with pytest.raises(SweepMismatch, match=r"fields \['grid'\]"):
        Sweep({"width": [16, 8, 64], "d": [2, 3]}, 2, measure, tmp_path, progress=False).run()
    with pytest.raises(SweepMismatch, match=r"fields \['grid'\]"):  # values compared exactly: 16.0 is not 16
        Sweep({"width": [16.0, 8, 128], "d": [2, 3]}, 2, measure, tmp_path, progress=False).run()


def test_load_results_from_the_csv_alone_is_typed_and_sorts_numerically(tmp_path):
    rows = Sweep(GRID, 2, measure, tmp_path, progress=False).run()
    (tmp_path / "results.jsonl").unlink()
    loaded = load_results(tmp_path)
    assert loaded == rows  # ints, floats and the seed come back as the JSON rows had them
    assert all(type(r["width"]) is int and type(r["error"]) is float for r in loaded)
    xs, curves = pivot(loaded, "width", "error", where={"d": 2})
    assert xs.tolist() == [8, 16, 128]
    assert curves["error"].shape == (2, 3)
    with pytest.raises(FileNotFoundError, match="no results.jsonl or results.csv"):
        load_results(tmp_path / "empty")


def test_pivot_refuses_an_axis_that_mixes_strings_and_numbers():
    rows = [{"width": "128", "replicate": 0, "error": 1.0}, {"width": 16, "replicate": 0, "error": 2.0}]
    with pytest.raises(ValueError, match="column 'width' mixes kinds"):
        pivot(rows, "width", "error")
    with pytest.raises(ValueError, match="column 'width' mixes kinds"):
        pivot([{**r, "x": 1} for r in rows], "x", "error", group="width")


def test_as_frame_without_pandas_says_how_to_install_it(tmp_path, monkeypatch):
    Sweep(GRID, 1, measure, tmp_path, progress=False).run()
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas"):
        load_results(tmp_path, as_frame=True)


TINY = {  # one tiny grid per study whose bound columns name a registered bound
    "power": {"dim": [4], "tokens": [20], "gap": [0.5], "depth": [2, 6], "width": [8, 16]},
    "gd": {"dim": [3], "tokens": [12], "eta": [0.5, 1.5], "depth": [0, 1, 7]},
    "tensor": {"dim": [4], "clusters": [2], "depth": [1, 3], "width": [16, 32]},
    "em": {"dim": [2], "clusters": [2], "tokens": [20], "separation": [4.0], "depth": [1, 2], "width": [16, 32]},
}
STUDIES = {"power": power_sweep.STUDY, "gd": gd_sweep.STUDY, "tensor": tensor_sweep.STUDY, "em": em_sweep.STUDY}
BOUNDS = {  # the registered bound behind each *_bound column, as config.json records it
    "power": {
        "sin_eigh_bound": "power_iteration_angle_depth",
        "sin_reference_bound": None,
        "norm_error_bound": "power_norm_per_step",
        "eigenvalue_error_bound": "power_eigenvalue_relative",
    },
    "gd": {"error_bound": "gd_prediction_depth", "exact_error_bound": None},
    "tensor": {
        "tan_component_bound": "tensor_power_angle_depth",
        "norm_error_bound": "power_norm_per_step",
        "mean_error_bound": "tensor_mean",
    },
    "em": {"mean_error_bound": "em_propagation"},
}


@pytest.mark.usefixtures("single_torch_thread")
@pytest.mark.parametrize("name", sorted(TINY))
def test_every_bound_column_recomputes_from_the_csv_alone(tmp_path, name):
    study = STUDIES[name]
    study.sweep(tmp_path, TINY[name], 2, progress=False).run()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["provenance"]["bounds"] == BOUNDS[name]
    # only the CSV and the config: a reader who has nothing else
    only_csv = tmp_path / "only_csv"
    only_csv.mkdir()
    shutil.copy(tmp_path / "results.csv", only_csv)
    rows = load_results(only_csv)
    recomputed = 0
    for column in study.bounds:
        if column.theory is None:
            assert all(r[column.bound_column] == 0.0 for r in rows)  # exactness: bound 0
            continue
        assert column.bound_name == config["provenance"]["bounds"][column.bound_column]
        for row in rows:
            stored = row[column.bound_column]
            if not math.isfinite(stored):  # the theorem's assumption does not hold for this row
                continue
            values = {symbol: row[held] for symbol, held in column.input_columns.items()}
            check = check_bound(column.theory, row[column.metric], instance=row, atol=column.allowance(row), **values)
            assert check.passed and check.bound == pytest.approx(stored, rel=1e-14, abs=0)
            assert column.evaluate(row) == check.bound
            recomputed += 1
    assert recomputed >= len(rows)  # at least the first bound of every row


def test_every_approximation_bound_recomputes_from_the_csv_alone(tmp_path):
    approximation_sweep(tmp_path, list(PARTS), [8, 16], 2, progress=False).run()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["provenance"]["part_bounds"] == {name: part.bound.name for name, part in PARTS.items()}
    only_csv = tmp_path / "only_csv"
    only_csv.mkdir()
    shutil.copy(tmp_path / "results.csv", only_csv)
    rows = load_results(only_csv)
    assert {r["part"] for r in rows} == set(PARTS) and len(rows) == len(PARTS) * 2 * 2
    for row in rows:
        column = PARTS[row["part"]].column
        assert column.bound_name == config["provenance"]["part_bounds"][row["part"]]
        values = {symbol: row[held] for symbol, held in column.input_columns.items()}
        check = check_bound(column.theory, row["error"], instance=row, atol=column.allowance(row), **values)
        assert check.passed and check.bound == pytest.approx(row["bound"], rel=1e-14, abs=0)
        assert column.evaluate(row) == check.bound
