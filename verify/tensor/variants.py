r"""The tensor family's variants in the resource table (:mod:`tfconstruct.verify.resources`).

``tensor.in_tokens_signed`` and ``tensor.in_tokens_shifted``: TGMM Theorem 2's shape, the cubic tensor held in
$k$ tokens and $T(I, v, v)$ computed by ReLU heads, one pair per tensor index (``signed``) or one per index plus a
shift head (``shifted``); the knob is the normaliser's width $M$ and the read-out norm error falls as $M^{-2}$,
measured as the largest $|\lVert v_J\rVert - 1|$ over odeco tensors whose weights sweep the domain.
"""

from __future__ import annotations

import numpy as np
import torch

from tfconstruct.constructions.gadgets import NormalisationDomain
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.tensor import OdecoPowerIteration
from tfconstruct.theory.claims import TGMM_TENSOR

from ..resources import Variant
from .strategies import build_odeco

DIM, STEPS, LOW, HIGH = 4, 12, 0.5, 4.0
WIDTHS = (16, 32, 64, 128)
DOMAIN = NormalisationDomain.for_weights(LOW, HIGH)


def tensors(count: int = 24) -> np.ndarray:
    """``count`` rank-1 odeco tensors (weight on the seed's best component) with weights geometric in [LOW, HIGH]."""
    weights = np.geomspace(LOW, HIGH, count)
    return np.stack([build_odeco(np.array([w]), DIM, seed).tensor for seed, w in enumerate(weights)])


def construction(steps: int, width: int, heads: str) -> OdecoPowerIteration:
    return OdecoPowerIteration(DIM, components=1, iterations=steps, width=width, domain=DOMAIN, heads=heads)


def variant(heads: str) -> Variant:
    def build(steps: int, width: int) -> tuple[Transformer, torch.Tensor]:
        built = construction(steps, width, heads)
        return built.model, built.embed(tensors(2))

    def norm_error(width: int) -> float:
        r"""$\max_b |\lVert v_J^{(b)}\rVert - 1|$ after $J$ = ``STEPS`` steps (no Newton step)."""
        built = construction(STEPS, width, heads)
        trajectory = built.trajectory(built.embed(tensors()), outside="record")  # an early s < a only shrinks
        return float((trajectory.iterates[:, 0, -1].norm(dim=-1) - 1).abs().max())

    return Variant(
        name=f"tensor.in_tokens_{heads}",
        algorithm="cubic tensor power step",
        build=build,
        sizes={"d": DIM},
        knob="width",
        knob_values=WIDTHS,
        error=norm_error,
        expected_rate=-2.0,
        claim=TGMM_TENSOR,
        note=f"T(I, v, v) by {heads} ReLU heads over the k tensor tokens; the inverse norm by an MLP.",
    )


VARIANTS = (variant("signed"), variant("shifted"))
