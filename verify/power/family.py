"""The power-iteration family (top-k PCA, 2-class spectral clustering), registered like any plugin."""

from __future__ import annotations

import numpy as np
import torch

from tfconstruct.constructions.power import PowerIteration, SpectralClustering, default_seeds
from tfconstruct.theory import power as bounds

from ..family import BenchmarkCase, Family
from . import lesson, reference, section, strategies, sweep, variants

DIM, COMPONENTS, STEPS = 16, 2, 20


def benchmark(tokens: int) -> BenchmarkCase:
    """Top-2 PCA of $n$ = ``tokens`` points in $d = 16$ (20 steps and one Newton step per component), linear heads."""
    X = np.random.default_rng(0).standard_normal((1, tokens, DIM)) * np.linspace(2.0, 0.5, DIM)
    construction = PowerIteration.for_data(
        X, components=COMPONENTS, iterations=STEPS, width=32, newton_steps=1, attention="linear"
    )
    seeds = default_seeds(DIM, COMPONENTS)
    return BenchmarkCase(
        f"power, linear (d={DIM}, k={COMPONENTS}, T={STEPS})",
        construction.model,
        lambda batch: construction.embed(torch.as_tensor(np.repeat(X, batch, axis=0))),
        lambda batch: [
            reference.deflated_power_method(reference.second_moment(X[0]), seeds, STEPS, newton=1) for _ in range(batch)
        ],
    )


FAMILY = Family(
    name="power",
    title="Power iteration (PCA) and 2-class spectral clustering",
    constructions={"PowerIteration": PowerIteration, "SpectralClustering": SpectralClustering},
    references={
        "power_iteration": reference.power_iteration,
        "deflated_power_method": reference.deflated_power_method,
        "spectral_labels": reference.spectral_labels,
    },
    strategies={"power_instances": strategies.power_instances, "two_class_mixtures": strategies.two_class_mixtures},
    bounds=tuple(bounds.BOUNDS),
    studies=(sweep.STUDY,),
    section=section.run,
    tutorials={"power": lesson.lesson},
    benchmark=benchmark,
    order=10,
    variants=variants.VARIANTS,
)
