"""The sweep runner resumes after a crash to the same rows, reproduces from its seed, and refuses a changed study."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfconstruct.verify import executors
from tfconstruct.verify.executors import SchedulerUnavailable, WorkerDied
from tfconstruct.verify.sweep import Sweep, SweepMismatch, derived_seed, load_rows, pivot

GRID = {"width": [4, 8, 16], "d": [2, 3]}


def measure(config, seed):
    """A seeded 'error' that depends on the config, like a construction's measurement."""
    rng = np.random.default_rng(seed)
    return {"error": float(config["width"] ** -2.0 * rng.uniform(0.5, 1.5) * config["d"]), "draw": float(rng.normal())}


def measure_batch(config, seeds):
    return [measure(config, seed) for seed in seeds]


class Crash(RuntimeError):
    pass


def crash_after(calls: int):
    count = {"n": 0}

    def flaky(config, seed):
        count["n"] += 1
        if count["n"] > calls:
            raise Crash("simulated interruption")
        return measure(config, seed)

    flaky.__qualname__ = measure.__qualname__  # the same study, as recorded in config.json
    flaky.__module__ = measure.__module__
    return flaky


def test_clean_run_writes_tidy_rows_csv_and_config(tmp_path):
    rows = Sweep(GRID, 2, measure, tmp_path, base_seed=7, progress=False).run()
    assert len(rows) == 3 * 2 * 2
    assert [(r["width"], r["d"], r["replicate"]) for r in rows[:3]] == [(4, 2, 0), (4, 2, 1), (4, 3, 0)]
    for row in rows:
        config = {"width": row["width"], "d": row["d"]}
        assert row["seed"] == derived_seed(7, config, row["replicate"])
        assert row["error"] == measure(config, row["seed"])["error"]
    with (tmp_path / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["width", "d", "replicate", "seed", "error", "draw"]
    assert [float(t["error"]) for t in table] == [r["error"] for r in rows]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["grid"] == GRID and config["replicates"] == 2 and config["base_seed"] == 7
    assert config["package_version"] and config["measure"].endswith("measure")


def test_resume_after_interruption_gives_the_clean_rows(tmp_path):
    clean = Sweep(GRID, 2, measure, tmp_path / "clean", progress=False).run()
    folder = tmp_path / "interrupted"
    with pytest.raises(Crash):
        Sweep(GRID, 2, crash_after(5), folder, progress=False).run()
    assert len(load_rows(folder)) == 5  # every finished row was flushed before the crash
    with (folder / "results.jsonl").open("a") as sink:
        sink.write('{"width": 16, "d": 3, "repl')  # a row torn mid-write
    calls = []

    def counting(config, seed):
        calls.append(seed)
        return measure(config, seed)

    counting.__qualname__, counting.__module__ = measure.__qualname__, measure.__module__
    resumed = Sweep(GRID, 2, counting, folder, progress=False).run()
    assert len(calls) == len(clean) - 5  # only the missing rows were measured
    assert resumed == clean
    assert len(load_rows(folder)) == len(clean)
    assert (folder / "results.csv").read_text() == (tmp_path / "clean" / "results.csv").read_text()


def test_reproducible_from_the_base_seed_and_batched_equals_unbatched(tmp_path):
    first = Sweep(GRID, 3, measure, tmp_path / "a", base_seed=11, progress=False).run()
    again = Sweep(GRID, 3, measure, tmp_path / "b", base_seed=11, progress=False).run()
    other = Sweep(GRID, 3, measure, tmp_path / "c", base_seed=12, progress=False).run()
    batched = Sweep(GRID, 3, measure_batch, tmp_path / "d", base_seed=11, batched=True, progress=False).run()
    assert first == again
    assert [r["error"] for r in first] != [r["error"] for r in other]
    assert [r["error"] for r in batched] == [r["error"] for r in first]


def test_refuses_to_resume_a_different_study(tmp_path):
    Sweep(GRID, 2, measure, tmp_path, progress=False).run()
    with pytest.raises(ValueError, match=r"different sweep \(fields \['grid'\]"):
        Sweep({"width": [4, 8], "d": [2, 3]}, 2, measure, tmp_path, progress=False).run()
    with pytest.raises(ValueError, match="replicates"):
        Sweep(GRID, 3, measure, tmp_path, progress=False).run()


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="replicates must be an integer >= 1"):
        Sweep(GRID, 0, measure, tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        Sweep({"seed": [1]}, 1, measure, tmp_path)
    with pytest.raises(ValueError, match="JSON scalars"):
        Sweep({"width": [[1, 2]]}, 1, measure, tmp_path)
    with pytest.raises(ValueError, match="clash"):
        Sweep({"width": [1]}, 1, lambda c, s: {"width": 1.0}, tmp_path / "x", progress=False).run()


def test_progress_bar_and_pivot_for_plots(tmp_path):
    stream = io.StringIO()
    rows = Sweep(GRID, 2, measure, tmp_path, progress=True, stream=stream).run()
    assert "[sweep] 12/12 |" + "#" * 30 + "|" in stream.getvalue()
    widths, curves = pivot(rows, "width", "error", group="d")
    assert list(widths) == [4, 8, 16] and set(curves) == {"2", "3"}
    assert curves["3"].shape == (2, 3)
    expected = [r["error"] for r in rows if r["d"] == 3 and r["replicate"] == 1]
    assert list(curves["3"][1]) == expected


def test_seed_keys_give_common_random_numbers_across_a_parameter(tmp_path):
    sweep = Sweep(GRID, 2, measure, tmp_path, seed_keys=["d"], progress=False)
    rows = sweep.run()
    for row in rows:
        assert row["seed"] == derived_seed(0, {"d": row["d"]}, row["replicate"])
    seeds_by_width = {w: [r["seed"] for r in rows if r["width"] == w] for w in GRID["width"]}
    assert seeds_by_width[4] == seeds_by_width[8] == seeds_by_width[16]
    with pytest.raises(ValueError, match="not grid parameters"):
        Sweep(GRID, 2, measure, tmp_path, seed_keys=["n"])


def test_fresh_discards_the_old_rows_of_another_or_the_same_study(tmp_path):
    Sweep(GRID, 2, measure, tmp_path, progress=False).run()
    rows = Sweep({"width": [4], "d": [2]}, 1, measure, tmp_path, fresh=True, progress=False).run()
    assert len(rows) == 1 and len(load_rows(tmp_path)) == 1
    assert json.loads((tmp_path / "config.json").read_text())["grid"] == {"width": [4], "d": [2]}
    calls = []
    counted = lambda config, seed: calls.append(seed) or measure(config, seed)  # noqa: E731
    Sweep({"width": [4], "d": [2]}, 1, counted, tmp_path, fresh=True, progress=False).run()
    assert len(calls) == 1  # the same study again: measured again, not read back


def test_sweep_command_runs_the_approximation_study_and_resumes(tmp_path, capsys):
    from tfconstruct.verify.cli import main

    args = ["sweep", "approximation", "--out", str(tmp_path), "--width", "8", "16", "--replicates", "1"]
    assert main(args) == 0
    first = (tmp_path / "results.csv").read_text()
    assert (tmp_path / "product.png").exists() and "violations 0" in capsys.readouterr().out
    assert main(args) == 0  # resumes: nothing left to measure, same table
    assert (tmp_path / "results.csv").read_text() == first


def test_a_sweep_started_as_a_script_resumes_from_an_import(tmp_path, monkeypatch):
    """The measure is recorded by its importable name (``my_study.measure``, not ``__main__.measure``)."""
    script = tmp_path / "my_study.py"
    script.write_text(
        "import sys\n"
        "from tfconstruct.verify.sweep import Sweep\n\n\n"
        "def measure(config, seed):\n"
        "    return {'value': config['x'] * 2.0 + seed % 7}\n\n\n"
        "def sweep(out):\n"
        "    return Sweep({'x': [1, 2]}, 2, measure, out, progress=False)\n\n\n"
        "if __name__ == '__main__':\n"
        "    sweep(sys.argv[1]).run()\n"
    )
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(script), str(out)], check=True, cwd=tmp_path)
    assert json.loads((out / "config.json").read_text())["measure"] == "my_study.measure"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_study", raising=False)
    import my_study

    rows = my_study.sweep(out).run()  # the same study: resumed, nothing measured again
    assert [r["value"] for r in rows] == [r["value"] for r in load_rows(out)]


def dies_on_width_8(config, seeds):
    """A batched measure whose worker process dies at width 8 (as a killed or out-of-memory worker would)."""
    if config["width"] == 8:
        os._exit(1)
    return measure_batch(config, seeds)


def dies_once(config, seeds):
    """Kills its worker the first time any worker runs width 8 (a marker file remembers), then measures normally."""
    marker = Path(os.environ["TFCONSTRUCT_TEST_MARKER"])
    if config["width"] == 8 and not marker.exists():
        marker.touch()
        os._exit(1)
    return measure_batch(config, seeds)


SAME_STUDY = {"identity": "the seeded error", "batched": True, "progress": False}  # how config.json names it


def test_local_workers_give_the_serial_rows(tmp_path):
    serial = Sweep(GRID, 3, measure_batch, tmp_path / "serial", batched=True, progress=False).run()
    parallel = Sweep(GRID, 3, measure_batch, tmp_path / "parallel", batched=True, workers=2, progress=False).run()
    assert parallel == serial
    assert (tmp_path / "parallel" / "results.csv").read_text() == (tmp_path / "serial" / "results.csv").read_text()


def test_a_dead_local_worker_loses_no_finished_row_and_the_rerun_completes_without_duplicates(tmp_path):
    clean = Sweep(GRID, 2, measure_batch, tmp_path / "clean", **SAME_STUDY).run()
    folder = tmp_path / "dying"
    with pytest.raises(WorkerDied, match="a worker process died"):
        Sweep(GRID, 2, dies_on_width_8, folder, workers=2, **SAME_STUDY).run()
    saved = load_rows(folder)
    assert all(row["width"] != 8 for row in saved) and len(saved) == len(
        {(r["width"], r["d"], r["replicate"]) for r in saved}
    )
    assert Sweep(GRID, 2, measure_batch, folder, workers=2, **SAME_STUDY).run() == clean
    assert len(load_rows(folder)) == len(clean)


def test_a_dask_cluster_runs_the_sweep_and_survives_a_dying_worker(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("TFCONSTRUCT_TEST_MARKER", str(tmp_path / "died"))
    clean = Sweep(GRID, 2, measure_batch, tmp_path / "clean", **SAME_STUDY).run()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        rows = Sweep(GRID, 2, dies_once, tmp_path / "dask", scheduler=cluster.scheduler_address, **SAME_STUDY).run()
    assert (tmp_path / "died").exists()  # a worker did die
    assert rows == clean and len(load_rows(tmp_path / "dask")) == len(clean)  # its task ran again elsewhere, once


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(SchedulerUnavailable, match="cannot reach the dask scheduler at 'tcp://127.0.0.1:9'"):
        Sweep(GRID, 1, measure_batch, tmp_path, batched=True, scheduler="tcp://127.0.0.1:9", progress=False).run()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda lines: lines[:2] + ["this is junk {\n"] + lines[2:], "line 3 is not a row of this sweep"),
        (lambda lines: lines + ["[1, 2]\n"], "is not a row of this sweep"),
        (lambda lines: lines + [lines[1]], "repeats the row of line 2"),
        (lambda lines: lines + [lines[0].replace('"width": 4', '"width": 999')], "is off this sweep's grid"),
    ],
)
def test_any_line_but_a_torn_last_one_that_is_not_a_new_row_is_refused(tmp_path, damage, message):
    Sweep(GRID, 2, measure, tmp_path, progress=False).run()
    path = tmp_path / "results.jsonl"
    path.write_text("".join(damage(path.read_text().splitlines(keepends=True))))
    with pytest.raises(SweepMismatch, match=message):
        Sweep(GRID, 2, measure, tmp_path, progress=False).run()
