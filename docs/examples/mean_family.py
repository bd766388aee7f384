r"""A complete plugin family in one file: the mean of the data tokens, by one linear-attention head.

Run it through every command without changing the package::

    tfconstruct --plugin docs/examples/mean_family.py report --quick --only mean --out mean_report
    tfconstruct --plugin docs/examples/mean_family.py sweep mean --out mean_sweep
    tfconstruct --plugin docs/examples/mean_family.py bounds --name mean_exact
    tfconstruct --plugin docs/examples/mean_family.py docs --family mean --out mean_docs
    tfconstruct --plugin docs/examples/mean_family.py benchmark --family mean --tokens 100 1000

The construction: tokens hold $x_i \in \mathbb R^d$ in ``x`` and 1 in ``one``; one linear head with score
$\langle \mathrm{one}_i, \mathrm{one}_j\rangle = 1$ and value $x_j \to$ ``mean`` adds $\frac1n\sum_j x_j$ to every token.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from hypothesis import strategies as st

from tfconstruct.constructions import (
    AttentionHead,
    Bilinear,
    Checkpoint,
    Construction,
    LinearMap,
    MultiHeadAttention,
    PseudoLine,
    ResidualLayout,
    Transformer,
    TutorialExample,
    as_batch,
    integer_in,
)
from tfconstruct.theory import Bound
from tfconstruct.verify import (
    BenchmarkCase,
    BoundColumn,
    Check,
    Family,
    ReportContext,
    SectionResult,
    Study,
    positive_int,
    round_off_allowance,
)


class MeanByAttention(Construction):
    """The mean of the data tokens, written into ``mean`` of every token."""

    def __init__(self, dim: int):
        self.dim = integer_in("dim", dim, 1)
        self.layout = ResidualLayout([("x", self.dim), ("one", 1), ("mean", self.dim)])
        head = AttentionHead(
            Bilinear(self.layout).add("one", "one"), LinearMap(self.layout).add("x", "mean"), "linear", label="mean"
        )
        self.model = Transformer(self.layout, [MultiHeadAttention([head], label="mean")], ["mean"])

    def embed(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        X = as_batch("X", X, 3)
        if X.shape[-1] != self.dim:
            raise ValueError(f"X must have {self.dim} features, got {X.shape[-1]}")
        return self.layout.embed(X.shape[0], X.shape[1], {"x": X, "one": 1.0})

    def readout(self, stream: torch.Tensor) -> torch.Tensor:
        return self.layout.read(stream[:, 0], "mean")


def numpy_mean(X: np.ndarray) -> np.ndarray:
    """The reference: numpy's mean over the tokens."""
    return np.asarray(X, dtype=np.float64).mean(axis=-2)


def data_sets(dims: tuple[int, int] = (1, 6), tokens: tuple[int, int] = (1, 30)) -> st.SearchStrategy[np.ndarray]:
    """Random data sets ``(n, d)`` with entries in [-10, 10]."""
    shapes = st.tuples(st.integers(*tokens), st.integers(*dims))
    return shapes.flatmap(
        lambda shape: st.lists(st.floats(-10, 10), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]).map(
            lambda values: np.array(values).reshape(shape)
        )
    )


MEAN_EXACT = Bound("mean_exact", r"\|\hat m - \bar x\|_\infty", sp.Integer(0) * sp.Symbol("n"), "exact up to round-off")


def measure(config: dict, seeds: list[int]) -> list[dict[str, float]]:
    data = np.array([np.random.default_rng(seed).uniform(-10, 10, (config["tokens"], config["dim"])) for seed in seeds])
    ours = MeanByAttention(config["dim"]).run(data).numpy()
    return [
        {"error": float(np.abs(m - numpy_mean(X)).max()), "error_bound": 0.0, "round_off": round_off_allowance(10.0)}
        for m, X in zip(ours, data)
    ]


STUDY = Study(
    name="mean",
    description="mean by attention",
    measure=measure,
    params=(positive_int("dim", [2, 8], "d", "data dimension"), positive_int("tokens", [4, 64], "n", "tokens")),
    replicates=3,
    bounds=(BoundColumn("error", "round_off"),),
)


def section(context: ReportContext) -> SectionResult:
    rows = STUDY.sweep(context.out_dir / "sweeps" / "mean", {"dim": [3], "tokens": [5, 50]}, 2, fresh=True).run()
    worst = max(r["error"] / r["round_off"] for r in rows)
    check = Check("mean = numpy mean", worst <= 1.0, f"max error / round-off = {worst:.2e}", "<= 1")
    return SectionResult("One linear head with a constant score averages the data tokens.", checks=[check])


def tutorial() -> TutorialExample:
    """The tutorial and explorer page: roles, pseudocode and numpy's mean beside the head (optional fields)."""
    X = np.array([[1.0, 2.0], [3.0, -2.0], [-1.0, 3.0]])
    construction = MeanByAttention(2)
    return TutorialExample(
        "The mean by one linear head",
        construction.model,
        construction.embed(X),
        "`mean` gets the average of `x`.",
        roles={"x": "input", "one": "input", "mean": "result"},
        pseudocode=(PseudoLine("mean ← (1/n) Σ_j x_j", ("mean",)),),
        checkpoints=(Checkpoint("mean", "numpy mean", np.tile(numpy_mean(X[None])[0], (3, 1)), subspace="mean"),),
    )


def benchmark(tokens: int) -> BenchmarkCase:
    X = np.random.default_rng(0).standard_normal((1, tokens, 8))
    construction = MeanByAttention(8)
    stream = lambda batch: construction.embed(np.repeat(X, batch, axis=0))  # noqa: E731
    return BenchmarkCase("mean (d=8)", construction.model, stream, lambda batch: numpy_mean(np.repeat(X, batch, 0)))


FAMILY = Family(
    name="mean",
    title="The mean by attention (a plugin example)",
    constructions={"MeanByAttention": MeanByAttention},
    references={"numpy_mean": numpy_mean},
    strategies={"data_sets": data_sets},
    bounds=(MEAN_EXACT,),
    studies=(STUDY,),
    section=section,
    tutorials={"mean": tutorial},
    benchmark=benchmark,
)
