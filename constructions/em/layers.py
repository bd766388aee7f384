r"""The sublayers of one EM / Lloyd iteration over data tokens and centroid tokens.

Tokens: $n$ data tokens, then $K$ centroid tokens. Subspaces (``em_layout``):

=============  ====  ================================  ==================================
name           size  data token $i$                    centroid token $k$
=============  ====  ================================  ==================================
``x``          $d$   $x_i$                             0
``mu``         $d$   don't-care (never a key)          $\mu_k$
``sq_norm``    1     0                                 $s_k = \|\mu_k\|^2$
``pi``         1     0                                 $\pi_k$ (weighted soft EM only)
``log_pi``     1     don't-care                        $\hat\ell(\pi_k) \approx \log\pi_k$
``cluster``    $K$   0                                 $e_k$ (cluster index, one-hot)
``resp``       $K$   $w_i$ (responsibilities)          don't-care (never a key)
``log_resp``   $K$   $\hat\ell(w_i) \approx \log w_i$ don't-care (soft only)
``is_data``    1     1                                 0
``is_centroid`` 1    0                                 1
``one``        1     1                                 1
scratch        ...   ``resp_new``, ``mu_new``, ``sq_norm_new``, ``resp_mean``: 0 between sublayer pairs
=============  ====  ================================  ==================================

"Don't-care" slots hold bounded leftovers of heads whose queries are the other token type;
every head that reads them as keys masks that token type out (``keys=``), so they never
influence a result. Every other slot is overwritten exactly (ReLU pairs, :mod:`tfconstruct.constructions.moves`).

One iteration is three attention + MLP pairs:

1. **refresh** $s_k \leftarrow \|\mu_k\|^2$ (exact) and $\log\pi_k$ (hinge interpolant);
2. **E-step** $w_{ik} = \operatorname{softmax}_k(\beta(\langle x_i,\mu_k\rangle - s_k/2) + \log\pi_k)$;
3. **M-step** $\mu_k \leftarrow$ weighted mean, $\pi_k \leftarrow \tfrac1n\sum_i w_{ik}$ (exact).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..attention import AttentionHead, MultiHeadAttention
from ..checks import as_batch, integer_in
from ..mlp import MLPBuilder
from ..model import Transformer
from ..moves import clear, replace
from ..piecewise import PiecewiseLinear
from ..residual import ResidualLayout
from ..weights import Bilinear, LinearMap

Mode = Literal["soft", "hard"]


def em_layout(dim: int, clusters: int, mode: Mode, update_weights: bool) -> ResidualLayout:
    """The residual layout of the module docstring (slots a variant does not use are left out)."""
    blocks = [("x", dim), ("mu", dim), ("sq_norm", 1)]
    if update_weights:
        blocks += [("pi", 1), ("log_pi", 1)]
    blocks += [("cluster", clusters), ("resp", clusters)]
    if mode == "soft":
        blocks += [("log_resp", clusters)]
    blocks += [("is_data", 1), ("is_centroid", 1), ("one", 1)]
    blocks += [("resp_new", clusters), ("mu_new", dim), ("sq_norm_new", 1)]
    if update_weights:
        blocks += [("resp_mean", clusters)]
    return ResidualLayout(blocks)


def refresh_block(layout: ResidualLayout, gram_bound: float, log_pi: PiecewiseLinear | None) -> Transformer:
    r"""$s_k \leftarrow \|\mu_k\|^2$ exactly and $\log\pi_k \leftarrow \hat\ell(\pi_k)$.

    Attention: one ReLU head (no $1/N$), queries and keys centroid tokens, score

    .. math:: \langle\mu_k, \mu_l\rangle + B\,\langle e_k, e_l\rangle - B

    which is $\|\mu_k\|^2 \ge 0$ for $l = k$ and $\le R^2 - B < 0$ for $l \ne k$ when
    $B = $ ``gram_bound`` $\ge 2R^2$ and every $\|\mu\| \le R$; the value ``one`` is written
    into ``sq_norm_new``, so centroid $k$ receives exactly $\|\mu_k\|^2$.

    MLP: ``sq_norm`` $\leftarrow$ ``sq_norm_new`` (4 units); with weights,
    ``log_pi`` $\leftarrow \hat\ell(\pi)$, the hinge interpolant of $\log$ on geometric knots in
    $[\pi_{floor}, 1]$ ($M + 2$ units plus 2 to clear), right-anchored: the left form's first
    hinge has slope $\approx 1/\pi_{floor}$ and cancels to round-off $\epsilon_{mach}/\pi_{floor}$ at 1.
    """
    qk = Bilinear(layout).add("mu", "mu").add("cluster", "cluster", gram_bound).add("one", "one", -gram_bound)
    ov = LinearMap(layout).add("one", "sq_norm_new")
    head = AttentionHead(qk, ov, scoring="relu", normalise=False, keys="is_centroid", label="squared norms")
    attention = MultiHeadAttention([head], label="refresh: ||mu||^2")
    mlp = replace(MLPBuilder(layout, "refresh: write s, log pi"), "sq_norm_new", "sq_norm")
    if log_pi is not None:
        log_pi.add_to(
            clear(mlp, "log_pi"), "pi", "log_pi", anchor="right", parameter="weight_floor", tokens="is_centroid"
        )
    return Transformer(layout, [attention, mlp.build()], ["attn", "mlp"])


def e_step_block(layout: ResidualLayout, beta: float, log_resp: PiecewiseLinear | None) -> Transformer:
    r"""Responsibilities, exactly: one softmax head from data queries to centroid keys.

    Score (query block, key block): $\beta\langle x_i, \mu_k\rangle$ (``x``, ``mu``),
    $-\tfrac\beta2 s_k$ (``one``, ``sq_norm``) and, with weights, $+\hat\ell(\pi_k)$
    (``one``, ``log_pi``); keys are centroid tokens only. Since
    $-\|x_i-\mu_k\|^2/2 = \langle x_i,\mu_k\rangle - s_k/2 - \|x_i\|^2/2$ and the last term
    does not depend on $k$,

    .. math:: \operatorname{softmax}_k\big(\beta(\langle x_i,\mu_k\rangle - s_k/2) + \log\pi_k\big)
              = \frac{\pi_k\,\phi_\sigma(x_i - \mu_k)}{\sum_l \pi_l\,\phi_\sigma(x_i - \mu_l)},
              \quad \sigma^2 = 1/\beta .

    The value ``cluster`` ($e_k$) goes to ``resp_new``. The softmax subtracts the row maximum
    (shift invariance), so a large $\beta$ cannot overflow ``exp``; only the scores themselves
    must be finite (checked when the construction is built).

    MLP: ``resp`` $\leftarrow$ ``resp_new`` ($4K$ units); soft mode also
    ``log_resp`` $\leftarrow \hat\ell(w)$, the hinge interpolant of $\log$ on geometric knots
    in $[\varepsilon, 1]$, flat ($=\log\varepsilon$) below ($K(M+2) + 2K$ units). Right-anchored
    ($\hat\ell(s) = \sum_m w_m\sigma(t_m - s)$): the left-anchored form would cancel terms of size
    $s/\varepsilon$ and lose $\approx \epsilon_{mach}/\varepsilon$ (measured $10^{-8}$ to $4\cdot10^{-7}$
    for $\varepsilon = 10^{-8}$, $M = 64..4096$); the right form stays at $\sim 10^{-14}$.
    """
    qk = Bilinear(layout).add("x", "mu", beta).add("one", "sq_norm", -beta / 2)
    if "log_pi" in layout:
        qk.add("one", "log_pi")
    ov = LinearMap(layout).add("cluster", "resp_new")
    head = AttentionHead(qk, ov, scoring="softmax", keys="is_centroid", label="responsibilities")
    attention = MultiHeadAttention([head], label="E-step")
    mlp = replace(MLPBuilder(layout, "E-step: write w, log w"), "resp_new", "resp")
    if log_resp is not None:
        log_resp.add_to(
            clear(mlp, "log_resp"), "resp_new", "log_resp", anchor="right", parameter="floor", clamp_below=True
        )
    return Transformer(layout, [attention, mlp.build()], ["attn", "mlp"])


def m_step_block(layout: ResidualLayout, mode: Mode, sharpness: float) -> Transformer:
    r"""New means (and weights) from centroid queries over data keys.

    Means head (softmax, keys data tokens, value ``x`` into ``mu_new``):

    * soft: score $\langle e_k, \hat\ell(w_i)\rangle = \hat\ell(w_{ik})$, so the weights are
      $e^{\hat\ell(w_{ik})}/\sum_j e^{\hat\ell(w_{jk})} \approx w_{ik}/\sum_j w_{jk}$ and the
      output is the weighted mean without any division;
    * hard: score $a\,w_{ik}$ (``sharpness`` $a$), weights $\propto e^{a w_{ik}}$: for one-hot $w$
      the mean of cluster $k$ up to a leak $\frac{n - n_k}{n_k}e^{-a}$.

    Weights head (softmax with score 0, keys data tokens, value ``resp`` into ``resp_mean``):
    every query receives $\bar w = \tfrac1n\sum_i w_i$ exactly, for any $n$.

    MLP: ``mu`` $\leftarrow$ ``mu_new`` ($4d$ units); with weights,
    $\pi_k \leftarrow \langle e_k, \bar w\rangle = \sum_j \sigma(\bar w_j + e_{kj} - 1)$
    (exact because $\bar w_j \in [0, 1]$ and $e_{kj} \in \{0, 1\}$; $K$ units) and
    ``resp_mean`` $\leftarrow 0$.
    """
    score_block, scale = ("log_resp", 1.0) if mode == "soft" else ("resp", sharpness)
    means = AttentionHead(
        Bilinear(layout).add("cluster", score_block, scale),
        LinearMap(layout).add("x", "mu_new"),
        scoring="softmax",
        keys="is_data",
        label="weighted means",
    )
    heads = [means]
    mlp = replace(MLPBuilder(layout, "M-step: write mu, pi"), "mu_new", "mu")
    if "pi" in layout:
        heads.append(
            AttentionHead(
                Bilinear(layout),
                LinearMap(layout).add("resp", "resp_mean"),
                scoring="softmax",
                keys="is_data",
                label="mean responsibility",
            )
        )
        clear(mlp, "pi").group({"resp_mean": 1.0, "cluster": 1.0}, {"pi": 1.0}, bias=-1.0, label="pi = <e, mean w>")
        clear(mlp, "resp_mean")
    return Transformer(layout, [MultiHeadAttention(heads, label="M-step"), mlp.build()], ["attn", "mlp"])


def points_and_means(
    points: np.ndarray | torch.Tensor, means: np.ndarray | torch.Tensor, dim: int, components: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Data ``points`` $(B, n, d)$ and initial ``means`` $(B, K, d)$ as batches (a leading batch dimension may be
    omitted), checked: real and finite, $d$ = ``dim``, $n \ge K$ = ``components``, the means' shape; every EM
    construction's ``embed`` starts with this."""
    x = as_batch("points", points, 3)
    mu = as_batch("means", means, 3)
    batch, n, d = x.shape
    if d != dim:
        raise ValueError(f"points must have dim={dim} features, got {d}")
    integer_in("number of points n (at least components)", n, components)
    if tuple(mu.shape) != (batch, components, dim):
        raise ValueError(f"means must have shape ({batch}, {components}, {dim}), got {tuple(mu.shape)}")
    return x, mu


def token_values(x: torch.Tensor, mu: torch.Tensor) -> tuple[int, dict[str, torch.Tensor | float]]:
    """``(tokens, values)`` of :func:`em_layout`'s input: $n$ data tokens holding ``x``, then $K$ centroid tokens
    holding ``mu`` and their one-hot ``cluster``, the token-type flags and ``one``."""
    batch, n, d = x.shape
    k = mu.shape[-2]
    tokens = n + k
    is_data = torch.cat([torch.ones(n), torch.zeros(k)]).reshape(1, tokens, 1)
    return tokens, {
        "x": torch.cat([x, torch.zeros(batch, k, d, dtype=x.dtype)], dim=1),
        "mu": torch.cat([torch.zeros(batch, n, d, dtype=mu.dtype), mu], dim=1),
        "cluster": torch.cat([torch.zeros(n, k), torch.eye(k)]).unsqueeze(0),
        "is_data": is_data,
        "is_centroid": 1.0 - is_data,
        "one": 1.0,
    }
