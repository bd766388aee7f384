r"""Soft EM whose per-token log is computed by softmax heads: the resource shape of He et al. (arXiv 2502.06007)
as TGMM reports it, $O(K)$ attention layers per EM step and $M \to \infty$ heads for a vanishing error.

The algorithm is soft EM for an isotropic Gaussian mixture with equal, fixed mixing weights and a fixed shared
variance $\sigma^2 = 1/\beta$ (the ``update_weights=False`` variant of :class:`~tfconstruct.constructions.em.
EMConstruction`). Tokens: $n$ data tokens, $K$ centroid tokens, then the two anchor tokens of
:class:`~tfconstruct.constructions.softmax_heads.Anchors`. The layout is
:func:`~tfconstruct.constructions.em.layers.em_layout` (soft, no weights) plus the anchors' flags ``is_anchor`` and
``anchor_on``.

One EM step is $K + 3$ attention sublayers (hook names ``iter{t}.<name>``):

1. ``refresh.attn`` / ``refresh.mlp``: $s_k \leftarrow \lVert\mu_k\rVert^2$, exact
   (:func:`~tfconstruct.constructions.em.layers.refresh_block`);
2. ``estep.attn`` / ``estep.mlp``: the exact responsibilities
   $w_{ik} = \operatorname{softmax}_k\big(\beta(\langle x_i,\mu_k\rangle - s_k/2)\big)$ (one softmax head,
   :func:`~tfconstruct.constructions.em.layers.e_step_block`), moved into ``resp``; ``log_resp`` cleared;
3. ``log0`` ... ``log{K-1}``: one layer per centroid $k$, $M$ sigmoid heads and one constant head
   (:func:`~tfconstruct.constructions.softmax_heads.staircase_heads`) adding to data token $i$

   .. math::  \hat\ell(w_{ik}) = \log\varepsilon + \sum_{m=1}^M \Delta_m\,\sigma\big(\gamma(w_{ik} - \tau_m)\big)
              \approx \log w_{ik},

   the sigmoid staircase of $\log$ on $M$ uniform cells of $[\varepsilon, 1]$, $\gamma h = c$;
4. ``mstep.attn`` / ``mstep.mlp``: centroid queries over data keys with score $\hat\ell(w_{ik})$, so the softmax
   weights are $\approx w_{ik}/\sum_j w_{jk}$ and the head writes the weighted mean without a division
   (:func:`~tfconstruct.constructions.em.layers.m_step_block`), moved into ``mu``.

The $K$ log layers are what makes the depth grow with $K$, as in the paper's count (all $K$ staircases could share one
layer of $K(M+1)$ heads; this construction keeps the paper's shape). The only approximation is $\hat\ell$: with
every responsibility in $[\varepsilon, 1]$ each M-step weight is off by a factor in $[e^{-\eta}, e^{\eta}]$,
$\eta = \tfrac{1-\varepsilon}{\varepsilon M}(1 + \tfrac{2e^{-c/2}}{1-e^{-c}})$, and one step from an exact state moves
each mean by at most $D(e^{2\eta} - 1)/2$ (:data:`tfconstruct.theory.softmax_heads.SOFTMAX_HEADS_EM_STEP`). A
responsibility below $\varepsilon$ is outside the staircase's domain: the forward pass raises a ``DomainError``
naming ``floor`` (lower it, and raise ``heads`` with it: the Lipschitz constant of $\log$ there is $1/\varepsilon$).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import integer_in, positive, within_radius
from ..construction import Construction
from ..mlp import MLPBuilder
from ..model import Transformer
from ..moves import clear, replace
from ..residual import ResidualLayout
from ..softmax_heads import MAX_HEADS, STAIRCASE_SHARPNESS, Anchors, SigmoidStaircase, staircase_heads
from .layers import e_step_block, em_layout, m_step_block, points_and_means, refresh_block, token_values

SCORE_LIMIT = 1e300  # |scores| <= 1.5 beta R^2 must stay finite in float64
ANCHORS = Anchors()


@dataclass(frozen=True)
class SoftmaxHeadsReadout:
    """``means`` $(B, K, d)$ after the last step and ``responsibilities`` $(B, n, K)$ of its E-step."""

    means: torch.Tensor
    responsibilities: torch.Tensor


class SoftmaxHeadsEM(Construction):
    r"""$L$ soft EM steps with the M-step's $\log w$ from softmax-head staircases (module docstring).

    Args:
        dim: $d \ge 1$.
        components: $K \ge 2$.
        iterations: $L \ge 1$ (the model has $L(K + 3)$ attention sublayers).
        heads: $M \in [1, 100000]$, sigmoid heads per log layer (each layer has $M + 1$ heads).
        beta: $1/\sigma^2 > 0$.
        radius: $R$ with $\lVert x_i\rVert, \lVert\mu^{(0)}_k\rVert \le R$ (the exact norm refresh's bound).
        floor: $\varepsilon \in (0, 1/K]$, the lower end of the staircase's domain $[\varepsilon, 1]$.
        sharpness: $c = \gamma h > 0$.

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(
        self,
        dim: int,
        *,
        components: int,
        iterations: int,
        heads: int,
        beta: float = 1.0,
        radius: float = 10.0,
        floor: float = 0.05,
        sharpness: float = STAIRCASE_SHARPNESS,
    ):
        self.dim = integer_in("dim", dim, 1)
        self.components = integer_in("components", components, 2)
        self.iterations = integer_in("iterations", iterations, 1)
        self.heads = integer_in("heads", heads, 1, MAX_HEADS)
        self.beta = positive("beta", beta)
        self.radius = positive("radius", radius)
        if not self.beta * self.radius**2 <= SCORE_LIMIT:
            raise ValueError(
                f"beta * radius**2 must be <= {SCORE_LIMIT:g} so that the E-step scores stay finite in float64; "
                f"beta must be in (0, {SCORE_LIMIT / self.radius**2:.3g}] for radius={radius!r}"
            )
        self.floor = positive("floor", floor, 1.0 / self.components)
        self.log = SigmoidStaircase(np.log, self.floor, 1.0, self.heads, sharpness)

        base = em_layout(self.dim, self.components, "soft", update_weights=False)
        self.layout = ResidualLayout([(s.name, s.size) for s in base] + ANCHORS.blocks())
        layout = self.layout
        e_step_mlp = clear(replace(MLPBuilder(layout, "E-step: write w, clear log w"), "resp_new", "resp"), "log_resp")
        e_step = Transformer(
            layout, [e_step_block(layout, self.beta, None)["attn"], e_step_mlp.build()], ["attn", "mlp"]
        )
        logs = Transformer(
            layout,
            [
                staircase_heads(
                    layout,
                    "resp",
                    "log_resp",
                    self.log,
                    ANCHORS,
                    src_index=k,
                    dst_index=k,
                    tokens="is_data",
                    parameter="floor",
                    label=f"log w_{k}",
                )
                for k in range(self.components)
            ],
            [f"log{k}" for k in range(self.components)],
        )
        self.iteration = (
            refresh_block(layout, 2.0 * self.radius**2, None).scoped("refresh")
            + e_step.scoped("estep")
            + logs
            + m_step_block(layout, "soft", 1.0).scoped("mstep")  # the soft M-step has no sharpness
        )
        self.model = self.iteration * self.iterations

    def __repr__(self) -> str:
        return (
            f"SoftmaxHeadsEM(K={self.components}, d={self.dim}, L={self.iterations}, heads={self.heads}, "
            f"beta={self.beta:g}, radius={self.radius:g}, floor={self.floor:g}, sharpness={self.log.sharpness:g})"
        )

    def embed(
        self,
        points: np.ndarray | torch.Tensor,
        means: np.ndarray | torch.Tensor,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The input stream for data $X$ $(B, n, d)$ and initial means $(B, K, d)$ (a leading batch may be omitted):
        data tokens, centroid tokens, then the two anchors.

        Raises:
            ValueError: on wrong shapes, non-finite values, $n < K$ or norms above ``radius``.
        """
        x, mu = points_and_means(points, means, self.dim, self.components)
        within_radius("points and initial means", torch.cat([x, mu], dim=-2), self.radius)
        tokens, values = token_values(x, mu)
        batch = x.shape[0]
        stream = self.layout.embed(batch, tokens, values, device=device)
        return torch.cat([stream, ANCHORS.embed(self.layout, batch, device=stream.device)], dim=1)

    def readout(self, stream: torch.Tensor) -> SoftmaxHeadsReadout:
        """The means on the centroid tokens and the responsibilities on the data tokens."""
        n = stream.shape[-2] - self.components - 2
        read = self.layout.read
        return SoftmaxHeadsReadout(
            read(stream, "mu")[..., n : n + self.components, :], read(stream, "resp")[..., :n, :]
        )
