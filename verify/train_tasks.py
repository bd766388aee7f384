r"""The meta-training tasks: instances, the construction sized for them, the target and the error.

A task fixes an instance distribution and, for a depth $L$ (algorithm steps) and width $M$, a hand-built
construction; the trainable architecture is that construction's
:class:`~tfconstruct.constructions.trainable.StandardTransformer`. The model reads its answer from the construction's
own output slot, and the target is what the numpy reference algorithm returns after $L$ steps on the same input:

==========  ==================================================================  ======================================
task        instance and target                                                 error (per instance)
==========  ==================================================================  ======================================
``em``      :func:`~tfconstruct.verify.em.strategies.build_mixture` ($K$         $\max_k \lVert\hat\mu_k - \mu_k\rVert$;
            clusters in $d$ dimensions, $n$ points, initial means near the      the loss is the mean squared error of
            centres); target: the soft-EM means after $L$ steps                 the means
            (:func:`~tfconstruct.verify.em.reference.soft_em`), read from
            ``mu`` on the centroid tokens
``pca``     :func:`~tfconstruct.verify.power.study.spectrum_instances` (gap    $\sin\angle(\hat v, v)$, sign-free;
            $\lambda_2/\lambda_1$, condition $\kappa$) and a random seed;       the loss is
            target: the unit iterate of power iteration after $L$ steps,        $1 - \cos^2\angle(\hat v, v)$
            read from ``component0`` at token 0
``tensor``  :func:`~tfconstruct.verify.tensor.strategies.build_odeco` (weights  as ``pca``
            uniform in a range) and a random seed; target: the unit
            tensor-power iterate after $L$ steps, read from ``component0``
==========  ==================================================================  ======================================

Each instance also has a **ground truth** (the true centres; the top eigenvector; the odeco component nearest the
target), so the reference algorithm's own error against the truth can be stated next to the models'.

**Distribution shift** (:attr:`Task.shifts`) keeps the architecture: $K$, $d$ and $k$ fix the residual width, so
they cannot change; the shifts change the separation or the number of points (``em``), the eigengap or $n$ (``pca``)
and the weight range (``tensor``). The constructions are sized (radius, normaliser domain) to cover every shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tfconstruct.constructions.construction import Construction
from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.gadgets import NormalisationDomain
from tfconstruct.constructions.power import PowerIteration
from tfconstruct.constructions.tensor import OdecoPowerIteration

from .em.reference import initial_state, soft_em
from .em.strategies import build_mixture
from .power.reference import power_iteration, second_moment
from .power.study import spectrum_instances
from .tensor.reference import tensor_power_method
from .tensor.strategies import build_odeco

EM_FLOOR = 1e-3  # responsibility floor of the log interpolant: float32 resolves its 1/floor slope
EM_WEIGHT_FLOOR = 1e-2


class TaskError(ValueError):
    """An unknown task, shift or size; the message names it and the allowed values."""


@dataclass(frozen=True)
class Batch:
    """Instances as the model sees them: ``stream`` (float64, ``(B, tokens, D)``), the reference's ``target`` after
    $L$ steps, the ``truth`` and ``reference_truth`` (the reference's error against the truth, per instance)."""

    stream: torch.Tensor
    target: torch.Tensor
    truth: torch.Tensor
    reference_truth: np.ndarray


@dataclass(frozen=True)
class Task:
    r"""One task at depth $L$ and width $M$: its ``construction``, ``sizes`` (the instance distribution) and
    ``shifts`` (name -> the sizes changed under that shift)."""

    name: str
    depth: int
    width: int
    sizes: dict[str, Any]
    shifts: dict[str, dict[str, Any]]
    construction: Construction
    _instances: Callable[["Task", Sequence[int], dict[str, Any]], Batch] = field(repr=False)
    _predict: Callable[["Task", torch.Tensor], torch.Tensor] = field(repr=False)
    directional: bool = True

    def batch(self, seeds: Sequence[int], shift: str | None = None) -> Batch:
        """The instances of the given seeds, drawn from the training distribution or under ``shift``.

        Raises:
            TaskError: naming an unknown shift.
        """
        if shift is not None and shift not in self.shifts:
            raise TaskError(f"task {self.name!r} has no shift {shift!r}; shifts: {sorted(self.shifts)}")
        sizes = {**self.sizes, **(self.shifts[shift] if shift else {})}
        return self._instances(self, list(seeds), sizes)

    def predict(self, stream: torch.Tensor) -> torch.Tensor:
        """The answer held by a final stream: the means $(B, K, d)$ or the vector $(B, k)$."""
        return self._predict(self, stream)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r"""Per instance: $1 - \cos^2$ (directional tasks) or the mean squared error (``em``)."""
        if self.directional:
            cos = (prediction * target).sum(-1) / (prediction.norm(dim=-1) * target.norm(dim=-1)).clamp(min=1e-30)
            return 1.0 - cos**2
        return ((prediction - target) ** 2).flatten(1).mean(-1)

    def error(self, prediction: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        r"""Per instance: $\sin\angle$ (directional) or $\max_k \lVert\hat\mu_k - \mu_k\rVert$ (``em``), in float64."""
        prediction, target = prediction.detach().double().cpu(), target.detach().double().cpu()
        if self.directional:
            return np.sqrt(np.clip(self.loss(prediction, target).numpy(), 0.0, None))
        return (prediction - target).norm(dim=-1).amax(-1).numpy()


def _em_instances(task: Task, seeds: list[int], sizes: dict[str, Any]) -> Batch:
    construction: EMConstruction = task.construction  # type: ignore[assignment]
    k = construction.components
    instances = [
        build_mixture(
            seed,
            k,
            construction.dim,
            sizes["points"] // k,
            separation=sizes["separation"],
            noise=1.0,
            noise_radius=sizes["noise_radius"],
            init_radius=sizes["init_radius"],
        )
        for seed in seeds
    ]
    targets = [
        soft_em(m.points, initial_state(m.init_means), task.depth, floor=construction.floor)[-1].means
        for m in instances
    ]
    points = np.stack([m.points for m in instances])
    stream = construction.embed(points, np.stack([m.init_means for m in instances]))
    truth = np.stack([m.centers for m in instances])
    reference_truth = np.linalg.norm(np.stack(targets) - truth, axis=-1).max(-1)
    return Batch(stream, torch.tensor(np.stack(targets)), torch.tensor(truth), reference_truth)


def _em_predict(task: Task, stream: torch.Tensor) -> torch.Tensor:
    construction: EMConstruction = task.construction  # type: ignore[assignment]
    return construction.layout.read(stream, "mu")[:, stream.shape[1] - construction.components :, :]


def _sin(u: np.ndarray, v: np.ndarray) -> float:
    cos = float(u @ v) / float(np.linalg.norm(u) * np.linalg.norm(v))
    return math.sqrt(max(0.0, 1.0 - cos * cos))


def _pca_instances(task: Task, seeds: list[int], sizes: dict[str, Any]) -> Batch:
    construction: PowerIteration = task.construction  # type: ignore[assignment]
    data, starts, targets, truths = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        X, _, vectors = spectrum_instances(
            rng, 1, construction.dim, sizes["points"], np.ones(1), sizes["gap"], sizes["condition"]
        )
        start = rng.standard_normal(construction.dim)
        path = power_iteration(second_moment(X[0]), start, task.depth)
        data.append(X[0])
        starts.append(start[None])
        targets.append(path.iterates[-1] / np.linalg.norm(path.iterates[-1]))
        truths.append(vectors[0, 0])
    stream = construction.embed(np.stack(data), np.stack(starts))
    reference_truth = np.array([_sin(t, g) for t, g in zip(targets, truths)])
    return Batch(stream, torch.tensor(np.stack(targets)), torch.tensor(np.stack(truths)), reference_truth)


def _component0(task: Task, stream: torch.Tensor) -> torch.Tensor:
    return task.construction.layout.read(stream[:, 0], "component0")


def _tensor_instances(task: Task, seeds: list[int], sizes: dict[str, Any]) -> Batch:
    construction: OdecoPowerIteration = task.construction  # type: ignore[assignment]
    k = construction.engine.dim
    tensors, starts, targets, truths = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        weights = rng.uniform(*sizes["weights"], size=k)
        odeco = build_odeco(weights, k, seed)
        start = rng.standard_normal(k)
        start /= np.linalg.norm(start)
        target = tensor_power_method(odeco.tensor, start[None], task.depth).vectors[0]
        target = target / np.linalg.norm(target)
        nearest = odeco.vectors[int(np.argmax(np.abs(odeco.vectors @ target)))]
        tensors.append(odeco.tensor)
        starts.append(start[None])
        targets.append(target)
        truths.append(nearest)
    stream = construction.embed(np.stack(tensors), np.stack(starts))
    reference_truth = np.array([_sin(t, g) for t, g in zip(targets, truths)])
    return Batch(stream, torch.tensor(np.stack(targets)), torch.tensor(np.stack(truths)), reference_truth)


def _em(depth: int, width: int, quick: bool) -> Task:
    k, dim = (2, 2) if quick else (3, 3)
    sizes = {"points": 6 * k if quick else 8 * k, "separation": 4.0, "noise_radius": 2.0, "init_radius": 1.5}
    shifts = {
        "closer clusters (separation 2.5)": {"separation": 2.5},
        "more points (3n)": {"points": 3 * sizes["points"]},
    }
    # every centre has norm <= separation / sqrt(2) (centred frame), points and initial means lie within
    # noise_radius and init_radius of it; the largest separation any shift uses sets the radius
    radius = 4.0 / math.sqrt(2.0) + max(sizes["noise_radius"], sizes["init_radius"])
    construction = EMConstruction(
        dim, components=k, iterations=depth, width=width, radius=radius, floor=EM_FLOOR, weight_floor=EM_WEIGHT_FLOOR
    )
    return Task("em", depth, width, sizes, shifts, construction, _em_instances, _em_predict, directional=False)


def _pca(depth: int, width: int, quick: bool) -> Task:
    dim = 3 if quick else 4
    sizes = {"points": 12 if quick else 24, "gap": 0.6, "condition": 10.0}
    shifts = {"smaller eigengap (0.85)": {"gap": 0.85}, "more points (3n)": {"points": 3 * sizes["points"]}}
    domain = (0.5 / sizes["condition"] ** 2, 1.5)
    construction = PowerIteration(dim, components=1, iterations=depth, width=width, domain=domain)
    return Task("pca", depth, width, sizes, shifts, construction, _pca_instances, _component0)


def _tensor(depth: int, width: int, quick: bool) -> Task:
    dim = 3
    sizes = {"weights": (1.0, 2.0)}
    shifts = {"wider weights [0.5, 3]": {"weights": (0.5, 3.0)}}
    # ||T(I, v, v)||^2 = sum_i w_i^2 c_i^4 >= w_min^2 / k for a unit v
    domain = NormalisationDomain.for_weights(0.5, 3.0, floor=0.5 / dim)
    construction = OdecoPowerIteration(dim, components=1, iterations=depth, width=width, domain=domain)
    return Task("tensor", depth, width, sizes, shifts, construction, _tensor_instances, _component0)


TASKS: dict[str, Callable[[int, int, bool], Task]] = {"em": _em, "pca": _pca, "tensor": _tensor}


def build_task(name: str, depth: int, width: int, quick: bool = False) -> Task:
    r"""The task ``name`` at depth $L$ = ``depth`` and width $M$ = ``width`` (``quick``: smaller instances).

    Raises:
        TaskError: naming an unknown task, or a depth or width the construction refuses.
    """
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    try:
        return TASKS[name](depth, width, quick)
    except ValueError as err:
        raise TaskError(f"task {name!r} at depth {depth}, width {width}: {err}") from err
