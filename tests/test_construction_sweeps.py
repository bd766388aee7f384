"""``tfconstruct sweep power | em | tensor | gd``: tidy rows with the full config, resume after an interruption,
exact reproduction from the seed, and one row of each study against a direct computation."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.power import PowerIteration, default_seeds
from tfconstruct.constructions.tensor import OdecoPowerIteration
from tfconstruct.verify.cli import main
from tfconstruct.verify.em import study as em_study, sweep as em_sweep
from tfconstruct.verify.gd import sweep as gd_sweep
from tfconstruct.verify.power import sweep as power_sweep
from tfconstruct.verify.study import BoundColumn, Fit, Study, StudyError, interval, positive_int
from tfconstruct.verify.sweep import load_rows
from tfconstruct.verify.tensor import sweep as tensor_sweep

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {
    "power": {"dim": [4], "tokens": [20], "gap": [0.5], "depth": [2, 6], "width": [8, 16]},
    "em": {"dim": [2], "clusters": [2], "tokens": [20], "separation": [4.0], "depth": [1, 2], "width": [16, 32]},
    "tensor": {"dim": [4], "clusters": [2], "depth": [1, 3], "width": [16, 32]},
    "gd": {"dim": [3], "tokens": [12], "eta": [0.5, 1.5], "depth": [0, 1, 7]},
}
REPLICATES = 2
MODULES = {"power": power_sweep, "em": em_sweep, "tensor": tensor_sweep, "gd": gd_sweep}
STUDIES = {name: module.STUDY for name, module in MODULES.items()}
#: the name each measure calls exactly once per grid point (where the test interrupts it)
CONSTRUCTION = {
    "power": "PowerIteration",
    "em": "EMConstruction",
    "tensor": "OdecoPowerIteration",
    "gd": "InContextRegression",
}


def run_tiny(name: str, out, seed: int = 0) -> list[dict]:
    return STUDIES[name].sweep(out, TINY[name], REPLICATES, base_seed=seed, progress=False).run()


def pick(rows: list[dict], **where) -> dict:
    (row,) = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return row


@pytest.mark.parametrize("name", list(STUDIES))
def test_rows_hold_the_full_config_and_every_metric_with_its_bound(name, tmp_path):
    study = STUDIES[name]
    rows = run_tiny(name, tmp_path)
    grid = TINY[name]
    assert len(rows) == math.prod(len(v) for v in grid.values()) * REPLICATES
    metrics = [c.metric for c in study.bounds]
    for row in rows:
        assert set(grid) | {"replicate", "seed"} | set(metrics) | {f"{m}_bound" for m in metrics} <= set(row)
        assert all(math.isfinite(row[m]) and math.isfinite(row[f"{m}_bound"]) for m in metrics)
        assert not any(c.violated(row) for c in study.bounds)
    # seeds depend on the instance parameters only: every depth and width of a replicate sees one instance
    seeds: dict[tuple, set[int]] = {}
    for r in rows:
        seeds.setdefault((*(r[p] for p in study.instance_params), r["replicate"]), set()).add(r["seed"])
    assert all(len(found) == 1 for found in seeds.values())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["grid"] == grid and config["replicates"] == REPLICATES and config["batched"]
    assert config["seed_keys"] == study.instance_params
    assert config["extra"] == {"study": name, "constants": json.loads(json.dumps(study.constants))}
    assert config["measure"] == f"study {name}"
    assert config["measure_function"] == f"tfconstruct.verify.{name}.sweep.measure"
    with (tmp_path / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) and list(table[0]) == list(rows[0])


@pytest.mark.parametrize("name", list(STUDIES))
def test_an_interrupted_sweep_resumes_to_the_rows_of_a_clean_run(name, tmp_path, monkeypatch):
    clean = run_tiny(name, tmp_path / "clean")
    original = getattr(MODULES[name], CONSTRUCTION[name])
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            raise KeyboardInterrupt("injected while measuring the second grid point")
        return original(*args, **kwargs)

    monkeypatch.setattr(MODULES[name], CONSTRUCTION[name], interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(name, tmp_path / "resumed")
    saved = REPLICATES * (len(TINY[name]["depth"]) if STUDIES[name].prefix else 1)
    assert (
        len(load_rows(tmp_path / "resumed")) == saved
    )  # the first task (a grid point, or every depth of one) was saved
    monkeypatch.undo()
    resumed = run_tiny(name, tmp_path / "resumed")
    assert json.dumps(resumed) == json.dumps(clean)
    assert (tmp_path / "resumed" / "results.csv").read_text() == (tmp_path / "clean" / "results.csv").read_text()


@pytest.mark.parametrize("name", list(STUDIES))
def test_the_same_seed_reproduces_every_number_and_another_seed_does_not(name, tmp_path):
    first, again = run_tiny(name, tmp_path / "a"), run_tiny(name, tmp_path / "b")
    assert json.dumps(first) == json.dumps(again)
    other = run_tiny(name, tmp_path / "c", seed=1)
    metric = STUDIES[name].fits[-1].metric  # the width fit
    assert [r["seed"] for r in other] != [r["seed"] for r in first]
    assert [r[metric] for r in other] != [r[metric] for r in first]


def test_power_row_matches_eigh_and_the_bounds_computed_directly(tmp_path):
    row = pick(run_tiny("power", tmp_path), depth=6, width=16, replicate=1)
    config = {k: row[k] for k in TINY["power"]}
    X, starts = power_sweep.instances(config, [row["seed"]])
    construction = PowerIteration(4, iterations=6, width=16, domain=power_sweep.DOMAIN)
    stream = construction.model(construction.embed(torch.as_tensor(X), torch.as_tensor(starts)))
    vector = construction.readout(stream).vectors[0, 0].numpy()
    values, eigenvectors = np.linalg.eigh(X[0].T @ X[0] / X.shape[1])
    top = eigenvectors[:, -1]
    unit = vector / np.linalg.norm(vector)
    assert row["sin_eigh"] == pytest.approx(np.linalg.norm(unit - (unit @ top) * top), rel=1e-8)
    assert row["norm_error"] == pytest.approx(abs(np.linalg.norm(vector) - 1), rel=1e-8)
    cosine = abs(starts[0, 0] @ top)
    gap = values[-2] / values[-1]
    assert gap == pytest.approx(0.5, rel=1e-12)  # the builder's prescribed eigengap
    assert row["sin_eigh_bound"] == pytest.approx(gap**6 * np.sqrt(1 - cosine**2) / cosine, rel=1e-10)
    ratio = (power_sweep.DOMAIN[1] / power_sweep.DOMAIN[0]) ** (1 / 16)
    assert row["norm_error_bound"] == pytest.approx(3 / 32 * (ratio - 1) ** 2 * np.sqrt(ratio), rel=1e-12)


def test_em_row_matches_one_em_step_computed_directly(tmp_path):
    row = pick(run_tiny("em", tmp_path), depth=1, width=32, replicate=0)
    instance = em_sweep.instances({k: row[k] for k in TINY["em"]}, [row["seed"]])[0]
    construction = EMConstruction(
        2,
        components=2,
        iterations=1,
        beta=1.0,
        radius=instance.radius,
        width=32,
        floor=em_study.FLOOR,
        weight_floor=em_study.WEIGHT_FLOOR,
    )
    readout = construction.run(instance.points, instance.init_means)
    x, mu = instance.points, instance.init_means
    scores = -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1)  # equal weights 1/K, unit variance
    resp = np.exp(scores - scores.max(1, keepdims=True))
    resp /= resp.sum(1, keepdims=True)
    means = resp.T @ x / resp.sum(0)[:, None]
    ours = readout.means[0].numpy()
    assert row["mean_error"] == pytest.approx(np.linalg.norm(ours - means, axis=1).max(), rel=1e-6)
    assert row["label_agreement"] == np.mean(readout.labels[0].numpy() == resp.argmax(1))


def test_tensor_row_matches_the_whitened_components_and_a_direct_power_method(tmp_path):
    row = pick(run_tiny("tensor", tmp_path), depth=3, width=32, replicate=1)
    instance = tensor_sweep.instances({k: row[k] for k in TINY["tensor"]}, [row["seed"]])[0]
    components = np.sqrt(instance.weights)[:, None] * instance.means @ instance.whitening.whiten
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(
        np.einsum("k,ka,kb,kc->abc", instance.weights**-0.5, *[components] * 3), instance.tensor, atol=1e-12
    )
    seeds = default_seeds(2, 2)
    construction = OdecoPowerIteration(2, components=2, iterations=3, width=32, domain=tensor_sweep.domain_for(2))
    readout = construction.readout(construction.model(construction.embed(instance.tensor, seeds)))
    vectors, eigenvalue = readout.vectors[0].numpy(), float(readout.eigenvalues[0, 0])
    target = components[np.argmax(np.abs(components @ vectors[0]))]
    along = vectors[0] @ target
    assert row["tan_component"] == pytest.approx(np.linalg.norm(vectors[0] - along * target) / abs(along), rel=1e-6)
    assert row["norm_error"] == pytest.approx(np.abs(np.linalg.norm(vectors, axis=1) - 1).max(), rel=1e-8)
    v = seeds[0]
    for _ in range(3):
        u = np.einsum("abc,b,c->a", instance.tensor, v, v)
        v = u / np.linalg.norm(u)
    unwhiten = instance.whitening.unwhiten
    reference = np.einsum("abc,a,b,c->", instance.tensor, v, v, v) * unwhiten @ v
    ours = eigenvalue * unwhiten @ vectors[0]
    assert row["mean_error"] == pytest.approx(np.linalg.norm(ours - reference) / np.linalg.norm(reference), rel=1e-6)


def test_bound_column_applies_only_where_the_bound_does_and_counts_nan_as_a_violation():
    check = BoundColumn("e", 1e-12)
    assert not check.violated({"e": 1.0, "e_bound": float("nan")})
    assert not check.violated({"e": 1.0 + 1e-13, "e_bound": 1.0})
    assert check.violated({"e": 1.1, "e_bound": 1.0})
    assert check.violated({"e": float("nan"), "e_bound": 1.0})
    assert BoundColumn("error", "round_off", bound="bound").violated({"error": 2.0, "bound": 1.0, "round_off": 0.5})


def test_sweep_command_writes_plots_and_a_summary_and_fails_on_a_violated_bound(tmp_path, capsys, monkeypatch):
    args = [
        "sweep",
        "power",
        "--out",
        str(tmp_path / "p"),
        "--dim",
        "3",
        "--tokens",
        "10",
        "--gap",
        "0.4",
        "0.7",
        "--depth",
        "1",
        "4",
        "--width",
        "8",
        "16",
        "--replicates",
        "2",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "power: 16 rows" in out and "gap=0.4" in out and "sin_eigh" in out
    assert (tmp_path / "p" / "power_sin_eigh_vs_depth.png").exists()
    assert (tmp_path / "p" / "power_norm_error_vs_width.png").exists()
    with pytest.raises(SystemExit) as exit_info:  # the folder holds another sweep: refuse, do not mix rows
        main([*args[:-1], "3"])
    assert exit_info.value.code == 2 and "refusing to resume" in capsys.readouterr().err
    monkeypatch.setattr(power_sweep, "NORM_PER_STEP", lambda **values: 0.0)
    args[args.index("--out") + 1] = str(tmp_path / "q")
    assert main(args) == 1
    assert "BOUND VIOLATED (norm_error)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["power", "--depth", "0"], "--depth must be an integer in [1, 100000], got 0"),
        (["power", "--width", "0", "8"], "--width must be an integer in [1, 65536], got 0"),
        (["power", "--gap", "1.2"], "--gap must be in"),
        (["power", "--gap", "0.01"], "--gap must be in (0.02, 1), got 0.01"),
        (["power", "--dim", "8", "--tokens", "8"], "power needs --tokens > --dim"),
        (["em", "--gap", "0.5"], "unrecognized arguments: --gap 0.5"),
        (["em", "--clusters", "1"], "--clusters must be an integer in [2, 100000], got 1"),
        (["tensor", "--separation", "3"], "unrecognized arguments: --separation 3"),
        (["tensor", "--dim", "3", "--clusters", "4"], "tensor needs --clusters K <= --dim d"),
        (["tensor", "--width", "4"], f"tensor with K=3 needs --width >= {tensor_sweep.min_width(3)}"),
        (["approximation", "--depth", "2"], "unrecognized arguments: --depth 2"),
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["power", "--replicates", "0"], "--replicates must be an integer >= 1"),
        (["power", "--width", "1000000000"], "--width must be an integer in [1, 65536], got 1000000000"),
        (["gd", "--tokens", "10000000"], "--tokens must be an integer in [1, 100000], got 10000000"),
    ],
)
def test_sweep_command_rejects_bad_values_with_a_clear_message(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *args, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "config.json").exists()


def _decay(config, seeds):
    """error = exp(-beta * n) exactly, with its bound 2 x that: a rate of -n per unit of beta."""
    return [
        {"error": math.exp(-config["beta"] * config["n"]), "error_bound": 2 * math.exp(-config["beta"] * config["n"])}
    ]


def _decay_study(**changes) -> Study:
    study = Study(
        name="decay",
        description="decay in beta",
        measure=_decay,
        params=(interval("beta", [1.0, 2.0, 3.0], "beta", "sharpness", 0.0, 50.0), positive_int("n", [1, 2], "n", "n")),
        replicates=1,
        bounds=(BoundColumn("error"),),
        fits=(Fit("error", "beta", "semilog", expected="slope", tolerance=1e-9),),
    )
    return dataclasses.replace(study, **changes)


def _with_slope(config, seeds):
    return [{**row, "slope": -float(config["n"])} for row in _decay(config, seeds)]


def test_a_rate_is_fitted_against_an_instance_parameter_one_curve_per_other_value(tmp_path, capsys):
    study = _decay_study(measure=_with_slope)
    assert study.run(tmp_path, {"beta": [1.0, 2.0, 3.0], "n": [1, 2]}, 1, 0) == 0
    printed = capsys.readouterr().out
    assert (
        "n=1" in printed
        and "n=2" in printed
        and "slope -1 (theory -1)" in printed
        and "slope -2 (theory -2)" in printed
    )
    assert (tmp_path / "decay_error_vs_beta.png").exists()


def test_a_rate_check_without_two_points_in_its_window_is_an_input_error_not_a_failure(tmp_path):
    study = _decay_study(measure=_with_slope)
    with pytest.raises(StudyError, match=r"fewer than two usable points: give --beta at least two values$"):
        study.run(tmp_path, {"beta": [1.0], "n": [1]}, 1, 0)
    assert (tmp_path / "results.csv").exists()  # the measurements are kept


def test_sweep_gd_with_too_short_a_depth_grid_exits_2_naming_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "gd", "--out", str(tmp_path), "--depth", "0", "5", "--eta", "1.0", "--replicates", "1"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "give --depth at least two values >= 26 (the fit window)" in error and "Traceback" not in error


def test_a_measure_missing_a_column_its_checks_read_is_named(tmp_path):
    with pytest.raises(StudyError, match=r"no column\(s\) \['slope'\], which its bounds or fits read"):
        _decay_study().run(tmp_path, {"beta": [1.0, 2.0], "n": [1]}, 1, 0)


def test_study_parameters_may_not_take_the_sweep_command_s_own_flags():
    with pytest.raises(ValueError, match=r"parameter names \['seed'\] are taken by `tfconstruct sweep` itself"):
        _decay_study(params=(positive_int("seed", [1], "s", "a seed"),), fits=())


@pytest.mark.parametrize("name", ["power", "em", "gd"])
def test_a_prefix_study_gives_the_rows_of_one_call_per_depth(name, tmp_path):
    """Every depth read from one traced pass of the deepest model equals the separately built model's row."""
    study = STUDIES[name]
    assert study.prefix == "depth"
    grouped = study.sweep(tmp_path / "grouped", TINY[name], REPLICATES, progress=False).run()
    separate = dataclasses.replace(study, prefix=None)
    one_by_one = separate.sweep(tmp_path / "separate", TINY[name], REPLICATES, progress=False).run()
    assert json.dumps(grouped) == json.dumps(one_by_one)
