r"""Soft EM for spherical Gaussian mixtures **with variance updates**, as transformer layers.

State $(\mu_k, \pi_k, s_k)$, $s_k = \sigma_k^2$; one EM step

.. math::

    w_{ik} = \operatorname{softmax}_k\Big(-\frac{\|x_i-\mu_k\|^2}{2 s_k} - \frac d2\log s_k + \log\pi_k\Big),\quad
    \pi_k^+ = \frac1n\sum_i w_{ik},\quad \mu_k^+ = \frac{\sum_i w_{ik}x_i}{\sum_i w_{ik}},\quad
    s_k^+ = \frac1d\Big(\frac{\sum_i w_{ik}\|x_i\|^2}{\sum_i w_{ik}} - \|\mu_k^+\|^2\Big),

and, ``tied=True``, one shared spherical variance $s^+ = \sum_k \pi_k^+ s_k^+$ (the numpy reference's
``variance_update="tied"``). scikit-learn has no such model: its ``"tied"`` shares a *full* covariance, whose trace
over $d$ equals $s^+$ after one step from a spherical start, but whose E-steps differ from the second step on.
Since $-\|x_i\|^2/(2 s_k)$ differs across $k$, the E-step's query is $[x_i;\ \|x_i\|^2;\ 1]$ and its key
$[\mu_k/s_k;\ -1/(2s_k);\ c_k]$, $c_k = -\|\mu_k\|^2/(2s_k) - \tfrac d2\log s_k + \log\pi_k$.

$N = n + K$ tokens: $n$ data tokens, then $K$ parameter tokens. Subspaces (:func:`spherical_layout`):

=========  ====  ==========================================  =============================================
name       size  data token $i$                              parameter token $k$
=========  ====  ==========================================  =============================================
``x``      $d$   $x_i$                                       0
``xx``     1     $\|x_i\|^2$ (computed exactly by embed)      0
``mu``     $d$   0                                           $\mu_k$
``var``    1     0                                           $s_k$
``pi``     1     0                                           $\pi_k$
``a``      $d$   0                                           $\hat r_k\mu_k$, $\hat r_k \approx 1/s_k$
``b``      1     don't-care, in $[-\tfrac1{2s_{min}}, 0]$    $-\tfrac12\hat r_k$
``c``      1     don't-care, masked by $-B$ as a key          $\hat\ell(\pi_k) - \tfrac d2\hat\lambda(s_k)
                                                             - \tfrac12\hat r_k\|\mu_k\|^2$
``e``      $K$   0                                           $e_k$ (one-hot)
``w``      $K$   $w_i$ between the E- and M-step, else 0     0
``lw``     $K$   $\hat\ell(w_i) \approx \log w_i$, idem       don't-care
``fd``     1     1                                           0
``fp``     1     0                                           1
``one``    1     1                                           1
``smu``    $d$   scratch                                     scratch: the new mean
``spi``    1     0                                           scratch: the new weight
``sv``     1     scratch                                     scratch: $s_k^+$ (``tied``: $s^+$ in ``tv``)
``tv``     1     scratch (``tied``)                          scratch: $\sum_l\pi_l^+ s_l^+$ (``tied``)
``nn``     1     0                                           $\|\mu_k\|^2$ (from the norm layer on)
=========  ====  ==========================================  =============================================

$D = 4d + 3K + 12$. One EM step (hook names ``iter{t}.<block>.<sublayer>``), spherical 4 attention + 3 MLP
sublayers, tied 5 + 3:

* ``estep`` (attn + MLP): one softmax head, score $\langle x_i, a_j\rangle + \|x_i\|^2 b_j + c_j - B\,fd_j$, value
  $e \to w$: **exact** responsibilities given the key. MLP: clear $w$ on parameter tokens, $\hat\ell(w) \approx
  \log w$ into ``lw`` (hinge, $M$ geometric intervals of $[\varepsilon, 1]$), clear ``nn``.
* ``mstep`` (attn + MLP): a softmax head with score $\hat\ell(w_{ik}) - B\,fp_j$ and value
  $[x;\ \|x\|^2/d] \to$ ``[smu; sv]`` (the weighted mean and the weighted mean of $\|x\|^2/d$ with the *same*
  weights, no division); a ReLU head (key mask ``fd``) with score $w_{ik}$ writes $\pi_k^+$ **exactly**. MLP:
  exact moves ($\mu \leftarrow$ ``smu``, $\pi \leftarrow$ ``spi``), clears, and $c \leftarrow \hat\ell(\pi^+)$.
* ``norm`` (attn + MLP): one ReLU head (key mask ``fp``, no $1/N$) selecting the token itself by the Gram trick,
  score $\langle\mu_i, \mu_j\rangle + B_g\langle e_i, e_j\rangle - B_g$, $B_g = 2dR^2$, value ``one`` to
  ``nn`` ($+1$) and ``sv`` ($-1/d$): ``nn`` $= \|\mu_k^+\|^2$ and ``sv`` $= s_k^+$, **exact** (to the round-off
  $\epsilon B_g$ of the cancelling $\pm B_g$). ``tied`` adds an attention sublayer ``norm.tied``: a ReLU head
  (key mask ``fp``, no $1/N$) with score $\pi_j$ (key side only) and value ``sv`` $\to$ ``tv``, so
  ``tv`` $= \sum_l \pi_l^+ s_l^+$ **exactly** in every token. MLP: ``var`` $\leftarrow$ the variance $v$
  (``sv``, or ``tv``), ``b`` $\mathrel{+}= -\tfrac12\hat r(v)$ and ``c`` $\mathrel{+}= -\tfrac d2\hat\lambda(v)$,
  with the hinges $\hat r \approx 1/v$ (above it, convex) and $\hat\lambda \approx \log v$ (below it) on $M$
  geometric intervals of the ``variance_range`` $[s_{min}, s_{max}]$; clears ``sv``, ``tv``.
* ``key`` (attn): two ReLU heads (key mask ``fp``, no $1/N$) selecting the token itself, score
  $-2b_i + B_s\langle e_i, e_j\rangle - B_s = \hat r_k$ on its own key and $< 0$ on the others
  ($B_s = 2/s_{min}$), values $\mu \to a$ and $-\tfrac12\,$``nn`` $\to c$: the products
  $\hat r_k\mu_k$ and $\hat r_k\|\mu_k\|^2$ **exactly** (the positive score multiplies the value, as
  :func:`~tfconstruct.constructions.gadgets.rescale_head`; round-off $\epsilon B_s$ relative to $1/s_{max}$).

So the key is that of the variance $1/\hat r_k$ throughout ($a$, $b$ and the $\|\mu\|^2$ term share the one
approximate $\hat r$), with $\hat\lambda$ and $\hat\ell(\pi)$ the other approximate parts. Heads: 1, 2, 1
(+1 tied), 2. One width knob $M$ for all four hinge interpolants ($\log w$, $\log\pi$, $1/s$, $\log s$); MLP widths
$K(M+4) + 2$, $8d + 4K + M + 10$ and $2M + 12$ (counted in ``tests/test_em_spherical.py``), none depends on
$n$. Exact: the responsibilities given the key, $\pi^+$, $\|\mu^+\|^2$, the variance given the M-step weights,
the tied sum, the products, every move. The initial key is computed exactly by :meth:`SphericalEM.embed`, so the
first E-step is exact. The one input beyond the points is $\|x_i\|^2$, computed exactly by :meth:`embed`
(a per-token square of the input, fixed over the iterations).

**Variance from the M-step weights.** ``sv`` is $\frac1d(\sum_i\tilde w_i\|x_i\|^2/\sum_i\tilde w_i -
\|\sum_i\tilde w_i x_i/\sum_i\tilde w_i\|^2)$ with the head's weights $\tilde w_{ik} = e^{\hat\ell(w_{ik})}$:
exactly the variance of the points under $\tilde w$, so never negative, and off the EM variance only by the
reweighting (bound :data:`tfconstruct.theory.em.EM_SPHERICAL_STEP`). A component collapsing below
$s_{min}$ (or above $s_{max}$) raises a :class:`~tfconstruct.constructions.domains.DomainError` naming
``variance_range``.

**Masking by a score bias** as in :mod:`~tfconstruct.constructions.em.two_block`: $B$ = :meth:`SphericalEM.mask_floor`
$+ 750$ hides the other token type exactly in float64.
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
from ..mlp import MLPBuilder
from ..model import Transformer
from ..moves import clear, replace
from ..piecewise import PiecewiseLinear, geometric_knots
from ..residual import ResidualLayout
from ..weights import Bilinear, LinearMap
from .layers import points_and_means
from .two_block import MASK_MARGIN, MIN_MASK_MARGIN, SCORE_LIMIT, gate, initial_weights, m_step_heads


def spherical_layout(dim: int, components: int) -> ResidualLayout:
    r"""``x | xx | mu | var | pi | a | b | c | e | w | lw | fd | fp | one | smu | spi | sv | tv | nn``:
    $D = 4d + 3K + 12$ (module docstring)."""
    return ResidualLayout(
        [
            ("x", dim),
            ("xx", 1),
            ("mu", dim),
            ("var", 1),
            ("pi", 1),
            ("a", dim),
            ("b", 1),
            ("c", 1),
            ("e", components),
            ("w", components),
            ("lw", components),
            ("fd", 1),
            ("fp", 1),
            ("one", 1),
            ("smu", dim),
            ("spi", 1),
            ("sv", 1),
            ("tv", 1),
            ("nn", 1),
        ]
    )


def self_selecting(layout: ResidualLayout, score: Bilinear, selector: float) -> Bilinear:
    r"""``score`` $+ B\langle e_i, e_j\rangle - B$: unchanged on the token's own key, lowered by $B$ on the others."""
    return score.add("e", "e", selector).add("one", "one", -selector)


def e_step_block(layout: ResidualLayout, mask: float, log_resp: PiecewiseLinear) -> Transformer:
    r"""Responsibilities exactly given the key, and their hinge log.

    Softmax head, $Q h = [x;\ \|x\|^2;\ \mathrm{one};\ B\,\mathrm{one}]$, $K h = [a;\ b;\ c;\ -fd]$:

    .. math:: s_{ik} = \hat r_k\langle x_i, \mu_k\rangle - \tfrac12\hat r_k\|x_i\|^2 - \tfrac12\hat r_k\|\mu_k\|^2
              - \tfrac d2\hat\lambda(s_k) + \hat\ell(\pi_k)
              = -\frac{\|x_i - \mu_k\|^2}{2/\hat r_k} - \tfrac d2\hat\lambda(s_k) + \hat\ell(\pi_k),

    value $e \to w$. MLP: ``w`` $\mathrel{+}= -w\,fp$ ($2K$ units), ``lw`` $\leftarrow \hat\ell(w)$ ($K(M+2)$),
    ``nn`` $\leftarrow 0$ (2).
    """
    qk = Bilinear(layout).add("x", "a").add("xx", "b").add("one", "c").add("one", "fd", -mask)
    head = AttentionHead(qk, LinearMap(layout).add("e", "w"), scoring="softmax", label="responsibilities")
    mlp = gate(MLPBuilder(layout, "E-step: clear w on parameters, write log w"), "w", "w", "fd", 1.0, -1.0)
    log_resp.add_to(mlp, "w", "lw", anchor="right", parameter="floor", clamp_below=True, tokens="fd")
    clear(mlp, "nn")
    return Transformer(layout, [MultiHeadAttention([head], label="E-step"), mlp.build()], ["attn", "mlp"])


def m_step_block(layout: ResidualLayout, mask: float, radius: float, log_pi: PiecewiseLinear) -> Transformer:
    r"""New means, weights, the weighted mean of $\|x\|^2/d$, and $c \leftarrow \hat\ell(\pi^+)$.

    Means head (softmax): score $\hat\ell(w_{ik}) - B\,fp_j$, value $x \to$ ``smu``, $\|x\|^2/d \to$ ``sv``.
    Weights head (ReLU, key mask ``fd``): score $w_{ik}$, value ``one`` $\to$ ``spi``: $\pi_k^+$ exactly.
    MLP: ``mu`` $\leftarrow$ ``smu`` on parameter tokens ($4d$ units), ``smu`` $\leftarrow 0$ ($2d$),
    ``pi`` $\leftarrow$ ``spi`` (4), ``w``, ``lw`` $\leftarrow 0$ ($4K$), ``a`` $\leftarrow 0$ ($2d$),
    ``b``, ``c`` $\leftarrow 0$ (4), ``c`` $\mathrel{+}= \hat\ell(\pi^+)$ ($M + 2$).
    """
    dim = layout.size("x")
    values = LinearMap(layout).add("x", "smu").add("xx", "sv", 1.0 / dim)
    means, weights = m_step_heads(layout, mask, values, "weighted means of x and |x|^2/d")
    mlp = gate(clear(MLPBuilder(layout, "M-step: write mu, pi, log pi"), "mu"), "smu", "mu", "fd", 2.0 * radius)
    for name in ("w", "lw", "a", "b", "c"):
        clear(mlp, name)
    replace(clear(mlp, "smu"), "spi", "pi")
    log_pi.add_to(mlp, "spi", "c", anchor="right", parameter="weight_floor", tokens="fp")
    attention = MultiHeadAttention([means, weights], label="M-step")
    return Transformer(layout, [attention, mlp.build()], ["attn", "mlp"])


def norm_block(
    layout: ResidualLayout,
    gram: float,
    bound: float,
    inverse: PiecewiseLinear,
    log_var: PiecewiseLinear,
    tied: bool,
) -> Transformer:
    r"""$\|\mu^+\|^2$ and the new variance exactly, then $b = -\tfrac12\hat r$ and $c \mathrel{+}= -\tfrac d2\hat\lambda$.

    Gram head (ReLU, key mask ``fp``, ``normalise=False``): score $\langle\mu_i,\mu_j\rangle + B_g(\langle e_i,
    e_j\rangle - 1)$, $B_g = 2dR^2 > \max|\langle\mu_k, \mu_l\rangle| + \max\|\mu\|^2$, is $\|\mu_k\|^2$ on the own key
    and negative elsewhere (data queries: $-B_g$); value ``one`` $\to$ ``nn`` $+1$, ``sv`` $-1/d$.
    ``tied``: then a ReLU head (key mask ``fp``, ``normalise=False``) with score $\pi_j$ and value ``sv`` $\to$
    ``tv`` $= \sum_l\pi_l s_l$. MLP, reading $v$ = ``sv`` (``tv`` when tied): ``var`` $\leftarrow v$ gated to
    parameter tokens ($2 + 2$ units, ``bound`` $\ge |v|$ on data tokens), ``b`` $\mathrel{+}= -\tfrac12\hat r(v)$,
    ``c`` $\mathrel{+}= -\tfrac d2\hat\lambda(v)$ ($2(M+2)$, domain ``variance_range`` on parameter tokens),
    ``sv``, ``tv`` $\leftarrow 0$ (4).
    """
    dim = layout.size("x")
    norm = AttentionHead(
        self_selecting(layout, Bilinear(layout).add("mu", "mu"), gram),
        LinearMap(layout).add("one", "nn").add("one", "sv", -1.0 / dim),
        scoring="relu",
        keys="fp",
        normalise=False,
        label="|mu_k|^2 (own key)",
    )
    layers = [MultiHeadAttention([norm], label="norm")]
    names = ["attn"]
    if tied:
        pooled = AttentionHead(
            Bilinear(layout).add("one", "pi"),
            LinearMap(layout).add("sv", "tv"),
            scoring="relu",
            keys="fp",
            normalise=False,
            label="sum_l pi_l s_l",
        )
        layers.append(MultiHeadAttention([pooled], label="tied variance"))
        names.append("tied")
    source = "tv" if tied else "sv"
    mlp = gate(clear(MLPBuilder(layout, "variance: write var, b, c"), "var"), source, "var", "fd", bound)
    inverse.add_to(mlp, source, "b", -0.5, anchor="right", parameter="variance_range", tokens="fp")
    log_var.add_to(mlp, source, "c", -0.5 * dim, anchor="right", parameter="variance_range", tokens="fp")
    clear(clear(mlp, "sv"), "tv")
    layers.append(mlp.build())
    names.append("mlp")
    return Transformer(layout, layers, names)


def key_block(layout: ResidualLayout, selector: float) -> Transformer:
    r"""$a \mathrel{+}= \hat r\mu$ and $c \mathrel{+}= -\tfrac12\hat r\|\mu\|^2$: two ReLU heads (key mask ``fp``,
    ``normalise=False``) with score $-2b_i + B_s(\langle e_i, e_j\rangle - 1)$, which is $\hat r_k > 0$ on the own key
    and $\le \hat r_k - B_s < 0$ elsewhere ($B_s = 2/s_{min} > \max\hat r$; a data query's $-2b \le 1/s_{min}$)."""
    heads = [
        AttentionHead(
            self_selecting(layout, Bilinear(layout).add("b", "one", -2.0), selector),
            value,
            scoring="relu",
            keys="fp",
            normalise=False,
            label=label,
        )
        for value, label in (
            (LinearMap(layout).add("mu", "a"), "r mu -> a"),
            (LinearMap(layout).add("nn", "c", -0.5), "-r |mu|^2 / 2 -> c"),
        )
    ]
    return Transformer(layout, [MultiHeadAttention(heads, label="key products")], ["attn"])


@dataclass(frozen=True)
class SphericalReadout:
    """What the stream holds at an iteration boundary (torch tensors, batch first).

    ``means`` $(B, K, d)$, ``weights`` $(B, K)$, ``variances`` $(B, K)$ (equal when tied); ``responsibilities``
    $(B, n, K)$ of the E-step that produced them when read by :meth:`SphericalEM.trajectory` (else None).
    """

    means: torch.Tensor
    weights: torch.Tensor
    variances: torch.Tensor
    responsibilities: torch.Tensor | None = None


class SphericalEM(Construction):
    r"""$L$ soft EM steps for a spherical Gaussian mixture, updating means, weights and variances.

    See the module docstring for the layout and the blocks.

    Args:
        dim: $d \ge 1$.
        components: $K \ge 2$.
        iterations: $L \ge 1$.
        tied: one shared variance $s = \sum_k\pi_k s_k$ (scikit-learn's ``"tied"`` trace over $d$) instead of one
            per component.
        width: $M$, the knot intervals of each interpolant ($\log w$, $\log\pi$, $1/s$, $\log s$).
        radius: $R$: every coordinate of the points and initial means is in $[-R, R]$.
        variance_range: $(s_{min}, s_{max})$, $0 < s_{min} < s_{max}$: the range of the $1/s$ and $\log s$
            interpolants; every initial and updated variance must lie in it.
        weight_floor: $\pi_{floor} \in (0, 1/K]$: every initial and updated mixing weight must be at least this.
        floor: $\varepsilon \in (0, 1/2]$, the lower end of the $\log w$ interpolant.
        mask: $B$, the score bias hiding keys of the other token type; default :meth:`mask_floor` $+ 750$.

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(
        self,
        dim: int,
        *,
        components: int,
        iterations: int,
        tied: bool = False,
        width: int = 32,
        radius: float = 10.0,
        variance_range: tuple[float, float] = (0.1, 10.0),
        weight_floor: float = 1e-2,
        floor: float = 1e-8,
        mask: float | None = None,
    ):
        self.dim = integer_in("dim", dim, 1)
        self.components = integer_in("components", components, 2)
        self.iterations = integer_in("iterations", iterations, 1)
        if not isinstance(tied, bool):
            raise ValueError(f"tied must be True or False, got {tied!r}")
        self.tied = tied
        self.width = integer_in("width", width, 1, 100_000)
        self.radius = positive("radius", radius, math.sqrt(SCORE_LIMIT / (4 * self.dim)))
        self.variance_range = self._variance_range(variance_range)
        self.weight_floor = positive("weight_floor", weight_floor, 1.0 / self.components)
        self.floor = positive("floor", floor, 0.5)
        low = self.mask_floor() + MIN_MASK_MARGIN
        self.mask = self.mask_floor() + MASK_MARGIN if mask is None else positive("mask", mask, SCORE_LIMIT)
        if self.mask < low:
            raise ValueError(
                f"mask must be >= {low:.6g} (mask_floor() + {MIN_MASK_MARGIN:g}) so that keys of the other token "
                f"type stay hidden, got {mask!r}"
            )

        s_min, s_max = self.variance_range
        self.layout = spherical_layout(self.dim, self.components)
        log_resp = PiecewiseLinear.interpolate(np.log, geometric_knots(self.floor, 1.0, self.width), "log")
        log_pi = PiecewiseLinear.interpolate(np.log, geometric_knots(self.weight_floor, 1.0, self.width), "log")
        variance_knots = geometric_knots(s_min, s_max, self.width)
        inverse = PiecewiseLinear.interpolate(np.reciprocal, variance_knots)
        log_var = PiecewiseLinear.interpolate(np.log, variance_knots)
        gram, bound = 2.0 * self.dim * self.radius**2, 2.0 * self.radius**2
        self.iteration = (
            e_step_block(self.layout, self.mask, log_resp).scoped("estep")
            + m_step_block(self.layout, self.mask, self.radius, log_pi).scoped("mstep")
            + norm_block(self.layout, gram, bound, inverse, log_var, self.tied).scoped("norm")
            + key_block(self.layout, 2.0 / s_min).scoped("key")
        )
        self.model = self.iteration * self.iterations

    @staticmethod
    def _variance_range(variance_range: tuple[float, float]) -> tuple[float, float]:
        try:
            low, high = (float(value) for value in variance_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"variance_range must be a pair (s_min, s_max) with 0 < s_min < s_max < inf, got {variance_range!r}"
            ) from None
        if not (0 < low < high < math.inf):
            raise ValueError(
                f"variance_range must be a pair (s_min, s_max) with 0 < s_min < s_max < inf, got {variance_range!r}"
            )
        return low, high

    def mask_floor(self) -> float:
        r"""$B_0 = \max(2dR^2/s_{min} + d\Lambda + \log(1/\pi_{floor}),\ \log(1/\varepsilon))$,
        $\Lambda = \max(|\log s_{min}|, |\log s_{max}|)$: the score gap a hidden key must be pushed below.

        E-step: a parameter key scores at least $-\|x_i-\mu_k\|^2/(2s_{min}) - \tfrac d2\Lambda + \log\pi_{floor}$
        with $\|x_i - \mu_k\|^2 \le 4dR^2$; a data key ($a = 0$, $b \le 0$, $c \le \log\pi_{floor} +
        \tfrac d2\Lambda$) at most $\tfrac d2\Lambda - B$. M-step: as :meth:`TwoBlockEM.mask_floor`.
        """
        s_min, s_max = self.variance_range
        spread = max(abs(math.log(s_min)), abs(math.log(s_max)))
        e_step = 2.0 * self.dim * self.radius**2 / s_min + self.dim * spread + math.log(1 / self.weight_floor)
        return max(e_step, math.log(1 / self.floor))

    def __repr__(self) -> str:
        s_min, s_max = self.variance_range
        return (
            f"SphericalEM(K={self.components}, d={self.dim}, L={self.iterations}, tied={self.tied}, "
            f"width={self.width}, radius={self.radius:g}, variance_range=({s_min:g}, {s_max:g}), "
            f"weight_floor={self.weight_floor:g}, floor={self.floor:g}, mask={self.mask:g})"
        )

    # ------------------------------------------------------------------ input / output

    def embed(
        self,
        points: np.ndarray | torch.Tensor,
        means: np.ndarray | torch.Tensor,
        weights: np.ndarray | torch.Tensor | None = None,
        variances: np.ndarray | torch.Tensor | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        r"""The input stream for data $X$ $(B, n, d)$, initial means $(B, K, d)$, weights $(B, K)$ (default $1/K$)
        and variances $(B, K)$ (default 1; equal per instance when tied); a leading batch dimension may be omitted.
        $\|x_i\|^2$ and the initial key $a = \mu/s$, $b = -1/(2s)$, $c = -\|\mu\|^2/(2s) - \tfrac d2\log s + \log\pi$
        exactly.

        Raises:
            ValueError: on wrong shapes, non-finite values, $n < K$, a coordinate outside $[-R, R]$, weights that
                are not a probability vector with every entry $\ge \pi_{floor}$, variances outside
                ``variance_range`` (or unequal when tied).
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
        leak = 10 * n * self.floor * 4 * self.radius**2
        if self.variance_range[0] < leak:
            raise ValueError(
                f"variance_range's lower end {self.variance_range[0]:g} is below what the log-responsibility floor "
                f"leaks into a variance, 10 n floor (2 radius)^2 = {leak:.3g} for n={n}: a component collapsing "
                f"towards it would get a variance set by floor, not by the data; build with floor <= "
                f"{self.variance_range[0] / (40 * n * self.radius**2):.3g} or variance_range starting at >= {leak:.3g}"
            )
        pi = initial_weights(weights, batch, self.components, self.weight_floor)
        s = self._variances(variances, batch)
        zeros = torch.zeros(batch, n, 1, dtype=x.dtype)
        c = torch.log(pi) - 0.5 * (mu**2).sum(-1) / s - 0.5 * d * torch.log(s)
        fd = torch.cat([torch.ones(n), torch.zeros(k)]).reshape(1, tokens, 1)
        values = {
            "x": torch.cat([x, torch.zeros(batch, k, d, dtype=x.dtype)], dim=1),
            "xx": torch.cat([(x**2).sum(-1, keepdim=True), torch.zeros(batch, k, 1, dtype=x.dtype)], dim=1),
            "mu": torch.cat([torch.zeros(batch, n, d, dtype=mu.dtype), mu], dim=1),
            "var": torch.cat([zeros, s.unsqueeze(-1)], dim=1),
            "pi": torch.cat([zeros, pi.unsqueeze(-1)], dim=1),
            "a": torch.cat([torch.zeros(batch, n, d, dtype=mu.dtype), mu / s.unsqueeze(-1)], dim=1),
            "b": torch.cat([zeros, (-0.5 / s).unsqueeze(-1)], dim=1),
            "c": torch.cat([zeros, c.unsqueeze(-1)], dim=1),
            "e": torch.cat([torch.zeros(n, k), torch.eye(k)]).unsqueeze(0),
            "fd": fd,
            "fp": 1.0 - fd,
            "one": 1.0,
        }
        return self.layout.embed(batch, tokens, values, device=device)

    def _variances(self, variances: np.ndarray | torch.Tensor | None, batch: int) -> torch.Tensor:
        s_min, s_max = self.variance_range
        if variances is None:
            s = torch.ones(batch, self.components, dtype=torch.float64)
        else:
            s = as_batch("variances", variances, 2)
            if tuple(s.shape) != (batch, self.components):
                raise ValueError(f"variances must have shape ({batch}, {self.components}), got {tuple(s.shape)}")
        if bool((s < s_min).any()) or bool((s > s_max).any()):
            given = "the default variances 1 (none were given)" if variances is None else "values"
            raise ValueError(
                f"variances must lie in variance_range=({s_min:g}, {s_max:g}), got {given} in "
                f"[{float(s.min()):.6g}, {float(s.max()):.6g}] (build with a variance_range covering them)"
            )
        if self.tied and bool((s != s[:, :1]).any()):
            raise ValueError("variances must be equal across components when tied=True")
        return s

    def readout(self, stream: torch.Tensor) -> SphericalReadout:
        """Means, weights and variances held by a stream at an iteration boundary (on the parameter tokens)."""
        n = stream.shape[-2] - self.components
        read = self.layout.read
        return SphericalReadout(
            read(stream, "mu")[..., n:, :], read(stream, "pi")[..., n:, 0], read(stream, "var")[..., n:, 0]
        )

    def trajectory(self, stream: torch.Tensor) -> list[SphericalReadout]:
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
