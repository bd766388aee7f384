"""Does a family have every part, and does each part work? The check a plugin's own tests call.

``check_family(FAMILY)`` exercises what the commands will use, with small inputs, and raises
:class:`FamilyCheckFailed` listing every part that fails (not only the first):

* every construction builder is a :class:`~tfconstruct.constructions.construction.Construction` class (or a callable);
* every strategy draws an instance;
* every :class:`~tfconstruct.verify.study.Study` measures its first default grid point for one seed and returns
  every column its bounds and fits read;
* every tutorial example is a :class:`~tfconstruct.constructions.construction.TutorialExample` of one instance whose
  model runs to a finite stream, and each of its attention sublayers exports to the standard
  $W_Q, W_K, W_V, W_O$ form (:func:`~tfconstruct.constructions.export.export_attention`) to round-off;
* the benchmark case runs on a batch of two to a finite stream, and its reference runs too;
* on the tutorial and benchmark models, every sublayer computed in its factors (the forward pass) equals the
  full-matrix reference (``dense_output``) to round-off, on the streams it sees;
* every resource-table variant builds with 1 and 2 steps (the second adding sublayers) and, when measured, its
  fitted rate is within its tolerance of the expected one.

The shipped families and the example plugin are checked by ``tests/test_families.py`` with this function.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from hypothesis import find

from tfconstruct.constructions.construction import Construction, TutorialExample
from tfconstruct.constructions.export import export_attention
from tfconstruct.constructions.model import Trace, Transformer

from . import resources
from .family import BenchmarkCase, Family
from .resources import Variant
from .study import Study

EXPORT_TOLERANCE = 1e-12  # relative to the largest entry of the sublayer's output (export, factored vs dense)
WHOLE_MODEL_TOLERANCE = 1e-9  # the same for a whole model, whose round-off differences propagate through its depth


class FamilyCheckFailed(AssertionError):
    """One or more parts of a family do not work; the message lists each with its error."""


def check_family(family: Family, *, measure: bool = True) -> None:
    """Exercise every part of ``family``; ``measure=False`` skips running the studies' measures.

    Raises:
        FamilyCheckFailed: listing each failing part as ``<part> <name>: <what went wrong>``.
    """
    problems: list[str] = []
    for name, builder in family.constructions.items():
        if isinstance(builder, type) and Construction not in builder.__mro__:
            problems.append(f"construction {name!r}: {builder.__name__} does not subclass Construction")
    for name, strategy in family.strategies.items():
        _attempt(problems, f"strategy {name!r}", lambda strategy=strategy: find(strategy(), lambda _: True))
    for study in family.studies:
        if measure and isinstance(study, Study):
            _attempt(problems, f"study {study.name!r}", lambda study=study: _measure_once(study))
    for name, factory in family.tutorials.items():
        _attempt(problems, f"tutorial {name!r}", lambda factory=factory: _tutorial(factory))
    _attempt(problems, "benchmark", lambda: _benchmark(family.benchmark))
    for variant in family.variants:
        _attempt(problems, f"variant {variant.name!r}", lambda variant=variant: _variant(variant, family.name, measure))
    if problems:
        raise FamilyCheckFailed(f"family {family.name!r}: " + "; ".join(problems))


def _attempt(problems: list[str], part: str, action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as err:  # each part's failure is collected and reported with the others
        problems.append(f"{part}: {type(err).__name__}: {err}")


def _variant(variant: Variant, family: str, measure: bool) -> None:
    """Count the variant's resources (one step must add layers) and, with ``measure``, fit its rate."""
    row = (
        resources.measure(variant, family)
        if measure
        else resources.Row(variant, family, resources.count(variant, variant.knob_values[0]))
    )
    if row.resources.attention_per_step + row.resources.mlps_per_step < 1:
        raise ValueError("build(2, knob) has no more sublayers than build(1, knob): steps must add layers")
    if row.rate_ok is False:
        raise ValueError(f"fitted rate {row.rate:.3f}, expected {row.variant.expected_rate:g} ± {variant.tolerance:g}")


def _measure_once(study: Study) -> None:
    config = {param.name: param.default[0] for param in study.params}
    rows = study.measure(config, [0])
    if len(rows) != 1:
        raise ValueError(f"the measure returned {len(rows)} rows for one seed")
    study.check_rows([{**config, **rows[0]}])


def _tutorial(factory: Callable[[], TutorialExample]) -> None:
    example = factory()
    if not isinstance(example, TutorialExample):
        raise TypeError(f"returned {type(example).__name__}, expected TutorialExample")
    if example.stream.shape[0] != 1:
        raise ValueError(f"the stream holds {example.stream.shape[0]} instances, expected 1")
    trace = example.model(example.stream, trace=True, dense=True)
    if not torch.isfinite(trace.output).all():
        raise ValueError("the model's output is not finite")
    _factored_equals_dense(example.model, trace)
    for index, (name, layer) in enumerate(zip(example.model.names, example.model.layers)):
        if layer.kind == "attention":
            before = trace.streams[index]
            _close(f"sublayer {name!r} exported to W_Q, W_K, W_V, W_O", export_attention(layer)(before), layer(before))


def _factored_equals_dense(model: Transformer, trace: Trace) -> None:
    """Each sublayer's factored output against its full-matrix output on the dense trace, and the whole forward
    pass (which also skips work for rows it knows are the same in every token) against the dense one."""
    for index, (name, layer) in enumerate(zip(model.names, model.layers)):
        before = trace.streams[index]
        _close(f"sublayer {name!r} in its factors", layer(before), layer.dense_output(before))
    _close("the forward pass", model(trace.streams[0]), trace.output, WHOLE_MODEL_TOLERANCE)


def _close(what: str, ours: torch.Tensor, expected: torch.Tensor, tolerance: float = EXPORT_TOLERANCE) -> None:
    error = float((ours - expected).abs().max())
    allowed = tolerance * float(expected.abs().max() + 1)
    if not error <= allowed:
        raise ValueError(f"{what} differs from the dense computation by {error:.2e} > {allowed:.2e}")


def _benchmark(benchmark: Callable[[int], BenchmarkCase]) -> None:
    case = benchmark(8)
    if not isinstance(case, BenchmarkCase):
        raise TypeError(f"returned {type(case).__name__}, expected BenchmarkCase")
    trace = case.model(case.stream(2), trace=True, dense=True)
    _factored_equals_dense(case.model, trace)
    output = trace.output
    if output.shape[0] != 2 or not torch.isfinite(output).all():
        raise ValueError(
            f"the model on stream(2) gave shape {tuple(output.shape)} (finite: {bool(output.isfinite().all())})"
        )
    if case.reference(2) is None:
        raise ValueError("reference(2) returned None")
