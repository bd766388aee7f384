"""The in-context gradient descent family, registered through the entry-point group like any user's plugin."""

from __future__ import annotations

import numpy as np

from tfconstruct.constructions.gd import InContextRegression
from tfconstruct.theory.gd import BOUNDS
from tfconstruct.verify import BenchmarkCase, Family

from . import lesson, reference, section, strategies, sweep, variants

STEPS, DIM = 20, 8


def benchmark(tokens: int) -> BenchmarkCase:
    """20 GD layers on ``tokens`` in-context examples in $d = 8$."""
    instance = strategies.build_regression(0, DIM, max(DIM, tokens), strategies.study_spectrum(DIM), 1.0)
    construction = InContextRegression(DIM, steps=STEPS, eta=1.0)

    def stream(batch: int):
        repeat = lambda a: np.repeat(a[None], batch, axis=0)  # noqa: E731
        return construction.embed(repeat(instance.X), repeat(instance.y), repeat(instance.query))

    return BenchmarkCase(
        f"in-context GD (d={DIM}, L={STEPS})",
        construction.model,
        stream,
        lambda batch: [
            reference.gradient_descent(instance.X, instance.y, instance.query, 1.0, STEPS) for _ in range(batch)
        ],
    )


FAMILY = Family(
    name="gd",
    title="In-context linear regression by gradient descent (linear attention)",
    constructions={"InContextRegression": InContextRegression},
    references={"gradient_descent": reference.gradient_descent, "least_squares": reference.least_squares},
    strategies={"regression_instances": strategies.regression_instances},
    bounds=tuple(BOUNDS),
    studies=(sweep.STUDY,),
    section=section.run,
    tutorials={"gd": lesson.lesson},
    benchmark=benchmark,
    order=40,
    variants=variants.VARIANTS,
)
