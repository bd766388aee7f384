"""The EM family (soft EM and Lloyd for Gaussian mixtures) as the commands see it."""

from tfconstruct.constructions.em.construction import tutorial_example

from ..family import Family
from . import section, sweep

FAMILY = Family(
    name="em",
    title="EM for Gaussian mixtures (soft EM and Lloyd)",
    order=20,
    section=section.run,
    studies=(sweep.STUDY,),
    tutorials={"em": tutorial_example},
)
