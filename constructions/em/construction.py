r"""EM for isotropic Gaussian mixtures (soft EM and Lloyd) as a hand-built transformer.

:class:`EMConstruction` stacks $L$ copies of one iteration (:mod:`tfconstruct.constructions.em.layers`),
each 3 attention + 3 MLP sublayers with at most 2 heads, over $n$ data tokens followed by
$K$ centroid tokens. The same weights serve every $n \ge K$.

Variants (``mode``, ``update_weights``):

* ``"soft"``, weights updated: EM with a fixed shared variance $\sigma^2 = 1/\beta$, updating
  means and mixing weights. Exact: the E-step given $(\mu, \log\pi)$, the mixing weights
  $\pi_k = \tfrac1n\sum_i w_{ik}$, the squared norms. Approximate: $\log w_{ik}$ and
  $\log\pi_k$ by hinge interpolants with ``width`` $M$ intervals on geometric knots in
  $[\varepsilon, 1]$ and $[\pi_{floor}, 1]$. Error bounds: :mod:`tfconstruct.theory.em`.
* ``"soft"``, ``update_weights=False``: equal mixing weights throughout; the E-step is exact
  at every iteration and the only approximation is $\log w_{ik}$ in the M-step.
* ``"hard"``: Lloyd's algorithm. E-step as above with a large $\beta$ (no weights), M-step
  softmax with score $a\,w_{ik}$. Exact up to $O(a(K-1)e^{-\beta g} + \tfrac{n}{n_k}e^{-a})$
  with $g$ the smallest half-margin; below round-off once $\beta g \gtrsim 40$ and
  $a \gtrsim 40 + \log n$. No width parameter.

Not covered: variance updates (spherical or shared) and non-isotropic covariances; the
numpy reference (:mod:`tfconstruct.verify.em.reference`) has the variance updates and is cross-checked
against scikit-learn on the full step.

Conventions and edge cases:

* an empty cluster (all M-step weights equal, e.g. no point assigned) gets the mean of all
  data (the softmax over equal scores), the rule the reference implements;
* exact ties in the hard E-step give each tied centroid weight $1/2$; the hard M-step then
  leaves the point out of both means (its weight is $e^{-a/2}$ relative to assigned points);
* all inputs must satisfy $\|x_i\|, \|\mu_k\| \le$ ``radius`` (checked), the bound $R$
  that makes the exact norm refresh exact; means stay in that ball because they are convex
  combinations of data points;
* scores are computed as $\beta(\langle x,\mu\rangle - s/2)$, so their float64 error is
  about $\epsilon_{mach}\,\beta R^2$: centre the data to keep it small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import as_batch, integer_in, positive, within_radius
from ..construction import Construction, TutorialExample
from ..piecewise import PiecewiseLinear, geometric_knots
from .layers import Mode, e_step_block, em_layout, m_step_block, points_and_means, refresh_block, token_values

MODES: tuple[str, ...] = ("soft", "hard")
SCORE_LIMIT = 1e300  # |scores| <= 1.5 beta R^2 must stay finite in float64 (max ~1.8e308)
WEIGHT_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class EMReadout:
    """What the stream holds after an iteration (torch tensors, batch first).

    ``means`` $(B, K, d)$; ``weights`` $(B, K)$ or ``None`` when weights are not updated;
    ``responsibilities`` $(B, n, K)$ of the E-step that produced these means; ``labels``
    $(B, n)$ their argmax.
    """

    means: torch.Tensor
    weights: torch.Tensor | None
    responsibilities: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        return torch.argmax(self.responsibilities, dim=-1)


class EMConstruction(Construction):
    r"""$L$ EM (or Lloyd) iterations as a transformer; see the module docstring.

    Args:
        dim: $d \ge 1$.
        components: $K \ge 2$ (clusters).
        iterations: $L \ge 1$ (the model has $3L$ attention sublayers).
        mode: ``"soft"`` (EM) or ``"hard"`` (Lloyd).
        beta: E-step inverse temperature; $1/\sigma^2$ for soft EM, large for Lloyd.
        radius: $R$ with $\|x_i\|, \|\mu^{(0)}_k\| \le R$ for every input.
        width: $M$, knot intervals of each log interpolant (soft mode only).
        floor: $\varepsilon \in (0, 1/2]$, lower end of the responsibility log interpolant (soft).
        weight_floor: $\pi_{floor} \in (0, 1/K]$, lower end of the $\log\pi$ interpolant (soft).
        sharpness: $a > 0$, the hard M-step's score scale (hard mode only).
        update_weights: update mixing weights (soft mode only; default ``True`` for soft).

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(
        self,
        dim: int,
        *,
        components: int,
        iterations: int,
        mode: Mode = "soft",
        beta: float = 1.0,
        radius: float = 10.0,
        width: int = 32,
        floor: float = 1e-8,
        weight_floor: float = 1e-2,
        sharpness: float = 50.0,
        update_weights: bool | None = None,
    ):
        self.components = integer_in("components", components, 2)
        self.dim = integer_in("dim", dim, 1)
        self.iterations = integer_in("iterations", iterations, 1)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode: Mode = mode
        self.beta = positive("beta", beta)
        self.radius = positive("radius", radius)
        if not self.beta * self.radius**2 <= SCORE_LIMIT:
            raise ValueError(
                f"beta * radius**2 must be <= {SCORE_LIMIT:g} so that the E-step scores "
                f"beta(<x, mu> - ||mu||^2/2) stay finite in float64; got beta={beta!r} with radius={radius!r}, "
                f"so beta must be in (0, {SCORE_LIMIT / self.radius**2:.3g}]"
            )
        if update_weights and mode == "hard":
            raise ValueError("update_weights=True needs mode='soft': Lloyd's algorithm has no mixing weights")
        self.update_weights = mode == "soft" if update_weights is None else bool(update_weights)
        self.width = integer_in("width", width, 1, 100_000) if mode == "soft" else None
        self.floor = positive("floor", floor, 0.5)
        self.weight_floor = positive("weight_floor", weight_floor, 1.0 / self.components)
        self.sharpness = positive("sharpness", sharpness)
        self.gram_bound = 2.0 * self.radius**2

        self.layout = em_layout(self.dim, self.components, self.mode, self.update_weights)
        log_resp = self._log_interpolant(self.floor) if mode == "soft" else None
        log_pi = self._log_interpolant(self.weight_floor) if self.update_weights else None
        self.refresh = refresh_block(self.layout, self.gram_bound, log_pi)
        self.e_step = e_step_block(self.layout, self.beta, log_resp)
        self.m_step = m_step_block(self.layout, self.mode, self.sharpness)
        self.iteration = self.refresh.scoped("refresh") + self.e_step.scoped("estep") + self.m_step.scoped("mstep")
        self.model = self.iteration * self.iterations

    def _log_interpolant(self, low: float) -> PiecewiseLinear:
        return PiecewiseLinear.interpolate(np.log, geometric_knots(low, 1.0, self.width), "log")

    def __repr__(self) -> str:
        knobs = f"beta={self.beta:g}, radius={self.radius:g}"
        knobs += (
            f", width={self.width}, floor={self.floor:g}" if self.mode == "soft" else f", sharpness={self.sharpness:g}"
        )
        return (
            f"EMConstruction(K={self.components}, d={self.dim}, L={self.iterations}, mode={self.mode!r}, "
            f"update_weights={self.update_weights}, {knobs})"
        )

    # ------------------------------------------------------------------ input / output

    def embed(
        self,
        points: np.ndarray | torch.Tensor,
        means: np.ndarray | torch.Tensor,
        weights: np.ndarray | torch.Tensor | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The input stream for data $X$ $(B, n, d)$, initial means $(B, K, d)$ and weights $(B, K)$.

        A leading batch dimension may be omitted. ``weights`` default to $1/K$ and are only
        accepted when weights are updated.

        Raises:
            ValueError: on wrong shapes, non-finite values, $n < K$, norms above ``radius``,
                or weights that are not a probability vector.
        """
        x, mu = points_and_means(points, means, self.dim, self.components)
        batch, n, _ = x.shape
        within_radius("points and initial means", torch.cat([x, mu], dim=-2), self.radius)
        tokens, values = token_values(x, mu)
        if self.update_weights:
            pi = self._weights(weights, batch)
            values["pi"] = torch.cat([torch.zeros(batch, n), pi], dim=1).unsqueeze(-1)
        elif weights is not None:
            raise ValueError("weights are only used with mode='soft' and update_weights=True; pass weights=None")
        return self.layout.embed(batch, tokens, values, device=device)

    def _weights(self, weights: np.ndarray | torch.Tensor | None, batch: int) -> torch.Tensor:
        if weights is None:
            return torch.full((batch, self.components), 1.0 / self.components, dtype=torch.float64)
        pi = as_batch("weights", weights, 2)
        if tuple(pi.shape) != (batch, self.components):
            raise ValueError(f"weights must have shape ({batch}, {self.components}), got {tuple(pi.shape)}")
        if bool((pi <= 0).any()) or bool(((pi.sum(-1) - 1).abs() > WEIGHT_SUM_TOLERANCE).any()):
            raise ValueError(f"weights must be > 0 and sum to 1 (within {WEIGHT_SUM_TOLERANCE:g}) per batch entry")
        return pi

    def readout(self, stream: torch.Tensor) -> EMReadout:
        """Means, weights and responsibilities held by a stream at an iteration boundary."""
        n = stream.shape[-2] - self.components
        read = self.layout.read
        weights = read(stream, "pi")[..., n:, 0] if self.update_weights else None
        return EMReadout(read(stream, "mu")[..., n:, :], weights, read(stream, "resp")[..., :n, :])

    def trajectory(self, stream: torch.Tensor) -> list[EMReadout]:
        """The read-out after each of the $L$ iterations (one forward pass that records only those streams)."""
        hooks = [self.model.hook_after(f"iter{t}") for t in range(self.iterations)]
        trace = self.model(stream, trace=hooks)
        return [self.readout(trace[hook]) for hook in hooks]


def tutorial_example() -> TutorialExample:
    """One soft EM iteration with weight updates on 4 points in the plane, $K = 2$, $M = 4$."""
    construction = EMConstruction(
        2, components=2, iterations=1, mode="soft", beta=1.0, radius=3.0, width=4, floor=1e-4, weight_floor=0.1
    )
    points = np.array([[-2.0, 0.3], [-1.5, -0.4], [1.8, 0.2], [2.2, -0.1]])
    means = np.array([[-1.0, 0.0], [1.0, 0.5]])
    stream = construction.embed(points, means, np.array([0.4, 0.6]))
    return TutorialExample(
        title="Soft EM for a Gaussian mixture (one iteration, K = 2, d = 2, n = 4)",
        model=construction.model,
        stream=stream,
        notes=_TUTORIAL_NOTES,
    )


_TUTORIAL_NOTES = r"""
**Parameters.** $\beta = 1$ ($\sigma^2 = 1$), radius $R = 3$ (so $B = 2R^2 = 18$), width $M = 4$
knot intervals per log, $\varepsilon = 10^{-4}$, $\pi_{floor} = 0.1$. So small a width keeps the
heat-maps readable but makes the logs coarse: here the means are within $0.06$ of one exact EM
step and the weights within $10^{-3}$ (the error falls as $M^{-2}$; see `tfconstruct.theory.em`).

**Tokens.** Rows 0-3 are data tokens ($x_i \in \mathbb{R}^2$), rows 4-5 are centroid tokens
(initial $\mu_k$, $\pi_k$). The flags `is_data`, `is_centroid` are the token types; every head
masks its keys by one of them (an ordinary attention mask).

**Subspaces.** `x`: the data point. `mu`, `pi`: the current mean and mixing weight of centroid
$k$. `cluster`: the one-hot index $e_k$. `sq_norm` $= \|\mu_k\|^2$ and `log_pi`
$\approx \log\pi_k$: the key coordinates of the E-step, refreshed at the start of each iteration.
`resp` $= w_i$ and `log_resp` $\approx \log w_i$: the responsibilities on data token $i$.
`resp_new`, `mu_new`, `sq_norm_new`, `resp_mean`: scratch written by an attention sublayer and
moved into place (and zeroed) by the MLP after it. `one`: the constant 1 (biases).

**Layer 0 (attention, ReLU, no 1/N).** Score $\langle\mu_k,\mu_l\rangle + B\langle e_k, e_l\rangle - B$
with $B = 2R^2$: positive only for $l = k$, where it equals $\|\mu_k\|^2$; the value `one` lands in
`sq_norm_new`. **Layer 1 (MLP).** `sq_norm` $\leftarrow$ `sq_norm_new` exactly
($t = \sigma(t) - \sigma(-t)$), and `log_pi` $\leftarrow \hat\ell(\pi)$, the hinge interpolant of
$\log$ on $M + 1$ geometric knots in $[\pi_{floor}, 1]$.

**Layer 2 (attention, softmax).** Data queries, centroid keys, score
$\beta(\langle x_i,\mu_k\rangle - \tfrac12\|\mu_k\|^2) + \log\pi_k$, value $e_k$: the output is the
exact EM responsibility $w_{ik} \propto \pi_k e^{-\beta\|x_i-\mu_k\|^2/2}$ (the $\|x_i\|^2$ term
is common to all $k$ and cancels). **Layer 3 (MLP).** `resp` $\leftarrow w_i$ and
`log_resp` $\leftarrow \hat\ell(w_i)$ (hinges on geometric knots in $[\varepsilon, 1]$).

**Layer 4 (attention, two softmax heads).** Centroid queries, data keys. Head 1 scores
$\langle e_k, \hat\ell(w_i)\rangle \approx \log w_{ik}$, so its weights are $\approx w_{ik}/\sum_j w_{jk}$
and it writes the weighted mean of `x` into `mu_new` without a division. Head 2 scores 0, so it
writes $\tfrac1n\sum_i w_i$ into `resp_mean`. **Layer 5 (MLP).** `mu` $\leftarrow$ `mu_new`;
$\pi_k \leftarrow \sum_j \sigma(\bar w_j + e_{kj} - 1) = \bar w_k$ exactly; scratch zeroed.

**Reading the result.** After the last layer, `mu` and `pi` on the centroid rows are
$\mu^{(1)}, \pi^{(1)}$; `resp` on the data rows holds the responsibilities used for them, and
its argmax is the clustering.
"""
