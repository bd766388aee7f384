"""Measurements shared by the EM report section and the EM sweep: transformer and reference trajectories."""

from __future__ import annotations

import numpy as np

from tfconstruct.constructions.em import EMConstruction, EMReadout
from tfconstruct.verify.em.reference import MixtureState, initial_state, soft_em, step_lipschitz
from tfconstruct.verify.em.strategies import MixtureInstance

FLOOR = 1e-8  # responsibility floor epsilon of the log interpolant
WEIGHT_FLOOR = 1e-2  # lower end of the log-pi interpolant


def construction_for(instance: MixtureInstance, iterations: int, **options) -> EMConstruction:
    """An :class:`EMConstruction` of ``iterations`` iterations sized for ``instance`` (its $d$, $K$ and radius)."""
    return EMConstruction(
        instance.dim, components=instance.clusters, iterations=iterations, radius=instance.radius, **options
    )


def run_trajectory(construction: EMConstruction, instance: MixtureInstance, device: str = "cpu") -> list[EMReadout]:
    """The read-outs after each iteration on ``device``, from the instance's points and initial means."""
    construction.model.to(device)
    return construction.trajectory(construction.embed(instance.points, instance.init_means, device=device))


def soft_trajectory(instance: MixtureInstance, iterations: int, width: int, device: str) -> list[EMReadout]:
    """Read-outs after each of ``iterations`` soft-EM transformer iterations (width ``width``) on ``device``."""
    construction = construction_for(
        instance, iterations, beta=1.0 / instance.noise**2, width=width, floor=FLOOR, weight_floor=WEIGHT_FLOOR
    )
    return run_trajectory(construction, instance, device)


def hard_trajectory(instance: MixtureInstance, iterations: int, beta: float, device: str) -> list[EMReadout]:
    """Read-outs after each of ``iterations`` Lloyd transformer iterations at inverse temperature ``beta``."""
    return run_trajectory(construction_for(instance, iterations, mode="hard", beta=beta), instance, device)


def mean_errors(readouts: list[EMReadout], reference: list[MixtureState]) -> np.ndarray:
    r"""$\max_k\lVert\hat\mu_k - \mu_k\rVert$ per iteration against the reference states."""
    return np.array(
        [np.linalg.norm(r.means[0].cpu().numpy() - s.means, axis=1).max() for r, s in zip(readouts, reference)]
    )


def reference_soft(instance: MixtureInstance, iterations: int) -> list[MixtureState]:
    r"""The numpy soft-EM trajectory (fixed variance $\sigma^2$) from the instance's initial means."""
    return soft_em(instance.points, initial_state(instance.init_means, variance=instance.noise**2), iterations)


def contraction_estimate(instance: MixtureInstance, reference: list[MixtureState]) -> float:
    r"""$\hat\kappa$: the largest local Lipschitz constant of the EM map along the reference trajectory (an estimate, not a proof)."""
    states = [initial_state(instance.init_means, variance=instance.noise**2)]
    states += [MixtureState(s.means, s.weights, s.variances) for s in reference[:-1]]
    return max(step_lipschitz(instance.points, s, weight_scale=instance.diameter) for s in states)


def step_values(instance: MixtureInstance, width: int, pi_min: float) -> dict[str, float]:
    """Symbol values of :data:`tfconstruct.theory.em.EM_SOFT_STATE_STEP` for this instance and width."""
    return dict(D=instance.diameter, M=width, epsilon=FLOOR, pi_min=pi_min, pi_floor=WEIGHT_FLOOR, K=instance.clusters)
