r"""Soft EM in the resource shape of TGMM's Theorem 1: two attention blocks per EM step, widths independent of $n$.

Isotropic Gaussian mixture with unit variance ($\sigma^2 = 1$; divide the data by $\sigma$ for another known
variance). $N = n + K$ tokens: $n$ data tokens, then $K$ parameter tokens. Subspaces (:func:`two_block_layout`):

=========  ====  ==========================================  =============================================
name       size  data token $i$                              parameter token $k$
=========  ====  ==========================================  =============================================
``x``      $d$   $x_i$                                       0
``mu``     $d$   0                                           $\mu_k$
``c``      1     don't-care (masked by $-B$ as a key)        $c_k \approx \log\pi_k - \tfrac12\|\mu_k\|^2$
``pi``     1     0                                           $\pi_k$
``e``      $K$   0                                           $e_k$ (one-hot)
``w``      $K$   $w_i$ between the E- and M-step, else 0     0
``lw``     $K$   $\hat\ell(w_i) \approx \log w_i$, idem       don't-care (masked by $-B$ as a key)
``fd``     1     1                                           0
``fp``     1     0                                           1
``one``    1     1                                           1
``smu``    $d$   scratch (0 between sublayer pairs)          scratch: the new mean (idem)
``spi``    1     0                                           scratch: the new weight (idem)
=========  ====  ==========================================  =============================================

$D = 3d + 3K + 6$. One EM step is two blocks (2 attention + 2 MLP sublayers, hook names ``iter{t}.estep.attn``,
``iter{t}.estep.mlp``, ``iter{t}.mstep.attn``, ``iter{t}.mstep.mlp``):

* **E-step** (:func:`e_step_block`): one softmax head, score $\langle x_i, \mu_k\rangle + c_k - B\,fd_j$, writes
  the exact responsibilities $w_i$; MLP: $\hat\ell(w) \approx \log w$ into ``lw`` ($K(M+2)$ units).
* **M-step** (:func:`m_step_block`): a softmax head with score $\hat\ell(w_{ik}) - B\,fp_j$ writes the weighted
  mean $\approx \sum_i w_{ik} x_i / \sum_i w_{ik}$ (no division) and a ReLU head with score $w_{ik}$ writes
  $\pi_k^+ = \frac1n\sum_i w_{ik}$ exactly; MLP: exact moves, and
  $c_k \leftarrow \hat\ell(\pi_k^+) - \tfrac12\sum_a \hat q(\mu^+_{ka})$ ($(d+1)(M+1) + 2$ units, $\hat q \approx s^2$).

Heads: 1 (E) and 2 (M); MLP widths $K(M+4)$ and $(d+1)(M+1) + 6d + 4K + 8$: none depends on $n$, and the same
weights serve every $n \ge K$. Exact: the responsibilities given $c$, $\pi^+$, every move. Approximate: $\log w$
($M$ geometric intervals of $[\varepsilon, 1]$, flat below), $\log\pi$ ($[\pi_{floor}, 1]$) and $s^2$ ($M$ uniform
intervals of $[-R, R]$); the means' error falls as $M^{-2}$ (bound: :data:`tfconstruct.theory.em.EM_TWO_BLOCK_STEP`).
The initial $c^{(0)}$ is computed exactly by :meth:`TwoBlockEM.embed`, so the first E-step is exact.

**Masking by a score bias.** The softmax heads have no attention mask: a key of the wrong type scores $-B$ below
the others (``mask`` $B$), so the $n$ or $K$ such keys weigh $\le n e^{-(B - B_0)}$ relative, where $B_0$ bounds the
score gap they must overcome (:meth:`TwoBlockEM.mask_floor`); the default $B = B_0 + 750$ makes every such weight
exactly 0 in float64. The bias multiplies the *other* token type's flag ($-B\,fd_j$ in the E-step, $-B\,fp_j$ in
the M-step), so the scores of the keys that count carry no $\pm B$ and lose nothing to cancellation. The ReLU head
does use the key mask ``fd``: ReLU attention divides by the number of attended keys, and with the mask that number
is $n$, so the head computes $\frac1n\sum_i w_{ik}$ with weights that do not depend on $n$.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..attention import AttentionHead, MultiHeadAttention
from ..checks import as_batch, integer_in, positive
from ..construction import Construction
from ..domains import InputDomain
from ..mlp import MLPBuilder
from ..model import Transformer
from ..moves import clear, replace
from ..piecewise import PiecewiseLinear, geometric_knots, uniform_knots
from ..residual import ResidualLayout
from ..weights import Bilinear, Coefficient, LinearMap
from .construction import WEIGHT_SUM_TOLERANCE
from .layers import points_and_means

MASK_MARGIN = 750.0  # exp(-750) underflows to 0 in float64 (the smallest subnormal is exp(-744.4))
MIN_MASK_MARGIN = 40.0  # the smallest margin accepted: masked keys weigh <= n exp(-40) ~ 4e-18 n relative
SCORE_LIMIT = 1e300  # scores must stay finite in float64


def two_block_layout(dim: int, components: int) -> ResidualLayout:
    r"""``x | mu | c | pi | e | w | lw | fd | fp | one | smu | spi``: $D = 3d + 3K + 6$ (module docstring)."""
    return ResidualLayout(
        [
            ("x", dim),
            ("mu", dim),
            ("c", 1),
            ("pi", 1),
            ("e", components),
            ("w", components),
            ("lw", components),
            ("fd", 1),
            ("fp", 1),
            ("one", 1),
            ("smu", dim),
            ("spi", 1),
        ]
    )


def gate(builder: MLPBuilder, src: str, dst: str, off: str, bound: float, scale: Coefficient = 1.0) -> MLPBuilder:
    r"""$dst \mathrel{+}= c\,src\,(1 - off)$ for a 0/1 flag ``off``, exact when $|src| \le B$ = ``bound``
    (2·size units):

    .. math:: src\,(1 - f) = \sigma(src - Bf) - \sigma(-src - Bf).

    Where $f = 0$ the units read $src$ alone, so the kept value carries no $\pm B$ cancellation.
    """
    for sign in (1.0, -1.0):
        builder.group(
            {src: sign, off: -bound}, {dst: sign * scale}, label=f"{'+' if sign > 0 else '-'}{src}->{dst} unless {off}"
        )
    return builder


def add_sum_of(
    interpolant: PiecewiseLinear,
    builder: MLPBuilder,
    src: str,
    dst: str,
    scale: float,
    *,
    parameter: str,
    tokens: str,
) -> MLPBuilder:
    r"""$dst \mathrel{+}= c\sum_a \hat f(src_a)$ into a scalar ``dst`` ($(M+1)$·size + 1 units, right-anchored:
    $\hat f(s) = f_M + \sum_m w_m\sigma(t_m - s)$), recording the knot range as the input domain of ``src`` on the
    ``tokens`` whose result is used (the elementwise :meth:`PiecewiseLinear.add_to` needs ``dst`` of ``src``'s size).
    """
    size = builder.layout.size(src)
    for t, w in zip(interpolant.knots, interpolant.hinge_weights):
        builder.group({src: -1.0}, {dst: scale * w}, bias=float(t), label=f"hinge {src}@{t:.3g} summed")
    builder.group({}, {dst: scale * size * float(interpolant.values[-1])}, bias=1.0, label=f"offset {dst}")
    low, high = float(interpolant.knots[0]), float(interpolant.knots[-1])
    return builder.check_domain(InputDomain(src, low, high, parameter, tokens=tokens))


def e_step_block(layout: ResidualLayout, mask: float, log_resp: PiecewiseLinear) -> Transformer:
    r"""Responsibilities exactly, and their hinge log.

    Attention: one softmax head, no attention mask. $Q h = [x;\ \mathrm{one};\ B\,\mathrm{one}]$,
    $K h = [\mu;\ c;\ -fd]$, so

    .. math:: s_{ij} = \langle x_i, \mu_j\rangle + c_j - B\,fd_j, \qquad
              s_{ik} = \langle x_i, \mu_k\rangle + \log\pi_k - \tfrac12\|\mu_k\|^2
              \text{ (parameter key } k\text{, exact } c_k\text{)},

    and $\operatorname{softmax}_k s_{ik} = \pi_k\phi(x_i - \mu_k)/\sum_l \pi_l\phi(x_i - \mu_l)$ since
    $-\tfrac12\|x_i\|^2$ is common to every $k$. A data key $j$ scores $c_j - B$ ($\mu_j = 0$), at least $B - B_0$
    below the best parameter key. The value $e$ goes to ``w``: data token $i$ receives $w_i$. A parameter token
    receives a softmax over the $c_l$, in $[0, 1]$: garbage, cleared by the MLP.

    MLP: ``w`` $\mathrel{+}= -w\,fp$ (:func:`gate` with bound 1, exact since $0 \le w \le 1$; $2K$ units) and
    ``lw`` $\leftarrow \hat\ell(w)$, the hinge log on $M$ geometric intervals of $[\varepsilon, 1]$, flat
    ($=\log\varepsilon$) below, right-anchored ($K(M+2)$ units); ``lw`` is 0 before (cleared by the M-step).
    """
    qk = Bilinear(layout).add("x", "mu").add("one", "c").add("one", "fd", -mask)
    head = AttentionHead(qk, LinearMap(layout).add("e", "w"), scoring="softmax", label="responsibilities")
    mlp = gate(MLPBuilder(layout, "E-step: clear w on parameters, write log w"), "w", "w", "fd", 1.0, -1.0)
    log_resp.add_to(mlp, "w", "lw", anchor="right", parameter="floor", clamp_below=True, tokens="fd")
    return Transformer(layout, [MultiHeadAttention([head], label="E-step"), mlp.build()], ["attn", "mlp"])


def m_step_block(
    layout: ResidualLayout, mask: float, radius: float, log_pi: PiecewiseLinear, square: PiecewiseLinear
) -> Transformer:
    r"""New means and weights, and the next E-step's key $c$.

    Means head (softmax, no attention mask): $Q h = [e;\ B\,\mathrm{one}]$, $K h = [\hat\ell(w);\ -fp]$. Parameter
    query $k$ scores data key $i$ at $\hat\ell(w_{ik})$ and parameter keys at $\le -B$; the weights are
    $e^{\hat\ell(w_{ik})}/\sum_j e^{\hat\ell(w_{jk})} \approx w_{ik}/\sum_j w_{jk}$, and the value $x$ into ``smu``
    gives the new mean without a division. (A data query scores every data key 0: ``smu`` there is $\bar x$,
    cleared below.)

    Weights head (ReLU, key mask ``fd``, so $\frac1N = \frac1n$): $Q h = e$, $K h = w$, value ``one`` into ``spi``:

    .. math:: spi_k = \frac1n\sum_i \sigma(w_{ik}) = \frac1n\sum_i w_{ik} = \pi_k^+,

    exactly; a data query ($e = 0$) receives 0.

    MLP, exact moves ($t = \sigma(t) - \sigma(-t)$): ``mu`` $\leftarrow$ ``smu`` on parameter tokens
    (``mu`` cleared, then :func:`gate` off ``fd`` with bound $2R \ge |smu|$; $4d$ units), ``smu`` $\leftarrow 0$
    ($2d$), ``pi`` $\leftarrow$ ``spi`` and ``spi`` $\leftarrow 0$ (4), ``w``, ``lw`` $\leftarrow 0$ ($4K$),
    ``c`` $\leftarrow 0$ (2); approximate:

    .. math:: c_k \mathrel{+}= \hat\ell(\pi^+_k) - \tfrac12\sum_a \hat q(\mu^+_{ka}),

    $\hat\ell$ on $M$ geometric intervals of $[\pi_{floor}, 1]$ ($M + 2$ units), $\hat q$ on $M$ uniform intervals of
    $[-R, R]$, error in $[0, R^2/M^2]$ per coordinate ($d(M+1) + 1$ units). On data tokens $c$ is
    $\log\pi_{floor} - \tfrac12\sum_a\hat q(\bar x_a) \le 0$: garbage, masked by $-B$ in the next E-step.
    """
    means, weights = m_step_heads(layout, mask, LinearMap(layout).add("x", "smu"), "weighted means")
    mlp = gate(clear(MLPBuilder(layout, "M-step: write mu, pi, c"), "mu"), "smu", "mu", "fd", 2.0 * radius)
    clear(clear(clear(replace(clear(mlp, "smu"), "spi", "pi"), "w"), "lw"), "c")
    log_pi.add_to(mlp, "spi", "c", anchor="right", parameter="weight_floor", tokens="fp")
    add_sum_of(square, mlp, "smu", "c", -0.5, parameter="radius", tokens="fp")
    attention = MultiHeadAttention([means, weights], label="M-step")
    return Transformer(layout, [attention, mlp.build()], ["attn", "mlp"])


@dataclass(frozen=True)
class TwoBlockReadout:
    """What the stream holds at an iteration boundary (torch tensors, batch first).

    ``means`` $(B, K, d)$, ``weights`` $(B, K)$; ``responsibilities`` $(B, n, K)$ of the E-step that produced them
    when read by :meth:`TwoBlockEM.trajectory` (the M-step clears them, so :meth:`TwoBlockEM.readout` gives None).
    """

    means: torch.Tensor
    weights: torch.Tensor
    responsibilities: torch.Tensor | None = None


def m_step_heads(layout: ResidualLayout, mask: float, values: LinearMap, label: str) -> list[AttentionHead]:
    r"""The M-step's two heads on the two-block layout (:func:`m_step_block`; SphericalEM's adds $\|x\|^2/d$ to the
    means head's ``values``): the means head (softmax, score $\hat\ell(w_{ik}) - B\,fp_j$) and the weights head
    (ReLU, key mask ``fd``, score $w_{ik}$, value ``one`` $\to$ ``spi``)."""
    means = AttentionHead(Bilinear(layout).add("e", "lw").add("one", "fp", -mask), values, "softmax", label)
    weights = AttentionHead(
        Bilinear(layout).add("e", "w"),
        LinearMap(layout).add("one", "spi"),
        scoring="relu",
        keys="fd",
        label="mean responsibility",
    )
    return [means, weights]


def initial_weights(
    weights: np.ndarray | torch.Tensor | None, batch: int, components: int, weight_floor: float
) -> torch.Tensor:
    """The initial mixing weights $(B, K)$: $1/K$ when None, else checked to sum to 1 per batch entry, be positive
    and be at least ``weight_floor`` (each failure named, in that order)."""
    if weights is None:
        return torch.full((batch, components), 1.0 / components, dtype=torch.float64)
    pi = as_batch("weights", weights, 2)
    if tuple(pi.shape) != (batch, components):
        raise ValueError(f"weights must have shape ({batch}, {components}), got {tuple(pi.shape)}")
    sums = pi.sum(-1)
    if bool(((sums - 1).abs() > WEIGHT_SUM_TOLERANCE).any()):
        worst = int((sums - 1).abs().argmax())
        raise ValueError(
            f"weights must sum to 1 (within {WEIGHT_SUM_TOLERANCE:g}) per batch entry; entry {worst} sums to "
            f"{float(sums[worst]):.6g}"
        )
    if bool((pi <= 0).any()):
        raise ValueError(f"weights must be > 0, got smallest {float(pi.min()):.6g}")
    if bool((pi < weight_floor).any()):
        raise ValueError(
            f"weights must be >= weight_floor={weight_floor:g}; got smallest {float(pi.min()):.6g} (build "
            "with weight_floor <= that)"
        )
    return pi


class TwoBlockEM(Construction):
    r"""$L$ soft EM steps (unit variance, means and weights updated) in 2 attention + 2 MLP sublayers each.

    See the module docstring for the layout and the blocks.

    Args:
        dim: $d \ge 1$.
        components: $K \ge 2$.
        iterations: $L \ge 1$ (the model has $2L$ attention sublayers).
        width: $M$, the knot intervals of each interpolant ($\log w$, $\log\pi$, $s^2$).
        radius: $R$: every coordinate of the points and initial means is in $[-R, R]$ (the range of $\hat q$).
        floor: $\varepsilon \in (0, 1/2]$, the lower end of the $\log w$ interpolant.
        weight_floor: $\pi_{floor} \in (0, 1/K]$, the lower end of the $\log\pi$ interpolant; every initial and
            updated mixing weight must be at least this.
        mask: $B$, the score bias that hides keys of the other token type; default
            :meth:`mask_floor` $+ 750$ (hidden keys at weight exactly 0); at least :meth:`mask_floor` $+ 40$.

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(
        self,
        dim: int,
        *,
        components: int,
        iterations: int,
        width: int = 32,
        radius: float = 10.0,
        floor: float = 1e-8,
        weight_floor: float = 1e-2,
        mask: float | None = None,
    ):
        self.dim = integer_in("dim", dim, 1)
        self.components = integer_in("components", components, 2)
        self.iterations = integer_in("iterations", iterations, 1)
        self.width = integer_in("width", width, 1, 100_000)
        self.radius = positive("radius", radius, math.sqrt(SCORE_LIMIT / (2 * self.dim)))
        self.floor = positive("floor", floor, 0.5)
        self.weight_floor = positive("weight_floor", weight_floor, 1.0 / self.components)
        low = self.mask_floor() + MIN_MASK_MARGIN
        self.mask = self.mask_floor() + MASK_MARGIN if mask is None else positive("mask", mask, SCORE_LIMIT)
        if self.mask < low:
            raise ValueError(
                f"mask must be >= {low:.6g} (1.5 d radius^2 + log(1/weight_floor) + log(1/floor) + "
                f"{MIN_MASK_MARGIN:g}) so that keys of the other token type stay hidden, got {mask!r}"
            )

        self.layout = two_block_layout(self.dim, self.components)
        log_resp = PiecewiseLinear.interpolate(np.log, geometric_knots(self.floor, 1.0, self.width), "log")
        log_pi = PiecewiseLinear.interpolate(np.log, geometric_knots(self.weight_floor, 1.0, self.width), "log")
        square = PiecewiseLinear.interpolate(np.square, uniform_knots(-self.radius, self.radius, self.width))
        self.e_step = e_step_block(self.layout, self.mask, log_resp)
        self.m_step = m_step_block(self.layout, self.mask, self.radius, log_pi, square)
        self.iteration = self.e_step.scoped("estep") + self.m_step.scoped("mstep")
        self.model = self.iteration * self.iterations

    def mask_floor(self) -> float:
        r"""$B_0 = \max(\tfrac32 dR^2 + \log(1/\pi_{floor}),\ \log(1/\varepsilon))$: the score gap a hidden key must
        be pushed below.

        E-step: a data key scores $c_j - B$ with $c_j \le 0$, and the best parameter key at least
        $\langle x_i, \mu_k\rangle + \hat\ell(\pi_k) - \tfrac12\sum_a\hat q(\mu_{ka}) \ge -dR^2 + \log\pi_{floor}
        - \tfrac12 dR^2$. M-step: a parameter key scores $\le -B$, the best data key $\ge \log\varepsilon$.
        """
        return max(1.5 * self.dim * self.radius**2 + math.log(1 / self.weight_floor), math.log(1 / self.floor))

    def __repr__(self) -> str:
        return (
            f"TwoBlockEM(K={self.components}, d={self.dim}, L={self.iterations}, width={self.width}, "
            f"radius={self.radius:g}, floor={self.floor:g}, weight_floor={self.weight_floor:g}, mask={self.mask:g})"
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
        r"""The input stream for data $X$ $(B, n, d)$, initial means $(B, K, d)$ and weights $(B, K)$ (default
        $1/K$); a leading batch dimension may be omitted. $c^{(0)}_k = \log\pi_k - \tfrac12\|\mu_k\|^2$ exactly.

        Raises:
            ValueError: on wrong shapes, non-finite values, $n < K$, a coordinate outside $[-R, R]$, or weights
                that are not a probability vector with every entry $\ge \pi_{floor}$.
        """
        x, mu = points_and_means(points, means, self.dim, self.components)
        batch, n, d = x.shape
        k, tokens = self.components, n + self.components
        largest = float(torch.cat([x, mu], dim=1).abs().max())
        if largest > self.radius:
            raise ValueError(
                f"a coordinate of the points or initial means has |value| {largest:.6g} > radius={self.radius:g}; "
                f"every coordinate must be in [-radius, radius] (build with radius >= {largest:.6g})"
            )
        pi = initial_weights(weights, batch, self.components, self.weight_floor)
        data = torch.zeros(batch, n, 1, dtype=x.dtype)
        c = torch.log(pi) - 0.5 * (mu**2).sum(-1)
        fd = torch.cat([torch.ones(n), torch.zeros(k)]).reshape(1, tokens, 1)
        values = {
            "x": torch.cat([x, torch.zeros(batch, k, d, dtype=x.dtype)], dim=1),
            "mu": torch.cat([torch.zeros(batch, n, d, dtype=mu.dtype), mu], dim=1),
            "c": torch.cat([data, c.unsqueeze(-1)], dim=1),
            "pi": torch.cat([data, pi.unsqueeze(-1)], dim=1),
            "e": torch.cat([torch.zeros(n, k), torch.eye(k)]).unsqueeze(0),
            "fd": fd,
            "fp": 1.0 - fd,
            "one": 1.0,
        }
        return self.layout.embed(batch, tokens, values, device=device)

    def readout(self, stream: torch.Tensor) -> TwoBlockReadout:
        """Means and weights held by a stream at an iteration boundary (on the parameter tokens)."""
        n = stream.shape[-2] - self.components
        read = self.layout.read
        return TwoBlockReadout(read(stream, "mu")[..., n:, :], read(stream, "pi")[..., n:, 0])

    def trajectory(self, stream: torch.Tensor) -> list[TwoBlockReadout]:
        """The read-out after each of the $L$ iterations, with the responsibilities each E-step wrote (one forward
        pass that records only those streams)."""
        n = stream.shape[-2] - self.components
        ends = [self.model.hook_after(f"iter{t}") for t in range(self.iterations)]
        e_steps = [self.model.hook_after(f"iter{t}.estep") for t in range(self.iterations)]
        trace = self.model(stream, trace=ends + e_steps)
        return [
            dataclasses.replace(self.readout(trace[end]), responsibilities=self.layout.read(trace[e], "w")[:, :n])
            for end, e in zip(ends, e_steps)
        ]
