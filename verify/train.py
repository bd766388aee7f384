r"""Meta-training the constructions' architecture on their own tasks, in three regimes, resumable and seeded.

The model is the construction's :class:`~tfconstruct.constructions.trainable.StandardTransformer` at depth $L$ and
width $M$ (:mod:`tfconstruct.verify.train_tasks`), in float32, trained with AdamW on fresh instances each step:

================  ================================================================================================
regime            initialisation and loss
================  ================================================================================================
``random``        the same shapes re-initialised: every weight normal with std $1/\sqrt{\text{fan-in}}$, the
                  writing matrices ($W_O$, $W_{out}$) further divided by $\sqrt{2B}$ for $B$ blocks (GPT-2's
                  residual scaling), biases zero; loss on the output slot only
``construction``  the hand-built weights; loss on the output slot only
``trace``         random, as above; loss on the output slot plus, at every block boundary, the residual stream's
                  squared error relative to the hand-built stream's mean square there (averaged over the blocks),
                  as in ALTA's trace supervision
================  ================================================================================================

**Determinism.** The initialisation comes from a generator seeded by ``seed``; the instances of step $t$ from
``SeedSequence([seed, t])``; the held-out instances from a stream of their own, the same for every regime. Gradients
are clipped to norm 1.

**The run folder.** Every ``checkpoint_every`` steps and at the end, ``model.safetensors``
(:func:`~tfconstruct.verify.checkpoint.save`), ``optimizer.pt`` (AdamW's state) and ``state.json`` (the step, the
config, the losses so far) are written, each to a temporary file then renamed. Running the same config again continues
from the last checkpoint (more ``steps`` extends the run); a folder holding another config, or files that are not a
run's, is refused with a :class:`TrainError`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from tfconstruct.constructions.trainable import StandardTransformer

from . import checkpoint
from .train_tasks import TASKS, Batch, Task, TaskError, build_task

REGIMES: tuple[str, ...] = ("random", "construction", "trace")
HELD_OUT_STREAM = 2**31 - 1  # the SeedSequence entropy of the held-out instances (training steps use 0, 1, ...)
STATE, MODEL, OPTIMIZER = "state.json", "model.safetensors", "optimizer.pt"
FILES = (STATE, MODEL, OPTIMIZER)


class TrainError(ValueError):
    """A bad training argument or a run folder that is not this run's; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    r"""Everything that defines a run except its length: the task, the regime, depth $L$, width $M$, ``seed``,
    ``quick`` (small instances), instances per step, AdamW's learning rate and weight decay, the checkpoint
    interval and the number of held-out instances.

    Raises:
        TrainError: naming the first bad field and its allowed values.
    """

    task: str
    regime: str
    depth: int
    width: int
    seed: int = 0
    quick: bool = False
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    checkpoint_every: int = 50
    held_out: int = 64

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TrainError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.regime not in REGIMES:
            raise TrainError(f"regime must be one of {list(REGIMES)}, got {self.regime!r}")
        for name, low in (("depth", 1), ("width", 1), ("batch", 1), ("checkpoint_every", 1), ("held_out", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TrainError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise TrainError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise TrainError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


@dataclass
class TrainResult:
    """A finished (or continued) run: its ``step``, the training ``losses`` of every step so far, the held-out error
    of the model and of the untrained construction (mean over instances) and where it was saved."""

    config: TrainConfig
    step: int
    losses: list[float]
    held_out_error: float
    construction_error: float
    out: Path | None
    resumed_from: int = 0
    seconds: float = 0.0
    module: StandardTransformer | None = field(default=None, repr=False)


def construction_module(task: Task) -> StandardTransformer:
    """The hand-built weights of ``task``'s construction in the standard form, float32."""
    return StandardTransformer.from_construction(task.construction.model).float()


def initialise_random(module: StandardTransformer, seed: int) -> None:
    """Re-initialise every parameter as the ``random`` regime does (module docstring), from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    scale = 1.0 / math.sqrt(2 * max(len(module.blocks), 1))
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith(("b_in", "b_out")) or parameter.numel() == 0:
                parameter.zero_()
                continue
            fan_in = parameter.shape[-2]
            std = 1.0 / math.sqrt(max(fan_in, 1)) * (scale if name.endswith(("W_O", "W_out")) else 1.0)
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * std)


def initial_module(task: Task, config: TrainConfig) -> StandardTransformer:
    """The model at step 0 for ``config``'s regime."""
    module = construction_module(task)
    if config.regime != "construction":
        initialise_random(module, config.seed)
    return module


def step_seeds(seed: int, step: int, count: int) -> list[int]:
    """The instance seeds of training step ``step``."""
    return [int(s) for s in np.random.SeedSequence([seed, step]).generate_state(count)]


def held_out_seeds(seed: int, count: int) -> list[int]:
    """The held-out instance seeds (never a training step's)."""
    return [int(s) for s in np.random.SeedSequence([seed, HELD_OUT_STREAM]).generate_state(count)]


def held_out_error(module: StandardTransformer, task: Task, batch: Batch, device: str = "cpu") -> np.ndarray:
    """The per-instance error of ``module`` on ``batch`` (float32 forward pass)."""
    with torch.no_grad():
        stream = module(batch.stream.to(device=device, dtype=torch.float32))
    return task.error(task.predict(stream), batch.target)


def _loss(
    module: StandardTransformer, reference: StandardTransformer, task: Task, batch: Batch, regime: str, device: str
) -> torch.Tensor:
    stream = batch.stream.to(device=device, dtype=torch.float32)
    target = batch.target.to(device=device, dtype=torch.float32)
    if regime != "trace":
        return task.loss(task.predict(module(stream)), target).mean()
    streams = module(stream, return_blocks=True)
    with torch.no_grad():
        expected = reference(stream, return_blocks=True)
    trace = torch.stack(
        [
            ((ours - theirs) ** 2).mean() / (theirs**2).mean().clamp(min=1e-12)
            for ours, theirs in zip(streams[1:], expected[1:])
        ]
    ).mean()
    return trace + task.loss(task.predict(streams[-1]), target).mean()


def _check_folder(out: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The saved state of this run in ``out``, or None for a new run; refuses another run's or a foreign folder."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out must be a folder, but {out} is a file")
    state_file = out / STATE
    if not state_file.exists():
        others = sorted(p.name for p in out.iterdir()) if out.exists() else []
        if others:
            raise TrainError(f"{out} holds files that are not a training run's ({others[:3]}); use an empty folder")
        return None
    try:
        state = json.loads(state_file.read_text())
        saved = state["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise TrainError(f"{state_file} is not a training run's state file: {err}") from err
    if saved != asdict(config):
        changed = sorted(k for k in set(saved) | set(asdict(config)) if saved.get(k) != asdict(config).get(k))
        raise TrainError(
            f"{out} holds a run of another config (differs in {changed}: saved "
            f"{ {k: saved.get(k) for k in changed} }); use another --out or the same arguments"
        )
    return state


def _write(path: Path, write: Any) -> None:
    """Write through ``write(tmp)`` then rename, so an interrupted save leaves the previous file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save(out: Path, module: StandardTransformer, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write(out / MODEL, lambda p: checkpoint.save(module, p))
    _write(out / OPTIMIZER, lambda p: torch.save(optimizer.state_dict(), p))
    _write(out / STATE, lambda p: p.write_text(json.dumps(state, indent=1)))


class TrainDiverged(RuntimeError):
    """The training loss became NaN or inf (the parameters left every finite region); ``step`` is where."""

    def __init__(self, step: int, last: float | None):
        before = "" if last is None else f" (the last finite loss {last:.3e})"
        super().__init__(f"training diverged: the loss is not finite at step {step}{before}; a smaller learning "
                         "rate or a shallower model may train")  # fmt: skip
        self.step = step


class TrainInterrupted(Exception):
    """Ctrl-C during training; the message says which step was saved (the run resumes from it)."""


def train(
    config: TrainConfig,
    steps: int,
    out: Path | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train ``config`` up to ``steps`` steps (continuing a run saved in ``out``); the held-out error at the end.

    Raises:
        TrainError: on a bad ``steps``, a task the construction refuses, or a folder that is not this run's.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise TrainError(f"steps must be an integer >= 0, got {steps!r}")
    try:
        task = build_task(config.task, config.depth, config.width, config.quick)
    except TaskError as err:
        raise TrainError(str(err)) from err
    state = _check_folder(out, config) if out is not None else None
    reference = construction_module(task).to(device)
    module = initial_module(task, config)
    optimizer_state = None
    if state is not None:
        module = checkpoint.load(out / MODEL)
        optimizer_state = torch.load(out / OPTIMIZER, weights_only=True)
    module = module.to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    losses: list[float] = list(state["losses"]) if state else []
    start = state["step"] if state else 0
    bar = _Progress(stream if stream is not None else sys.stderr, progress)
    started = time.perf_counter()
    saved = start if state is not None else None
    try:
        for step in range(start, steps):
            batch = task.batch(step_seeds(config.seed, step, config.batch))
            optimizer.zero_grad()
            loss = _loss(module, reference, task, batch, config.regime, device)
            if not bool(torch.isfinite(loss)):
                raise TrainDiverged(step, losses[-1] if losses else None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            done = step + 1
            if out is not None and (done % config.checkpoint_every == 0 or done == steps):
                _save(out, module, optimizer, {"step": done, "config": asdict(config), "losses": losses})
                saved = done
            bar.show(done, steps, start, started, losses[-1])
    except KeyboardInterrupt:
        # a step cut short leaves the parameters half-updated: only a finished checkpoint is kept
        kept = "no checkpoint yet" if saved is None else f"the last checkpoint is step {saved}"
        raise TrainInterrupted(f"{kept} (one every {config.checkpoint_every} steps)") from None
    held = task.batch(held_out_seeds(config.seed, config.held_out))
    error = float(held_out_error(module, task, held, device).mean())
    built = float(held_out_error(reference, task, held, device).mean())
    if out is not None and steps == 0 and state is None:
        _save(out, module, optimizer, {"step": 0, "config": asdict(config), "losses": losses})
    return TrainResult(
        config, max(start, steps), losses, error, built, out, start, time.perf_counter() - started, module
    )


class _Progress:
    """``[train] step/steps |####| loss, elapsed, eta`` on ``stream``: redrawn in place on a terminal, a line every
    10 s in a log (and always at the end)."""

    def __init__(self, stream: TextIO, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.terminal = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last = 0.0

    def show(self, done: int, total: int, start: int, started: float, loss: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done != total and now - self.last < (0.2 if self.terminal else 10.0):
            return
        self.last = now
        elapsed = now - started
        eta = f"{elapsed / (done - start) * (total - done):6.1f}s"
        bar = "#" * round(30 * done / max(total, 1))
        line = f"[train] {done}/{total} |{bar:<30}| loss {loss:.3e}, {elapsed:6.1f}s elapsed, eta {eta}"
        self.stream.write(f"\r{line}" if self.terminal else f"{line}\n")
        if self.terminal and done == total:
            self.stream.write("\n")
        self.stream.flush()
