r"""2-class spectral clustering: the sign of each point's projection on the top eigenvector.

For a symmetric 2-class mixture $x_i = y_i\mu + z_i$ the top eigenvector of the sample covariance aligns with
$\mu$, and $\hat y_i = \operatorname{sign}\langle x_i - \bar x, \hat v\rangle$. The transformer

1. centres the data inside the model (:class:`~tfconstruct.constructions.power.covariance.DataCovariance` with
   ``centre=True``), so $\hat\Sigma$ is the sample covariance;
2. runs $J$ power steps for one component;
3. scores $z_i = \langle x_i, v_0\rangle$ with a token-local head pair and clips
   $y_i = \operatorname{clip}(z_i/\eta, -1, 1)$ with a 3-unit MLP (:class:`LabelledCovariance`).

The label is $\operatorname{sign}(z_i)$ exactly when $|z_i| \ge \eta$ (``margin``, in the units of the data);
:meth:`SpectralClustering.labels` reads $+1$ for $y_i \ge 0$ and $-1$ otherwise. The norm of $v_0$ does not
change any sign, so the width $M$ matters only through the domain assumption, never through the labels.
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import torch

from ..attention import MultiHeadAttention
from ..checks import as_batch, positive
from ..gadgets import ExactScoring, signed_heads
from ..mlp import MLPBuilder
from ..residual import ResidualLayout
from .covariance import DataCovariance, PowerIteration, default_domain
from .engine import EngineOptions, NamedLayers


class LabelledCovariance(DataCovariance):
    r"""The centred covariance contraction, plus the label read-out after the last component.

    ``z`` (1): $\langle x_i, v_0\rangle$; ``y`` (1): the clipped label.
    """

    domain_remedy = "domain=(a, b); SpectralClustering.for_data(X) picks it from the data"

    def __init__(self, dim: int, margin: float):
        super().__init__(dim, centre=True)
        self.margin = positive("margin", margin)

    def blocks(self, components: int) -> list[tuple[str, int]]:
        return super().blocks(components) + [("z", 1), ("y", 1)]

    def final_layers(self, layout: ResidualLayout, components: int, scoring: ExactScoring) -> NamedLayers:
        r"""1. signed heads with the token-local score $\langle x_i, v_{0,j}\rangle$ (the same for every $j$), value
        $\mathrm{one}_j \to z$; 2. an MLP $y = \sigma(z/\eta + 1) - \sigma(z/\eta - 1) - \sigma(\mathrm{one})$,
        which is $\operatorname{sign}(z_i)$ whenever $|z_i| \ge \eta$."""
        score = signed_heads(
            layout, "<x, v_0>", lambda q, s: q.add("x", "component0", s), lambda o, s: o.add("one", "z", s), scoring
        )
        clip = MLPBuilder(layout, "clip")
        clip.group({"z": 1.0 / self.margin}, {"y": 1.0}, bias=1.0, label="relu(z/eta + 1)")
        clip.group({"z": 1.0 / self.margin}, {"y": -1.0}, bias=-1.0, label="-relu(z/eta - 1)")
        clip.group({}, {"y": -1.0}, bias=1.0, label="-1")
        return [("labels.score", MultiHeadAttention(score, label="score")), ("labels.clip", clip.build())]


class SpectralClustering(PowerIteration):
    r"""Labels $\pm1$ for every token from $J$ power steps on the centred sample covariance.

    Args:
        dim: data dimension $d$.
        margin: $\eta > 0$, the half-width of the clipping ramp.
        iterations, width, domain, newton_steps, attention: as in
            :class:`~tfconstruct.constructions.power.covariance.PowerIteration` (one component, centred data).
    """

    def __init__(self, dim: int, *, margin: float = 1e-9, **options: Unpack[EngineOptions]):
        if options.get("components", 1) != 1:
            raise ValueError(f"components must be 1 for 2-class spectral clustering, got {options['components']!r}")
        self.margin = positive("margin", margin)
        super().__init__(dim, centre=True, **options)

    def _contraction(self, dim: int, centre: bool) -> LabelledCovariance:
        return LabelledCovariance(dim, self.margin)

    @classmethod
    def for_data(cls, X: torch.Tensor | np.ndarray, *, dynamic_range: float = 100.0, **options) -> "SpectralClustering":
        """As :meth:`PowerIteration.for_data`, with the domain of the centred data."""
        X = as_batch("X", X, 3)
        options.setdefault("domain", default_domain(X, centre=True, dynamic_range=dynamic_range))
        return cls(X.shape[-1], **options)

    def labels(self, stream: torch.Tensor) -> torch.Tensor:
        r"""$+1$ where $y_i \ge 0$, else $-1$; shape (batch, n)."""
        y = self.layout.read(stream, "y")[..., 0]
        return torch.where(y >= 0, 1, -1)

    def cluster(self, X: torch.Tensor | np.ndarray, seeds: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """``labels(model(embed(X, seeds)))``."""
        return self.labels(self.model(self.embed(X, seeds)))
