"""Cubic tensor power iteration: a tensor held in tokens, and the spectral method of moments from data tokens."""

from .codes import PositionCodes as PositionCodes
from .codes import position_codes as position_codes
from .gmm import GMMEstimate as GMMEstimate
from .gmm import SpectralGMM as SpectralGMM
from .gmm import preprocess as preprocess
from .in_tokens import OdecoPowerIteration as OdecoPowerIteration
from .in_tokens import TensorInTokens as TensorInTokens
from .whitened import (
    Preprocessed as Preprocessed,
)
from .whitened import (
    WhitenedData as WhitenedData,
)
from .whitened import (
    WhitenedDataPowerIteration as WhitenedDataPowerIteration,
)
