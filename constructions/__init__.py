"""Hand-built transformers over a residual stream of named subspaces."""

from .attention import AttentionHead as AttentionHead, MultiHeadAttention as MultiHeadAttention
from .mlp import MLP as MLP, MLPBuilder as MLPBuilder
from .model import Trace as Trace, Transformer as Transformer
from .piecewise import PiecewiseLinear as PiecewiseLinear, geometric_knots as geometric_knots, uniform_knots as uniform_knots
from .residual import ResidualLayout as ResidualLayout, Subspace as Subspace
from .weights import Bilinear as Bilinear, LinearMap as LinearMap
