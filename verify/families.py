"""The registered construction families, in report order (:class:`~tfconstruct.verify.family.Family`)."""

from __future__ import annotations

from typing import Callable

from tfconstruct.constructions.construction import TutorialExample

from .approximation.family import FAMILY as APPROXIMATION
from .em.family import FAMILY as EM
from .family import Family
from .power.family import FAMILY as POWER
from .study import SweepCommand
from .tensor.family import FAMILY as TENSOR

FAMILIES: tuple[Family, ...] = tuple(sorted((POWER, EM, TENSOR, APPROXIMATION), key=lambda family: family.order))


def sweep_commands() -> dict[str, SweepCommand]:
    """``tfconstruct sweep <name>`` for every study of every family."""
    return {study.name: study for family in FAMILIES for study in family.studies}


def tutorials() -> dict[str, Callable[[], TutorialExample]]:
    """``docs/tutorial_<key>.md`` -> the example it is generated from, for every family."""
    return {key: factory for family in FAMILIES for key, factory in family.tutorials.items()}
