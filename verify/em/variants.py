r"""The EM family's variants in the resource table (:mod:`tfconstruct.verify.resources`).

``em.ours``: our soft EM step (E-step attention, log-responsibility MLP, M-step attention, moves, the exact norm
refresh by a linear head): its knob is the width $M$ of the log interpolants and the mean error after
``STEPS`` steps against numpy soft EM falls as $M^{-2}$. Counted against TGMM's Theorem 1 shape (2 attention
layers per EM step, $O(1)$ heads).

``em.tgmm_two_block``: TGMM Theorem 1's shape (:class:`~tfconstruct.constructions.em.TwoBlockEM`): one E block and
one M block per step, the log and square interpolants of $M$ knots; the knob is $M$, the same error measure.
"""

from __future__ import annotations

import torch

from tfconstruct.constructions.em import TwoBlockEM
from tfconstruct.constructions.model import Transformer
from tfconstruct.theory.claims import TGMM_EM

from ..resources import Variant
from .reference import initial_state, soft_em
from .strategies import MixtureInstance, build_mixture
from .study import construction_for

DIM, CLUSTERS, PER_CLUSTER, STEPS = 3, 3, 40, 3
WIDTHS = (8, 16, 32, 64)


def instance() -> MixtureInstance:
    """One well-separated mixture, initialised near the truth."""
    return build_mixture(0, CLUSTERS, DIM, PER_CLUSTER, separation=4.0, init_radius=0.7)


def build(steps: int, width: int) -> tuple[Transformer, torch.Tensor]:
    mixture = instance()
    construction = construction_for(mixture, steps, beta=1.0 / mixture.noise**2, width=width)
    return construction.model, construction.embed(mixture.points, mixture.init_means)


def two_block(mixture: MixtureInstance, steps: int, width: int) -> TwoBlockEM:
    """TGMM's shape sized for ``mixture``: its radius bounds every coordinate of the points and the means."""
    radius = float(max(abs(mixture.points).max(), abs(mixture.init_means).max())) + 0.5
    return TwoBlockEM(DIM, components=CLUSTERS, iterations=steps, width=width, radius=radius, weight_floor=0.05)


def build_two_block(steps: int, width: int) -> tuple[Transformer, torch.Tensor]:
    mixture = instance()
    construction = two_block(mixture, steps, width)
    return construction.model, construction.embed(mixture.points, mixture.init_means)


def mean_error(width: int, shape: str = "ours") -> float:
    r"""$\max_k \lVert\hat\mu_k - \mu_k\rVert$ after ``STEPS`` soft EM steps, against numpy from the same start."""
    mixture = instance()
    construction = (
        construction_for(mixture, STEPS, beta=1.0 / mixture.noise**2, width=width)
        if shape == "ours"
        else two_block(mixture, STEPS, width)
    )
    readout = construction.run(mixture.points, mixture.init_means)
    reference = soft_em(mixture.points, initial_state(mixture.init_means, variance=mixture.noise**2), STEPS)[-1]
    return float((readout.means[0] - torch.as_tensor(reference.means)).norm(dim=-1).max())


VARIANTS = (
    Variant(
        name="em.ours",
        algorithm="soft EM step",
        build=build,
        sizes={"d": DIM, "K": CLUSTERS, "n": CLUSTERS * PER_CLUSTER},
        knob="width",
        knob_values=WIDTHS,
        error=mean_error,
        expected_rate=-2.0,
        claim=TGMM_EM,
        note="Ours: 3 attention + 3 MLP sublayers per step, at most 2 heads; the norm refresh is exact.",
    ),
    Variant(
        name="em.tgmm_two_block",
        algorithm="soft EM step",
        build=build_two_block,
        sizes={"d": DIM, "K": CLUSTERS, "n": CLUSTERS * PER_CLUSTER},
        knob="width",
        knob_values=WIDTHS,
        error=lambda width: mean_error(width, "two_block"),
        expected_rate=-2.0,
        claim=TGMM_EM,
        note="TGMM Theorem 1's shape: E block (softmax head, log-responsibility MLP) and M block (softmax head for "
        "the means without division, ReLU head for the weights, MLP refreshing c by log and square interpolants).",
    ),
)
