r"""Power iteration on the second-moment matrix of data tokens: top-$k$ PCA as a hand-built transformer.

:class:`DataCovariance` is the order-2 :class:`~tfconstruct.constructions.power.engine.Contraction`
$T(I, v) = \hat\Sigma v = \frac1n\sum_j \langle v, x_j\rangle x_j$, $\hat\Sigma = \frac1n X^\top X$: one attention
layer whose heads score $\pm\langle v_i, x_j\rangle$ and carry $\pm x_j \to u$ (a ReLU head adds
$\frac1n\sum_j\sigma(s_{ij})W_{OV}h_j$, and $\sigma(s) - \sigma(-s) = s$), or one linear head. With ``centre`` a
first layer subtracts the token mean from $x$ (score $\langle\mathrm{one}_i, \mathrm{one}_j\rangle = 1$, value
$-x_j$), so $\hat\Sigma$ is the sample covariance; it acts once on token-local data, so it is exact up to one
rounding. :class:`PowerIteration` runs the engine over it: one power step is the contraction layer and 2
attention + 2 MLP sublayers, so $R(3J + 2N + 2)$ attention sublayers (+1 when centring), at most $2R$ heads per
layer (ReLU; $R$ linear), MLP width $\max(M + 2, 6d + 4)$.

**Choosing $[a, b]$.** The normaliser sees $s_t = \lVert\hat\Sigma_l v_t\rVert^2$. Since
$\lVert Av\rVert^2 = \langle A^2 v, v\rangle \le \lVert A^2 v\rVert\lVert v\rVert$ for symmetric $A$, the ratio
$\lVert\hat\Sigma_l v_t\rVert/\lVert v_t\rVert$ never decreases along the iteration, and it is at most
$\lambda_1 \le \lVert\hat\Sigma\rVert_F$. :func:`default_domain` therefore takes
$b = (1.25\,\lVert\hat\Sigma\rVert_F)^2$ (norms up to 25% high) and $a = (0.75\,\lVert\hat\Sigma\rVert_F / r)^2$
for a dynamic range $r$ (default 100): every eigenvalue $\lambda_l \ge \lVert\hat\Sigma\rVert_F/r$ has its late
iterates inside $[a, b]$. An early $s_t < a$ (a seed nearly orthogonal to the remaining spectrum) only makes
$\lVert v_{t+1}\rVert < 1$; the norm grows back at rate $\lambda_l/\sqrt a$.
:meth:`~tfconstruct.constructions.power.engine.DeflatedPowerIteration.trajectory` records every $s_t$ so the
assumption can be checked.

**Width and round-off.** At a fixed norm $n = 1 + e$ the norm map $n \mapsto \lambda n\,\hat\phi(\lambda^2 n^2)$
has slope $1 + 2 s\hat\phi'(s)/\hat\phi(s)$, which on a knot interval of ratio $\rho = (b/a)^{1/M}$ reaches $-1$
at the interval's right end when $\rho = \varphi^2 = (3+\sqrt5)/2 \approx 2.618$. Coarser hinges keep the norm
within $\delta_M$ and the direction exact, but the norm map expands round-off (and the per-token copies of the
norm drift apart inside that band); :func:`stable_width` is the smallest $M$ with $\rho \le \varphi^2$.
"""

from __future__ import annotations

import math
from typing import Literal, Unpack

import numpy as np
import torch

from ..attention import AttentionHead, MultiHeadAttention
from ..checks import as_batch, integer_in
from ..construction import TutorialExample
from ..gadgets import EXACT_SCORINGS, ExactScoring, InverseSqrt, NormalisationDomain, signed_heads
from ..residual import DEFAULT_DTYPE, ResidualLayout
from ..weights import Bilinear, LinearMap
from .engine import EngineOptions, NamedLayers, PowerConstruction, PowerResult

DEFAULT_DOMAIN = NormalisationDomain(1e-2, 1e2)
RANK_TOLERANCE = 1e-12  # an eigenvalue at most this fraction of the top one counts as zero
DEFAULT_OPTIONS = EngineOptions(components=1, iterations=40, width=32, domain=DEFAULT_DOMAIN)


class DataCovariance:
    r"""$T(I, v) = \hat\Sigma v$ from $n$ data tokens holding $x_j$ in the subspace ``x`` (order 2)."""

    order = 2
    scratch: tuple[str, ...] = ()
    scorings = EXACT_SCORINGS
    # the heads are exact for any norm, but the iterate's norm must stay within the 25 % margins default_domain
    # leaves above lambda_1 and below: a coarser normaliser pushes ||Sigma v||^2 out of [a, b] (and the width-1
    # normaliser on [1e-2, 1e2] returned lambda = 19.4 for 3)
    norm_tolerance = 0.25
    domain_remedy = "domain=(a, b); PowerIteration.for_data(X) picks it from the data"

    def __init__(self, dim: int, *, centre: bool = False):
        self.dim = integer_in("dim", dim, 1)
        self.centre = bool(centre)

    def blocks(self, components: int) -> list[tuple[str, int]]:
        return [("x", self.dim)]

    def contraction_heads(self, layout: ResidualLayout, scoring: ExactScoring) -> list[list[AttentionHead]]:
        return [
            signed_heads(layout, "Sigma v", lambda q, s: q.add("v", "x", s), lambda o, s: o.add("x", "u", s), scoring)
        ]

    def prefix_layers(self, layout: ResidualLayout, scoring: ExactScoring) -> NamedLayers:
        if not self.centre:
            return []
        head = AttentionHead(
            Bilinear(layout).add("one", "one"), LinearMap(layout).add("x", "x", -1.0), scoring, "x - mean x"
        )
        return [("centre", MultiHeadAttention([head], label="centre"))]

    def final_layers(self, layout: ResidualLayout, components: int, scoring: ExactScoring) -> NamedLayers:
        return []


class DeflationError(ValueError):
    """A later component's eigenvalue is within the deflation residual of the earlier ones (what was found may be
    that residual, a plausible wrong eigenpair)."""


def second_moment_norm(X: torch.Tensor, *, centre: bool = False) -> torch.Tensor:
    r"""$\lVert\hat\Sigma\rVert_F$ per instance, $\hat\Sigma = \frac1n X^\top X$ (of the centred data with ``centre``)."""
    X = as_batch("X", X, 3)
    if centre:
        X = X - X.mean(dim=-2, keepdim=True)
    return torch.linalg.matrix_norm(X.transpose(-1, -2) @ X / X.shape[-2])


def default_domain(
    X: torch.Tensor, *, centre: bool = False, dynamic_range: float = 100.0, components: int = 1
) -> NormalisationDomain:
    r"""$[a, b] = [(0.75 F_{\min} / r)^2, (1.25 F_{\max})^2]$ with $F = \lVert\hat\Sigma\rVert_F$ per instance, its
    smallest and largest non-zero value over the batch (module docstring): every instance's own domain is inside.
    For ``components`` $R > 1$ the lower end uses the $R$-th eigenvalue $\lambda_R$ in place of $F$: the deflated
    matrix of the last component has top eigenvalue $\lambda_R$, which may lie far below $F / r$.

    Raises:
        ValueError: if every instance has $\hat\Sigma = 0$, an instance's $\hat\Sigma$ has rank $< R$, or
            ``dynamic_range`` is not > 1.
    """
    if not (math.isfinite(dynamic_range) and dynamic_range > 1):
        raise ValueError(f"dynamic_range must be finite and > 1, got {dynamic_range!r}")
    components = integer_in("components", components, 1, X.shape[-1])
    norms = second_moment_norm(X, centre=centre)
    if not bool((norms > 0).any()):
        raise ValueError("X has a zero second-moment matrix in every instance; there is no spectrum to find")
    lows = norms[norms > 0]
    if components > 1:
        if centre:
            X = X - X.mean(dim=-2, keepdim=True)
        spectra = torch.linalg.eigvalsh(X.transpose(-1, -2) @ X / X.shape[-2])[norms > 0].flip(-1)
        lows = spectra[:, components - 1]
        short = torch.nonzero(lows <= RANK_TOLERANCE * spectra[:, 0]).flatten().tolist()
        if short:
            raise ValueError(
                f"components={components} needs a second moment of rank >= {components}, but instance {short[0]}'s "
                f"eigenvalue {components} is {float(lows[short[0]]):.3g} (<= {RANK_TOLERANCE:g} of its top one)"
            )
    high, low = float(norms.max()), float(lows.min())
    return NormalisationDomain((0.75 * low / dynamic_range) ** 2, (1.25 * high) ** 2)


def stable_width(domain: NormalisationDomain | tuple[float, float]) -> int:
    r"""The smallest $M$ with knot ratio $(b/a)^{1/M} \le (3+\sqrt5)/2$: the norm map does not expand round-off."""
    domain = NormalisationDomain.of(domain)
    return max(1, math.ceil(math.log(domain.high / domain.low) / math.log((3 + math.sqrt(5)) / 2)))


class PowerIteration(PowerConstruction):
    r"""Top-$k$ eigenpairs of $\hat\Sigma = \frac1n X^\top X$ by power iteration with deflation.

    Args:
        dim: data dimension $d$.
        centre: subtract the token mean from $x$ first, so $\hat\Sigma$ is the covariance.
        components: number of eigenpairs $R$, $1 \le R \le d$ (default 1).
        iterations: power steps $J \ge 1$ per eigenvector (default 40).
        width: knot intervals $M \ge 1$ of the $s^{-1/2}$ MLP, $M + 2$ hidden units (default 32).
        domain: $[a, b]$ on which the MLP interpolates $s^{-1/2}$ (a
            :class:`~tfconstruct.constructions.gadgets.NormalisationDomain` or a pair; default $[10^{-2}, 10^2]$;
            :meth:`for_data` picks it from the data with :func:`default_domain`).
        newton_steps: Newton refinements $N \ge 0$ of the norm before each eigenvector is stored (default 0).
        attention: ``"relu"`` (signed head pairs, the default) or ``"linear"`` scoring.
        normaliser: ``"mlp"`` (the default: $\hat\phi_M$ as an MLP of $M + 2$ hinge units) or ``"heads"`` (the
            spectral paper's Lemma B.2 shape: the same function as $M + 2$ ReLU heads in the rescale layer).

    Attributes:
        layout, model: the residual layout and the transformer.
        engine: the :class:`~tfconstruct.constructions.power.engine.DeflatedPowerIteration` it runs.
    """

    def __init__(self, dim: int, *, centre: bool = False, **options: Unpack[EngineOptions]):
        super().__init__(self._contraction(dim, centre), **{**DEFAULT_OPTIONS, **options})
        self.dim, self.centre = self.contraction.dim, self.contraction.centre

    def _contraction(self, dim: int, centre: bool) -> DataCovariance:
        return DataCovariance(dim, centre=centre)

    def readout(self, stream: torch.Tensor, *, outside: Literal["raise", "record"] = "raise") -> PowerResult:
        r"""$(\lambda_j, v_j)$ from token 0, each later component checked against the deflation residual.

        Deflating $\hat\lambda_i \hat v_i \hat v_i^\top$ with $|\lVert\hat v_i\rVert - 1| \le e$ (the
        ``readout_norm_error``) leaves up to $r_j = ((1 + e)^4 - 1)\sum_{i<j} \hat\lambda_i / (1 - e)^2$ of the earlier
        components in the matrix component $j$ iterates on. Where $\hat\lambda_j < 2 r_j$ that residual, not
        $\lambda_j$, may be what was found: ``outside="raise"`` raises a :class:`DeflationError` naming the instance,
        the component and the remedy; ``"record"`` lists the (instance, component) pairs in ``unresolved``.
        """
        if outside not in ("raise", "record"):
            raise ValueError(f"outside must be 'raise' or 'record', got {outside!r}")
        result = super().readout(stream)
        error = self.engine.readout_norm_error
        growth = ((1 + error) ** 4 - 1) / (1 - min(error, 0.5)) ** 2
        residuals = growth * torch.cumsum(result.eigenvalues.abs(), dim=-1)[:, :-1]
        short = result.eigenvalues[:, 1:] < 2 * residuals
        unresolved = tuple((b, j + 1) for b, j in torch.nonzero(short).tolist())
        if unresolved and outside == "raise":
            b, j = unresolved[0]
            raise DeflationError(
                f"component {j} of instance {b} is not resolved: its eigenvalue {float(result.eigenvalues[b, j]):.4g} "
                f"is below twice the deflation residual {float(residuals[b, j - 1]):.4g} that a read-out norm error "
                f"of {error:.2g} leaves of the earlier components; raise newton_steps (now {self.engine.newton_steps}) "
                f"or width (now {self.engine.width}), or ask for fewer components"
            )
        return PowerResult(result.eigenvalues, result.vectors, unresolved)

    @staticmethod
    def min_width(domain: NormalisationDomain | tuple[float, float]) -> int:
        r"""The smallest width $M$ accepted on ``domain``: the normaliser's sup relative error at most
        ``DataCovariance.norm_tolerance`` (narrower ones are refused at construction)."""
        return InverseSqrt.min_width(NormalisationDomain.of(domain), DataCovariance.norm_tolerance)

    @classmethod
    def for_data(cls, X: torch.Tensor | np.ndarray, *, dynamic_range: float = 100.0, **options) -> "PowerIteration":
        """A construction for data like ``X`` (batch, n, d): ``dim`` from ``X``, ``domain`` from :func:`default_domain`
        (covering every instance's scale) and, unless given, the width that keeps the normaliser as accurate on that
        domain as the default width is on one instance's (a batch mixing scales gets more knots, not a worse
        normaliser)."""
        X = as_batch("X", X, 3)
        centre = options.get("centre", False)
        options.setdefault(
            "domain",
            default_domain(X, centre=centre, dynamic_range=dynamic_range, components=options.get("components", 1)),
        )
        if "width" not in options:
            one_scale = NormalisationDomain((0.75 / dynamic_range) ** 2, 1.25**2)
            target = InverseSqrt(one_scale, DEFAULT_OPTIONS["width"]).relative_error
            options["width"] = max(
                DEFAULT_OPTIONS["width"], InverseSqrt.min_width(NormalisationDomain.of(options["domain"]), target)
            )
        return cls(X.shape[-1], **options)

    def embed(
        self,
        X: torch.Tensor | np.ndarray,
        seeds: torch.Tensor | np.ndarray | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """The input stream: $x_i$ in token $i$, the unit seeds broadcast to every token.

        Args:
            X: data, shape (batch, n, d) or (n, d).
            seeds: starting vectors, shape (batch, R, d) or (R, d), normalised to unit length
                (default :func:`~tfconstruct.constructions.power.engine.default_seeds`).

        Raises:
            ValueError: on a wrong shape, a non-finite entry, or a zero seed.
        """
        X = as_batch("X", X, 3)
        batch, n, d = X.shape
        if d != self.dim or n < 1:
            raise ValueError(f"X must have shape (batch, n >= 1, d = {self.dim}), got {tuple(X.shape)}")
        return self.engine.embed({"x": X}, seeds, batch, n, device=device)

    def broadcast_spread(self, stream: torch.Tensor) -> float:
        r"""$\max_{i, \text{block}} |h_i - h_0|$ over the broadcast blocks: 0 up to round-off."""
        names = [n for n in self.layout.names if n not in ("x", "z", "y")]
        spread = [(self.layout.read(stream, n) - self.layout.read(stream[:, :1], n)).abs().max() for n in names]
        return float(torch.stack(spread).max())


#: The tutorial example's normaliser width: the library's default, far above ``stable_width`` (5 on its domain), so
#: the eigenvalue read-out is within a few tenths of a percent (at $M = 4$ it was 27 % high).
TUTORIAL_WIDTH = DEFAULT_OPTIONS["width"]
TUTORIAL_DOMAIN = NormalisationDomain(0.1, 10.0)


def tutorial_example(*, width: int = TUTORIAL_WIDTH) -> TutorialExample:
    r"""Two power steps on four points in the plane, normaliser width $M$ = ``width`` on $[a, b] = [0.1, 10]$; the
    notes give the read-out eigenvalue beside ``numpy.linalg.eigh``'s."""
    X = torch.tensor([[2.0, 0.5], [-1.5, -0.5], [1.0, 1.0], [-1.0, 0.0]], dtype=DEFAULT_DTYPE)
    construction = PowerIteration(2, components=1, iterations=2, width=width, domain=TUTORIAL_DOMAIN)
    stream = construction.embed(X, torch.tensor([[1.0, 1.0]]))
    layout = construction.layout
    with torch.no_grad():
        out = construction.model(stream)
    estimate = float(layout.read(out, "eigenvalue0")[0, 0, 0])
    norm = float(layout.read(out, "component0")[0, 0].norm())
    sigma = (X.T @ X / X.shape[0]).numpy()
    top = float(np.linalg.eigh(sigma)[0][-1])
    rayleigh = estimate / norm**2
    delta = construction.engine.norm_error
    low, high = TUTORIAL_DOMAIN.low, TUTORIAL_DOMAIN.high
    rho = (high / low) ** (1.0 / width)
    closed_form = 3.0 / 32.0 * (rho - 1.0) ** 2 * rho**0.5
    notes = rf"""
**Power iteration** $v^{{(t+1)}} = \hat\Sigma v^{{(t)}} / \|\hat\Sigma v^{{(t)}}\|$ with
$\hat\Sigma = \frac1n\sum_j x_j x_j^\top$, $n = 4$ tokens in $d = 2$ dimensions, $J = 2$ steps from the seed
$v^{{(0)}} = (1, 1)/\sqrt2$, then the eigenvalue. The superscript $(t)$ counts steps; subscripts index tokens and
components (component 0 is the top eigenpair).

**Subspaces.** `x` holds token $i$'s data point $x_i$; `one` is 1 (biases and constant scores). The rest are
*broadcast* blocks, equal in every token: the state `v` (the iterate $v^{{(t)}}$), the scratch `u`
($\hat\Sigma v^{{(t)}}$), `norm_sq` ($\|u\|^2$), `inv_norm` ($\hat\phi(\|u\|^2) \approx \|u\|^{{-1}}$) and `next`
($v^{{(t+1)}}$ before it moves into `v`), and the results `component0` ($v^{{(J)}}$), `weighted0`
($\hat\lambda_0 v^{{(J)}}$, what later components deflate with) and `eigenvalue0` ($\hat\lambda_0$).

**Sublayers of one power step** (`component0.iter<t>.*`; ReLU heads divide by the $n = 4$ attended keys):

1. `contract1` ($u = \hat\Sigma v$): two heads with scores $\pm\langle v_i, x_j\rangle$ and values $\pm x_j \to u$.
   Their patterns are $\mathrm{{ReLU}}(\pm\langle v, x_j\rangle)/n$, the same for every query $i$; since
   $\mathrm{{ReLU}}(s) - \mathrm{{ReLU}}(-s) = s$, together they weigh $x_j$ by $\langle v, x_j\rangle/n$ and add
   $\frac1n\sum_j \langle v, x_j\rangle x_j$.
2. `norm`: score $\langle u_i, u_j\rangle = \|u\|^2 \ge 0$, value $\mathrm{{one}}_j \to$ `norm_sq`.
3. `inv_sqrt` (MLP): $f = \hat\phi(s) = b^{{-1/2}} + \sum_{{m=0}}^{{M}} w_m \mathrm{{ReLU}}(t_m - s)$ on geometric knots
   $t_m = {low:g} \cdot {high / low:g}^{{m/M}}$, $M = {width}$ ($b = {high:g}$): the piecewise-linear interpolant of
   $s^{{-1/2}}$, flat outside $[{low:g}, {high:g}]$, with relative error at most $\delta_M = {delta:.4g}$ on that interval
   (the exact supremum over the interval, computed from these weights; the closed-form bound
   $\frac{{3}}{{32}}(\rho-1)^2\sqrt\rho$, $\rho = {high / low:g}^{{1/M}}$, is ${closed_form:.4g}$, above it). The
   hinges open towards small $s$, where the slope of $s^{{-1/2}}$ is large, so no large terms cancel.
   $M = {width}$ is at least `stable_width` $= {stable_width(TUTORIAL_DOMAIN)}$ on this domain, the smallest width at
   which the norm map does not amplify round-off.
4. `rescale`: score $f_i \cdot \mathrm{{one}}_j = f > 0$, value $u_j \to$ `next`.
5. `overwrite` (MLP, per token and exact with ReLU pairs): `v` $\leftarrow$ `next`, then `next`, `u`,
   `norm_sq`, `inv_norm` $\leftarrow 0$.

Because $\hat\phi > 0$ the direction of $v^{{(t)}}$ is exactly that of power iteration; only its norm
$\|v^{{(t)}}\| = \hat\phi(s)\sqrt s$ carries the interpolation error, $|\|v^{{(t)}}\| - 1| \le \delta_M$.

**Finish.** `contract1` once more ($u = \hat\Sigma v$); `eigen`: heads $\pm\langle v, u\rangle$ write
$\hat\lambda_0 = \langle v^{{(J)}}, \hat\Sigma v^{{(J)}}\rangle$ into `eigenvalue0` and $\hat\lambda_0 v^{{(J)}}$ into
`weighted0`; `store` (MLP) copies `v` into `component0` and clears the scratch.

**Reading the result.** `component0` of any token is the eigenvector estimate (compare it with
`numpy.linalg.eigh` through $|\cos|$: the sign comes from the seed). `eigenvalue0` is
$\hat\lambda_0 = \|v^{{(J)}}\|^2\,R(v^{{(J)}})$: the Rayleigh quotient $R(v) = v^\top\hat\Sigma v / \|v\|^2$ of the
exact iterate's direction times the squared norm, whose error is not divided out:

| | value | relative error against `eigh` |
|---|---|---|
| `eigenvalue0` $= \hat\lambda_0$ (this transformer, $M = {width}$) | {estimate:.4g} | {abs(estimate - top) / top:.4g} |
| $R(v^{{(J)}}) = \hat\lambda_0 / \lVert v^{{(J)}}\rVert^2$ (norm divided out; $\lVert v^{{(J)}}\rVert = {norm:.4g}$) | {rayleigh:.4g} | {abs(rayleigh - top) / top:.4g} |
| top eigenvalue of $\hat\Sigma$ (`numpy.linalg.eigh`) | {top:.4g} | |

The norm's share of the error is at most $(1 + \delta_M)^2 - 1 = {(1 + delta) ** 2 - 1:.4g}$ and falls as $M^{{-2}}$
(rebuild the example with `tutorial_example(width=M)`); the rest is the $J = 2$ steps' own error, which falls as
$(\lambda_2/\lambda_1)^{{2J}}$.
"""
    return TutorialExample(
        "Power iteration: two steps in two dimensions",
        construction.model,
        stream,
        notes,
        roles={"x": "input", **construction.roles()},
    )
