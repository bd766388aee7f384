"""Hand-built transformers over a residual stream of named subspaces (``tfconstruct.constructions``).

The core (this package's modules) is what every construction family is built from; the families are the
subpackages :mod:`~tfconstruct.constructions.power`, :mod:`~tfconstruct.constructions.em` and
:mod:`~tfconstruct.constructions.tensor`.
"""

from .attention import AttentionHead as AttentionHead
from .attention import MultiHeadAttention as MultiHeadAttention
from .construction import Construction as Construction
from .construction import TutorialExample as TutorialExample
from .gadgets import (
    InverseSqrt as InverseSqrt,
)
from .gadgets import (
    NormalisationDomain as NormalisationDomain,
)
from .gadgets import (
    newton_heads as newton_heads,
)
from .gadgets import (
    rescale_head as rescale_head,
)
from .gadgets import (
    signed_heads as signed_heads,
)
from .gadgets import (
    squared_norm_head as squared_norm_head,
)
from .mlp import MLP as MLP
from .mlp import MLPBuilder as MLPBuilder
from .model import Trace as Trace
from .model import Transformer as Transformer
from .piecewise import (
    PiecewiseLinear as PiecewiseLinear,
)
from .piecewise import (
    geometric_knots as geometric_knots,
)
from .piecewise import (
    uniform_knots as uniform_knots,
)
from .residual import ResidualLayout as ResidualLayout
from .residual import Subspace as Subspace
from .weights import Bilinear as Bilinear
from .weights import LinearMap as LinearMap
