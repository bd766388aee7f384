"""Power iteration: the deflated power engine, top-k PCA from data tokens and 2-class spectral clustering."""

from .clustering import LabelledCovariance as LabelledCovariance, SpectralClustering as SpectralClustering
from .covariance import (
    DataCovariance as DataCovariance,
    DeflationError as DeflationError,
    PowerIteration as PowerIteration,
    default_domain as default_domain,
    stable_width as stable_width,
)
from .engine import (
    Contraction as Contraction,
    DeflatedPowerIteration as DeflatedPowerIteration,
    EngineOptions as EngineOptions,
    PowerConstruction as PowerConstruction,
    PowerResult as PowerResult,
    PowerTrajectory as PowerTrajectory,
    default_seeds as default_seeds,
)
