"""The tensor power iteration family (tensor in tokens, spectral method of moments) as the commands see it."""

from tfconstruct.constructions.tensor import gmm, in_tokens

from ..family import Family
from . import section, sweep

FAMILY = Family(
    name="tensor",
    title="Cubic tensor power iteration and the spectral method of moments",
    order=30,
    section=section.run,
    studies=(sweep.STUDY,),
    tutorials={"tensor": in_tokens.tutorial_example, "tensor_gmm": gmm.tutorial_example},
)
