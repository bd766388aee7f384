r"""``tfconstruct sweep tensor``: tensor power iteration over depth x width x (d, K).

:class:`~tfconstruct.constructions.tensor.OdecoPowerIteration` on the whitened population third moment of a
$K$-component mixture in $\mathbb R^d$, means at pairwise distance 5 and cosine 0.3, exactly odeco with
$\lambda_k = \pi_k^{-1/2}$; $J$ = depth iterations per component, $M$ = width knot intervals on a domain fixed by
$K$, seeds ``default_seeds(K, K)``. Metrics:

* ``tan_component`` $= \tan\theta_J$ of component 0 to the whitened true component $v_1$ it converges to (the
  largest $\lambda_k|c_k|$, $c$ the seed's overlaps), bounded by $\sqrt{K-1}\,(\lambda_1/\lambda_{\min})\,r^{2^J}$
  with $r = \max_{j\ne1}|\lambda_j c_j|/|\lambda_1 c_1|$ (``tensor_power_angle_depth``);
* ``norm_error`` $= \max_j|\lVert v_j\rVert - 1|$, bound $\delta_M$ (``power_norm_per_step``, when every normaliser
  input is in $[a, b]$);
* ``mean_error`` $= \lVert\hat\mu_0 - \mu_0\rVert/\lVert\mu_0\rVert$ against the numpy tensor power method (same
  whitening, seeds and $J$), bound $(1 + \delta_M)^4 - 1$ (``tensor_mean``).

Every row also holds the bounds' inputs that are not grid parameters (``r``, ``lambda_1`` $= \lambda_1$,
``lambda_min`` $= \lambda_{\min}$, ``domain_low``/``domain_high`` $= a, b$, ``delta`` $= \delta_M$), so each
``*_bound`` column can be recomputed from ``results.csv`` alone (:meth:`~tfconstruct.verify.study.BoundColumn.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tfconstruct.constructions.gadgets import InverseSqrt, NormalisationDomain
from tfconstruct.constructions.power import default_seeds
from tfconstruct.constructions.tensor import OdecoPowerIteration
from tfconstruct.constructions.tensor.in_tokens import SHIFT_NORM_TOLERANCE
from tfconstruct.theory.power import NORM_PER_STEP
from tfconstruct.theory.tensor import MEAN, QUADRATIC_CONVERGENCE

from ..power.reference import tan_angle
from ..study import (
    NOT_APPLICABLE,
    BoundColumn,
    Config,
    Fit,
    Grid,
    Metrics,
    Study,
    depth_param,
    positive_int,
    width_param,
)
from .moments import Whitening, population_tensor, whitening
from .reference import tensor_power_method, unwhiten
from .strategies import build_means, tgmm_weights
from .study import COSINE, SEPARATION

EPS = float(np.finfo(np.float64).eps)
TGMM_RAW = (0.2, 0.8)  # TGMM weights u_k ~ U[0.2, 0.8], normalised; the domain covers every such draw
DOMAIN_FLOOR = 1e-6  # covers normaliser inputs down to 1e-6 lambda_min^2 (observed >= 4e-4 lambda_min^2)


@dataclass(frozen=True)
class TensorInstance:
    r"""A population mixture: ``weights`` $\pi$, ``means`` $(K, d)$, its ``whitening`` of $M_2$, the whitened
    ``tensor`` $T = \sum_k \lambda_k v_k^{\otimes 3}$ $(K, K, K)$ with ``eigenvalues`` $\lambda_k = \pi_k^{-1/2}$
    and orthonormal ``components`` $v_k = \sqrt{\pi_k}\,W^\top\mu_k$ (rows)."""

    weights: np.ndarray
    means: np.ndarray
    whitening: Whitening
    tensor: np.ndarray
    eigenvalues: np.ndarray
    components: np.ndarray


def instances(config: Config, seeds: Sequence[int]) -> list[TensorInstance]:
    r"""Per seed: TGMM weights and $K$ means in $\mathbb R^d$ with pairwise distance 5 and cosine 0.3, as the tensor
    report section builds them (:mod:`tfconstruct.verify.tensor.study`). The whitened tensor does not depend on the
    scale of the means (whitening undoes it), so the separation is fixed; $d$ only draws the orientation."""
    batch = []
    for seed in seeds:
        weights = tgmm_weights(np.random.default_rng(seed).uniform(*TGMM_RAW, config["clusters"]))
        means = build_means(config["dim"], config["clusters"], SEPARATION, COSINE, seed)
        white = whitening(np.einsum("k,ka,kb->ab", weights, means, means), config["clusters"])
        components = np.sqrt(weights)[:, None] * (means @ white.whiten)
        batch.append(
            TensorInstance(weights, means, white, population_tensor(weights, means, white), weights**-0.5, components)
        )
    return batch


def domain_for(clusters: int) -> NormalisationDomain:
    r"""The normaliser domain for every TGMM draw with $K$ components: $\lambda = \pi^{-1/2}$ lies between
    $\pi_{\max}^{-1/2}$ and $\pi_{\min}^{-1/2}$ with $\pi_{\min} = 0.2/(0.2 + 0.8(K-1))$,
    $\pi_{\max} = 0.8/(0.8 + 0.2(K-1))$."""
    low, high = TGMM_RAW
    pi_min, pi_max = low / (low + high * (clusters - 1)), high / (high + low * (clusters - 1))
    return NormalisationDomain.for_weights(pi_max**-0.5, pi_min**-0.5, DOMAIN_FLOOR)


def min_width(clusters: int) -> int:
    """The smallest width the construction accepts on :func:`domain_for` (normaliser error within its tolerance)."""
    return InverseSqrt.min_width(domain_for(clusters), SHIFT_NORM_TOLERANCE)


def measure(config: Config, seeds: Sequence[int]) -> list[Metrics]:
    r"""Tensor power iteration, $K$ components x $J$ = depth iterations, $M$ = width, against the truth
    ($\tan\theta_J$ of component 0, bound $\sqrt{K-1}\,(\lambda_1/\lambda_{\min})\,r^{2^J}$) and the numpy tensor
    power method ($\lVert\hat\mu_0 - \mu_0\rVert/\lVert\mu_0\rVert \le (1 + \delta_M)^4 - 1$), with
    $\max_j|\lVert v_j\rVert - 1| \le \delta_M$."""
    batch = instances(config, seeds)
    k, iterations, width = config["clusters"], config["depth"], config["width"]
    domain = domain_for(k)
    starts = default_seeds(k, k)
    construction = OdecoPowerIteration(k, components=k, iterations=iterations, width=width, domain=domain)
    trajectory = construction.trajectory(construction.embed(np.array([i.tensor for i in batch]), starts))
    readout = construction.readout(trajectory.stream)
    inputs = trajectory.normaliser_inputs.numpy()
    delta = NORM_PER_STEP(M=width, a=domain.low, b=domain.high)
    rows = []
    for b, instance in enumerate(batch):
        vectors, eigenvalues = readout.vectors[b].numpy(), readout.eigenvalues[b].numpy()
        reach = instance.eigenvalues * np.abs(instance.components @ starts[0])  # lambda_k |c_k|: the largest wins
        top = int(np.argmax(reach))
        ratio = float(np.delete(reach, top).max() / reach[top]) if k > 1 else 0.0
        ours = eigenvalues[0] * instance.whitening.unwhiten @ vectors[0]
        _, reference = unwhiten(tensor_power_method(instance.tensor, starts, iterations), instance.whitening)
        in_domain = bool(np.all((domain.low <= inputs[b]) & (inputs[b] <= domain.high)))
        lambda_1, lambda_min = float(instance.eigenvalues[top]), float(instance.eigenvalues.min())
        rows.append(
            {
                "tan_component": tan_angle(vectors[0], instance.components[top]),
                "tan_component_bound": QUADRATIC_CONVERGENCE(
                    r=ratio, K=k, t=iterations, lambda_1=lambda_1, lambda_min=lambda_min
                ),
                "norm_error": float(np.abs(np.linalg.norm(vectors, axis=1) - 1.0).max()),
                "norm_error_bound": delta if in_domain else NOT_APPLICABLE,
                "mean_error": float(np.linalg.norm(ours - reference[0]) / np.linalg.norm(reference[0])),
                "mean_error_bound": MEAN(delta=delta) if in_domain else NOT_APPLICABLE,
                "in_domain": float(in_domain),
                # the bounds' inputs that are not grid parameters (each bound column recomputes from the row alone)
                "r": ratio,
                "lambda_1": lambda_1,
                "lambda_min": lambda_min,
                "domain_low": float(domain.low),
                "domain_high": float(domain.high),
                "delta": delta,
            }
        )
    return rows


def check_grid(grid: Grid) -> list[str]:
    r"""Cross-parameter problems: $K \le d$ (independent means) and $M \ge$ :func:`min_width` of each $K$."""
    errors = [
        f"tensor needs --clusters K <= --dim d (linearly independent means), got K={k} > d={d}"
        for k in grid["clusters"]
        for d in grid["dim"]
        if k > d
    ]
    for k in grid["clusters"]:
        smallest = min_width(k)
        if min(grid["width"]) < smallest:
            domain = domain_for(k)
            errors.append(
                f"tensor with K={k} needs --width >= {smallest} (the error of the 1/sqrt MLP on "
                f"[{domain.low:.3g}, {domain.high:.3g}] must be <= {SHIFT_NORM_TOLERANCE}), got "
                f"{min(grid['width'])}"
            )
    return errors


STUDY = Study(
    name="tensor",
    description="tensor power iteration",
    measure=measure,
    params=(
        positive_int("dim", [8], "d", "data dimension d"),
        positive_int("clusters", [3], "K", "mixture components K"),
        depth_param([1, 2, 3, 4, 6, 8], "power steps J per component"),
        width_param([16, 32, 64, 128, 256], "knot intervals M of the 1/sqrt MLP"),
    ),
    replicates=3,
    bounds=(
        BoundColumn("tan_component", 1e-12, theory=QUADRATIC_CONVERGENCE, inputs=(("K", "clusters"), ("t", "depth"))),
        BoundColumn(
            "norm_error",
            1e-12,
            theory=NORM_PER_STEP,
            inputs=(("M", "width"), ("a", "domain_low"), ("b", "domain_high")),
        ),
        BoundColumn("mean_error", 1e-12, theory=MEAN),
    ),
    fits=(Fit("tan_component", "depth", "semilog", floor=EPS), Fit("norm_error", "width", "loglog", expected=-2.0)),
    metric_labels={
        "tan_component": r"$\tan\angle(v_t, a_1)$",
        "norm_error": r"$|\,\|v\| - 1\,|$",
        "mean_error": r"$\max_k \|\hat\mu_k - \mu_k\|$",
    },
    constants={
        "separation": SEPARATION,
        "cosine": COSINE,
        "tgmm_raw_weights": list(TGMM_RAW),
        "domain_floor": DOMAIN_FLOOR,
        "newton": 0,
        "seeds": "tfconstruct.constructions.power.default_seeds(K, K)",
    },
    check_grid=check_grid,
)
