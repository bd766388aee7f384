"""2-class spectral clustering: the sign of each point's projection on the top eigenvector.

For a symmetric 2-class mixture $x_i = y_i\\mu + z_i$ the top eigenvector of the sample
covariance aligns with $\\mu$, and $\\hat y_i = \\operatorname{sign}\\langle x_i - \\bar x, \\hat v\\rangle$.
The transformer:

1. **centres the data inside the model** (first attention layer, $x_i \\leftarrow x_i - \\bar x$,
   :func:`~constructions.power_blocks.centre_layer`), so $\\hat\\Sigma$ is the sample covariance;
2. runs $T$ power steps for $k = 1$ (:class:`~constructions.power.PowerIteration`);
3. scores $z_i = \\langle x_i, V_0\\rangle$ with a token-local head pair and clips
   $y_i = \\operatorname{clip}(z_i/\\eta, -1, 1)$ with a 3-unit MLP
   (:func:`~constructions.power_blocks.label_layers`).

The label is $\\operatorname{sign}(z_i)$ exactly when $|z_i| \\ge \\eta$ (``margin``, in the units
of the data); :meth:`SpectralClustering.labels` reads $+1$ for $y_i \\ge 0$ and $-1$ otherwise.
The norm of $V_0$ does not change any sign, so the width $M$ matters only through the domain
assumption, never through the labels.
"""

from __future__ import annotations

import torch

from .checks import as_batch, positive
from .power import PowerIteration, default_domain
from .power_blocks import ExactScoring, label_layers, power_layout
from .residual import ResidualLayout


class SpectralClustering(PowerIteration):
    """Labels $\\pm1$ for every token from $T$ power steps on the centred sample covariance.

    Args:
        dim, steps, width, domain, newton, attention: as in :class:`PowerIteration` (with
            $k = 1$ and ``centre=True``).
        margin: $\\eta > 0$, the half-width of the clipping ramp.
    """

    def __init__(
        self,
        dim: int,
        *,
        steps: int = 40,
        width: int = 32,
        domain: tuple[float, float] = (1e-2, 1e2),
        newton: int = 0,
        attention: ExactScoring = "relu",
        margin: float = 1e-9,
    ):
        self.margin = positive("margin", margin)
        super().__init__(dim, k=1, steps=steps, width=width, domain=domain, newton=newton, attention=attention, centre=True)

    @classmethod
    def for_data(cls, X: torch.Tensor, *, dynamic_range: float = 100.0, **options) -> "SpectralClustering":
        """As :meth:`PowerIteration.for_data`, with the domain of the centred data."""
        X = as_batch("X", X, 3)
        options.setdefault("domain", default_domain(X, centre=True, dynamic_range=dynamic_range))
        return cls(X.shape[-1], **options)

    def _make_layout(self) -> ResidualLayout:
        return power_layout(self.dim, 1, labels=True)

    def _tail_layers(self) -> list:
        return label_layers(self.layout, self.attention, self.margin)

    def labels(self, stream: torch.Tensor) -> torch.Tensor:
        """$+1$ where $y_i \\ge 0$, else $-1$; shape (batch, n)."""
        y = self.layout.read(stream, "y")[..., 0]
        return torch.where(y >= 0, 1, -1)

    def cluster(self, X: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        """``labels(model(embed(X, seeds)))``."""
        return self.labels(self.model(self.embed(X, seeds)))
