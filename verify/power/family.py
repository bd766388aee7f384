"""The power-iteration family (top-k PCA, 2-class spectral clustering) as the commands see it."""

from tfconstruct.constructions.power.covariance import tutorial_example

from ..family import Family
from . import section, sweep

FAMILY = Family(
    name="power",
    title="Power iteration (PCA) and 2-class spectral clustering",
    order=10,
    section=section.run,
    studies=(sweep.STUDY,),
    tutorials={"power": tutorial_example},
)
