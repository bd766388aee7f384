"""Cubic tensor power iteration: a tensor held in tokens, and the spectral method of moments from data tokens."""

from .codes import PositionCodes as PositionCodes, position_codes as position_codes
from .gmm import GMMEstimate as GMMEstimate, SpectralGMM as SpectralGMM, preprocess as preprocess
from .in_tokens import OdecoPowerIteration as OdecoPowerIteration, TensorInTokens as TensorInTokens
from .whitened import (
    Preprocessed as Preprocessed,
    WhitenedData as WhitenedData,
    WhitenedDataPowerIteration as WhitenedDataPowerIteration,
)
