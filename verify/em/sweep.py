r"""``tfconstruct sweep em``: soft EM over depth x width x (d, K, n, separation).

:class:`~tfconstruct.constructions.em.EMConstruction`, soft EM, $\beta = 1$, $L$ = depth iterations, $M$ = width
intervals of both log interpolants, on $K$ clusters of $n/K$ points at separation $\Delta$, unit noise, the initial
means within $\Delta/4$ of the truth (:func:`tfconstruct.verify.em.strategies.build_mixture`). Metrics:

* ``mean_error`` $= \max_k\lVert\hat\mu_k^{(L)} - \mu_k^{(L)}\rVert$ against the numpy EM from the same start,
  bounded by $\varepsilon_{step}(1 - \hat\kappa^L)/(1 - \hat\kappa)$ (``em_propagation`` with
  ``em_soft_state_step``; $\hat\kappa$ the largest Jacobian norm of the reference map along its trajectory, an
  estimate, as in the EM report section);
* ``label_agreement``: the fraction of points whose argmax responsibility equals the reference's.

Every row also holds the bound's inputs that are not grid parameters (``epsilon_step`` $= \varepsilon_{step}$, from
``em_soft_state_step``, and ``kappa`` $= \hat\kappa$), so ``mean_error_bound`` can be recomputed from ``results.csv``
alone (:meth:`~tfconstruct.verify.study.BoundColumn.evaluate`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.theory.em import EM_PROPAGATION, EM_SOFT_STATE_STEP

from ..study import (
    BoundColumn,
    Config,
    Fit,
    Grid,
    Metrics,
    Study,
    depth_param,
    interval,
    positive_int,
    prefix_values,
    width_param,
)
from .strategies import MixtureInstance, build_mixture
from .study import FLOOR, WEIGHT_FLOOR, contraction_estimate, reference_soft, step_values


def instances(config: Config, seeds: Sequence[int]) -> list[MixtureInstance]:
    r"""Per seed: ``config["tokens"]`` points split as evenly as possible over ``config["clusters"]`` clusters at
    separation $\Delta$, unit noise, initial means within $\Delta/4$ of the centres."""
    k, n = config["clusters"], config["tokens"]
    sizes = [n // k + (i < n % k) for i in range(k)]
    separation = config["separation"]
    return [
        build_mixture(seed, k, config["dim"], sizes, separation=separation, noise=1.0, init_radius=separation / 4)
        for seed in seeds
    ]


def measure(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    r"""Soft EM with $L$ = depth iterations and $M$ = width intervals against the numpy EM from the same start:
    $\max_k\lVert\hat\mu_k^{(L)} - \mu_k^{(L)}\rVert$ with $\varepsilon_{step}(1-\hat\kappa^L)/(1-\hat\kappa)$, and
    label agreement.

    ``config["depth"]`` is the list of depths (the study's prefix): the read-out after each iteration of the deepest
    model's one traced pass is the depth-$L$ model's output; rows depth by depth."""
    batch = instances(config, seeds)
    depths, width = prefix_values(config, "depth"), config["width"]
    construction = EMConstruction(
        config["dim"],
        components=config["clusters"],
        iterations=max(depths),
        beta=1.0,
        width=width,
        radius=max(i.radius for i in batch),
        floor=FLOOR,
        weight_floor=WEIGHT_FLOOR,
    )
    points = np.array([i.points for i in batch])
    trajectory = construction.trajectory(construction.embed(points, np.array([i.init_means for i in batch])))
    references = [reference_soft(instance, max(depths)) for instance in batch]
    rows = []
    for iterations in depths:
        readouts = trajectory[:iterations]
        for b, instance in enumerate(batch):
            reference = references[b][:iterations]
            ours = readouts[-1].means[b].numpy()
            pi_min = min(
                min(float(s.weights.min()) for s in reference), min(float(r.weights[b].min()) for r in readouts)
            )
            step = EM_SOFT_STATE_STEP(**step_values(instance, width, pi_min))
            kappa = contraction_estimate(instance, reference)
            rows.append(
                {
                    "mean_error": float(np.linalg.norm(ours - reference[-1].means, axis=1).max()),
                    "mean_error_bound": EM_PROPAGATION(epsilon_step=step, kappa=kappa, L=iterations),
                    "label_agreement": float(np.mean(readouts[-1].labels[b].numpy() == reference[-1].labels)),
                    # the bound's inputs that are not grid parameters (mean_error_bound recomputes from the row alone)
                    "epsilon_step": float(step),
                    "kappa": float(kappa),
                }
            )
    return rows


def check_grid(grid: Grid) -> list[str]:
    r"""Cross-parameter problems: $n \ge K$ (a point per cluster)."""
    errors = []
    if max(grid["clusters"]) > min(grid["tokens"]):
        errors.append(
            f"em needs --tokens >= --clusters (a point per cluster), got tokens {grid['tokens']} "
            f"and clusters {grid['clusters']}"
        )
    return errors


STUDY = Study(
    name="em",
    description="soft EM",
    measure=measure,
    params=(
        positive_int("dim", [4], "d", "data dimension d"),
        positive_int("clusters", [3], "K", "mixture components K", minimum=2),
        positive_int("tokens", [300], "n", "data points n"),
        interval("separation", [3.0, 4.0], "sep", "distance between the centres (noise sigma = 1)", 0.0, math.inf),
        depth_param([1, 3, 5], "EM iterations L"),
        width_param([16, 32, 64, 128], "knot intervals M of both log interpolants"),
    ),
    replicates=3,
    bounds=(BoundColumn("mean_error", 1e-12, theory=EM_PROPAGATION, inputs=(("L", "depth"),)),),
    fits=(Fit("mean_error", "depth", "semilog"), Fit("mean_error", "width", "loglog", expected=-2.0)),
    metric_labels={"mean_error": r"$\max_k \|\hat\mu_k^{(L)} - \mu_k^{(L)}\|$"},
    constants={
        "beta": 1.0,
        "noise": 1.0,
        "init_radius": "separation / 4",
        "floor": FLOOR,
        "weight_floor": WEIGHT_FLOOR,
    },
    check_grid=check_grid,
    prefix="depth",
)
