"""Symbolic error bounds (sympy) for the approximating parts of each construction."""

from .bound import Bound as Bound
from .claims import Claim as Claim
from .interpolation import (
    INV_SQRT_RELATIVE as INV_SQRT_RELATIVE,
    LOG_ABSOLUTE as LOG_ABSOLUTE,
    SQUARE_ABSOLUTE as SQUARE_ABSOLUTE,
)
