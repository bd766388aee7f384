r"""Error bounds of the approximating parts not covered by :mod:`tfconstruct.theory.interpolation`.

The numpy definition of each approximant, against which the claims are measured, is in
:mod:`tfconstruct.verify.approximation.approximants` (this package is sympy only).

**Multiplication from two squares.** $xy = \tfrac14\big((x+y)^2 - (x-y)^2\big)$ with both
squares replaced by the hinge interpolant $\hat q_M$ on $M$ uniform intervals of $[-2R, 2R]$
(knot spacing $h = 4R/M$). For a convex $f$ the interpolation error
$e = \hat q_M - q \in [0, h^2/4]$ (it is $h^2 f''/8$ at most and the chord lies above $f$),
so the two errors, of equal sign, partly cancel:
$|\hat p - xy| = \tfrac14|e(x+y) - e(x-y)| \le h^2/16 = R^2/M^2$ for $|x|, |y| \le R$,
with $2(M+1)$ hinge units (the two constant units cancel).

**Softmax-head sigmoid staircase** (the EM paper, arXiv 2502.06007, approximates scalar functions so). $M$ heads, each
a softmax over an anchor
key and the data keys, output $\Delta_m \sigma(\gamma(u - \tau_m))$; with knots
$t_m = a + m h$, $h = (b-a)/M$, midpoints $\tau_m = (t_{m-1}+t_m)/2$ and
$\Delta_m = g(t_m) - g(t_{m-1})$,
$\hat g(u) = g(a) + \sum_{m=1}^M \Delta_m\,\sigma(\gamma(u-\tau_m))$. For an $L_g$-Lipschitz
$g$ and $u \in [a, b]$ at distance $\delta \le h/2$ from its nearest midpoint: the hard
staircase (nearest knot) is within $L_g(h/2 - \delta)$ of $g$, and replacing steps by sigmoids
costs at most $L_g h\,[\sigma(-\gamma\delta) + (e^{\gamma\delta} + e^{-\gamma\delta})
e^{-\gamma h}/(1-e^{-\gamma h})]$ (geometric tails, $\sigma(-x) \le e^{-x}$). With
$\sigma(-\gamma\delta) \le 1/2$ and $\delta \le h/2$:

.. math::  \sup_{[a,b]}|\hat g - g| \le L_g h\Big(1 + \frac{2e^{-\gamma h/2}}{1 - e^{-\gamma h}}\Big).

With $\gamma = c/h$ ($c$ = sharpness per cell, e.g. 8) this is first order, $O(L_g(b-a)/M)$.

**Softmax central difference of a linear head** (as in arXiv 2501.01312, softmax heads emulating a linear one). For one
query with
scores $t_j$ and values $y_j = W_{OV}h_j$, let $A(\tau) = \sum_j \operatorname{softmax}_j(\tau t)\, y_j$.
$A$ is the mean of $y$ under the tilted law $p_\tau \propto e^{\tau t}$, so its derivatives are
joint cumulants: $A'(0) = \tfrac1N\sum_j (t_j - \bar t) y_j$ (the linear head on centred scores)
and $A'''(s) = \kappa_{p_s}(t, t, t, y) = E[\tilde t^3 \tilde y] - 3\operatorname{Var}(t)\operatorname{Cov}(t, y)$.
With score range $w = \max_j t_j - \min_j t_j$ and $Y = \max_j\|y_j\|$: $|\tilde t| \le w$,
$\operatorname{Var} t \le w^2/4$, $E\|\tilde y\|^2 \le Y^2$, so by Cauchy-Schwarz
$\|A'''\| \le w^3 Y/2 + 3 w^3 Y/8 = 7w^3Y/8$. Taylor's theorem with integral remainder gives
$\|(A(\tau) - A(-\tau))/(2\tau) - A'(0)\| \le \tfrac{\tau^2}{6}\sup\|A'''\|$:

.. math::  \Big\|\frac{A(\tau) - A(-\tau)}{2\tau} - \frac1N\sum_j (t_j-\bar t)\,y_j\Big\| \le \frac{7}{48}\,\tau^2 w^3
Y.

The one-sided difference $(A(\tau) - A(0))/\tau$ has error $\le \tfrac{\tau}{2}\sup\|A''\|$ with
$\|A''\| = \|E[\tilde t^2\tilde y]\| \le w^2 Y/2$, i.e. $\tau w^2 Y/4$: only first order.

**Softmax as a hard max.** For scores $s_1..s_K$ with a unique maximum and gap $g$ to the
runner-up, $1 - p_{\max} = \sum_{j\ne\max} p_j \le (K-1)e^{-\beta g}$, so
$\|\operatorname{softmax}(\beta s) - e_{\arg\max}\|_1 \le 2(K-1)e^{-\beta g}$.
"""

from __future__ import annotations

import sympy as sp

from .bound import Bound

M, R, a, b = sp.symbols("M R a b", positive=True)
L_g, gamma, c = sp.symbols("L_g gamma c", positive=True)
tau, w, Y = sp.symbols("tau w Y", positive=True)
beta, g, K = sp.symbols("beta g K", positive=True)

PRODUCT_VIA_SQUARES = Bound(
    name="product_via_squares",
    quantity=r"\sup_{|x|,|y|\le R} \big|\tfrac14\big(\hat q_M(x+y) - \hat q_M(x-y)\big) - xy\big|",
    expression=R**2 / M**2,
    assumptions="q_M: hinge interpolant of s^2 at M+1 uniform knots in [-2R, 2R]; |x|, |y| <= R; 2(M+1) ReLU units",
    rate=R**2 / M**2,
)

_cell = (b - a) / M

SIGMOID_STAIRCASE = Bound(
    name="softmax_sigmoid_staircase",
    quantity=r"\sup_{u\in[a,b]} |\hat g_M(u) - g(u)|",
    expression=L_g * _cell * (1 + 2 * sp.exp(-gamma * _cell / 2) / (1 - sp.exp(-gamma * _cell))),
    assumptions="g is L_g-Lipschitz on [a, b]; M softmax heads as sigmoids sigma(gamma(u - tau_m)) at cell midpoints",
    rate=L_g * (b - a) / M,
)

SIGMOID_STAIRCASE_SCALED = Bound(
    name="softmax_sigmoid_staircase_scaled",
    quantity=r"\sup_{u\in[a,b]} |\hat g_M(u) - g(u)|,\ \gamma = cM/(b-a)",
    expression=L_g * _cell * (1 + 2 * sp.exp(-c / 2) / (1 - sp.exp(-c))),
    assumptions="as softmax_sigmoid_staircase with the sharpness per cell gamma*h = c held fixed (e.g. c = 8)",
    rate=L_g * (b - a) / M,
)

CENTRAL_DIFFERENCE = Bound(
    name="softmax_central_difference",
    quantity=r"\Big\|\frac{A(\tau)-A(-\tau)}{2\tau} - \frac1N\sum_j (t_j-\bar t)\,y_j\Big\|_2",
    expression=sp.Rational(7, 48) * tau**2 * w**3 * Y,
    assumptions="A(tau) = sum_j softmax_j(tau t) y_j; score range w = max t - min t; Y = max_j ||y_j||_2",
    rate=sp.Rational(7, 48) * tau**2 * w**3 * Y,
)

ONE_SIDED_DIFFERENCE = Bound(
    name="softmax_one_sided_difference",
    quantity=r"\Big\|\frac{A(\tau)-A(0)}{\tau} - \frac1N\sum_j (t_j-\bar t)\,y_j\Big\|_2",
    expression=tau * w**2 * Y / 4,
    assumptions="as softmax_central_difference (one-sided: first order in tau)",
    rate=tau * w**2 * Y / 4,
)

SOFTMAX_HARDMAX = Bound(
    name="softmax_hardmax_l1",
    quantity=r"\|\operatorname{softmax}(\beta s) - e_{\arg\max s}\|_1",
    expression=2 * (K - 1) * sp.exp(-beta * g),
    assumptions="K scores with a unique maximum, gap g > 0 to the runner-up; beta > 0",
    rate=2 * (K - 1) * sp.exp(-beta * g),
)

BOUNDS = [
    PRODUCT_VIA_SQUARES,
    SIGMOID_STAIRCASE,
    SIGMOID_STAIRCASE_SCALED,
    CENTRAL_DIFFERENCE,
    ONE_SIDED_DIFFERENCE,
    SOFTMAX_HARDMAX,
]
