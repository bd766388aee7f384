"""Hand-built transformers over a residual stream of named subspaces (``tfconstruct.constructions``).

The core (this package's modules) is what every construction family is built from; the families are the
subpackages :mod:`~tfconstruct.constructions.power`, :mod:`~tfconstruct.constructions.em` and
:mod:`~tfconstruct.constructions.tensor`.
"""

from .attention import AttentionHead as AttentionHead, MultiHeadAttention as MultiHeadAttention
from .checks import as_batch as as_batch, integer_in as integer_in, positive as positive, within_radius as within_radius
from .construction import Construction as Construction, TutorialExample as TutorialExample
from .gadgets import (
    InverseSqrt as InverseSqrt,
    NormalisationDomain as NormalisationDomain,
    inverse_sqrt_heads as inverse_sqrt_heads,
    newton_heads as newton_heads,
    rescale_head as rescale_head,
    signed_heads as signed_heads,
    squared_norm_head as squared_norm_head,
)
from .lesson import Checkpoint as Checkpoint, Geometry as Geometry, PseudoLine as PseudoLine, Role as Role
from .mlp import MLP as MLP, MLPBuilder as MLPBuilder
from .model import Trace as Trace, Transformer as Transformer
from .piecewise import (
    PiecewiseLinear as PiecewiseLinear,
    geometric_knots as geometric_knots,
    uniform_knots as uniform_knots,
)
from .residual import ResidualLayout as ResidualLayout, Subspace as Subspace
from .weights import Bilinear as Bilinear, LinearMap as LinearMap
