"""Power iteration, top-$k$ PCA by deflation, as a hand-built transformer.

One power step for eigenvector $l$ is

.. math::

    v_{t+1} = \\hat\\phi_M\\big(\\|\\hat\\Sigma_l v_t\\|^2\\big)\\,\\hat\\Sigma_l v_t,
    \\qquad \\hat\\Sigma_l = \\hat\\Sigma - \\sum_{p<l}\\hat\\lambda_p V_p V_p^\\top,
    \\qquad \\hat\\Sigma = \\tfrac1n X^\\top X,

where $\\hat\\phi_M \\approx s^{-1/2}$ is a ReLU hinge MLP with $M$ knot intervals on
$[a, b]$ (:mod:`constructions.power_blocks` builds the layers). The product
$\\hat\\Sigma_l v_t$ is exact (ReLU or linear attention); $\\hat\\phi_M > 0$, so **the
direction of every iterate is exactly that of power iteration** and only the norm carries
the width error: $|\\|v_{t+1}\\| - 1| \\le \\epsilon_M$, the relative error of
$\\hat\\phi_M$ (:data:`theory.interpolation.INV_SQRT_RELATIVE`), while $s_t \\in [a, b]$.
$J$ optional Newton steps per eigenvector shrink the norm error $e \\mapsto -e^2(3+e)/2$.

Depth: $\\sum_l (3T + 2J + 3)$ attention layers (+1 when centring). Heads per layer
$\\le 2k$ (ReLU). MLP width $\\max(M + 2, 6d + 4)$.

**Choosing $[a, b]$.** The MLP sees $s_t = \\|\\hat\\Sigma_l v_t\\|^2$. Since
$\\|Av\\|^2 = \\langle A^2 v, v\\rangle \\le \\|A^2 v\\|\\|v\\|$ for symmetric $A$, the ratio
$\\|\\hat\\Sigma_l v_t\\|/\\|v_t\\|$ never decreases along the iteration, and it is at most
$\\lambda_1 \\le \\|\\hat\\Sigma\\|_F$. :func:`default_domain` therefore takes
$b = (1.25\\,\\|\\hat\\Sigma\\|_F)^2$ (norms up to 25% high) and $a = (0.75\\,\\|\\hat\\Sigma\\|_F / r)^2$
for a dynamic range $r$ (default 100): every eigenvalue $\\lambda_l \\ge \\|\\hat\\Sigma\\|_F/r$
has its late iterates inside $[a, b]$. An early $s_t < a$ (a seed nearly orthogonal to the
remaining spectrum) only makes $\\|v_{t+1}\\| < 1$; the norm grows back at rate
$\\lambda_l/\\sqrt a$. :meth:`PowerIteration.trajectory` records every $s_t$ so the
assumption can be checked.

**Width and round-off.** At a fixed norm $n = 1 + e$ the norm map $n \mapsto \lambda n\,\hat\phi(\lambda^2 n^2)$
has slope $1 + 2 s\hat\phi'(s)/\hat\phi(s)$, which on a knot interval of ratio $\rho = (b/a)^{1/M}$
reaches $-1$ at the interval's right end when $\rho = \varphi^2 = (3+\sqrt5)/2 \approx 2.618$. Coarser
hinges keep the norm within $\epsilon_M$ and the direction exact, but the norm map expands
round-off (and the per-token copies of the norm drift apart inside that band);
:func:`stable_width` is the smallest $M$ with $\rho \le \varphi^2$.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .checks import as_batch, integer_in, positive
from .example import TutorialExample
from .model import Transformer
from .piecewise import PiecewiseLinear, geometric_knots
from .power_blocks import (
    EXACT_SCORINGS,
    ExactScoring,
    centre_layer,
    finish_eigenvector,
    newton_step,
    power_layout,
    power_step,
    start_eigenvector_mlp,
)
from .residual import DEFAULT_DTYPE, ResidualLayout

#: Index in a power step's trace of the stream right after $s = \|u\|^2$ is written.
_AFTER_SQUARED_NORM = 2


@dataclass(frozen=True)
class PowerResult:
    """Eigenvectors ``vectors`` (batch, k, d) and eigenvalues ``values`` (batch, k), read from token 0."""

    vectors: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class PowerTrajectory:
    """Every power iterate of a forward pass.

    ``iterates[b, l, t]`` is $v_t$ of eigenvector $l$ ($t = 0$ is the unit seed, $t = T$ the
    last power step, before any Newton step); ``squared_norms[b, l, t]`` is the $s_t$ the MLP
    saw in step $t+1$; ``stream`` is the final stream (identical to ``model(stream)``).
    """

    iterates: torch.Tensor
    squared_norms: torch.Tensor
    stream: torch.Tensor


def second_moment_norm(X: torch.Tensor, *, centre: bool = False) -> torch.Tensor:
    """$\\|\\hat\\Sigma\\|_F$ per instance, $\\hat\\Sigma = \\frac1n X^\\top X$ (of the centred data with ``centre``)."""
    X = as_batch("X", X, 3)
    if centre:
        X = X - X.mean(dim=-2, keepdim=True)
    return torch.linalg.matrix_norm(X.transpose(-1, -2) @ X / X.shape[-2])


def default_domain(X: torch.Tensor, *, centre: bool = False, dynamic_range: float = 100.0) -> tuple[float, float]:
    """$[a, b] = [(0.75 F / r)^2, (1.25 F)^2]$ with $F = \\max \\|\\hat\\Sigma\\|_F$ over the batch (module docstring).

    Raises:
        ValueError: if every instance has $\\hat\\Sigma = 0$, or ``dynamic_range`` is not > 1.
    """
    if not (math.isfinite(dynamic_range) and dynamic_range > 1):
        raise ValueError(f"dynamic_range must be finite and > 1, got {dynamic_range!r}")
    norms = second_moment_norm(X, centre=centre)
    if not bool((norms > 0).any()):
        raise ValueError("X has a zero second-moment matrix in every instance; there is no spectrum to find")
    high = float(norms.max())
    return (0.75 * high / dynamic_range) ** 2, (1.25 * high) ** 2


def stable_width(domain: tuple[float, float]) -> int:
    """The smallest $M$ with knot ratio $(b/a)^{1/M} \le (3+\sqrt5)/2$: the norm map does not expand round-off."""
    low, high = _check_domain(domain)
    return max(1, math.ceil(math.log(high / low) / math.log((3 + math.sqrt(5)) / 2)))


def default_seeds(dim: int, k: int, seed: int = 0) -> torch.Tensor:
    """$k$ unit Gaussian starting vectors, shape (k, dim), reproducible from ``seed``.

    A Gaussian seed overlaps every eigenvector with probability 1 (power iteration cannot
    find an eigenvector the seed is orthogonal to).
    """
    gaussian = np.random.default_rng(seed).standard_normal((k, dim))
    return torch.as_tensor(gaussian / np.linalg.norm(gaussian, axis=-1, keepdims=True), dtype=DEFAULT_DTYPE)


class PowerIteration:
    """Top-$k$ eigenpairs of $\\hat\\Sigma = \\frac1n X^\\top X$ by power iteration with deflation.

    Args:
        dim: data dimension $d$.
        k: number of eigenpairs, $1 \\le k \\le d$.
        steps: power steps $T \\ge 1$ per eigenvector.
        width: knot intervals $M \\ge 1$ of the $s^{-1/2}$ MLP ($M + 2$ hidden units).
        domain: $[a, b]$, $0 < a < b$, on which the MLP interpolates $s^{-1/2}$
            (see :func:`default_domain`; :meth:`for_data` picks it from the data).
        newton: Newton refinements $J \\ge 0$ of the norm before each eigenvector is stored.
        attention: ``"relu"`` (signed head pairs) or ``"linear"`` scoring.
        centre: subtract the token mean from $x$ first, so $\\hat\\Sigma$ is the covariance.

    Attributes:
        layout: the :class:`ResidualLayout` (:func:`~constructions.power_blocks.power_layout`).
        model: the :class:`Transformer`.
        phi: the :class:`PiecewiseLinear` interpolant the MLP computes.
    """

    def __init__(
        self,
        dim: int,
        *,
        k: int = 1,
        steps: int = 40,
        width: int = 32,
        domain: tuple[float, float] = (1e-2, 1e2),
        newton: int = 0,
        attention: ExactScoring = "relu",
        centre: bool = False,
    ):
        self.dim = integer_in("dim", dim, 1)
        self.k = integer_in("k", k, 1, self.dim)
        self.steps = integer_in("steps", steps, 1)
        self.width = integer_in("width", width, 1)
        self.newton = integer_in("newton", newton, 0)
        if attention not in EXACT_SCORINGS:
            raise ValueError(f"attention must be one of {EXACT_SCORINGS}, got {attention!r}")
        self.attention: ExactScoring = attention
        self.domain = _check_domain(domain)
        self.centre = bool(centre)
        self.layout = self._make_layout()
        self.phi = PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(*self.domain, self.width))
        self._prefix = Transformer(self.layout, self._prefix_layers())
        self._steps = [Transformer(self.layout, power_step(self.layout, attention, l, self.phi)) for l in range(self.k)]
        self._newton = Transformer(self.layout, newton_step(self.layout, attention))
        self._finish = [Transformer(self.layout, finish_eigenvector(self.layout, attention, l, self.k)) for l in range(self.k)]
        self._tail = Transformer(self.layout, self._tail_layers())
        self.model = self._prefix
        for l in range(self.k):
            self.model = self.model + self._steps[l] * self.steps + self._newton * self.newton + self._finish[l]
        self.model = self.model + self._tail

    @classmethod
    def for_data(cls, X: torch.Tensor, *, dynamic_range: float = 100.0, **options) -> "PowerIteration":
        """A transformer for data like ``X`` (batch, n, d): ``dim`` from ``X``, ``domain`` from :func:`default_domain`."""
        X = as_batch("X", X, 3)
        options.setdefault("domain", default_domain(X, centre=options.get("centre", False), dynamic_range=dynamic_range))
        return cls(X.shape[-1], **options)

    def _make_layout(self) -> ResidualLayout:
        return power_layout(self.dim, self.k)

    def _prefix_layers(self) -> list:
        return ([centre_layer(self.layout, self.attention)] if self.centre else []) + [start_eigenvector_mlp(self.layout, 0)]

    def _tail_layers(self) -> list:
        return []

    def embed(self, X: torch.Tensor, seeds: torch.Tensor | None = None, *, device: str | torch.device | None = None) -> torch.Tensor:
        """The input stream: $x_i$ in token $i$, the unit seeds broadcast to every token.

        Args:
            X: data, shape (batch, n, d) or (n, d).
            seeds: starting vectors, shape (batch, k, d) or (k, d); normalised to unit length.
                Default :func:`default_seeds`.

        Raises:
            ValueError: on a wrong shape, a non-finite entry, or a zero seed.
        """
        X = as_batch("X", X, 3)
        batch, n, d = X.shape
        if d != self.dim or n < 1:
            raise ValueError(f"X must have shape (batch, n >= 1, d = {self.dim}), got {tuple(X.shape)}")
        seeds = as_batch("seeds", default_seeds(self.dim, self.k) if seeds is None else seeds, 3)
        if seeds.shape[-2:] != (self.k, self.dim) or seeds.shape[0] not in (1, batch):
            raise ValueError(
                f"seeds must have shape ({batch} or 1, k = {self.k}, d = {self.dim}) or (k, d), got {tuple(seeds.shape)}"
            )
        norms = torch.linalg.vector_norm(seeds, dim=-1, keepdim=True)
        if not bool((norms > 0).all()):
            raise ValueError("seeds must be non-zero vectors (a zero seed stays zero under power iteration)")
        units = (seeds / norms).expand(batch, self.k, self.dim).unsqueeze(-2)
        values = {"x": X, "one": 1.0, **{f"seed_{l}": units[:, l] for l in range(self.k)}}
        return self.layout.embed(batch, n, values, device=device)

    def readout(self, stream: torch.Tensor) -> PowerResult:
        """$V_l$ and $\\hat\\lambda_l$ from token 0 of the final stream."""
        first = stream[:, 0]
        vectors = torch.stack([self.layout.read(first, f"V_{l}") for l in range(self.k)], dim=1)
        values = torch.cat([self.layout.read(first, f"lam_{l}") for l in range(self.k)], dim=-1)
        return PowerResult(vectors, values)

    def run(self, X: torch.Tensor, seeds: torch.Tensor | None = None) -> PowerResult:
        """``readout(model(embed(X, seeds)))``."""
        return self.readout(self.model(self.embed(X, seeds)))

    def trajectory(self, stream: torch.Tensor) -> PowerTrajectory:
        """Run the model segment by segment (the same layers in the same order as ``model``), recording $v_t$ and $s_t$."""
        stream = self._prefix(stream)
        iterates, squared_norms = [], []
        for l in range(self.k):
            per_step, norms = [self.layout.read(stream[:, 0], "v")], []
            for _ in range(self.steps):
                trace = self._steps[l](stream, trace=True)
                norms.append(self.layout.read(trace.streams[_AFTER_SQUARED_NORM][:, 0], "s")[..., 0])
                stream = trace.output
                per_step.append(self.layout.read(stream[:, 0], "v"))
            for _ in range(self.newton):
                stream = self._newton(stream)
            stream = self._finish[l](stream)
            iterates.append(torch.stack(per_step, dim=1))
            squared_norms.append(torch.stack(norms, dim=1))
        stream = self._tail(stream)
        return PowerTrajectory(torch.stack(iterates, dim=1), torch.stack(squared_norms, dim=1), stream)

    def broadcast_spread(self, stream: torch.Tensor) -> float:
        """$\\max_{i, \\text{block}} |h_i - h_0|$ over the broadcast blocks: 0 up to round-off."""
        names = [n for n in self.layout.names if n not in ("x", "z", "y")]
        spread = [(self.layout.read(stream, n) - self.layout.read(stream[:, :1], n)).abs().max() for n in names]
        return float(torch.stack(spread).max())


def _check_domain(domain: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in domain)
    except (TypeError, ValueError):
        raise ValueError(f"domain must be a pair (a, b) of numbers with 0 < a < b, got {domain!r}") from None
    positive("domain lower end a", low)
    if not (math.isfinite(high) and high > low):
        raise ValueError(f"domain must satisfy 0 < a < b < inf, got a={low!r}, b={high!r}")
    return low, high


def tutorial_example() -> TutorialExample:
    """Two power steps on four points in the plane, width $M = 4$ on $[a, b] = [0.1, 10]$."""
    X = torch.tensor([[2.0, 0.5], [-1.5, -0.5], [1.0, 1.0], [-1.0, 0.0]], dtype=DEFAULT_DTYPE)
    construction = PowerIteration(2, k=1, steps=2, width=4, domain=(0.1, 10.0))
    stream = construction.embed(X, torch.tensor([[1.0, 1.0]]))
    notes = r"""
**Power iteration** $v_{t+1} = \hat\Sigma v_t / \|\hat\Sigma v_t\|$ with $\hat\Sigma = \frac1n\sum_j x_j x_j^\top$,
$n = 4$ tokens in $d = 2$ dimensions, $T = 2$ steps, then the eigenvalue.

**Subspaces.** `x` holds token $i$'s data point $x_i$; `one` is 1 (biases and constant scores);
`seed_0` is the starting vector $v_0$ (normalised, the same in every token). The rest are *broadcast*
blocks, equal in every token: `v` (iterate), `u` ($\hat\Sigma v$), `s` ($\|u\|^2$), `f`
($\hat\phi(s) \approx s^{-1/2}$), `vn` (next iterate), `V_0`, `lam_0`, `W_0` (result).

**Layers of one power step** (ReLU attention divides by the number of tokens $n$):

1. *$u = \hat\Sigma v$*: two heads with scores $\pm\langle v_i, x_j\rangle$ and values $\pm x_j \to u$;
   since $\sigma(t) - \sigma(-t) = t$ they add $\frac1n\sum_j \langle v, x_j\rangle x_j$.
2. *$s = \|u\|^2$*: score $\langle u_i, u_j\rangle = \|u\|^2 \ge 0$, value $\mathrm{one}_j \to s$.
3. *MLP* $f = \hat\phi(s) = b^{-1/2} + \sum_{m=0}^{4} w_m \sigma(t_m - s)$ on geometric knots
   $t_m = 0.1 \cdot 100^{m/4}$ ($b = 10$): the piecewise-linear interpolant of $s^{-1/2}$ (relative error
   $\le \frac{3}{32}(\rho-1)^2\sqrt\rho$, $\rho = 100^{1/4}$), flat outside $[0.1, 10]$. The hinges open
   towards small $s$, where the slope of $s^{-1/2}$ is large, so no large terms cancel.
4. *$vn = f\,u$*: score $f_i \cdot \mathrm{one}_j = f > 0$, value $u_j \to vn$.
5. *MLP* (per token, exact ReLU pairs): $v \leftarrow vn$, then $vn, u, s, f \leftarrow 0$.

Because $\hat\phi > 0$ the direction of $v_t$ is exactly that of power iteration; only its norm
$\|v_t\| = \hat\phi(s)\sqrt s$ carries the interpolation error.

**Finish.** $u = \hat\Sigma v$ again and $V_0 \leftarrow v$; $\lambda_0 = \langle v, u\rangle$ (signed
heads, value $\mathrm{one}_j \to \lambda_0$); $W_0 = \lambda_0 V_0$ (used to deflate later eigenvectors).

**Reading the result.** Block `V_0` of any token is the eigenvector estimate (compare it with
`numpy.linalg.eigh` through $|\cos|$: the sign comes from the seed), `lam_0` the eigenvalue.
"""
    return TutorialExample("Power iteration: two steps in two dimensions", construction.model, stream, notes)
