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
from ..lesson import Role
from ..model import Trace
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


TUTORIAL_ROLES: dict[str, Role] = {
    "x": "input",
    "mu": "state",
    "sq_norm": "scratch",
    "pi": "state",
    "log_pi": "scratch",
    "cluster": "input",
    "resp": "result",
    "log_resp": "scratch",
    "is_data": "input",
    "is_centroid": "input",
    "one": "input",
    "resp_new": "scratch",
    "mu_new": "scratch",
    "sq_norm_new": "scratch",
    "resp_mean": "scratch",
}
TUTORIAL_POINTS = np.array([[-2.0, 0.3], [-1.5, -0.4], [1.8, 0.2], [2.2, -0.1]])
TUTORIAL_MEANS = np.array([[-1.0, 0.0], [1.0, 0.5]])
TUTORIAL_WEIGHTS = np.array([0.4, 0.6])


def tutorial_example(*, width: int = 4, iterations: int = 2) -> TutorialExample:
    r"""Soft EM with weight updates on 4 points in the plane, $K = 2$: ``iterations`` iterations with log interpolants
    of ``width`` $M$ knot intervals; the notes set each value beside textbook EM's (numpy)."""
    construction = EMConstruction(
        2, components=2, iterations=iterations, mode="soft", beta=1.0, radius=3.0, width=width, floor=1e-4,
        weight_floor=0.1,
    )  # fmt: skip
    stream = construction.embed(TUTORIAL_POINTS, TUTORIAL_MEANS, TUTORIAL_WEIGHTS)
    with torch.no_grad():
        trace = construction.model(stream, trace=True)
    return TutorialExample(
        title=f"Soft EM for a Gaussian mixture ({iterations} iterations, K = 2, d = 2, n = 4)",
        model=construction.model,
        stream=stream,
        notes=_tutorial_notes(construction, trace),
        roles=TUTORIAL_ROLES,
    )


def _exact_em(beta: float, iterations: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    r"""Textbook soft EM on the tutorial's data with the shared variance $1/\beta$, in numpy: the responsibilities,
    means and weights of each iteration."""
    means, weights = TUTORIAL_MEANS, TUTORIAL_WEIGHTS
    steps = []
    for _ in range(iterations):
        logits = np.log(weights) - beta / 2 * ((TUTORIAL_POINTS[:, None] - means[None]) ** 2).sum(-1)
        resp = np.exp(logits - logits.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        means, weights = resp.T @ TUTORIAL_POINTS / resp.sum(axis=0)[:, None], resp.mean(axis=0)
        steps.append((resp, means, weights))
    return steps


def _tutorial_notes(construction: EMConstruction, trace: Trace) -> str:
    """The tutorial's notes, with the transformer's values on this example beside textbook EM's."""
    layout, n = construction.layout, len(TUTORIAL_POINTS)

    def read(hook: str, name: str) -> np.ndarray:
        return layout.read(trace[hook], name)[0].numpy()

    rows = [
        "| iteration $t$ | quantity | this transformer | textbook EM (numpy) | max abs. difference | exact? |",
        "|---|---|---|---|---|---|",
    ]
    weights = TUTORIAL_WEIGHTS
    for t, (resp, means, new_weights) in enumerate(_exact_em(construction.beta, construction.iterations)):
        own = read(f"iter{t}.estep.mlp", "resp")[:n]
        after = f"iter{t}.mstep.mlp"
        e_step = r"yes, given $\mu$ and $\hat\ell(\pi)$"
        compared = [
            (r"$\hat\ell(\pi^{(t)}_k)$ vs $\log\pi^{(t)}_k$", read(f"iter{t}.refresh.mlp", "log_pi")[n:, 0],
             np.log(weights), "no (width-$M$ hinges)"),
            (r"$w^{(t)}_{0k}$ (token 0)", own[0], resp[0], e_step),
            (r"$w^{(t)}_{ik}$ (every data token)", own, resp, e_step),
            (r"$\pi^{(t+1)}_k$", read(after, "pi")[n:, 0], new_weights, "yes, given $w$"),
            (r"$\mu^{(t+1)}_0$", read(after, "mu")[n], means[0], r"no ($\hat\ell(w)$ scores)"),
            (r"$\mu^{(t+1)}_1$", read(after, "mu")[n + 1], means[1], r"no ($\hat\ell(w)$ scores)"),
        ]  # fmt: skip
        for label, mine, exact, exactness in compared:
            values = f"{_numbers(mine)} | {_numbers(exact)}" if mine.ndim == 1 else " | "
            difference = float(np.abs(mine - exact).max())
            rows.append(f"| {t} | {label} | {values} | {difference:.4g} | {exactness} |")
        weights = new_weights
    comparison = "\n".join(rows)
    return rf"""
**Parameters.** $\beta = 1$ (variance $1/\beta = 1$), radius $R = 3$ (so $B = 2R^2 = 18$), $L = {construction.iterations}$
iterations, width $M = {construction.width}$ knot intervals per logarithm, $\varepsilon = 10^{{-4}}$, $\pi_{{floor}} = 0.1$.
Iteration $t$ (the sublayers `iter<t>.*`) maps $(\mu^{{(t)}}, \pi^{{(t)}})$ to $(\mu^{{(t+1)}}, \pi^{{(t+1)}})$ through
the responsibilities $w^{{(t)}}_{{ik}}$; subscripts index data tokens $i$ and clusters $k$.

**Tokens.** Rows 0-3 are data tokens ($x_i \in \mathbb{{R}}^2$), rows 4-5 are centroid tokens
(initial $\mu_k$, $\pi_k$). The flags `is_data`, `is_centroid` are the token types; every head
masks its keys by one of them (an ordinary attention mask).

**Subspaces.** `x`: the data point. `mu`, `pi`: the current mean and mixing weight of centroid
$k$ (the state). `cluster`: the one-hot index $e_k$. `sq_norm` $= \|\mu_k\|^2$ and `log_pi`
$= \hat\ell(\pi_k) \approx \log\pi_k$: the key coordinates of the E-step, refreshed at the start of each iteration.
`resp` $= w_i$ and `log_resp` $= \hat\ell(w_i) \approx \log w_i$: the responsibilities on data token $i$.
`resp_new`, `mu_new`, `sq_norm_new`, `resp_mean`: scratch written by an attention sublayer and
moved into place (and zeroed) by the MLP after it. `one`: the constant 1 (biases).
**Per-token leftovers:** `resp` and `log_resp` on the centroid rows, and `mu` and `log_pi` on the data rows, hold
values of heads whose queries are the other token type. They only ever feed other leftovers (as queries of their
own token); every head that reads them as keys masks that token type out, and the read-out ignores them, so skip
them in the tables.

**`refresh.attn`** (ReLU, no $1/N$). Score $\langle\mu_k,\mu_l\rangle + B\langle e_k, e_l\rangle - B$
with $B = 2R^2$: positive only for $l = k$, where it equals $\|\mu_k\|^2$; the value `one` lands in
`sq_norm_new`, exactly. **`refresh.mlp`.** `sq_norm` $\leftarrow$ `sq_norm_new` exactly
($a = \mathrm{{ReLU}}(a) - \mathrm{{ReLU}}(-a)$), and `log_pi` $\leftarrow \hat\ell(\pi)$, the hinge interpolant of
$\log$ on $M + 1$ geometric knots in $[\pi_{{floor}}, 1]$: approximate, exact only at the knots.

**`estep.attn`** (softmax). Data queries, centroid keys, score
$\beta(\langle x_i,\mu_k\rangle - \tfrac12\|\mu_k\|^2) + \hat\ell(\pi_k)$, value $e_k$. The softmax over $k$ is
computed exactly: given the keys it reads, it is $\propto e^{{\hat\ell(\pi_k)}} e^{{-\beta\|x_i-\mu_k\|^2/2}}$ (the
$\|x_i\|^2$ term is common to all $k$ and cancels), so **its pattern's data rows are the responsibilities**
$w_{{ik}}$, columns 4 and 5 being clusters 0 and 1. It differs from textbook EM's
$\propto \pi_k e^{{-\beta\|x_i-\mu_k\|^2/2}}$ only through $\hat\ell(\pi_k) - \log\pi_k$ (and, from the second
iteration on, through the approximate $\mu$, $\pi$ it starts from). **`estep.mlp`.** `resp` $\leftarrow w_i$ exactly
and `log_resp` $\leftarrow \hat\ell(w_i)$ (hinges on geometric knots in $[\varepsilon, 1]$, approximate).

**`mstep.attn`** (two softmax heads). Centroid queries, data keys. Head 1 scores
$\langle e_k, \hat\ell(w_i)\rangle \approx \log w_{{ik}}$, so its weights are $\approx w_{{ik}}/\sum_j w_{{jk}}$
and it writes the weighted mean of `x` into `mu_new` without a division: approximate, through $\hat\ell$. Head 2
scores 0, so it writes $\tfrac1n\sum_i w_i$ into `resp_mean`, exactly. **`mstep.mlp`.** `mu` $\leftarrow$ `mu_new`;
$\pi_k \leftarrow \sum_j \mathrm{{ReLU}}(\bar w_j + e_{{kj}} - 1) = \bar w_k$ exactly; scratch zeroed.

**What is exact, on this example.** The transformer's values beside textbook EM run in numpy from the same
$(\mu^{{(0)}}, \pi^{{(0)}})$ (the exact column says whether the sublayer is exact given what it reads; the
differences of "exact" rows come from their approximate inputs, and they fall as $M^{{-2}}$: rebuild with
`tutorial_example(width=M)`):

{comparison}

**Reading the result.** After the last sublayer, `mu` and `pi` on the centroid rows are
$\mu^{{(L)}}, \pi^{{(L)}}$; `resp` on the data rows holds the responsibilities of the last E-step, and
its argmax is the clustering.
"""


def _numbers(values: np.ndarray) -> str:
    """Values rounded to 4 significant digits, in parentheses when there are several."""
    numbers = [f"{float(v):.4g}" for v in np.ravel(values)]
    return numbers[0] if len(numbers) == 1 else "(" + ", ".join(numbers) + ")"
