"""Shared helpers for the EM tests: running a construction next to the numpy reference."""

from __future__ import annotations

import numpy as np

from tfconstruct.constructions.em import EMConstruction, EMReadout
from tfconstruct.verify.em.reference import MixtureState, initial_state, lloyd, soft_em
from tfconstruct.verify.em.strategies import MixtureInstance
from tfconstruct.verify.em.study import construction_for, run_trajectory

EPS = float(np.finfo(np.float64).eps)


def score_tolerance(beta: float, radius: float, factor: float = 64.0) -> float:
    r"""Round-off allowance for quantities computed from E-step scores $\beta(\langle x,\mu\rangle - s/2)$.

    The scores carry an absolute error of a few $\epsilon\,\beta R^2$ (tolerances
    scale with the data's offset), and responsibilities inherit it.
    """
    return factor * EPS * (1.0 + beta * radius**2)


def mean_errors(readouts: list[EMReadout], reference: list[MixtureState], item: int = 0) -> np.ndarray:
    r"""$\max_k\|\hat\mu_k^{(t)} - \mu_k^{(t)}\|$ for $t = 1..L$ (batch entry ``item``)."""
    return np.array(
        [np.linalg.norm(r.means[item].numpy() - s.means, axis=1).max() for r, s in zip(readouts, reference)]
    )


def soft_pair(
    instance: MixtureInstance, iterations: int, *, width: int = 64, update_weights: bool = True, **options
) -> tuple[EMConstruction, list[EMReadout], list[MixtureState]]:
    r"""Soft EM with $\beta = 1/\sigma^2$ from the instance's initialisation: construction and reference."""
    beta = options.pop("beta", 1.0 / instance.noise**2)
    construction = construction_for(
        instance, iterations, mode="soft", beta=beta, width=width, update_weights=update_weights, **options
    )
    state = initial_state(instance.init_means, variance=1.0 / beta)
    reference = soft_em(instance.points, state, iterations, update_weights=update_weights)
    return construction, run_trajectory(construction, instance), reference


def hard_pair(
    instance: MixtureInstance, iterations: int, beta: float, **options
) -> tuple[EMConstruction, list[EMReadout], list[MixtureState]]:
    """Lloyd from the instance's initialisation: construction and reference."""
    construction = construction_for(instance, iterations, mode="hard", beta=beta, **options)
    return construction, run_trajectory(construction, instance), lloyd(instance.points, instance.init_means, iterations)
