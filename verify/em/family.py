"""The EM family (soft EM and Lloyd for Gaussian mixtures), registered like any plugin."""

from __future__ import annotations

import numpy as np

from tfconstruct.constructions.em import EMConstruction, TwoBlockEM
from tfconstruct.constructions.em.spherical import SphericalEM
from tfconstruct.theory import em as bounds

from ..family import BenchmarkCase, Family
from . import lesson, reference, section, strategies, sweep, variants
from .study import construction_for

ITERATIONS = 5


def benchmark(tokens: int) -> BenchmarkCase:
    """Soft EM, $K = 4$ clusters in $d = 8$, $L = 5$ iterations, width 64, on about ``tokens`` points."""
    instance = strategies.build_mixture(0, 4, 8, max(1, tokens // 4), separation=4.0, init_radius=0.5)
    construction = construction_for(instance, ITERATIONS, width=64)
    start = reference.initial_state(instance.init_means)
    return BenchmarkCase(
        f"soft EM (d=8, K=4, L={ITERATIONS})",
        construction.model,
        lambda batch: construction.embed(
            np.repeat(instance.points[None], batch, 0), np.repeat(instance.init_means[None], batch, 0)
        ),
        lambda batch: [reference.soft_em(instance.points, start, ITERATIONS) for _ in range(batch)],
    )


FAMILY = Family(
    name="em",
    title="EM for Gaussian mixtures (soft EM and Lloyd)",
    constructions={"EMConstruction": EMConstruction, "tgmm_two_block": TwoBlockEM, "spherical": SphericalEM},
    references={
        "soft_em": reference.soft_em,
        "lloyd": reference.lloyd,
        "sklearn_gmm_steps": reference.sklearn_gmm_steps,
    },
    strategies={"mixtures": strategies.mixtures, "unit_variance_mixtures": strategies.unit_variance_mixtures},
    bounds=tuple(bounds.BOUNDS),
    studies=(sweep.STUDY,),
    section=section.run,
    tutorials={"em": lesson.lesson},
    benchmark=benchmark,
    order=20,
    variants=variants.VARIANTS,
)
