r"""Measurements for the tensor power iteration report section (numbers only; no plotting, no Markdown).

* :func:`depth_study`: $\tan\theta_t$ of the first component against the iteration count, transformer and
  reference, on odeco tensors (with the closed form) and on a sampled mixture (to the converged reference).
* :func:`width_study`: read-out errors against the knot count $M$ on population mixtures (exact moments, so the
  truth is the reference), with the bounds of :mod:`tfconstruct.theory.tensor`.
* :func:`code_study`: round-off of the exact data-token contraction for each position code.
* :func:`comparison_study`: EM from one bad start against the spectral reference on built mixtures.
* :func:`sampled_study`: the transformer against the reference (same whitening) and the truth on sampled mixtures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tfconstruct.constructions.gadgets import NormalisationDomain
from tfconstruct.constructions.power import default_seeds
from tfconstruct.constructions.tensor import OdecoPowerIteration, SpectralGMM, WhitenedDataPowerIteration, preprocess
from tfconstruct.theory.power import NORM_PER_STEP
from tfconstruct.theory.tensor import (
    EIGENVALUE,
    MEAN,
    MEAN_DEFLATED,
    WEIGHT_NORMALISED,
    exact_tangent,
    readout_norm_error,
)
from tfconstruct.verify.bound_check import BoundCheck, check_bound
from tfconstruct.verify.power.reference import tan_angle
from tfconstruct.verify.tensor.moments import (
    Whitening,
    population_tensor,
    spherical_moments,
    whitened_contraction,
    whitened_tensor,
    whitening,
)
from tfconstruct.verify.tensor.reference import (
    em_from_bad_init,
    match_components,
    matched_mean_errors,
    spectral_gmm,
    tensor_power_method,
    unwhiten,
)
from tfconstruct.verify.tensor.strategies import (
    build_means,
    build_odeco,
    build_polygon_means,
    sample_mixture,
    tgmm_weights,
)

SEPARATION, COSINE = 5.0, 0.3


def sine(a: np.ndarray, b: np.ndarray) -> float:
    r"""$\min_\pm\lVert\hat a \mp \hat b\rVert \approx \sin\angle(a, b)$ (no $1 - \cos^2$ cancellation)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(min(np.linalg.norm(a - b), np.linalg.norm(a + b)))


# --- depth ---------------------------------------------------------------------------------------------------
@dataclass
class DepthStudy:
    iterations: np.ndarray
    transformer: np.ndarray  # (seeds, J+1) tan(theta_t), odeco
    reference: np.ndarray  # (seeds, J+1)
    closed_form: np.ndarray  # (seeds, J+1)
    sampled: np.ndarray  # (seeds, J+1) sine to the converged reference vector, sampled GMM
    direction_gap: float  # max sine between transformer and reference iterates (component 0)


def depth_study(seeds: list[int], iterations: int, width: int = 64) -> DepthStudy:
    steps = iterations + 1
    tf, ref, closed, sampled = (np.zeros((len(seeds), steps)) for _ in range(4))
    gap = 0.0
    for row, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        weights = np.sort(rng.uniform(1.0, 3.0, 4))[::-1]
        instance = build_odeco(weights, 4, seed)
        domain = NormalisationDomain.for_weights(weights.min(), weights.max())
        start = default_seeds(4, 1)
        construction = OdecoPowerIteration(4, components=1, iterations=iterations, width=width, domain=domain)
        iterates = construction.trajectory(construction.embed(instance.tensor, start)).iterates[0, 0].numpy()
        reference = tensor_power_method(instance.tensor, start, iterations).iterates[0]
        overlaps = instance.vectors @ start[0]
        top = int(np.argmax(weights * np.abs(overlaps)))
        for t in range(steps):
            tf[row, t] = tan_angle(iterates[t], instance.vectors[top])
            ref[row, t] = tan_angle(reference[t], instance.vectors[top])
            closed[row, t] = (
                float(exact_tangent(list(weights), list(overlaps), t, top=top))
                if t
                else tan_angle(start[0], instance.vectors[top])
            )
            gap = max(gap, sine(iterates[t], reference[t]))
        sampled[row] = _sampled_depth(seed, iterations, width)
    return DepthStudy(np.arange(steps), tf, ref, closed, sampled, gap)


def _sampled_depth(seed: int, iterations: int, width: int) -> np.ndarray:
    """Sine between the data-token transformer's iterates (component 0) and the reference's converged vector."""
    inst = _mixture(8, 3, 300, seed)
    pipeline = SpectralGMM(3, iterations=iterations, width=width, newton_steps=0)
    pre = preprocess(inst.x, 3)
    construction = pipeline.build(pre)
    hooks = construction.engine.iterate_hooks(0)  # the streams after each iteration of component 0
    trace = construction.model.upto(hooks[-1])(construction.embed(pre, pipeline.seeds), trace=hooks)
    iterates = [construction.layout.read(trace[hook][0, 0], "v").numpy() for hook in hooks]
    white = _same_whitening(pre)
    converged = tensor_power_method(
        whitened_tensor(inst.x, spherical_moments(inst.x, 3), white), pipeline.seeds, 60
    ).vectors[0]
    return np.array([sine(v, converged) for v in iterates])


# --- width ---------------------------------------------------------------------------------------------------
@dataclass
class WidthStudy:
    widths: np.ndarray
    errors: dict[str, np.ndarray]  # label -> (seeds, widths)
    bounds: dict[str, np.ndarray]  # label -> (widths,) worst bound over seeds
    checks: list[BoundCheck] = field(default_factory=list)


def width_study(seeds: list[int], widths: list[int], iterations: int = 16) -> WidthStudy:
    r"""Population mixtures ($d = 8$, $K = 4$): the whitened $M_3$ is exactly odeco with $\lambda = \pi^{-1/2}$."""
    labels = ["norm ‖v‖ − 1", "eigenvalue λ", "weight π", "mean μ", "mean μ, 1 Newton step"]
    errors = {label: np.zeros((len(seeds), len(widths))) for label in labels}
    bounds = {label: np.zeros(len(widths)) for label in labels}
    checks: list[BoundCheck] = []
    for row, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        weights = tgmm_weights(rng.uniform(0.2, 0.8, 4))
        means = build_means(8, 4, SEPARATION, COSINE, seed)
        white = whitening(np.einsum("k,ka,kb->ab", weights, means, means), 4)
        tensor = population_tensor(weights, means, white)
        lam = weights**-0.5
        domain = NormalisationDomain.for_weights(lam.min(), lam.max())
        for col, width in enumerate(widths):
            instance = {"seed": seed, "M": width}
            for newton in (0, 1):
                construction = OdecoPowerIteration(
                    4, components=4, iterations=iterations, width=width, domain=domain, newton_steps=newton
                )
                readout = construction.readout(construction.model(construction.embed(tensor, default_seeds(4, 4))))
                eigen, vectors = readout.eigenvalues[0].numpy(), readout.vectors[0].numpy()
                found = eigen[:, None] * vectors @ white.unwhiten.T
                order = match_components(found, means)
                mean_error = float((np.linalg.norm(found[order] - means, axis=1) / np.linalg.norm(means, axis=1)).max())
                delta = readout_norm_error(width, domain.low, domain.high, newton)
                if newton:
                    errors[labels[4]][row, col] = mean_error
                    bounds[labels[4]][col] = max(bounds[labels[4]][col], MEAN(delta=delta))
                    checks.append(
                        check_bound(MEAN, mean_error, instance=instance | {"newton": 1}, atol=1e-12, delta=delta)
                    )
                    continue
                raw = eigen[order] ** -2.0
                measured = {
                    labels[0]: float(np.abs(np.linalg.norm(vectors, axis=1) - 1).max()),
                    labels[1]: float(np.abs(eigen[order] / lam - 1).max()),
                    labels[2]: float(np.abs(raw / raw.sum() / weights - 1).max()),
                    labels[3]: mean_error,
                }
                for label, bound in zip(labels[:4], (NORM_PER_STEP, EIGENVALUE, WEIGHT_NORMALISED, MEAN)):
                    values = (
                        {"M": width, "a": domain.low, "b": domain.high} if bound is NORM_PER_STEP else {"delta": delta}
                    )
                    errors[label][row, col] = measured[label]
                    bounds[label][col] = max(bounds[label][col], bound(**values))
                    checks.append(
                        check_bound(
                            bound, measured[label], instance=instance, atol=1e-12, raise_on_violation=False, **values
                        )
                    )
    return WidthStudy(np.array(widths), errors, bounds, checks)


# --- position codes ------------------------------------------------------------------------------------------
def code_study(sizes: list[int], onehot_limit: int = 200) -> list[dict]:
    r"""Relative error of $T(I, v, v)$ from data tokens vs numpy, per code, against $\varepsilon/\gamma$."""
    rows = []
    for n in sizes:
        inst = _mixture(4, 3, n, 0)
        pre = preprocess(inst.x, 3)
        seeds = default_seeds(3, 3)
        gram = (pre.whiten[0].T @ pre.whiten[0]).numpy()
        reference = whitened_contraction(pre.y[0].numpy(), pre.moment[0].numpy(), gram, seeds[0])
        for code in ("onehot", "circle", "torus"):
            if code == "onehot" and n > onehot_limit:
                continue
            construction = WhitenedDataPowerIteration(
                n,
                4,
                components=3,
                iterations=1,
                width=64,
                domain=NormalisationDomain(1e-6, 1e4),
                data_bound=float(pre.y.norm(dim=-1).max()),
                code=code,
            )
            contract = construction.model.upto("component0.iter0.contract2")
            u = construction.layout.read(contract(construction.embed(pre, seeds)), "u")[0].numpy()
            codes = construction.contraction.codes
            rows.append(
                {
                    "n": n,
                    "code": code,
                    "width": codes.width,
                    "gap": codes.gap,
                    "gate_bound": construction.contraction.gate_bound,
                    "relative_error": float(np.abs(u - reference).max() / np.abs(reference).max()),
                    "predicted_digits_lost": math.log10(1.0 / codes.gap),
                }
            )
    return rows


# --- EM vs spectral ------------------------------------------------------------------------------------------
def comparison_study(dimensions: list[int], components: list[int], seeds: list[int], samples: int) -> list[dict]:
    r"""Per $(d, K)$: EM from one $\mathcal N(0, I)$ start vs the spectral reference; failure = some mean further than
    $\Delta/2$ from its matched truth. $K > d$: the spectral method must refuse (its error message is recorded)."""
    rows = []
    for d in dimensions:
        for k in components:
            em_errors, em_failures, spectral_errors, spectral_failures = [], 0, [], 0
            refusal = ""
            for seed in seeds:
                inst = _mixture(d, k, samples, seed)
                em = matched_mean_errors(em_from_bad_init(inst.x, k, seed=10_000 + seed), inst.means)
                em_errors.append(em.mean())
                em_failures += int(em.max() > SEPARATION / 2)
                try:
                    spectral = matched_mean_errors(spectral_gmm(inst.x, k, default_seeds(k, k), 30).means, inst.means)
                except ValueError as error:
                    refusal = str(error)
                    continue
                spectral_errors.append(spectral.mean())
                spectral_failures += int(spectral.max() > SEPARATION / 2)
            rows.append(
                {
                    "d": d,
                    "K": k,
                    "seeds": len(seeds),
                    "em_median": float(np.median(em_errors)),
                    "em_mean": float(np.mean(em_errors)),
                    "em_failure_rate": em_failures / len(seeds),
                    "spectral_median": float(np.median(spectral_errors)) if spectral_errors else None,
                    "spectral_mean": float(np.mean(spectral_errors)) if spectral_errors else None,
                    "spectral_failure_rate": spectral_failures / len(seeds) if spectral_errors else None,
                    "spectral_refusal": refusal,
                }
            )
    return rows


# --- sampled mixtures: transformer vs reference vs truth -----------------------------------------------------
def sampled_study(
    dimensions: list[int], components: list[int], seeds: list[int], samples: int, width: int, iterations: int
) -> list[dict]:
    r"""One row per $(d, K \le d, \text{seed})$: the pipeline ($N = 1$ Newton step) against the reference on the
    same whitening (with the ``tensor_mean_deflated`` bound) and both against the true means."""
    rows = []
    cells = [(d, k) for d in dimensions for k in components if k <= d]
    for dimension, k in cells:
        for seed in seeds:
            inst = _mixture(dimension, k, samples, seed)
            pipeline = SpectralGMM(k, iterations=iterations, width=width, newton_steps=1)
            estimate = pipeline.fit(inst.x)
            white = _same_whitening(estimate.preprocessed)
            decomposition = tensor_power_method(
                whitened_tensor(inst.x, spherical_moments(inst.x, k), white), pipeline.seeds, iterations
            )
            _, means = unwhiten(decomposition, white)
            domain = estimate.construction.engine.domain
            context = dict(
                delta=readout_norm_error(width, domain.low, domain.high, 1),
                K=k,
                Lambda=float(decomposition.eigenvalues.max() / decomposition.eigenvalues.min()),
                omega=float(np.abs(decomposition.vectors @ decomposition.vectors.T - np.eye(k)).max()),
                kappa_B=float(np.sqrt(white.eigenvalues[0] / white.eigenvalues[-1])),
            )
            ours = estimate.means[0].numpy()
            relative = float((np.linalg.norm(ours - means, axis=1) / np.linalg.norm(means, axis=1)).max())
            check = check_bound(
                MEAN_DEFLATED,
                relative,
                instance={"d": dimension, "K": k, "seed": seed},
                atol=1e-12,
                raise_on_violation=False,
                **context,
            )
            rows.append(
                {
                    "d": dimension,
                    "K": k,
                    "seed": seed,
                    "tf_vs_reference": relative,
                    "bound": check.bound,
                    "passed": check.passed,
                    "reference_vs_truth": float(matched_mean_errors(means, inst.means).max()),
                    "tf_vs_truth": float(matched_mean_errors(ours, inst.means).max()),
                    "depth": estimate.construction.model.depth,
                    "heads": estimate.construction.model.max_heads,
                    "D": estimate.construction.layout.dim,
                    "mlp_width": estimate.construction.model.max_mlp_width,
                    "check": check,
                }
            )
    return rows


# --- shared --------------------------------------------------------------------------------------------------
def _mixture(dimension: int, components: int, samples: int, seed: int):
    weights = tgmm_weights(np.random.default_rng(seed).uniform(0.2, 0.8, components))
    if components <= dimension:
        means = build_means(dimension, components, SEPARATION, COSINE, seed)
    else:
        means = build_polygon_means(dimension, components, SEPARATION, seed)
    return sample_mixture(weights, means, samples, seed=seed + 7919)


def _same_whitening(pre) -> Whitening:
    """The pipeline's whitening as a numpy :class:`Whitening` (eigenvector signs are arbitrary)."""
    return Whitening(pre.whiten[0].numpy(), pre.unwhiten[0].numpy(), pre.pair_eigenvalues[0].numpy())
