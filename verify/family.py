r"""A construction family as the verification tools see it: one record that every command reads.

A family bundles what the toolkit does with a construction: its report section, its sweep studies and its
tutorials. ``tfconstruct report``, ``sweep`` and ``docs`` iterate over the registered families
(:mod:`tfconstruct.verify.families`) and know nothing else about them. The construction itself lives in
``constructions/<family>/``, its bounds in ``theory/<family>.py`` (collected by
:mod:`tfconstruct.theory.registry`), and its references, strategies, measurements and section in
``verify/<family>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from tfconstruct.constructions.construction import TutorialExample

from .results import ReportContext, SectionResult
from .study import SweepCommand


@dataclass(frozen=True)
class Family:
    """One family: ``name`` (the key of ``report --only``), the report section's ``title``, ``order`` and
    ``section`` function, its sweep ``studies`` (``tfconstruct sweep <study name>``) and its ``tutorials``
    (``docs/tutorial_<key>.md`` for each key)."""

    name: str
    title: str
    order: int
    section: Callable[[ReportContext], SectionResult]
    studies: tuple[SweepCommand, ...] = ()
    tutorials: Mapping[str, Callable[[], TutorialExample]] = field(default_factory=dict)
