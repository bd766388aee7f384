"""The tensor power iteration family (tensor in tokens, spectral method of moments), registered like any plugin."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfconstruct.constructions.tensor import (
    OdecoPowerIteration,
    Preprocessed,
    SpectralGMM,
    WhitenedDataPowerIteration,
    preprocess,
)
from tfconstruct.theory import tensor as bounds

from ..family import BenchmarkCase, Family
from . import lesson, reference, section, strategies, sweep, variants

ITERATIONS = 10


def benchmark(tokens: int) -> BenchmarkCase:
    """The spectral GMM transformer, $K = 3$ in $d = 8$, 10 iterations per component, on ``tokens`` samples."""
    means = strategies.build_means(8, 3, separation=5.0, cosine=0.0, seed=0)
    x = strategies.sample_mixture(np.array([0.2, 0.3, 0.5]), means, max(8, tokens), seed=0).x
    pipeline = SpectralGMM(3, iterations=ITERATIONS, width=64, newton_steps=1)
    single = preprocess(x[None], 3)
    construction = pipeline.build(single)

    def stream(batch: int):
        # the same pre-processed instance repeated (pre-processing a batch differs from one instance at round-off,
        # which could put max |y_i| an ulp above the construction's data bound)
        fields = [getattr(single, field.name) for field in dataclasses.fields(single)]
        repeated = [value.expand(batch, *value.shape[1:]) for value in fields]
        return construction.embed(Preprocessed(*repeated), pipeline.seeds)

    return BenchmarkCase(
        f"tensor power (d=8, K=3, J={ITERATIONS})",
        construction.model,
        stream,
        lambda batch: [reference.spectral_gmm(x, 3, pipeline.seeds, ITERATIONS) for _ in range(batch)],
    )


FAMILY = Family(
    name="tensor",
    title="Cubic tensor power iteration and the spectral method of moments",
    constructions={
        "OdecoPowerIteration": OdecoPowerIteration,
        "WhitenedDataPowerIteration": WhitenedDataPowerIteration,
    },
    references={"tensor_power_method": reference.tensor_power_method, "spectral_gmm": reference.spectral_gmm},
    strategies={"odeco_tensors": strategies.odeco_tensors, "spherical_mixtures": strategies.spherical_mixtures},
    bounds=tuple(bounds.BOUNDS),
    studies=(sweep.STUDY,),
    section=section.run,
    tutorials={"tensor": lesson.lesson, "tensor_gmm": lesson.gmm_lesson},
    benchmark=benchmark,
    order=30,
    variants=variants.VARIANTS,
)
