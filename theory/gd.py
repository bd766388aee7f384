r"""Error bound of in-context gradient descent by linear attention (:mod:`tfconstruct.constructions.gd`).

Written with the public interface only (``tfconstruct.theory``), as a user's plugin would be.

Setting: $X \in \mathbb R^{n\times d}$ of full column rank, $\Sigma = X^\top X / n$, $w_{LS} = (X^\top X)^{-1}X^\top y$
and the prediction $y_{LS} = x_q^\top w_{LS}$. Preconditioned GD from $w_0 = 0$,
$w_{t+1} = w_t + \eta P\,\frac1n X^\top(y - X w_t)$ with $P$ symmetric positive definite, satisfies
$w_{t+1} - w_{LS} = (I - \eta P\Sigma)(w_t - w_{LS})$, since $X^\top(y - Xw_{LS}) = 0$. With
$P\Sigma = P^{1/2}(P^{1/2}\Sigma P^{1/2})P^{-1/2}$ and $\mu_i$ the eigenvalues of $P^{1/2}\Sigma P^{1/2}$,

.. math::

    |\hat y_L - y_{LS}| = |x_q^\top (I - \eta P\Sigma)^L (0 - w_{LS})|
    \le \lVert x_q\rVert\,\lVert w_{LS}\rVert\,\sqrt{\kappa(P)}\;\rho^L, \qquad \rho = \max_i |1 - \eta\mu_i|,

with $\kappa(P)$ the condition number of $P$ ($\kappa = 1$ for plain GD, $P = I$). The error falls at the per-layer
rate $\log\rho$ (the transformer computes these iterates exactly, so the rate is the algorithm's), and $\rho < 1$
exactly when $0 < \eta\mu_{\max} < 2$.
"""

from __future__ import annotations

import math
from typing import Iterable

import sympy as sp

from tfconstruct.theory import Bound, Claim

q, w, kappa, rho, L = sp.symbols("q w kappa rho L", positive=True)


def contraction_factor(eta: float, eigenvalues: Iterable[float]) -> float:
    r"""$\rho = \max_i |1 - \eta\mu_i|$."""
    return max(abs(1.0 - eta * float(mu)) for mu in eigenvalues)


def per_layer_rate(eta: float, eigenvalues: Iterable[float]) -> float:
    r"""$\log\rho$: the slope of $\log|\hat y_L - y_{LS}|$ against $L$ once the slowest mode dominates."""
    return math.log(contraction_factor(eta, eigenvalues))


GD_PREDICTION = Bound(
    name="gd_prediction_depth",
    quantity=r"|\hat y_L - y_{LS}|",
    expression=q * w * sp.sqrt(kappa) * rho**L,
    assumptions="GD from w_0 = 0 with step eta and a symmetric positive definite preconditioner P of condition "
    "number kappa (P = I: kappa = 1); X full column rank; q = ||x_q||, w = ||w_LS||; rho = max_i |1 - eta mu_i| "
    "over the eigenvalues mu_i of P^(1/2) (X^T X / n) P^(1/2)",
    rate=rho**L,
)

BOUNDS = [GD_PREDICTION]

#: von Oswald et al.'s statement of the shape (the resource table compares the built model with it)
VON_OSWALD_GD = Claim(
    source="von Oswald et al. 2023, Proposition 1",
    layers_per_step=1,
    heads="1 linear self-attention head",
    heads_at=lambda sizes: 1,
    error="exact",
)
