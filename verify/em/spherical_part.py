r"""The EM report section's part on :class:`~tfconstruct.constructions.em.SphericalEM` (soft EM with spherical
variance updates):

* **width**: the errors of the means, variances and weights after one step and after $L$ steps against numpy soft
  EM with spherical updates, per width $M$ of the four hinge interpolants, and the order in $M$ (expected $-2$);
* **depth**: the state error after $L = 1, 2, \dots$ steps at one width, each entry checked against the
  propagated bound ``em_spherical_step`` $\to$ ``em_propagation`` ($\kappa$ estimated from the reference map);
* **log-likelihood** of the transformer's iterates and of the reference's, per step;
* **accuracy**: labels (best permutation) of SphericalEM and of the fixed-variance
  :class:`~tfconstruct.constructions.em.EMConstruction` on mixtures with variances 1 and 0.1;
* **real data**: scikit-learn's iris and wine (standardised, $K = 3$) against ``GaussianMixture``
  (``covariance_type="spherical"``, warm-started one iteration at a time), each step checked against the
  propagated bound.

State error: the bounds' norm $(\sum_k\|\Delta\mu_k\|^2 + D^2\|\Delta\pi\|^2 + \sum_k\Delta s_k^2)^{1/2}$
(:func:`~tfconstruct.verify.em.reference.state_distance`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.em.spherical import SphericalEM, SphericalReadout
from tfconstruct.theory.em import EM_PROPAGATION, EM_SPHERICAL_STEP, M
from tfconstruct.verify.bound_check import BoundCheck, check_bound
from tfconstruct.verify.em.reference import (
    MixtureState,
    initial_state,
    sklearn_gmm_trajectory,
    soft_em,
    spherical_log_likelihood,
    state_distance,
    variance_step_lipschitz,
)
from tfconstruct.verify.em.shapes import ShapePart
from tfconstruct.verify.em.strategies import VarianceInstance, build_variance_mixture
from tfconstruct.verify.em.study import construction_for
from tfconstruct.verify.rates import fit_slope
from tfconstruct.verify.results import Check, ReportContext

FLOOR, WEIGHT_FLOOR = 1e-8, 0.02
RATE_TOLERANCE = 0.35  # on the fitted order in M, as tests/test_em_spherical.py
LIKELIHOOD_TOLERANCE = 1e-3  # |log-likelihood per point, transformer - reference| at the depth study's width
REAL_VARIANCE_RANGE = (0.1, 2.0)  # standardised data: total variance 1 per coordinate
REAL_SEED = 0  # initial means: K data points drawn with this seed
QUANTITIES = ("means", "variances", "weights")


@dataclass(frozen=True)
class SphericalStudy:
    """Sizes of the part's studies; ``quick`` is a smoke-sized version."""

    widths: tuple[int, ...]
    width_steps: int
    depth: int
    depth_width: int
    separations: tuple[float, ...]
    accuracy_seeds: int
    accuracy_steps: int
    accuracy_width: int
    real_width: int
    real_steps: int

    @classmethod
    def for_context(cls, context: ReportContext) -> "SphericalStudy":
        if context.quick:
            return cls((16, 64), 5, 5, 64, (2.0, 3.0), 2, 10, 64, 64, 5)
        return cls((16, 32, 64, 128), 5, 20, 128, (2.0, 3.0, 4.0), 5, 10, 128, 128, 20)


def spherical_for(
    points: np.ndarray, start: MixtureState, width: int, iterations: int, variance_range: tuple[float, float]
) -> SphericalEM:
    """A :class:`SphericalEM` sized for ``points`` and ``start`` (their $d$, $K$ and largest coordinate)."""
    return SphericalEM(
        points.shape[1],
        components=start.means.shape[0],
        iterations=iterations,
        width=width,
        radius=float(max(np.abs(points).max(), np.abs(start.means).max())),
        variance_range=variance_range,
        weight_floor=WEIGHT_FLOOR,
        floor=FLOOR,
    )


def spherical_trajectory(
    points: np.ndarray, start: MixtureState, width: int, iterations: int, variance_range: tuple[float, float]
) -> list[SphericalReadout]:
    """The read-outs after each of ``iterations`` SphericalEM steps from ``start``."""
    construction = spherical_for(points, start, width, iterations, variance_range)
    return construction.trajectory(construction.embed(points, start.means, start.weights, start.variances))


def as_state(readout: SphericalReadout) -> MixtureState:
    """The first batch entry of a read-out as a :class:`MixtureState` (with its responsibilities when read)."""
    resp = None if readout.responsibilities is None else readout.responsibilities[0].numpy()
    return MixtureState(readout.means[0].numpy(), readout.weights[0].numpy(), readout.variances[0].numpy(), resp)


def kappa_estimate(points: np.ndarray, start: MixtureState, reference: list[MixtureState], diameter: float) -> float:
    r"""$\hat\kappa$: the largest local Lipschitz constant of the spherical EM map along the reference trajectory
    (an estimate, not a proof)."""
    states = [start] + [MixtureState(s.means, s.weights, s.variances) for s in reference[:-1]]
    return max(variance_step_lipschitz(points, s, diameter, "spherical") for s in states)


def step_bound(
    diameter: float, width: int, pi_min: float, clusters: int, dim: int, variance_range: tuple[float, float]
) -> float:
    """:data:`~tfconstruct.theory.em.EM_SPHERICAL_STEP` at these values."""
    s_min, s_max = variance_range
    return EM_SPHERICAL_STEP(
        D=diameter, M=width, epsilon=FLOOR, pi_min=pi_min, pi_floor=WEIGHT_FLOOR, K=clusters, d=dim,
        s_min=s_min, s_max=s_max,
    )  # fmt: skip


def propagated_checks(
    points: np.ndarray,
    start: MixtureState,
    readouts: list[SphericalReadout],
    reference: list[MixtureState],
    width: int,
    variance_range: tuple[float, float],
    instance: dict,
) -> tuple[np.ndarray, list[BoundCheck]]:
    """State errors per step against ``reference`` and their checks against the propagated bound (not raising)."""
    diameter = float(np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1).max()))
    kappa = kappa_estimate(points, start, reference, diameter)
    pi_min = min(min(s.weights.min() for s in reference), min(float(r.weights.min()) for r in readouts))
    step = step_bound(diameter, width, pi_min, start.means.shape[0], points.shape[1], variance_range)
    errors = np.array([state_distance(as_state(r), s, diameter) for r, s in zip(readouts, reference)])
    checks = [
        check_bound(
            EM_PROPAGATION,
            error,
            instance=instance | {"M": width, "L": t},
            raise_on_violation=False,
            epsilon_step=step,
            kappa=kappa,
            L=t,
        )  # fmt: skip
        for t, error in enumerate(errors, start=1)
    ]
    return errors, checks


def best_permutation_accuracy(labels: np.ndarray, truth: np.ndarray, clusters: int) -> float:
    """The fraction of ``labels`` equal to ``truth`` under the best relabelling."""
    return max(float(np.mean(np.asarray(p)[labels] == truth)) for p in itertools.permutations(range(clusters)))


def slack_summary(checks: list[BoundCheck]) -> str:
    """min / median slack (bound / measured) of ``checks``."""
    slacks = np.array([c.slack for c in checks])
    return f"min slack {slacks.min():.3g}, median slack {np.median(slacks):.3g}"


def spherical_part(context: ReportContext, bound_checks: list[BoundCheck]) -> ShapePart:
    """The five studies of the module docstring; their bound checks are appended to ``bound_checks``."""
    study = SphericalStudy.for_context(context)
    instance = build_variance_mixture(context.seed, [60, 90, 150], 4, [1.0, 0.3, 0.1], separation=3.0, init_shift=0.5)
    construction = spherical_for(instance.points, instance.start, 64, 1, instance.variance_range)
    parts = [
        _width_study(study, instance),
        _depth_study(study, instance, bound_checks),
        _accuracy_study(context, study),
        *(_real_data_study(name, study, bound_checks) for name in ("iris", "wine")),
    ]
    intro = [
        "### Spherical variance updates (SphericalEM)",
        "",
        f"`SphericalEM`: one EM step with the variance updated is {len(construction.iteration)} sublayers "
        f"({construction.iteration.depth} attention, at most {construction.iteration.max_heads} heads; residual "
        f"width {construction.layout.dim} at K = {instance.clusters}, d = {instance.dim}; MLP width "
        f"{construction.model.max_mlp_width} at M = 64). One knob M: knot intervals of the hinges log w, log pi, "
        rf"1/s and log s ($\varepsilon = {FLOOR:g}$, $\pi_{{floor}} = {WEIGHT_FLOOR:g}$). Synthetic instance: "
        f"n = {instance.points.shape[0]} points (60 / 90 / 150) in d = {instance.dim}, variances 1, 0.3, 0.1, "
        f"centres {instance.separation:g} apart, variance_range = {instance.variance_range}, started off the "
        "truth. State error: (sum_k ||dmu_k||^2 + D^2 ||dpi||^2 + sum_k ds_k^2)^(1/2).",
        "",
    ]
    return ShapePart(
        intro + [line for part in parts for line in part.markdown],
        {"spherical": {key: value for part in parts for key, value in part.data.items()}},
        [c for part in parts for c in part.checks],
    )


def _width_study(study: SphericalStudy, instance: VarianceInstance) -> ShapePart:
    steps = study.width_steps
    reference = soft_em(instance.points, instance.start, steps, variance_update="spherical")
    errors = {q: np.zeros((len(study.widths), steps)) for q in QUANTITIES}
    for w, width in enumerate(study.widths):
        readouts = spherical_trajectory(instance.points, instance.start, width, steps, instance.variance_range)
        for t, (ours, theirs) in enumerate(zip(readouts, reference)):
            for q in QUANTITIES:
                errors[q][w, t] = np.abs(getattr(as_state(ours), q) - getattr(theirs, q)).max()
    worst = np.max([errors[q].max(axis=1) for q in QUANTITIES], axis=0)
    slope = fit_slope(study.widths, worst)
    order = float(sp.simplify(M * sp.diff(EM_SPHERICAL_STEP.rate, M) / EM_SPHERICAL_STEP.rate))
    lines = [
        "#### Error against the width M",
        "",
        f"Max abs error against numpy soft EM with spherical updates after step 1 and step L = {steps}:",
        "",
        f"| M | means, t = 1 | means, t = {steps} | variances, t = 1 | variances, t = {steps} | weights, t = 1 | "
        f"weights, t = {steps} |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {width} | " + " | ".join(f"{errors[q][w, t]:.2e}" for q in QUANTITIES for t in (0, steps - 1)) + " |"
            for w, width in enumerate(study.widths)
        ],
        "",
        f"Fitted order in M of the largest error over quantities and steps: {slope:.2f} (the bound's order "
        f"{order:g}). The weights after step 1 are exact (the first key is exact and pi^+ is a mean of exact "
        "responsibilities).",
        "",
    ]
    check = Check(
        f"SphericalEM: error falls as M^{order:g}",
        abs(slope - order) <= RATE_TOLERANCE,
        f"fitted {slope:.3f} over M = {list(study.widths)}",
        f"within {RATE_TOLERANCE} of {order:g}",
    )
    data = {"widths": list(study.widths), "steps": steps, "errors": {q: e.tolist() for q, e in errors.items()}}
    return ShapePart(lines, {"width": data}, [check])


def _depth_study(study: SphericalStudy, instance: VarianceInstance, bound_checks: list[BoundCheck]) -> ShapePart:
    width, steps = study.depth_width, study.depth
    points, start = instance.points, instance.start
    reference = soft_em(points, start, steps, variance_update="spherical")
    readouts = spherical_trajectory(points, start, width, steps, instance.variance_range)
    errors, checks = propagated_checks(
        points, start, readouts, reference, width, instance.variance_range, {"study": "spherical depth"}
    )
    bound_checks.extend(checks)
    ours = np.array([spherical_log_likelihood(points, as_state(r)) for r in readouts])
    theirs = np.array([spherical_log_likelihood(points, s) for s in reference])
    n = points.shape[0]
    gap = float(np.abs(ours - theirs).max() / n)
    monotone = bool(np.all(np.diff(theirs) >= -1e-9 * np.abs(theirs[1:])))
    lines = [
        f"#### Error against the depth L (M = {width})",
        "",
        "State error after each step, checked against em_propagation with epsilon_step = em_spherical_step and "
        f"kappa = {checks[0].values['kappa']:.3g} (the largest central-difference Lipschitz constant of the "
        "spherical EM map along the reference, in the state norm). kappa > 1 makes the propagated bound grow "
        f"geometrically in L; it is very loose here ({slack_summary(checks)}). Log-likelihood sum_i log p(x_i) "
        "of each iterate:",
        "",
        "| L | state error | propagated bound | log-lik. TF | log-lik. EM | difference |",
        "|---|---|---|---|---|---|",
        *[
            f"| {t} | {errors[t - 1]:.2e} | {c.bound:.2e} | {ours[t - 1]:.6f} | {theirs[t - 1]:.6f} | "
            f"{ours[t - 1] - theirs[t - 1]:.2e} |"
            for t, c in enumerate(checks, start=1)
        ],
        "",
    ]
    checks_out = [
        Check(
            "SphericalEM depth errors within the propagated bound",
            all(c.passed for c in checks),
            f"{sum(not c.passed for c in checks)} violations in {len(checks)}; {slack_summary(checks)}",
            "0 violations",
        ),
        Check(
            "SphericalEM log-likelihood = EM's per step",
            gap <= LIKELIHOOD_TOLERANCE,
            f"max |difference| / n = {gap:.2e} over L = 1..{steps}",
            f"<= {LIKELIHOOD_TOLERANCE:g}",
        ),
        Check("reference EM log-likelihood non-decreasing", monotone, f"L = 1..{steps}", "non-decreasing"),
    ]
    data = {
        "width": width,
        "errors": errors.tolist(),
        "bounds": [c.bound for c in checks],
        "kappa": checks[0].values["kappa"],
        "log_likelihood": {"transformer": ours.tolist(), "reference": theirs.tolist()},
    }
    return ShapePart(lines, {"depth": data}, checks_out)


def _accuracy_study(context: ReportContext, study: SphericalStudy) -> ShapePart:
    steps, width = study.accuracy_steps, study.accuracy_width
    rows = []
    for separation in study.separations:
        scores = []
        for s in range(study.accuracy_seeds):
            instance = build_variance_mixture(
                context.seed * 1000 + 700 + s, [100, 50, 50], 2, [1.0, 0.1, 0.1], separation=separation,
                init_shift=0.3,
            )  # fmt: skip
            k, start = instance.clusters, instance.start
            spherical = as_state(
                spherical_trajectory(instance.points, start, width, steps, instance.variance_range)[-1]
            )
            mixture = instance.fixed_variance()
            fixed = construction_for(
                mixture, steps, beta=1.0 / mixture.noise**2, width=width, floor=FLOOR, weight_floor=WEIGHT_FLOOR
            )
            fixed_readout = fixed.trajectory(fixed.embed(mixture.points, mixture.init_means, start.weights))[-1]
            em_spherical = soft_em(instance.points, start, steps, variance_update="spherical")[-1]
            fixed_start = initial_state(start.means, start.weights, mixture.noise**2)
            em_fixed = soft_em(instance.points, fixed_start, steps)[-1]
            scores.append(
                [
                    best_permutation_accuracy(labels, instance.labels, k)
                    for labels in (
                        spherical.labels,
                        fixed_readout.labels[0].numpy(),
                        em_spherical.labels,
                        em_fixed.labels,
                    )
                ]
            )
        rows.append((separation, np.array(scores)))
    lines = [
        "#### Clustering accuracy: spherical against fixed variance",
        "",
        f"K = 3 clusters of 100 / 50 / 50 points in d = 2 with variances 1, 0.1, 0.1 (ratio 10), started within "
        f"0.3 of the centres; L = {steps} steps at M = {width}. The fixed-variance `EMConstruction` uses the start's "
        "pooled variance sum_k pi_k s_k. Accuracy against the true labels (best permutation), mean (min) over "
        f"{study.accuracy_seeds} seeds:",
        "",
        "| separation | SphericalEM | fixed-variance TF | numpy spherical EM | numpy fixed EM |",
        "|---|---|---|---|---|",
        *[
            f"| {separation:g} | "
            + " | ".join(f"{scores[:, j].mean():.3f} ({scores[:, j].min():.3f})" for j in range(4))
            + " |"
            for separation, scores in rows
        ],
        "",
    ]
    margins = np.concatenate([scores[:, 0] - scores[:, 1] for _, scores in rows])
    check = Check(
        "SphericalEM at least as accurate as fixed-variance EM (variance ratio 10)",
        bool(np.all(margins >= 0)),
        f"smallest per-instance margin {margins.min():.3f} over {margins.size} instances",
        ">= 0 on every instance",
    )
    data = [
        {
            "separation": separation,
            "accuracy": scores.tolist(),
            "columns": ["SphericalEM", "fixed-variance TF", "numpy spherical EM", "numpy fixed EM"],
        }
        for separation, scores in rows
    ]
    return ShapePart(lines, {"accuracy": data}, [check])


def standardised(name: str) -> np.ndarray:
    """scikit-learn's ``iris`` or ``wine`` features, each column centred and scaled to unit variance."""
    from sklearn.datasets import load_iris, load_wine

    points = {"iris": load_iris, "wine": load_wine}[name]().data.astype(np.float64)
    return (points - points.mean(axis=0)) / points.std(axis=0)


def real_start(points: np.ndarray, clusters: int = 3) -> MixtureState:
    """Means: ``clusters`` data points drawn with :data:`REAL_SEED`; uniform weights; unit variances."""
    rng = np.random.default_rng(REAL_SEED)
    return initial_state(points[rng.choice(points.shape[0], clusters, replace=False)])


def real_data_errors(
    name: str, width: int, steps: int
) -> tuple[np.ndarray, list[BoundCheck], list[MixtureState], list[SphericalReadout]]:
    """State errors of SphericalEM against ``GaussianMixture`` warm-started step by step on a standardised data set,
    their propagated-bound checks, and both trajectories.

    Raises:
        DomainError: when an iterate leaves the construction's domain (e.g. a variance outside
            :data:`REAL_VARIANCE_RANGE`).
    """
    points = standardised(name)
    start = real_start(points)
    sklearn = sklearn_gmm_trajectory(points, start, steps=steps)
    readouts = spherical_trajectory(points, start, width, steps, REAL_VARIANCE_RANGE)
    errors, checks = propagated_checks(points, start, readouts, sklearn, width, REAL_VARIANCE_RANGE, {"data": name})
    return errors, checks, sklearn, readouts


def _real_data_study(name: str, study: SphericalStudy, bound_checks: list[BoundCheck]) -> ShapePart:
    width, steps = study.real_width, study.real_steps
    heading = [f"#### {name} (standardised, K = 3) against GaussianMixture", ""]
    try:
        errors, checks, sklearn, readouts = real_data_errors(name, width, steps)
    except DomainError as error:
        return ShapePart(
            heading + [f"The run left the construction's domain: {error}", ""],
            {name: {"domain_error": str(error)}},
            [Check(f"SphericalEM on {name} stays in its domain", False, str(error), "no DomainError")],
        )
    bound_checks.extend(checks)
    means = [float(np.abs(as_state(r).means - s.means).max()) for r, s in zip(readouts, sklearn)]
    variances = [float(np.abs(as_state(r).variances - s.variances).max()) for r, s in zip(readouts, sklearn)]
    lines = heading + [
        f'`GaussianMixture(covariance_type="spherical", weights_init, means_init, precisions_init, max_iter=1, '
        f"n_init=1, tol=0, reg_covar=0, warm_start=True)` fitted once per step, from means at {len(sklearn[0].weights)}"
        f" data points (seed {REAL_SEED}), uniform weights and unit variances; M = {width}, variance_range = "
        f"{REAL_VARIANCE_RANGE} chosen from the data (standardised: total variance 1 per coordinate; the "
        "run raised no DomainError, so every variance it computed stayed inside it). Each state error checked against em_propagation "
        f"(kappa = {checks[0].values['kappa']:.3g}; {slack_summary(checks)}):",
        "",
        "| L | state error | max abs Δ means | max abs Δ variances | propagated bound |",
        "|---|---|---|---|---|",
        *[
            f"| {t} | {errors[t - 1]:.2e} | {means[t - 1]:.2e} | {variances[t - 1]:.2e} | {c.bound:.2e} |"
            for t, c in enumerate(checks, start=1)
        ],
        "",
    ]
    check = Check(
        f"SphericalEM on {name} within the propagated bound of GaussianMixture",
        all(c.passed for c in checks),
        f"{sum(not c.passed for c in checks)} violations in {len(checks)}; largest error {errors.max():.2e}",
        "0 violations",
    )
    data = {"width": width, "errors": errors.tolist(), "bounds": [c.bound for c in checks]}
    return ShapePart(lines, {name: data}, [check])
