r"""The power family's variants in the resource table (:mod:`tfconstruct.verify.resources`).

``power.mlp``: our power step (contraction head, squared-norm head, the $s^{-1/2}$ MLP of $M$ knots, rescale head,
overwrite MLP); its knob is the MLP's width $M$ and the read-out norm error falls as $M^{-2}$ (the normaliser's
$\tfrac{3}{32}(\ln(b/a)/M)^2$), measured as the largest $|\lVert v_T\rVert - 1|$ over instances whose
$\lambda_1^2$ sweep the domain $[a, b]$ geometrically (so the sup over $s$ is approached).

``power.heads``: the spectral paper's Lemma B.2 shape, the same function $\hat\phi_M$ as $M + 2$ ReLU heads in the
rescale layer (``normaliser="heads"``); the knob is the number of heads $M + 2$.
"""

from __future__ import annotations

import numpy as np
import torch

from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.power import PowerIteration
from tfconstruct.theory.claims import SPECTRAL_POWER

from ..resources import Variant
from .study import spectrum_instances

DIM, TOKENS, DOMAIN, STEPS = 4, 32, (1e-2, 1e2), 30
WIDTHS = (8, 16, 32, 64)


def instances(count: int = 48) -> np.ndarray:
    r"""``count`` instances whose $\lambda_1^2$ run geometrically across the inner 90 % (in $\log s$) of the domain."""
    low, high = np.log(DOMAIN[0]) / 2, np.log(DOMAIN[1]) / 2
    margin = 0.05 * (high - low)
    tops = np.exp(np.linspace(low + margin, high - margin, count))
    return spectrum_instances(np.random.default_rng(0), count, DIM, TOKENS, tops, 0.5, 10.0)[0]


def build(steps: int, width: int, normaliser: str = "mlp") -> tuple[Transformer, torch.Tensor]:
    construction = PowerIteration(DIM, iterations=steps, width=width, domain=DOMAIN, normaliser=normaliser)
    return construction.model, construction.embed(torch.as_tensor(instances(2)))


def norm_error(width: int, normaliser: str = "mlp") -> float:
    r"""$\max_b |\lVert v_T^{(b)}\rVert - 1|$ after $T = 30$ steps (no Newton step). The first steps of the smallest
    instances may read $s < a$ (recorded: it shrinks only that step's norm); the last step's inputs must be inside."""
    construction = PowerIteration(DIM, iterations=STEPS, width=width, domain=DOMAIN, normaliser=normaliser)
    trajectory = construction.trajectory(construction.embed(torch.as_tensor(instances())), outside="record")
    last = trajectory.normaliser_inputs[:, 0, -1]
    if not bool(((last >= DOMAIN[0]) & (last <= DOMAIN[1])).all()):
        raise RuntimeError(f"power.mlp: a last normaliser input left {DOMAIN}; the instances do not fit the domain")
    return float((trajectory.iterates[:, 0, -1].norm(dim=-1) - 1).abs().max())


VARIANTS = (
    Variant(
        name="power.mlp",
        algorithm="power step",
        build=build,
        sizes={"d": DIM, "n": TOKENS},
        knob="width",
        knob_values=WIDTHS,
        error=norm_error,
        expected_rate=-2.0,
        claim=SPECTRAL_POWER,
        note="Ours: the inverse norm is one MLP of M + 2 hinge units.",
    ),
    Variant(
        name="power.heads",
        algorithm="power step",
        build=lambda steps, heads: build(steps, heads - 2, "heads"),
        sizes={"d": DIM, "n": TOKENS},
        knob="heads",
        knob_values=tuple(width + 2 for width in WIDTHS),
        error=lambda heads: norm_error(heads - 2, "heads"),
        expected_rate=-2.0,
        claim=SPECTRAL_POWER,
        note="Lemma B.2's shape: the same right-anchored interpolant as M + 2 ReLU heads in the rescale layer (equal "
        "to power.mlp to float64 round-off); one MLP fewer per step, MLP width independent of M.",
    ),
)
