r"""A construction family: the one public record every command reads, for shipped families and plugins alike.

A family bundles what the toolkit does with a construction. ``tfconstruct report``, ``sweep``, ``bounds``, ``docs``
and ``benchmark`` iterate over the registered families (:mod:`tfconstruct.verify.families`: the entry-point group
``tfconstruct.families`` and ``--plugin`` modules) and know nothing else about them.

=================  =========================================================================================
field              what it holds
=================  =========================================================================================
``name``           the key (``report --only NAME``, ``benchmark --family NAME``); lower case, unique
``title``          the report section's heading
``constructions``  name -> builder (a class or function returning a
                   :class:`~tfconstruct.constructions.construction.Construction`)
``references``     name -> the numpy reference algorithm(s) the constructions are checked against
``strategies``     name -> a function returning a hypothesis ``SearchStrategy`` of instances built to the
                   theorems' assumptions (callable with no arguments)
``bounds``         the family's :class:`~tfconstruct.theory.bound.Bound` objects (``tfconstruct bounds``)
``studies``        its sweep studies (``tfconstruct sweep <study name>``)
``section``        ``section(context) -> SectionResult``: the report section
``tutorials``      key -> a function returning a
                   :class:`~tfconstruct.constructions.construction.TutorialExample` (``docs/tutorial_<key>.md``)
``benchmark``      ``benchmark(tokens) -> BenchmarkCase``: a model, its input and the numpy reference, timed
``order``          optional: the section's place in the report (smaller first; default 100, after the shipped ones)
``variants``       optional: the construction variants of the resource table
                   (:class:`~tfconstruct.verify.resources.Variant`: a builder, the knob, the error against the
                   reference, the paper's claim); ``tfconstruct resources`` and the report's resources section
=================  =========================================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.model import Transformer
from tfconstruct.theory.bound import Bound

from .resources import Variant
from .results import ReportContext, SectionResult
from .study import SweepCommand

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_NAMES = (
    "theory",
    "float32",
    "resources",
    "training",
    "tutorials",
    "explore",
    "approximation",
)  # report sections and a sweep study of the core


@dataclass(frozen=True)
class BenchmarkCase:
    """What ``tfconstruct benchmark`` times for a family: ``model`` on ``stream(batch)``, against ``reference(batch)``,
    a function that runs the numpy reference on the same ``batch`` instances (and returns its result)."""

    name: str
    model: Transformer
    stream: Callable[[int], torch.Tensor]
    reference: Callable[[int], Any]


@dataclass(frozen=True)
class Family:
    """One construction family (see the module docstring for each field).

    Raises:
        ValueError: listing every missing or malformed part, with the family's name.
    """

    name: str
    title: str
    constructions: Mapping[str, Callable[..., Any]]
    references: Mapping[str, Callable[..., Any]]
    strategies: Mapping[str, Callable[..., Any]]
    bounds: tuple[Bound, ...]
    studies: tuple[SweepCommand, ...]
    section: Callable[[ReportContext], SectionResult]
    tutorials: Mapping[str, Callable[[], TutorialExample]]
    benchmark: Callable[[int], BenchmarkCase]
    order: int = 100
    variants: tuple[Variant, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            problems.append(
                f"name must be lower-case letters, digits and '_', starting with a letter, got {self.name!r}"
            )
        elif self.name in RESERVED_NAMES:
            problems.append(f"name {self.name!r} is reserved (taken: {', '.join(RESERVED_NAMES)}); choose another")
        if not isinstance(self.title, str) or not self.title:
            problems.append("title must be a non-empty string")
        for part in ("constructions", "references", "strategies", "tutorials"):
            value = getattr(self, part)
            if not isinstance(value, Mapping) or not value:
                problems.append(f"{part} must be a non-empty mapping of names to callables")
            elif not all(isinstance(k, str) and callable(v) for k, v in value.items()):
                problems.append(f"{part} must map names (str) to callables")
        if not _sequence_of(self.bounds, lambda b: isinstance(b, Bound)):
            problems.append(f"bounds must be a non-empty tuple of tfconstruct.theory.Bound, got {_shown(self.bounds)}")
        if not _sequence_of(self.studies, lambda s: hasattr(s, "run") and hasattr(s, "params")):
            problems.append(
                f"studies must be a non-empty tuple of studies (tfconstruct.verify.Study), got {_shown(self.studies)}"
            )
        if not isinstance(self.variants, (list, tuple)) or not all(isinstance(v, Variant) for v in self.variants):
            problems.append(f"variants must be a tuple of tfconstruct.verify.Variant, got {_shown(self.variants)}")
        if not isinstance(self.order, int):
            problems.append(f"order must be an integer, got {self.order!r}")
        for part in ("section", "benchmark"):
            if not callable(getattr(self, part)):
                problems.append(f"{part} must be callable")
        if problems:
            raise ValueError(f"family {self.name!r} is incomplete: " + "; ".join(problems))
        object.__setattr__(self, "bounds", tuple(self.bounds))
        object.__setattr__(self, "studies", tuple(self.studies))
        object.__setattr__(self, "variants", tuple(self.variants))


def _sequence_of(value: Any, accepts: Callable[[Any], bool]) -> bool:
    """``value`` is a non-empty list or tuple whose items all pass ``accepts``."""
    return isinstance(value, (list, tuple)) and bool(value) and all(accepts(item) for item in value)


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]
