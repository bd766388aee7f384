"""Power iteration: the deflated power engine, top-k PCA from data tokens and 2-class spectral clustering."""

from .clustering import LabelledCovariance as LabelledCovariance
from .clustering import SpectralClustering as SpectralClustering
from .covariance import (
    DataCovariance as DataCovariance,
)
from .covariance import (
    PowerIteration as PowerIteration,
)
from .covariance import (
    default_domain as default_domain,
)
from .covariance import (
    stable_width as stable_width,
)
from .engine import (
    Contraction as Contraction,
)
from .engine import (
    DeflatedPowerIteration as DeflatedPowerIteration,
    EngineOptions as EngineOptions,
    PowerConstruction as PowerConstruction,
)
from .engine import (
    PowerResult as PowerResult,
)
from .engine import (
    PowerTrajectory as PowerTrajectory,
)
from .engine import (
    default_seeds as default_seeds,
)
