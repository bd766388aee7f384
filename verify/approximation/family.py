"""The approximating parts and the registered bounds (the report's theory section) as the commands see them."""

from ..family import Family
from . import section, study

FAMILY = Family(
    name="theory",
    title="Theory: bounds, slack and LaTeX",
    order=90,
    section=section.run,
    studies=(study.STUDY,),
)
