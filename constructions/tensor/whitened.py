r"""The whitened Hsu-Kakade tensor contracted exactly from data tokens, and the power iteration over it.

:class:`WhitenedData` is the order-3 :class:`~tfconstruct.constructions.power.engine.Contraction` that computes,
from $n$ whitened samples $y_i = W^\top x_i \in \mathbb R^K$ (one per token),

.. math::

    T(I, v, v) = \frac1n\sum_i (y_i\cdot v)^2\, y_i - (v^\top G v)\, m - 2\,(m\cdot v)\, G v,
    \qquad G = W^\top W = \sum_a w_a w_a^\top,

and after the last component un-whitens $\hat\mu_j = B\,(\lambda_j v_j)$ exactly.
:class:`WhitenedDataPowerIteration` runs the deflated power engine over it.

**Subspaces** (tokens $i = 0..n-1$ are the samples; tokens $a < d$ also carry row $a$ of $W$ and $B$):

================== ====== ====================================================================
``data``           K      $y_i = W^\top x_i$
``position``       P      position code $p_i$ (:mod:`~tfconstruct.constructions.tensor.codes`)
``moment``         K      $m = W^\top M_1$ (broadcast)
``whiten_row``     K      $w_a = W^\top e_a$ in token $a < d$, else 0
``unwhiten_row``   K      $b_a = B^\top e_a$ in token $a < d$, else 0
``coordinate``     d      $e_a$ in token $a < d$, else 0
``product``        K      scratch: $(v\cdot y_i)\,y_i$ (per token)
``gram_v``         K      scratch: $G v$ (broadcast)
``mean{j}``        d      $\hat\mu_j = B\lambda_j v_j$ (broadcast)
================== ====== ====================================================================

**contract1** (4 heads): *self-selection* $\pm v\cdot y_j + \beta(p_i\cdot p_j - 1)$ with value $\pm N y \to$
``product``: only $j = i$ survives when $\beta\gamma > \max_j|v\cdot y_j|$ ($\gamma$ the code gap), so token $i$
gets $(v\cdot y_i) y_i$; and $\pm\langle v, w_j\rangle$ with value $\pm N w \to$ ``gram_v``, giving
$\sum_a (v\cdot w_a) w_a = G v$.
**contract2** (6 heads): $\pm\langle v, y_j\rangle$ with value $\pm\tfrac Nn$ ``product`` $\to$ ``u`` gives
$\frac1n\sum_j (v\cdot y_j)^2 y_j$; $\pm\langle v, Gv\rangle$ with value $\mp m$ gives $-(v^\top G v) m$;
$\pm\langle m, v\rangle$ with value $\mp 2\,Gv$ gives $-2(m\cdot v) G v$.
**unwhiten** ($2K$ heads): $\pm\langle \lambda_j v_j, b_a\rangle$ with value $\pm N e_a \to$ ``mean{j}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import numpy as np
import torch

from ..attention import AttentionHead, MultiHeadAttention
from ..checks import as_batch, integer_in, positive
from ..gadgets import ExactScoring, signed_heads
from ..power.engine import EngineOptions, NamedLayers, PowerConstruction, PowerResult
from ..residual import ResidualLayout
from .codes import CodeKind, position_codes
from .in_tokens import SHIFT_NORM_TOLERANCE


@dataclass(frozen=True)
class Preprocessed:
    r"""The pre-processing outputs (batched): $y$ ``(b, n, K)``, $m$ ``(b, K)``, $W$, $B$ ``(b, d, K)``,
    $\hat\sigma^2$ ``(b,)`` and the top-$K$ eigenvalues of $M_2$ ``(b, K)``
    (:func:`~tfconstruct.constructions.tensor.gmm.preprocess`)."""

    y: torch.Tensor
    moment: torch.Tensor
    whiten: torch.Tensor
    unwhiten: torch.Tensor
    noise: torch.Tensor
    pair_eigenvalues: torch.Tensor


class WhitenedData:
    r"""The data-token contraction of the whitened Hsu-Kakade tensor (order 3).

    Args:
        samples: $n \ge d$ data tokens.
        data_dim: $d$, the dimension of the raw samples (rows of $W$, $B$ sit in tokens $a < d$).
        dim: $K$, the whitened dimension.
        data_bound: an upper bound on $\max_i \lVert y_i\rVert$; the self-selection bound is
            $\beta = 2\,$``data_bound``$/\gamma$ (valid while $\lVert v\rVert < 2$).
        code: position-code kind.
    """

    order = 3
    scratch = ("product", "gram_v")
    scorings = ("relu",)
    norm_tolerance = SHIFT_NORM_TOLERANCE
    domain_remedy = "domain=NormalisationDomain.for_weights(...) of the mixture's weights (SpectralGMM sizes it)"

    def __init__(self, samples: int, data_dim: int, dim: int, data_bound: float, code: CodeKind = "torus"):
        self.data_dim = integer_in("data_dim", data_dim, 1)
        self.dim = integer_in("dim (components K)", dim, 1, self.data_dim)
        self.tokens = integer_in("samples", samples, max(2, self.data_dim))
        self.data_bound = positive("data_bound", data_bound)
        self.codes = position_codes(self.tokens, code)
        self.gate_bound = 2.0 * self.data_bound / self.codes.gap

    def blocks(self, components: int) -> list[tuple[str, int]]:
        k = self.dim
        return [
            ("data", k),
            ("position", self.codes.width),
            ("moment", k),
            ("whiten_row", k),
            ("unwhiten_row", k),
            ("coordinate", self.data_dim),
            ("product", k),
            ("gram_v", k),
        ] + [(f"mean{j}", self.data_dim) for j in range(components)]

    def contraction_heads(self, layout: ResidualLayout, scoring: ExactScoring) -> list[list[AttentionHead]]:
        n, beta = float(self.tokens), self.gate_bound
        select = signed_heads(
            layout,
            "select",
            lambda q, s: q.add("v", "data", s).add("position", "position", beta).add("one", "one", -beta),
            lambda o, s: o.add("data", "product", s * n),
        )
        gram = signed_heads(
            layout, "gram", lambda q, s: q.add("v", "whiten_row", s), lambda o, s: o.add("whiten_row", "gram_v", s * n)
        )
        second = (
            signed_heads(layout, "cube", lambda q, s: q.add("v", "data", s), lambda o, s: o.add("product", "u", s))
            + signed_heads(
                layout, "gram_term", lambda q, s: q.add("v", "gram_v", s), lambda o, s: o.add("moment", "u", -s)
            )
            + signed_heads(
                layout, "moment_term", lambda q, s: q.add("moment", "v", s), lambda o, s: o.add("gram_v", "u", -2.0 * s)
            )
        )
        return [select + gram, second]

    def prefix_layers(self, layout: ResidualLayout, scoring: ExactScoring) -> NamedLayers:
        return []

    def final_layers(self, layout: ResidualLayout, components: int, scoring: ExactScoring) -> NamedLayers:
        n = float(self.tokens)
        heads = [
            head
            for j in range(components)
            for head in signed_heads(
                layout,
                f"unwhiten{j}",
                lambda q, s, j=j: q.add(f"weighted{j}", "unwhiten_row", s),
                lambda o, s, j=j: o.add("coordinate", f"mean{j}", s * n),
            )
        ]
        return [("unwhiten", MultiHeadAttention(heads, label="unwhiten"))]

    def values(
        self, y: torch.Tensor, moment: torch.Tensor, whiten: torch.Tensor, unwhiten: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], int]:
        """Token blocks from $y$ ``(b, n, K)``, $m$ ``(b, K)``, $W$ and $B$ ``(b, d, K)``; and the batch size."""
        n, d, k = self.tokens, self.data_dim, self.dim
        y = as_batch("whitened data y", y, 3)
        if y.shape[1:] != (n, k):
            raise ValueError(f"whitened data y must have shape (n, K) = ({n}, {k}), got {tuple(y.shape[1:])}")
        largest = float(y.norm(dim=-1).max())
        if largest > self.data_bound:
            raise ValueError(
                f"max_i |y_i| = {largest:.6g} exceeds data_bound = {self.data_bound:.6g}: the self-selection heads "
                f"would leak; build the construction with data_bound >= {largest:.6g}"
            )
        batch = y.shape[0]
        moment = as_batch("moment m", moment, 2).expand(batch, k)
        rows = {}
        for name, matrix in (("whiten_row", whiten), ("unwhiten_row", unwhiten)):
            matrix = as_batch(name, matrix, 3)
            if matrix.shape[1:] != (d, k):
                raise ValueError(f"{name} matrix must have shape (d, K) = ({d}, {k}), got {tuple(matrix.shape[1:])}")
            rows[name] = _first_tokens(matrix.expand(batch, d, k), n)
        coordinate = _first_tokens(torch.eye(d, dtype=torch.float64).expand(batch, d, d), n)
        position = torch.as_tensor(self.codes.vectors, dtype=torch.float64).expand(batch, n, self.codes.width)
        values = {"data": y, "position": position, "moment": moment[:, None, :], "coordinate": coordinate, **rows}
        return values, batch


def _first_tokens(rows: torch.Tensor, tokens: int) -> torch.Tensor:
    """``rows`` $(b, r, s)$ placed in tokens $0..r-1$ of $(b, n, s)$, zeros elsewhere."""
    padded = rows.new_zeros(rows.shape[0], tokens, rows.shape[2])
    padded[:, : rows.shape[1]] = rows
    return padded


class WhitenedDataPowerIteration(PowerConstruction):
    """Power iteration with deflation over :class:`WhitenedData`, then un-whitening.

    Args:
        samples, data_dim, data_bound, code: as in :class:`WhitenedData`.
        components: $K$ (the whitened dimension and the number of components extracted).
        iterations, width, domain, newton_steps: as in the engine
            (:class:`~tfconstruct.constructions.power.engine.DeflatedPowerIteration`).
    """

    def __init__(
        self,
        samples: int,
        data_dim: int,
        *,
        components: int,
        data_bound: float,
        code: CodeKind = "torus",
        **options: Unpack[EngineOptions],
    ):
        super().__init__(
            WhitenedData(samples, data_dim, components, data_bound, code), components=components, **options
        )

    def embed(
        self,
        pre: Preprocessed,
        seeds: np.ndarray | torch.Tensor | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """The input stream for pre-processed samples (see :meth:`WhitenedData.values`) and ``seeds`` $(K, K)$."""
        values, batch = self.contraction.values(pre.y, pre.moment, pre.whiten, pre.unwhiten)
        return self.engine.embed(values, seeds, batch, self.contraction.tokens, device=device)

    def readout(self, stream: torch.Tensor) -> tuple[PowerResult, torch.Tensor]:
        r"""$(\lambda_j, v_j)$ and the un-whitened means $\hat\mu_j$ ``(b, K, d)`` from token 0."""
        means = torch.stack([self.layout.read(stream[:, 0], f"mean{j}") for j in range(self.engine.components)], dim=1)
        return self.engine.readout(stream), means
