r"""The GD family's variant in the resource table (:mod:`tfconstruct.verify.resources`): one linear-attention head
per gradient-descent step, exact (von Oswald et al.'s shape)."""

from __future__ import annotations

import numpy as np
import torch

from tfconstruct.constructions import Transformer
from tfconstruct.constructions.gd import InContextRegression
from tfconstruct.theory.gd import VON_OSWALD_GD
from tfconstruct.verify import Variant

DIM, TOKENS = 4, 32


def build(steps: int, knob: int) -> tuple[Transformer, torch.Tensor]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((TOKENS, DIM))
    construction = InContextRegression(DIM, steps=steps, eta=0.5)
    return construction.model, construction.embed(X, X @ rng.standard_normal(DIM), rng.standard_normal(DIM))


VARIANTS = (
    Variant(
        name="gd.linear",
        algorithm="gradient-descent step",
        build=build,
        sizes={"d": DIM, "n": TOKENS},
        claim=VON_OSWALD_GD,
        note="Exact: the prediction equals numpy GD to round-off at every depth (the GD report section checks it).",
    ),
)
