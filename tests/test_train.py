"""Meta-training the constructions' architecture (``verify/train.py``) and the trained-versus-constructed section.

Quick runs of every regime reduce the training loss; the construction regime at step 0 *is* the construction;
resuming from a checkpoint reproduces the uninterrupted run bit for bit; another run's folder or a foreign one is
refused; the CLI exits 0, or 2 on bad arguments; the report section's quick mode passes its checks.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tfconstruct.verify.cli import main
from tfconstruct.verify.results import ReportContext
from tfconstruct.verify.train import TrainConfig, TrainError, held_out_error, held_out_seeds, train
from tfconstruct.verify.train_compare import section
from tfconstruct.verify.train_tasks import TaskError, build_task

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def config(regime: str, task: str = "em", **changes) -> TrainConfig:
    return TrainConfig(task, regime, depth=1, width=8, quick=True, batch=8, held_out=16, checkpoint_every=4, **changes)


@pytest.mark.parametrize("regime", ["random", "construction", "trace"])
def test_every_regime_reduces_its_training_loss(regime):
    # at lr 1e-3 the first steps throw the construction far off (its loss rises to ~1 before it recovers); at 1e-4
    # training lowers the construction's own interpolation error
    result = train(config(regime, **({"lr": 1e-4} if regime == "construction" else {})), 30, progress=False)
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert len(result.losses) == 30 and np.isfinite(result.losses).all()
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("task", ["em", "pca", "tensor"])
def test_construction_regime_at_step_0_is_the_construction(task):
    result = train(config("construction", task), 0, progress=False)
    assert result.held_out_error == result.construction_error
    bound = 0.05 if task == "em" else 1e-5  # em: the width-8 log interpolant; power methods: float32 round-off
    assert 0 <= result.construction_error < bound
    built = build_task(task, 1, 8, quick=True)
    batch = built.batch(held_out_seeds(0, 16))
    assert float(held_out_error(result.module, built, batch).mean()) == result.construction_error


def test_resume_continues_from_the_checkpoint_and_reproduces_the_uninterrupted_run(tmp_path):
    whole = train(config("trace"), 10, tmp_path / "whole", progress=False)
    train(config("trace"), 6, tmp_path / "split", progress=False)
    state = json.loads((tmp_path / "split" / "state.json").read_text())
    assert state["step"] == 6 and len(state["losses"]) == 6
    resumed = train(config("trace"), 10, tmp_path / "split", progress=False)
    assert resumed.resumed_from == 6 and resumed.step == 10
    assert resumed.losses == whole.losses
    for (name, ours), theirs in zip(resumed.module.named_parameters(), whole.module.parameters()):
        assert torch.equal(ours, theirs), name
    again = train(config("trace"), 10, tmp_path / "split", progress=False)  # finished: nothing more to do
    assert again.resumed_from == 10 and again.losses == whole.losses


def test_same_seed_same_result_and_another_seed_differs():
    a, b = (train(config("random"), 5, progress=False) for _ in range(2))
    c = train(config("random", seed=1), 5, progress=False)
    assert a.losses == b.losses and a.held_out_error == b.held_out_error
    assert a.losses != c.losses


def test_another_runs_folder_and_a_foreign_folder_are_refused(tmp_path):
    train(config("random"), 2, tmp_path / "run", progress=False)
    with pytest.raises(TrainError, match=r"another config \(differs in \['width'\]"):
        train(
            TrainConfig("em", "random", 1, 16, quick=True, batch=8, held_out=16, checkpoint_every=4),
            2,
            tmp_path / "run",
        )
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="not a training run's"):
        train(config("random"), 2, tmp_path / "foreign", progress=False)
    with pytest.raises(TrainError, match="regime must be one of"):
        TrainConfig("em", "pretrained", 1, 8)
    with pytest.raises(TrainError, match="depth must be an integer >= 1"):
        TrainConfig("em", "random", 0, 8)
    with pytest.raises(TaskError, match="unknown task"):
        build_task("svd", 1, 8)


def test_cli_exit_codes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "tensor", "--regime", "trace", "--depth", "1", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "step 10, held-out error" in printed and (out / "model.safetensors").is_file()
    assert main(["train", "tensor", "--regime", "trace", "--depth", "1", "--quick", "--out", str(out)]) == 0
    for bad in (
        ["train", "em", "--regime", "random", "--depth", "1", "--quick", "--out", str(out)],  # another run's folder
        ["train", "em", "--depth", "0", "--out", str(tmp_path / "a")],
        ["train", "em", "--regime", "magic", "--out", str(tmp_path / "b")],
        ["train", "em", "--steps", "-1", "--out", str(tmp_path / "c")],
        ["train", "em", "--seed", "-3", "--out", str(tmp_path / "d")],
        ["train", "em", "--out", str(tmp_path / "run" / "model.safetensors")],
        ["train", "em", "--width", "100000", "--out", str(tmp_path / "e")],
        ["train", "em", "--depth", "1000", "--out", str(tmp_path / "f")],
        ["train", "compare", "--depth", "3", "--out", str(tmp_path / "g")],
        ["train", "em", "--steps", "-5", "--quick", "--out", str(tmp_path / "h")],
    ):
        with pytest.raises(SystemExit) as stopped:
            main(bad)
        assert stopped.value.code == 2, bad
        assert "error:" in capsys.readouterr().err


def test_report_section_quick_passes_its_checks(tmp_path):
    result = section(ReportContext(tmp_path, quick=True))
    assert all(check.passed for check in result.checks), [c for c in result.checks if not c.passed]
    rows = result.data["rows"]
    assert {row["task"] for row in rows} == {"em", "pca", "tensor"}
    assert {row["regime"] for row in rows} == {"random", "construction", "trace"}
    assert all(
        row["step0"] == row["construction"]
        for row in rows
        if row["regime"] == "construction" and row["shift"] == "none"
    )
    assert (tmp_path / "figures" / "training.png").stat().st_size > 10_000
    assert "| em | 1 | 8 | none |" in result.markdown


def test_an_explicit_steps_wins_over_quick_and_a_shorter_rerun_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "pca", "--depth", "1", "--quick", "--steps", "3", "--out", str(out)]) == 0
    assert "step 3, held-out error" in capsys.readouterr().out
    assert main(["train", "pca", "--depth", "1", "--quick", "--steps", "2", "--out", str(out)]) == 0
    assert "already at step 3 (> --steps 2); nothing was trained" in capsys.readouterr().out


def test_a_diverging_run_is_named_and_shown_in_the_comparison(monkeypatch, capsys, tmp_path):
    """A loss that stops being finite raises TrainDiverged (exit 3, one line) and is a table entry, not a NaN."""
    from tfconstruct.verify import train as training
    from tfconstruct.verify.train_compare import QUICK, checks, markdown_table, run_comparison

    real = training._loss

    def blows_up(module, reference, task, batch, regime, device):
        loss = real(module, reference, task, batch, regime, device)
        return loss * float("nan") if regime == "construction" else loss

    monkeypatch.setattr(training, "_loss", blows_up)
    assert main(["train", "pca", "--depth", "1", "--quick", "--out", str(tmp_path / "run")]) == 3
    assert "training diverged: the loss is not finite at step 0" in capsys.readouterr().err
    plan = dataclasses.replace(QUICK, depths={"pca": (1,)})
    rows = run_comparison(plan)
    assert {r["diverged_at"] for r in rows if r["regime"] == "construction"} == {0}
    assert "diverged at step 0" in markdown_table(rows)
    assert all(check.passed for check in checks(rows))
