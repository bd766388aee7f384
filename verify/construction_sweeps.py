"""``tfconstruct sweep power | em | tensor``: depth x width x instance-parameter sweeps of the constructions.

Each study is a batched :class:`~verify.sweep.Sweep` measure ``measure(config, seeds) -> [metrics, ...]``: it
builds one instance per seed with the :mod:`verify.strategies` builders, runs the construction **once** on the
whole batch, compares every replicate with the numpy reference of :mod:`verify.reference`, and returns tidy
metrics plus, for each metric a theorem covers, the bound evaluated at that instance (column
``<metric>_bound``; NaN where the theorem's assumption does not hold for the row, ``in_domain = 0``).
The grid is ``instance parameters x depth x width``; seeds depend on the instance parameters only
(``seed_keys``), so every depth and width of one replicate sees the same instance (common random numbers).

* **power** (:class:`~constructions.power.PowerIteration`, $T$ = depth steps, $M$ = width knot intervals on the
  fixed domain $[a, b] = [10^{-2}, 10^2]$): data with second moment exactly $Q\\,\\mathrm{diag}(\\lambda)Q^\\top$,
  $\\lambda = 2\\,(1, g, gq, \\dots)$, $\\lambda_d = \\lambda_1/50$, a Gaussian unit start $v_0$.
  ``sin_eigh`` $= \\sin\\angle(V, v_1)$ with $v_1$ from ``numpy.linalg.eigh``, bounded by
  $\\tan\\theta_T \\le (\\lambda_2/\\lambda_1)^T\\tan\\theta_0$ (``power_iteration_angle_depth``);
  ``sin_reference`` $= \\sin\\angle(V, v_T^{PI})$ against exact power iteration from the same start, bound 0
  (the hinge normaliser is a positive scalar, so the direction is exact); ``norm_error`` $= |\\|V\\| - 1|$, bound
  $\\epsilon_M$ (``power_norm_per_step``, when the last $s = \\|\\hat\\Sigma v_{T-1}\\|^2 \\in [a, b]$);
  ``eigenvalue_error`` $= |\\hat\\lambda/\\lambda_1 - 1|$, bound $2\\epsilon_M + \\epsilon_M^2 + \\sin^2\\theta$.
* **em** (:class:`~constructions.em.EMConstruction`, soft EM, $\\beta = 1$, $L$ = depth iterations, $M$ = width
  intervals of both log interpolants): $K$ clusters of $n/K$ points at separation $\\Delta$, unit noise, the
  initial means within $\\Delta/4$ of the truth (:func:`verify.strategies.mixtures.build_mixture`).
  ``mean_error`` $= \\max_k\\|\\hat\\mu_k^{(L)} - \\mu_k^{(L)}\\|$ against the numpy EM from the same start, bounded by
  $\\varepsilon_{step}(1 - \\hat\\kappa^L)/(1 - \\hat\\kappa)$ (``em_propagation`` with ``em_soft_state_step``;
  $\\hat\\kappa$ the largest Jacobian norm of the reference map along its trajectory, an estimate, as in the EM
  report section); ``label_agreement`` = the fraction of points whose argmax responsibility equals the reference's.
* **tensor** (:class:`~constructions.tensor.OdecoPowerIteration` on the whitened population third moment of a
  $K$-component mixture in $\\mathbb R^d$, means at pairwise distance 5 and cosine 0.3, exactly odeco with
  $\\lambda_k = \\pi_k^{-1/2}$; $J$ = depth iterations per component, $M$ = width knot intervals on a domain fixed
  by $K$, seeds ``default_seeds(K, K)``): ``tan_component`` = $\\tan\\theta_J$ of component 0 to the whitened
  true component $v_1$ it converges to (the largest $\\lambda_k|c_k|$, $c$ the seed's overlaps), bounded by
  $\\sqrt{K-1}\\,(\\lambda_1/\\lambda_{\\min})\\,r^{2^J}$ with $r = \\max_{j\\ne1}|\\lambda_j c_j|/|\\lambda_1 c_1|$
  (``tensor_power_angle_depth``); ``norm_error`` $= \\max_j|\\|v_j\\| - 1|$, bound $\\delta_M$ (``tensor_norm_width``,
  when every normaliser input is in $[a, b]$); ``mean_error`` $= \\|\\hat\\mu_0 - \\mu_0\\|/\\|\\mu_0\\|$ against the
  numpy tensor power method (same whitening, seeds and $J$), bound $(1 + \\delta_M)^4 - 1$ (``tensor_mean``).

A measured value counts as a violation when it exceeds its bound by more than the check's round-off allowance;
:func:`run_study` then plots error vs depth (semilog, at the largest width) and vs width (log-log, at the
largest depth), prints a summary and returns 1 on any violation. Every number of a row is a function of its
seed and grid point, except that the EM and tensor constructions' batched products agree bit for bit only for
the same batch: a run interrupted *between two rows of one grid point* (they are written one after the other
once its batch is measured) resumes with round-off-level differences in that grid point.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from constructions.em import EMConstruction
from constructions.power import PowerIteration
from constructions.tensor import MAX_NORM_ERROR, NormalisationDomain, OdecoPowerIteration, default_seeds
from theory.em import EM_PROPAGATION, EM_SOFT_STATE_STEP
from theory.interpolation import INV_SQRT_RELATIVE
from theory.power import ANGLE_AFTER_STEPS, EIGENVALUE_RELATIVE, NORM_PER_STEP
from theory.tensor import MEAN, NORM_WIDTH, QUADRATIC_CONVERGENCE

from .plots import median_and_band, plot_error_vs_depth, plot_error_vs_width
from .power_study import run_trajectory, spectrum_instances, unit_rows
from .reference.moments import Whitening, population_tensor, whitening
from .reference.power import power_iteration, second_moment, sin_angle, tan_angle, top_eigenpairs
from .reference.tensor import tensor_power_method, unwhiten
from .em_study import FLOOR, WEIGHT_FLOOR, contraction_estimate, reference_soft, step_values
from .strategies.mixtures import MixtureInstance, build_mixture
from .strategies.tensors import build_means, tgmm_weights
from .sweep import Sweep, SweepMismatch, pivot
from .tensor_study import COSINE, SEPARATION

Config = Mapping[str, Any]
Metrics = dict[str, float]
EPS = float(np.finfo(np.float64).eps)
NOT_APPLICABLE = float("nan")
RELATIVE = 1e-12  # relative float64 allowance of a bound check (bounds that are attained, large values)

# power: fixed domain and spectrum shape (lambda_1^2 = 4 sits mid-domain; lambda_d = lambda_1 / 50)
POWER_DOMAIN = (1e-2, 1e2)
POWER_TOP = 2.0
POWER_CONDITION = 50.0
# tensor: TGMM weights u_k ~ U[0.2, 0.8] normalised; the normaliser domain covers every such draw
TGMM_RAW = (0.2, 0.8)
TENSOR_DOMAIN_FLOOR = 1e-6  # covers normaliser inputs down to 1e-6 lambda_min^2 (observed >= 4e-4 lambda_min^2)


# ------------------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """A grid parameter and its CLI flag ``--name``: values of type ``kind`` with ``valid(value)`` true."""

    name: str
    kind: type
    valid: Callable[[float], bool]
    requirement: str
    label: str
    help: str


PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        Param("depth", int, lambda v: v >= 1, "an integer >= 1", "L",
              "algorithm steps emulated: power steps T, EM iterations L, tensor iterations J per component"),
        Param("width", int, lambda v: v >= 1, "an integer >= 1", "M",
              "knot intervals M of the approximating MLPs (approximation study: the part's width)"),
        Param("dim", int, lambda v: v >= 1, "an integer >= 1", "d", "data dimension d"),
        Param("tokens", int, lambda v: v >= 1, "an integer >= 1", "n", "data points n"),
        Param("clusters", int, lambda v: v >= 1, "an integer >= 1", "K", "mixture components K"),
        Param("gap", float, lambda v: 1 / POWER_CONDITION < v < 1, f"in ({1 / POWER_CONDITION:g}, 1)", "gap",
              "eigengap lambda_2 / lambda_1"),
        Param("separation", float, lambda v: 0 < v < math.inf, "finite and > 0", "sep",
              "distance Delta between the cluster centres (in units of the noise sigma = 1)"),
    ]
}


# ------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """``metric <= bound (1 + relative) + round_off`` on every row whose bound applies (a finite bound column).

    ``bound`` defaults to the column ``<metric>_bound``; ``round_off`` is an absolute float64 allowance, or the
    name of a column holding it; ``relative`` allows for the float64 evaluation of a bound that is attained
    (e.g. the power angle bound is an equality in $d = 2$).
    """

    metric: str
    round_off: float | str = 0.0
    bound: str = ""
    relative: float = RELATIVE

    @property
    def bound_column(self) -> str:
        return self.bound or f"{self.metric}_bound"

    def applies(self, row: Mapping[str, Any]) -> bool:
        return math.isfinite(row[self.bound_column])

    def allowance(self, row: Mapping[str, Any]) -> float:
        return row[self.round_off] if isinstance(self.round_off, str) else self.round_off

    def violated(self, row: Mapping[str, Any]) -> bool:
        """True if the bound applies and the measured value is above it (a NaN measurement is a violation)."""
        bound = row[self.bound_column]
        return self.applies(row) and not row[self.metric] <= bound + self.relative * abs(bound) + self.allowance(row)


def check_table(rows: Sequence[Mapping[str, Any]], checks: Sequence[Check]) -> tuple[list[str], int]:
    """Lines of a table and the total number of violations. Per check: the rows where the bound applies, the
    violations, the largest measured value and the smallest slack bound/measured over the rows measured above
    the round-off allowance (below it the comparison is with round-off, not with the bound)."""
    lines = [f"  {'metric':18s} {'bound applies':>13s} {'violations':>10s} {'min slack':>10s} {'max measured':>12s}"]
    total = 0
    for check in checks:
        applicable = [r for r in rows if check.applies(r)]
        violations = sum(check.violated(r) for r in applicable)
        total += violations
        slacks = [r[check.bound_column] / r[check.metric] for r in applicable
                  if r[check.metric] > check.allowance(r) and r[check.bound_column] > 0]
        slack = f"{min(slacks):10.3g}" if slacks else f"{'-':>10s}"
        largest = max((r[check.metric] for r in rows), default=math.nan)
        lines.append(f"  {check.metric:18s} {len(applicable):>6d} of {len(rows):<4d} {violations:10d} {slack} {largest:12.3g}")
    return lines, total


# ------------------------------------------------------------------------------------------- power


def power_instances(config: Config, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: data ``(n, d)`` with second moment $Q\\,\\mathrm{diag}(\\lambda)Q^\\top$ (spectrum of the module
    docstring, gap ``config["gap"]``) and a Gaussian unit start ``(1, d)``; stacked over seeds."""
    X, starts = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        data, _, _ = spectrum_instances(rng, 1, config["dim"], config["tokens"], np.array([POWER_TOP]),
                                        config["gap"], POWER_CONDITION)
        X.append(data[0])
        starts.append(unit_rows(rng.standard_normal((1, config["dim"]))))
    return np.array(X), np.array(starts)


def measure_power(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    """Power iteration with $T$ = depth steps and $M$ = width intervals against ``eigh`` and exact power iteration:
    $\\sin\\angle(V, v_1)$, $\\sin\\angle(V, v_T^{PI})$, $|\\|V\\| - 1|$, $|\\hat\\lambda/\\lambda_1 - 1|$ and their bounds."""
    X, starts = power_instances(config, seeds)
    steps, width = config["depth"], config["width"]
    construction = PowerIteration(config["dim"], steps=steps, width=width, domain=POWER_DOMAIN)
    trajectory = run_trajectory(construction, X, starts, "cpu")
    result = construction.readout(trajectory.stream)
    low, high = POWER_DOMAIN
    epsilon = NORM_PER_STEP(M=width, a=low, b=high)
    rows = []
    for b in range(len(seeds)):
        sigma = second_moment(X[b])
        values, vectors = top_eigenpairs(sigma, 2)
        vector, value = result.vectors[b, 0].numpy(), float(result.values[b, 0])
        exact = power_iteration(sigma, starts[b, 0], steps).iterates[-1]
        sine = sin_angle(vector, vectors[0])
        in_domain = low <= float(trajectory.squared_norms[b, 0, -1]) <= high
        rows.append({
            "sin_eigh": sine,
            "sin_eigh_bound": ANGLE_AFTER_STEPS(rho=values[1] / values[0], L=steps,
                                                theta_0=math.atan(tan_angle(starts[b, 0], vectors[0]))),
            "sin_reference": sin_angle(vector, exact),
            "sin_reference_bound": 0.0,
            "norm_error": abs(float(np.linalg.norm(vector)) - 1.0),
            "norm_error_bound": epsilon if in_domain else NOT_APPLICABLE,
            "eigenvalue_error": abs(value / values[0] - 1.0),
            "eigenvalue_error_bound": EIGENVALUE_RELATIVE(epsilon=epsilon, theta=math.asin(min(sine, 1.0)))
            if in_domain else NOT_APPLICABLE,
            "in_domain": float(in_domain),
        })
    return rows


def validate_power(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """Cross-parameter problems: $d \\ge 2$ (two eigenvalues) and $n > d$ (full-rank centred data)."""
    errors = [f"power needs --dim >= 2 (an eigengap needs two eigenvalues), got {d}" for d in grid["dim"] if d < 2]
    if max(grid["dim"]) >= min(grid["tokens"]):
        errors.append(f"power needs --tokens > --dim (centred data with a full-rank second moment), got tokens "
                      f"{grid['tokens']} and dim {grid['dim']}")
    return errors


# ------------------------------------------------------------------------------------------- EM


def em_instances(config: Config, seeds: Sequence[int]) -> list[MixtureInstance]:
    """Per seed: ``config["tokens"]`` points split as evenly as possible over ``config["clusters"]`` clusters at
    separation $\\Delta$, unit noise, initial means within $\\Delta/4$ of the centres."""
    k, n = config["clusters"], config["tokens"]
    sizes = [n // k + (i < n % k) for i in range(k)]
    separation = config["separation"]
    return [build_mixture(seed, k, config["dim"], sizes, separation=separation, noise=1.0, init_radius=separation / 4)
            for seed in seeds]


def measure_em(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    """Soft EM with $L$ = depth iterations and $M$ = width intervals against the numpy EM from the same start:
    $\\max_k\\|\\hat\\mu_k^{(L)} - \\mu_k^{(L)}\\|$ with $\\varepsilon_{step}(1-\\hat\\kappa^L)/(1-\\hat\\kappa)$, and label agreement."""
    instances = em_instances(config, seeds)
    iterations, width = config["depth"], config["width"]
    construction = EMConstruction(config["clusters"], config["dim"], iterations, beta=1.0, width=width,
                                  radius=max(i.radius for i in instances), floor=FLOOR, weight_floor=WEIGHT_FLOOR)
    points = np.array([i.points for i in instances])
    readouts = construction.trajectory(construction.embed(points, np.array([i.init_means for i in instances])))
    rows = []
    for b, instance in enumerate(instances):
        reference = reference_soft(instance, iterations)
        ours = readouts[-1].means[b].numpy()
        pi_min = min(min(float(s.weights.min()) for s in reference), min(float(r.weights[b].min()) for r in readouts))
        step = EM_SOFT_STATE_STEP(**step_values(instance, width, pi_min))
        rows.append({
            "mean_error": float(np.linalg.norm(ours - reference[-1].means, axis=1).max()),
            "mean_error_bound": EM_PROPAGATION(epsilon_step=step, kappa=contraction_estimate(instance, reference), L=iterations),
            "label_agreement": float(np.mean(readouts[-1].labels[b].numpy() == reference[-1].labels)),
        })
    return rows


def validate_em(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """Cross-parameter problems: $K \\ge 2$ (the construction's range) and $n \\ge K$ (a point per cluster)."""
    errors = [f"em needs --clusters >= 2, got {k}" for k in grid["clusters"] if k < 2]
    if max(grid["clusters"]) > min(grid["tokens"]):
        errors.append(f"em needs --tokens >= --clusters (a point per cluster), got tokens {grid['tokens']} "
                      f"and clusters {grid['clusters']}")
    return errors


# ------------------------------------------------------------------------------------------- tensor


@dataclass(frozen=True)
class TensorInstance:
    """A population mixture: ``weights`` $\\pi$, ``means`` $(K, d)$, its ``whitening`` of $M_2$, the whitened
    ``tensor`` $T = \\sum_k \\lambda_k v_k^{\\otimes 3}$ $(K, K, K)$ with ``eigenvalues`` $\\lambda_k = \\pi_k^{-1/2}$
    and orthonormal ``components`` $v_k = \\sqrt{\\pi_k}\\,W^\\top\\mu_k$ (rows)."""

    weights: np.ndarray
    means: np.ndarray
    whitening: Whitening
    tensor: np.ndarray
    eigenvalues: np.ndarray
    components: np.ndarray


def tensor_instances(config: Config, seeds: Sequence[int]) -> list[TensorInstance]:
    """Per seed: TGMM weights and $K$ means in $\\mathbb R^d$ with pairwise distance 5 and cosine 0.3, as the tensor
    report section builds them (:mod:`verify.tensor_study`). The whitened tensor does not depend on the scale of the
    means (whitening undoes it), so the separation is fixed; $d$ only draws the orientation."""
    instances = []
    for seed in seeds:
        weights = tgmm_weights(np.random.default_rng(seed).uniform(*TGMM_RAW, config["clusters"]))
        means = build_means(config["dim"], config["clusters"], SEPARATION, COSINE, seed)
        white = whitening(np.einsum("k,ka,kb->ab", weights, means, means), config["clusters"])
        components = np.sqrt(weights)[:, None] * (means @ white.whiten)
        instances.append(TensorInstance(weights, means, white, population_tensor(weights, means, white),
                                        weights**-0.5, components))
    return instances


def tensor_domain(clusters: int) -> NormalisationDomain:
    """The normaliser domain for every TGMM draw with $K$ components: $\\lambda = \\pi^{-1/2}$ lies between
    $\\pi_{\\max}^{-1/2}$ and $\\pi_{\\min}^{-1/2}$ with $\\pi_{\\min} = 0.2/(0.2 + 0.8(K-1))$, $\\pi_{\\max} = 0.8/(0.8 + 0.2(K-1))$."""
    low, high = TGMM_RAW
    pi_min, pi_max = low / (low + high * (clusters - 1)), high / (high + low * (clusters - 1))
    return NormalisationDomain.for_weights(pi_max**-0.5, pi_min**-0.5, TENSOR_DOMAIN_FLOOR)


def tensor_min_width(clusters: int) -> int:
    """The smallest width the construction accepts on :func:`tensor_domain` (norm-error bound <= 1/2)."""
    domain = tensor_domain(clusters)
    return INV_SQRT_RELATIVE.width_for(MAX_NORM_ERROR, a=domain.low, b=domain.high)


def measure_tensor(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    """Tensor power iteration, $K$ components x $J$ = depth iterations, $M$ = width, against the truth
    ($\\tan\\theta_J$ of component 0, bound $\\sqrt{K-1}\\,(\\lambda_1/\\lambda_{\\min})\\,r^{2^J}$) and the numpy tensor
    power method ($\\|\\hat\\mu_0 - \\mu_0\\|/\\|\\mu_0\\| \\le (1 + \\delta_M)^4 - 1$), with $\\max_j|\\|v_j\\| - 1| \\le \\delta_M$."""
    instances = tensor_instances(config, seeds)
    k, iterations, width = config["clusters"], config["depth"], config["width"]
    domain = tensor_domain(k)
    starts = default_seeds(k, k)
    construction = OdecoPowerIteration(k, k, iterations, width, domain)
    trace = construction.model(construction.embed(np.array([i.tensor for i in instances]), starts), trace=True)
    readout = construction.readout(trace.output)
    inputs = construction.engine.normaliser_inputs(trace).numpy()
    delta = NORM_WIDTH(M=width, a=domain.low, b=domain.high)
    rows = []
    for b, instance in enumerate(instances):
        vectors, eigenvalues = readout.vectors[b].numpy(), readout.eigenvalues[b].numpy()
        reach = instance.eigenvalues * np.abs(instance.components @ starts[0])  # lambda_k |c_k|: the largest wins
        top = int(np.argmax(reach))
        ratio = float(np.delete(reach, top).max() / reach[top]) if k > 1 else 0.0
        ours = eigenvalues[0] * instance.whitening.unwhiten @ vectors[0]
        _, reference = unwhiten(tensor_power_method(instance.tensor, starts, iterations), instance.whitening)
        in_domain = bool(np.all((domain.low <= inputs[b]) & (inputs[b] <= domain.high)))
        rows.append({
            "tan_component": tan_angle(vectors[0], instance.components[top]),
            "tan_component_bound": QUADRATIC_CONVERGENCE(r=ratio, K=k, t=iterations, lambda_1=instance.eigenvalues[top],
                                                         lambda_min=instance.eigenvalues.min()),
            "norm_error": float(np.abs(np.linalg.norm(vectors, axis=1) - 1.0).max()),
            "norm_error_bound": delta if in_domain else NOT_APPLICABLE,
            "mean_error": float(np.linalg.norm(ours - reference[0]) / np.linalg.norm(reference[0])),
            "mean_error_bound": MEAN(delta=delta) if in_domain else NOT_APPLICABLE,
            "in_domain": float(in_domain),
        })
    return rows


def validate_tensor(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """Cross-parameter problems: $K \\le d$ (independent means) and $M \\ge$ :func:`tensor_min_width` of each $K$."""
    errors = [f"tensor needs --clusters K <= --dim d (linearly independent means), got K={k} > d={d}"
              for k in grid["clusters"] for d in grid["dim"] if k > d]
    for k in grid["clusters"]:
        smallest = tensor_min_width(k)
        if min(grid["width"]) < smallest:
            domain = tensor_domain(k)
            errors.append(f"tensor with K={k} needs --width >= {smallest} (the norm-error bound of the 1/sqrt MLP on "
                          f"[{domain.low:.3g}, {domain.high:.3g}] must be <= {MAX_NORM_ERROR}), got {min(grid['width'])}")
    return errors


# ------------------------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class Study:
    """A construction sweep: its measure, default grid (instance parameters, then ``depth`` and ``width``), checks,
    the metrics plotted against depth (semilog) and width (log-log), and cross-parameter validation."""

    name: str
    description: str
    measure: Callable[[Config, Sequence[int]], list[Metrics]]
    defaults: dict[str, list[Any]]
    replicates: int
    checks: tuple[Check, ...]
    depth_metric: str
    width_metric: str
    expected_width_slope: float
    floor: float | None  # float64 floor of the depth metric (drawn; slopes and bounds stop above it)
    constants: dict[str, Any]
    validate: Callable[[Mapping[str, Sequence[Any]]], list[str]]

    @property
    def instance_params(self) -> list[str]:
        return [name for name in self.defaults if name not in ("depth", "width")]

    def sweep(self, out_dir: str | Path, grid: Mapping[str, Sequence[Any]], replicates: int, *, base_seed: int = 0,
              progress: bool = True) -> Sweep:
        """The :class:`Sweep` (batched; seeds shared across depth and width; the study's constants recorded)."""
        ordered = {name: list(grid[name]) for name in self.defaults}
        return Sweep(ordered, replicates, self.measure, out_dir, base_seed=base_seed, batched=True,
                     extra={"study": self.name, "constants": self.constants}, seed_keys=self.instance_params,
                     progress=progress)


STUDIES: dict[str, Study] = {
    s.name: s
    for s in [
        Study(
            name="power", description="power iteration", measure=measure_power, replicates=4,
            defaults={"dim": [8], "tokens": [200], "gap": [0.5, 0.8], "depth": [5, 10, 20, 40], "width": [8, 16, 32, 64]},
            checks=(Check("sin_eigh", 1e-13), Check("sin_reference", 1e-13), Check("norm_error", 1e-12),
                    Check("eigenvalue_error", 1e-12)),
            depth_metric="sin_eigh", width_metric="norm_error", expected_width_slope=-2.0, floor=10 * EPS,
            constants={"domain": list(POWER_DOMAIN), "lambda_1": POWER_TOP, "condition": POWER_CONDITION, "newton": 0},
            validate=validate_power,
        ),
        Study(
            name="em", description="soft EM", measure=measure_em, replicates=3,
            defaults={"dim": [4], "clusters": [3], "tokens": [300], "separation": [3.0, 4.0], "depth": [1, 3, 5],
                      "width": [16, 32, 64, 128]},
            checks=(Check("mean_error", 1e-12),),
            depth_metric="mean_error", width_metric="mean_error", expected_width_slope=-2.0, floor=None,
            constants={"beta": 1.0, "noise": 1.0, "init_radius": "separation / 4", "floor": FLOOR,
                       "weight_floor": WEIGHT_FLOOR},
            validate=validate_em,
        ),
        Study(
            name="tensor", description="tensor power iteration", measure=measure_tensor, replicates=3,
            defaults={"dim": [8], "clusters": [3], "depth": [1, 2, 3, 4, 6, 8], "width": [16, 32, 64, 128, 256]},
            checks=(Check("tan_component", 1e-12), Check("norm_error", 1e-12), Check("mean_error", 1e-12)),
            depth_metric="tan_component", width_metric="norm_error", expected_width_slope=-2.0, floor=EPS,
            constants={"separation": SEPARATION, "cosine": COSINE, "tgmm_raw_weights": list(TGMM_RAW),
                       "domain_floor": TENSOR_DOMAIN_FLOOR, "newton": 0, "seeds": "constructions.tensor.default_seeds(K, K)"},
            validate=validate_tensor,
        ),
    ]
}
APPROXIMATION_WIDTHS = [8, 16, 32, 64, 128, 256]
APPROXIMATION_REPLICATES = 8


# ------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sweep`` subcommand's arguments: the study, the output folder, one flag per grid parameter."""
    parser.add_argument("study", choices=["approximation", *STUDIES],
                        help="approximation: error vs width of every approximating part; power, em, tensor: "
                             "error vs depth and width of a construction")
    parser.add_argument("--out", type=Path, required=True, help="output folder (re-running resumes it)")
    for param in PARAMS.values():
        flags = ["--width", "--widths"] if param.name == "width" else [f"--{param.name}"]
        parser.add_argument(*flags, dest=param.name, type=param.kind, nargs="+", metavar=param.label, help=param.help)
    parser.add_argument("--replicates", type=int, help="random instances per grid point (default: per study)")
    parser.add_argument("--seed", type=int, default=0, help="base seed every row's seed is derived from")
    defaults = [f"{name}: " + ", ".join(f"--{k} {' '.join(map(str, v))}" for k, v in s.defaults.items())
                + f", --replicates {s.replicates}" for name, s in STUDIES.items()]
    defaults.append(f"approximation: --width {' '.join(map(str, APPROXIMATION_WIDTHS))}, "
                    f"--replicates {APPROXIMATION_REPLICATES}")
    parser.epilog = "defaults per study -- " + "; ".join(defaults)


def grid_from_args(args: argparse.Namespace, defaults: Mapping[str, list[Any]]) -> tuple[dict[str, list[Any]], list[str]]:
    """The grid (given values or the study's defaults) and every problem with it: flags the study does not use,
    values outside a parameter's range, duplicates."""
    grid, errors = {}, []
    for name, param in PARAMS.items():
        given = getattr(args, name)
        if name not in defaults:
            if given is not None:
                errors.append(f"--{name} does not apply to the {args.study} study (it takes "
                              + ", ".join(f"--{k}" for k in defaults) + ")")
            continue
        values = defaults[name] if given is None else given
        bad = [v for v in values if not param.valid(v)]
        if bad:
            errors.append(f"--{name} must be {param.requirement}, got {' '.join(map(str, bad))}")
        if len(set(values)) != len(values):
            errors.append(f"--{name} has repeated values {' '.join(map(str, values))}")
        grid[name] = list(values)
    if args.replicates is not None and args.replicates < 1:
        errors.append(f"--replicates must be an integer >= 1, got {args.replicates}")
    return grid, errors


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Validate, run the sweep on one torch thread (tiny matrices), write the plots, print the summary.

    Returns 1 if a measured value exceeds its bound, else 0; invalid arguments, and an output folder holding a
    different sweep, exit through ``parser.error`` (status 2).
    """
    study = STUDIES.get(args.study)
    grid, errors = grid_from_args(args, study.defaults if study else {"width": APPROXIMATION_WIDTHS})
    if study and not errors:
        errors = study.validate(grid)
    if errors:
        parser.error("; ".join(errors))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if study is None:
            return run_approximation(args.out, grid["width"], args.replicates or APPROXIMATION_REPLICATES, args.seed)
        return run_study(study, args.out, grid, args.replicates or study.replicates, args.seed)
    except SweepMismatch as mismatch:
        parser.error(str(mismatch))
    finally:
        torch.set_num_threads(threads)


def run_study(study: Study, out: Path, grid: Mapping[str, Sequence[Any]], replicates: int, seed: int) -> int:
    """Run (or resume) ``study`` over ``grid`` in ``out``, plot, print the summary; 1 on a bound violation."""
    started = time.perf_counter()
    rows = study.sweep(out, grid, replicates, base_seed=seed).run()
    print(f"{study.name}: {len(rows)} rows in {out / 'results.csv'} ({time.perf_counter() - started:.1f} s)")
    for line in summarise(study, rows, out):
        print(line)
    lines, violations = check_table(rows, study.checks)
    for line in lines:
        print(line)
    for row in rows:
        for check in study.checks:
            if check.violated(row):
                print(f"  BOUND VIOLATED ({check.metric}): {row}", file=sys.stderr)
    return 1 if violations else 0


def summarise(study: Study, rows: Sequence[Mapping[str, Any]], out: Path) -> list[str]:
    """Write ``<study>_error_vs_depth.png`` (at the largest width) and ``<study>_error_vs_width.png`` (at the
    largest depth), one curve per combination of the instance parameters that vary, bounds dashed; return lines
    with the fitted slopes and the medians."""
    depths = sorted({r["depth"] for r in rows})
    widths = sorted({r["width"] for r in rows})
    groups = _groups(rows, study.instance_params)
    lines = []
    for axis, fixed, metric, xs in (("depth", ("width", widths[-1]), study.depth_metric, depths),
                                    ("width", ("depth", depths[-1]), study.width_metric, widths)):
        curves, bounds = {}, {}
        for label, where in groups.items():
            selection = {**where, fixed[0]: fixed[1]}
            curves[label] = pivot(rows, axis, metric, where=selection)[1][metric]
            bound = pivot(rows, axis, f"{metric}_bound", where=selection)[1][f"{metric}_bound"]
            median = median_and_band(bound)[0]
            if axis == "depth" and study.floor is not None:
                median = np.where(median > study.floor, median, np.nan)  # drawn down to the float floor
            if np.isfinite(median).any():
                bounds[label] = median
        path = out / f"{study.name}_error_vs_{axis}.png"
        title = f"{study.description}: {metric} vs {axis} at {fixed[0]} {fixed[1]} (dashed: bound)"
        if axis == "depth":
            slopes = plot_error_vs_depth(path, xs, curves, reference=bounds, floor=study.floor, title=title, ylabel=metric)
            fitted = ", ".join(f"{label}: rate {math.exp(s):.3g}/step" for label, s in slopes.items())
        else:
            slopes = plot_error_vs_width(path, xs, curves, bounds=bounds, expected_slope=study.expected_width_slope,
                                         title=title, ylabel=metric)
            fitted = ", ".join(f"{label}: slope {s:.2f}" for label, s in slopes.items())
            fitted += f" (theory {study.expected_width_slope:g})"
        lines.append(f"  {metric} vs {axis} ({fixed[0]} {fixed[1]}) -> {path}: {fitted}")
        lines.append(f"    {'median':27s}" + "".join(f"{PARAMS[axis].label + '=' + format(x, 'g'):10s}" for x in xs))
        lines += [f"    {label:27s}" + "".join(f"{m:<10.2e}" for m in median_and_band(c)[0]) for label, c in curves.items()]
    return lines


def _groups(rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Label -> ``where`` filter for each combination of the parameters with several values (all of them, for the
    label only, when none varies)."""
    def label(names: Sequence[str], combo: Sequence[Any]) -> str:
        return ", ".join(f"{PARAMS[p].label}={v:g}" for p, v in zip(names, combo))

    values = {p: sorted({r[p] for r in rows}) for p in params}
    varying = [p for p in params if len(values[p]) > 1]
    if not varying:
        return {label(params, [values[p][0] for p in params]): {}}
    combos = sorted({tuple(r[p] for p in varying) for r in rows})
    return {label(varying, combo): dict(zip(varying, combo)) for combo in combos}


def run_approximation(out: Path, widths: list[int], replicates: int, seed: int) -> int:
    """``tfconstruct sweep approximation``: error vs width of every approximating part, one PNG per part."""
    from .approximation_study import PARTS, approximation_sweep

    rows = approximation_sweep(out, list(PARTS), widths, replicates, base_seed=seed).run()
    print(f"{len(rows)} rows in {out / 'results.csv'}")
    check = Check("error", "round_off", bound="bound", relative=0.0)
    failed = False
    for name, part in PARTS.items():
        xs, errors = pivot(rows, "width", "error", where={"part": name})
        _, bounds = pivot(rows, "width", "bound", where={"part": name})
        mine = [r for r in rows if r["part"] == name]
        violations = [r for r in mine if check.violated(r)]
        failed |= bool(violations)
        slope = plot_error_vs_width(out / f"{name}.png", xs, {name: errors["error"]},
                                    bounds={name: np.median(bounds["bound"], axis=0)},
                                    expected_slope=part.expected_slope, title=part.description, ylabel="sup error")[name]
        print(f"{name:10s} slope {slope:6.3f} (theory {part.expected_slope:g}), "
              f"min slack {min(r['slack'] for r in mine):.4g}, violations {len(violations)}  -> {out / (name + '.png')}")
        for row in violations:
            print(f"  BOUND VIOLATED: {row}", file=sys.stderr)
    return 1 if failed else 0
