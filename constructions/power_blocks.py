"""Layers of the power-iteration transformer, each built by naming the subspaces it reads and writes.

Notation: $x_j$ is data token $j$ ($n$ tokens, all of them data, so the attention's
$1/N$ is $1/n$); broadcast blocks (``v``, ``u``, ``s``, ``f``, ``V_l``, ``lam_l``, ``W_l``)
hold the same value in every token. $\\hat\\Sigma = \\frac1n\\sum_j x_j x_j^\\top$ and the
deflated matrix of eigenvector $l$ is

.. math::

    \\hat\\Sigma_l = \\hat\\Sigma - \\sum_{p<l} \\hat\\lambda_p V_p V_p^\\top ,

never materialised: its product with $v$ is a sum of heads.

**Signed products.** A ReLU head adds $\\frac1n\\sum_j \\sigma(s_{ij})\\,W_{OV}h_j$, so a
score that can be negative is split into a pair with scores $\\pm s_{ij}$ and outputs
$\\pm W_{OV}$: $\\sigma(s) - \\sigma(-s) = s$ (:func:`signed_heads`). Linear attention
needs one head. Scores that are non-negative by construction ($\\|u\\|^2$, $f > 0$) use one
ReLU head.

**Overwrites happen per token in an MLP** (exact ReLU pairs from
:mod:`constructions.moves`), never with a "subtract the token mean" head: with the latter,
per-token round-off differences of the broadcast blocks double at every power step.
"""

from __future__ import annotations

from typing import Callable, Literal

from .attention import AttentionHead, MultiHeadAttention
from .mlp import MLP, MLPBuilder
from .moves import clear, copy, replace
from .piecewise import PiecewiseLinear
from .residual import ResidualLayout
from .weights import Bilinear, LinearMap

ExactScoring = Literal["relu", "linear"]
EXACT_SCORINGS: tuple[str, ...] = ("relu", "linear")

HeadFactory = Callable[[float], tuple[Bilinear, LinearMap]]


def power_layout(dim: int, k: int, *, labels: bool = False) -> ResidualLayout:
    """The residual stream of the power-iteration transformer ($D = (4+3k)d + k + 3$, +2 with ``labels``).

    ========  =====  ==========================================================
    block     size   content
    ========  =====  ==========================================================
    x         d      data point $x_i$ (token-local)
    one       1      constant 1 (biases, constant scores)
    seed_l    d      starting vector of eigenvector $l$ (broadcast)
    v         d      current iterate $v_t$ (broadcast)
    vn        d      scratch: the next iterate before it overwrites ``v``
    u         d      scratch: $u = \\hat\\Sigma_l v$
    s         1      scratch: $\\|u\\|^2$ (or $\\|v\\|^2$ in a Newton step)
    f         1      scratch: $\\hat\\phi(s) \\approx s^{-1/2}$
    V_l       d      finished eigenvector $l$
    lam_l     1      its eigenvalue $\\hat\\lambda_l = V_l^\\top \\hat\\Sigma_l V_l$
    W_l       d      $\\hat\\lambda_l V_l$ (the value vector of the deflation heads)
    z, y      1, 1   (``labels`` only) score $\\langle x_i, V_0\\rangle$, label in $[-1, 1]$
    ========  =====  ==========================================================
    """
    blocks = [("x", dim), ("one", 1)]
    blocks += [(f"seed_{l}", dim) for l in range(k)]
    blocks += [("v", dim), ("vn", dim), ("u", dim), ("s", 1), ("f", 1)]
    for l in range(k):
        blocks += [(f"V_{l}", dim), (f"lam_{l}", 1), (f"W_{l}", dim)]
    if labels:
        blocks += [("z", 1), ("y", 1)]
    return ResidualLayout(blocks)


def signed_heads(scoring: ExactScoring, label: str, make: HeadFactory) -> list[AttentionHead]:
    """Heads that add exactly $\\frac1n\\sum_j s_{ij} W_{OV} h_j$ for a score $s_{ij}$ of either sign.

    ``make(sign)`` returns the score form and output map scaled by ``sign``. Linear scoring
    uses ``make(+1)`` alone; ReLU scoring adds ``make(+1)`` and ``make(-1)``, because
    $\\sigma(s)\\,W - \\sigma(-s)\\,W = s\\,W$.
    """
    if scoring == "linear":
        return [AttentionHead(*make(1.0), scoring="linear", label=label)]
    return [
        AttentionHead(*make(1.0), scoring="relu", label=f"{label}+"),
        AttentionHead(*make(-1.0), scoring="relu", label=f"{label}-"),
    ]


def centre_layer(layout: ResidualLayout, scoring: ExactScoring) -> MultiHeadAttention:
    """$x_i \\leftarrow x_i - \\bar x$: score $\\langle \\mathrm{one}_i, \\mathrm{one}_j\\rangle = 1$, value $-x_j$.

    Applied once to the token-local data (not to a broadcast block that is iterated), so the
    mean subtraction is exact up to one rounding.
    """
    head = AttentionHead(
        Bilinear(layout).add("one", "one", 1.0), LinearMap(layout).add("x", "x", -1.0), scoring=scoring, label="centre x"
    )
    return MultiHeadAttention([head], label="centre data")


def matvec_heads(layout: ResidualLayout, scoring: ExactScoring, l: int) -> list[AttentionHead]:
    """Heads adding $u \\mathrel{+}= \\hat\\Sigma_l v = \\frac1n\\sum_j\\langle v, x_j\\rangle x_j - \\sum_{p<l}\\langle v, V_p\\rangle W_p$.

    * data: score $\\langle v_i, x_j\\rangle$, value $x_j \\to u$;
    * deflation of eigenvector $p$: score $\\langle v_i, V_{p,j}\\rangle$ (the same for every
      $j$, so the $\\frac1n\\sum_j$ is a read of the broadcast value), value $-W_{p,j} \\to u$.

    $2 + 2l$ ReLU heads ($1 + l$ linear ones).
    """
    heads = signed_heads(
        scoring, "Sigma v", lambda sign: (Bilinear(layout).add("v", "x", sign), LinearMap(layout).add("x", "u", sign))
    )
    for p in range(l):
        heads += signed_heads(
            scoring,
            f"deflate {p}",
            lambda sign, p=p: (Bilinear(layout).add("v", f"V_{p}", sign), LinearMap(layout).add(f"W_{p}", "u", -sign)),
        )
    return heads


def matvec_layer(layout: ResidualLayout, scoring: ExactScoring, l: int) -> MultiHeadAttention:
    """Block A of a power step: $u = \\hat\\Sigma_l v$ (see :func:`matvec_heads`)."""
    return MultiHeadAttention(matvec_heads(layout, scoring, l), label=f"eig{l} u = Sigma_{l} v")


def squared_norm_layer(layout: ResidualLayout, scoring: ExactScoring, src: str) -> MultiHeadAttention:
    """$s \\mathrel{+}= \\|src\\|^2$: score $\\langle src_i, src_j\\rangle \\ge 0$ (one head), value $\\mathrm{one}_j \\to s$."""
    head = AttentionHead(
        Bilinear(layout).add(src, src, 1.0), LinearMap(layout).add("one", "s", 1.0), scoring=scoring, label=f"|{src}|^2"
    )
    return MultiHeadAttention([head], label=f"s = |{src}|^2")


def inverse_sqrt_mlp(layout: ResidualLayout, phi: PiecewiseLinear) -> MLP:
    """Block B's MLP: $f \\mathrel{+}= \\hat\\phi(s) = b^{-1/2} + \\sum_{m=0}^{M} w_m\\,\\sigma(t_m - s)$ ($M+2$ units).

    $\\hat\\phi$ interpolates $s^{-1/2}$ on the knots $t_m$ (geometric on $[a, b]$) and is
    flat outside, so $\\hat\\phi \\ge b^{-1/2} > 0$ everywhere. The hinges are anchored at the
    right end $b$: the left-anchored sum $a^{-1/2} + \\sum_m w_m\\sigma(s - t_m)$ is the same
    function but cancels terms $\\sim (s/a)^{3/2}$ times larger than $\\hat\\phi(s)$ (a relative
    round-off of $10^{-12}$ at $s/a = 2000$ in float64, $10^{-3}$ in float32).
    """
    return phi.add_to(MLPBuilder(layout, label="f = phi(s) ~ s^-1/2"), "s", "f", anchor="right").build()


def rescale_layer(layout: ResidualLayout, scoring: ExactScoring) -> MultiHeadAttention:
    """Block C: $vn \\mathrel{+}= f\\,u$: score $f_i\\cdot\\mathrm{one}_j = f > 0$ (one head), value $u_j \\to vn$."""
    head = AttentionHead(
        Bilinear(layout).add("f", "one", 1.0), LinearMap(layout).add("u", "vn", 1.0), scoring=scoring, label="f u"
    )
    return MultiHeadAttention([head], label="vn = f u")


def overwrite_iterate_mlp(layout: ResidualLayout) -> MLP:
    """Block C's MLP, per token and exact: $v \\leftarrow vn$; $vn, u, s, f \\leftarrow 0$ ($6d + 4$ units)."""
    builder = MLPBuilder(layout, label="v <- vn; clear u, s, f")
    replace(builder, "vn", "v")
    for name in ("u", "s", "f"):
        clear(builder, name)
    return builder.build()


def power_step(layout: ResidualLayout, scoring: ExactScoring, l: int, phi: PiecewiseLinear) -> list:
    """One power step $v \\leftarrow \\hat\\phi(\\|\\hat\\Sigma_l v\\|^2)\\,\\hat\\Sigma_l v$: 3 attention layers, 2 MLPs."""
    return [
        matvec_layer(layout, scoring, l),
        squared_norm_layer(layout, scoring, "u"),
        inverse_sqrt_mlp(layout, phi),
        rescale_layer(layout, scoring),
        overwrite_iterate_mlp(layout),
    ]


def newton_step(layout: ResidualLayout, scoring: ExactScoring) -> list:
    """$v \\leftarrow (\\tfrac32 - \\tfrac12\\|v\\|^2)\\,v$: one Newton step for $\\|v\\|^{-1}$ from $r_0 = 1$.

    With $\\|v\\| = 1 + e$ the new norm is $1 + e'$, $e' = -e^2(3+e)/2$ exactly. The scalar
    $\\tfrac32 - \\tfrac12 s$ is a query-side score against the constant key (signed pair, so
    it is exact for any $s$); the MLP overwrites $v$ and clears $s$.
    """
    scale = MultiHeadAttention(
        signed_heads(
            scoring,
            "(3/2 - s/2) v",
            lambda sign: (
                Bilinear(layout).add("one", "one", 1.5 * sign).add("s", "one", -0.5 * sign),
                LinearMap(layout).add("v", "vn", sign),
            ),
        ),
        label="vn = (3/2 - s/2) v",
    )
    builder = MLPBuilder(layout, label="v <- vn; clear s")
    replace(builder, "vn", "v")
    clear(builder, "s")
    return [squared_norm_layer(layout, scoring, "v"), scale, builder.build()]


def start_eigenvector_mlp(layout: ResidualLayout, l: int) -> MLP:
    """$v \\leftarrow \\mathrm{seed}_l$ (the block ``v`` is zero before: at the input, or after :func:`finish_eigenvector`)."""
    return copy(MLPBuilder(layout, label=f"v <- seed_{l}"), f"seed_{l}", "v").build()


def finish_eigenvector(layout: ResidualLayout, scoring: ExactScoring, l: int, k: int) -> list:
    """Store $V_l = v$, $\\hat\\lambda_l = v^\\top\\hat\\Sigma_l v$, $W_l = \\hat\\lambda_l V_l$; then start eigenvector $l+1$.

    1. heads of :func:`matvec_heads` ($u = \\hat\\Sigma_l v$); MLP copies $V_l \\leftarrow v$.
    2. signed heads with score $\\langle v_i, u_j\\rangle$, value $\\mathrm{one}_j \\to \\lambda_l$
       (the Rayleigh quotient); MLP clears $u$.
    3. signed heads with score $\\lambda_{l,i}\\cdot\\mathrm{one}_j$, value $V_{l,j} \\to W_l$;
       MLP clears $v$ and, if $l+1 < k$, writes $\\mathrm{seed}_{l+1}$ into it.
    """
    store = copy(MLPBuilder(layout, label=f"V_{l} <- v"), "v", f"V_{l}").build()
    rayleigh = MultiHeadAttention(
        signed_heads(
            scoring,
            "<v, u>",
            lambda sign: (Bilinear(layout).add("v", "u", sign), LinearMap(layout).add("one", f"lam_{l}", sign)),
        ),
        label=f"lam_{l} = <v, Sigma_{l} v>",
    )
    scaled = MultiHeadAttention(
        signed_heads(
            scoring,
            "lam V",
            lambda sign: (Bilinear(layout).add(f"lam_{l}", "one", sign), LinearMap(layout).add(f"V_{l}", f"W_{l}", sign)),
        ),
        label=f"W_{l} = lam_{l} V_{l}",
    )
    restart = clear(MLPBuilder(layout, label="clear v" + (f"; v <- seed_{l + 1}" if l + 1 < k else "")), "v")
    if l + 1 < k:
        copy(restart, f"seed_{l + 1}", "v")
    return [
        matvec_layer(layout, scoring, l),
        store,
        rayleigh,
        clear(MLPBuilder(layout, label="clear u"), "u").build(),
        scaled,
        restart.build(),
    ]


def label_layers(layout: ResidualLayout, scoring: ExactScoring, margin: float) -> list:
    """2-class labels $y_i = \\operatorname{clip}(\\langle x_i, V_0\\rangle/\\eta, -1, 1)$.

    1. signed heads with the token-local score $\\langle x_i, V_{0,j}\\rangle$ (the same for
       every $j$), value $\\mathrm{one}_j \\to z$: $z_i = \\langle x_i, V_0\\rangle$.
    2. MLP with 3 units: $y = \\sigma(z/\\eta + 1) - \\sigma(z/\\eta - 1) - \\sigma(\\mathrm{one})$,
       which is $\\operatorname{sign}(z_i)$ whenever $|z_i| \\ge \\eta$.
    """
    score = MultiHeadAttention(
        signed_heads(
            scoring, "<x, V_0>", lambda sign: (Bilinear(layout).add("x", "V_0", sign), LinearMap(layout).add("one", "z", sign))
        ),
        label="z = <x, V_0>",
    )
    clip = MLPBuilder(layout, label="y = clip(z / eta, -1, 1)")
    clip.group({"z": 1.0 / margin}, {"y": 1.0}, bias=1.0, label="relu(z/eta + 1)")
    clip.group({"z": 1.0 / margin}, {"y": -1.0}, bias=-1.0, label="-relu(z/eta - 1)")
    clip.group({}, {"y": -1.0}, bias=1.0, label="-1")
    return [score, clip.build()]
