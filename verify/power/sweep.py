r"""``tfconstruct sweep power``: power iteration over depth x width x (d, n, eigengap).

:class:`~tfconstruct.constructions.power.PowerIteration` with $J$ = depth steps and $M$ = width knot intervals on
the fixed domain $[a, b] = [10^{-2}, 10^2]$, on data with second moment exactly $Q\,\mathrm{diag}(\lambda)Q^\top$,
$\lambda = 2\,(1, g, gq, \dots)$, $\lambda_d = \lambda_1/50$, from a Gaussian unit start $v_0$. Metrics:

* ``sin_eigh`` $= \sin\angle(V, v_1)$ with $v_1$ from ``numpy.linalg.eigh``, bounded by
  $\tan\theta_J \le (\lambda_2/\lambda_1)^J\tan\theta_0$ (``power_iteration_angle_depth``);
* ``sin_reference`` $= \sin\angle(V, v_J^{PI})$ against exact power iteration from the same start, bound 0 (the
  hinge normaliser is a positive scalar, so the direction is exact);
* ``norm_error`` $= |\lVert V\rVert - 1|$, bound $\epsilon_M$ (``power_norm_per_step``, when the last
  $s = \lVert\hat\Sigma v_{J-1}\rVert^2 \in [a, b]$);
* ``eigenvalue_error`` $= |\hat\lambda/\lambda_1 - 1|$, bound $2\epsilon_M + \epsilon_M^2 + \sin^2\theta$.

Every row also holds the bounds' inputs that are not grid parameters (``rho`` $= \lambda_2/\lambda_1$,
``theta_0``, ``domain_low``/``domain_high`` $= a, b$, ``epsilon`` $= \epsilon_M$, ``theta`` $= \angle(V, v_1)$), so
each ``*_bound`` column can be recomputed from ``results.csv`` alone (:meth:`~tfconstruct.verify.study.BoundColumn.evaluate`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from tfconstruct.constructions.power import PowerIteration, PowerTrajectory
from tfconstruct.theory.power import ANGLE_AFTER_STEPS, EIGENVALUE_RELATIVE, NORM_PER_STEP

from ..study import (
    NOT_APPLICABLE,
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
from .reference import power_iteration, second_moment, sin_angle, tan_angle, top_eigenpairs
from .study import spectrum_instances, unit_rows

EPS = float(np.finfo(np.float64).eps)
DOMAIN = (1e-2, 1e2)
TOP = 2.0  # lambda_1^2 = 4 sits mid-domain
CONDITION = 50.0  # lambda_d = lambda_1 / 50


def instances(config: Config, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    r"""Per seed: data ``(n, d)`` with second moment $Q\,\mathrm{diag}(\lambda)Q^\top$ (spectrum of the module
    docstring, gap ``config["gap"]``) and a Gaussian unit start ``(1, d)``; stacked over seeds."""
    X, starts = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        data, _, _ = spectrum_instances(
            rng, 1, config["dim"], config["tokens"], np.array([TOP]), config["gap"], CONDITION
        )
        X.append(data[0])
        starts.append(unit_rows(rng.standard_normal((1, config["dim"]))))
    return np.array(X), np.array(starts)


def measure(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    r"""Power iteration with $J$ = depth steps and $M$ = width intervals against ``eigh`` and exact power iteration:
    $\sin\angle(V, v_1)$, $\sin\angle(V, v_J^{PI})$, $|\lVert V\rVert - 1|$, $|\hat\lambda/\lambda_1 - 1|$ and bounds.

    ``config["depth"]`` is the list of depths (the study's prefix): one traced pass of the deepest model gives the
    read-out of every depth (:meth:`~tfconstruct.constructions.power.PowerIteration.trajectories`), rows depth by
    depth."""
    X, starts = instances(config, seeds)
    depths, width = prefix_values(config, "depth"), config["width"]
    construction = PowerIteration(config["dim"], iterations=max(depths), width=width, domain=DOMAIN)
    stream = construction.embed(torch.as_tensor(X), torch.as_tensor(starts))
    # recorded, not raised: a row whose normaliser input leaves [a, b] is kept, with its bounds not applied
    trajectories = construction.trajectories(stream, depths, outside="record")
    references = [top_eigenpairs(second_moment(X[b]), 2) for b in range(len(seeds))]
    exact = [power_iteration(second_moment(X[b]), starts[b, 0], max(depths)).iterates for b in range(len(seeds))]
    return [
        row
        for steps in depths
        for row in _rows(construction, steps, trajectories[steps], starts, references, [e[steps] for e in exact])
    ]


def _rows(
    construction: PowerIteration,
    steps: int,
    trajectory: PowerTrajectory,
    starts: np.ndarray,
    references: list[tuple[np.ndarray, np.ndarray]],
    exact: list[np.ndarray],
) -> list[Metrics]:
    """The metrics of every seed at one depth."""
    result = construction.readout(trajectory.stream)
    low, high = DOMAIN
    epsilon = NORM_PER_STEP(M=construction.engine.width, a=low, b=high)
    rows = []
    for b, (values, vectors) in enumerate(references):
        vector, value = result.vectors[b, 0].numpy(), float(result.eigenvalues[b, 0])
        sine = sin_angle(vector, vectors[0])
        in_domain = low <= float(trajectory.normaliser_inputs[b, 0, -1]) <= high  # the last step sets the norm
        rho, theta_0, theta = (
            values[1] / values[0],
            math.atan(tan_angle(starts[b, 0], vectors[0])),
            math.asin(min(sine, 1.0)),
        )
        rows.append(
            {
                "sin_eigh": sine,
                "sin_eigh_bound": ANGLE_AFTER_STEPS(rho=rho, L=steps, theta_0=theta_0),
                "sin_reference": sin_angle(vector, exact[b]),
                "sin_reference_bound": 0.0,
                "norm_error": abs(float(np.linalg.norm(vector)) - 1.0),
                "norm_error_bound": epsilon if in_domain else NOT_APPLICABLE,
                "eigenvalue_error": abs(value / values[0] - 1.0),
                "eigenvalue_error_bound": EIGENVALUE_RELATIVE(epsilon=epsilon, theta=theta)
                if in_domain
                else NOT_APPLICABLE,
                "in_domain": float(in_domain),
                # the bounds' inputs that are not grid parameters (each bound column recomputes from the row alone)
                "rho": float(rho),
                "theta_0": theta_0,
                "domain_low": low,
                "domain_high": high,
                "epsilon": epsilon,
                "theta": theta,
            }
        )
    return rows


def check_grid(grid: Grid) -> list[str]:
    r"""Cross-parameter problems: $n > d$ (full-rank centred data) and widths the construction accepts on the
    sweep's domain."""
    errors = []
    if max(grid["dim"]) >= min(grid["tokens"]):
        errors.append(
            f"power needs --tokens > --dim (centred data with a full-rank second moment), got tokens "
            f"{grid['tokens']} and dim {grid['dim']}"
        )
    smallest = PowerIteration.min_width(DOMAIN)
    if min(grid["width"]) < smallest:
        errors.append(
            f"power needs --width >= {smallest} on the domain {list(DOMAIN)} (a narrower normaliser is off by more "
            f"than 25 %), got {min(grid['width'])}"
        )
    return errors


STUDY = Study(
    name="power",
    description="power iteration",
    measure=measure,
    params=(
        positive_int("dim", [8], "d", "data dimension d", minimum=2),
        positive_int("tokens", [200], "n", "data points n"),
        interval("gap", [0.5, 0.8], "gap", "eigengap lambda_2 / lambda_1", 1 / CONDITION, 1.0),
        depth_param([5, 10, 20, 40], "power steps J"),
        width_param([8, 16, 32, 64], "knot intervals M of the 1/sqrt MLP"),
    ),
    replicates=4,
    bounds=(
        BoundColumn("sin_eigh", 1e-13, theory=ANGLE_AFTER_STEPS, inputs=(("L", "depth"),)),
        BoundColumn("sin_reference", 1e-13),  # exact: bound 0, no registered bound
        BoundColumn(
            "norm_error",
            1e-12,
            theory=NORM_PER_STEP,
            inputs=(("M", "width"), ("a", "domain_low"), ("b", "domain_high")),
        ),
        BoundColumn("eigenvalue_error", 1e-12, theory=EIGENVALUE_RELATIVE),
    ),
    fits=(Fit("sin_eigh", "depth", "semilog", floor=10 * EPS), Fit("norm_error", "width", "loglog", expected=-2.0)),
    metric_labels={
        "sin_eigh": r"$\sin\angle(v_L, v_1)$",
        "norm_error": r"$|\,\|v_L\| - 1\,|$",
        "eigenvalue_error": r"$|\hat\lambda_1/\lambda_1 - 1|$",
        "sin_reference": r"$\sin\angle(v_L, v_L^{\mathrm{ref}})$",
    },
    constants={"domain": list(DOMAIN), "lambda_1": TOP, "condition": CONDITION, "newton": 0},
    check_grid=check_grid,
    prefix="depth",
)
