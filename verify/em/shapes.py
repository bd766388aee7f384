r"""The EM report section's part on TGMM Theorem 1's shape (:class:`~tfconstruct.constructions.em.TwoBlockEM`):
its mean error against numpy soft EM after each of $L$ steps, per width $M$ of the log and square interpolants,
every entry checked against the propagated bound ``em_two_block_step`` $\to$ ``em_propagation``, and the order in
$M$ fitted from the largest error over the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from tfconstruct.constructions.em import TwoBlockEM
from tfconstruct.theory.em import EM_PROPAGATION, EM_TWO_BLOCK_STEP, M
from tfconstruct.verify.bound_check import BoundCheck, check_bound
from tfconstruct.verify.em.reference import MixtureState, initial_state, soft_em, step_lipschitz
from tfconstruct.verify.em.strategies import MixtureInstance
from tfconstruct.verify.rates import fit_slope
from tfconstruct.verify.results import Check

FLOOR, WEIGHT_FLOOR, STEPS = 1e-8, 0.02, 5
TOLERANCE = 0.3  # on the fitted order (pre-asymptotic at M = 8: responsibilities within a knot interval of 1)


@dataclass
class ShapePart:
    markdown: list[str]
    data: dict
    checks: list[Check]
    figures: list[str] = field(default_factory=list)


def two_block(instance: MixtureInstance, width: int) -> TwoBlockEM:
    return TwoBlockEM(
        instance.dim,
        components=instance.clusters,
        iterations=STEPS,
        width=width,
        radius=instance.coordinate_radius,
        floor=FLOOR,
        weight_floor=WEIGHT_FLOOR,
    )


def tgmm_shape_part(
    instances: list[MixtureInstance], widths: tuple[int, ...], bound_checks: list[BoundCheck]
) -> ShapePart:
    """Errors per step and width on every instance (unit noise), each checked against its propagated bound."""
    errors = np.zeros((len(instances), len(widths), STEPS))
    for i, instance in enumerate(instances):
        reference = soft_em(instance.points, initial_state(instance.init_means), STEPS)
        states = [initial_state(instance.init_means)] + [
            MixtureState(s.means, s.weights, s.variances) for s in reference
        ]
        kappa = max(step_lipschitz(instance.points, s, weight_scale=instance.diameter) for s in states[:-1])
        for w, width in enumerate(widths):
            construction = two_block(instance, width)
            readouts = construction.trajectory(construction.embed(instance.points, instance.init_means))
            pi_min = min(min(s.weights.min() for s in reference), min(float(r.weights.min()) for r in readouts))
            step = EM_TWO_BLOCK_STEP(
                D=instance.diameter, M=width, epsilon=FLOOR, pi_min=pi_min, pi_floor=WEIGHT_FLOOR,
                K=instance.clusters, d=instance.dim, R=construction.radius,
            )  # fmt: skip
            for t, (ours, theirs) in enumerate(zip(readouts, reference)):
                errors[i, w, t] = np.linalg.norm(ours.means[0].numpy() - theirs.means, axis=1).max()
                bound_checks.append(
                    check_bound(
                        EM_PROPAGATION,
                        errors[i, w, t],
                        instance=instance.summary() | {"shape": "tgmm", "M": width},
                        raise_on_violation=False,
                        epsilon_step=step,
                        kappa=kappa,
                        L=t + 1,
                    )  # fmt: skip
                )
    order = float(sp.simplify(M * sp.diff(EM_TWO_BLOCK_STEP.rate, M) / EM_TWO_BLOCK_STEP.rate))
    worst = np.median(errors.max(axis=2), axis=0)
    slope = fit_slope(widths, worst)
    lines = [
        "### TGMM Theorem 1's shape (two blocks per step)",
        "",
        "`TwoBlockEM`: an E block (one softmax head, exact responsibilities; an MLP writing log w) and an M block "
        "(a softmax head for the means without division, a ReLU head for the weights, an MLP refreshing "
        "c = log pi - ||mu||^2/2 by log and square interpolants of M knots): 2 attention + 2 MLP sublayers and at "
        "most 2 heads per step. Median over the instances of max_k ||mu_TF - mu_EM|| after each step (unit noise):",
        "",
        "| M | " + " | ".join(f"t = {t}" for t in range(1, STEPS + 1)) + " |",
        "|---|" + "---|" * STEPS,
        *[
            f"| {width} | " + " | ".join(f"{e:.2e}" for e in np.median(errors[:, w], axis=0)) + " |"
            for w, width in enumerate(widths)
        ],
        "",
        f"Fitted order in M of the largest error over the steps: {slope:.2f} (bound's order {order:g}).",
        "",
    ]
    check = Check(
        f"TGMM two-block EM: error falls as M^{order:g}",
        abs(slope - order) <= TOLERANCE,
        f"fitted {slope:.3f} over M = {list(widths)}",
        f"within {TOLERANCE} of {order:g}",
    )
    return ShapePart(lines, {"tgmm_two_block": {"widths": list(widths), "errors": errors.tolist()}}, [check])
