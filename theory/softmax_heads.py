r"""Error bounds of softmax heads as universal approximators (:mod:`tfconstruct.constructions.softmax_heads`) and of
the soft EM step that uses them (:mod:`tfconstruct.constructions.em.softmax_heads`): the shape of He et al.
(arXiv 2502.06007), heads $M \to \infty$ for a vanishing error, an error exponential in the dimension.

**Staircase** (scalar $u \in [a, b]$, $M$ sigmoid heads against two anchor tokens). The bound
$L_g h(1 + 2e^{-\gamma h/2}/(1 - e^{-\gamma h}))$, $h = (b - a)/M$, is registered with the other approximating
parts as :data:`~tfconstruct.theory.approximation.SIGMOID_STAIRCASE` (and, at a fixed $c = \gamma h$,
:data:`~tfconstruct.theory.approximation.SIGMOID_STAIRCASE_SCALED`); this module uses it and does not register it
again.

**Soft nearest grid point** ($z \in [a, b]^q$, $M = P^q$ cell centres $g$ of spacing $h = (b - a)/P$,
$\hat f(z) = \sum_g f(g)\,p_g(z)$, $p_g \propto e^{-\gamma\lVert z - g\rVert^2}$). For an $L_f$-Lipschitz $f$
(Euclidean norm), by Jensen, $|\hat f(z) - f(z)| \le L_f\sum_g p_g\lVert g - z\rVert \le
L_f(\sum_g p_g\lVert g - z\rVert^2)^{1/2}$. On a product grid $p$ is a product of one-dimensional softmaxes, so
the second moment is $\sum_{i=1}^q E_i[(z_i - g_i)^2]$. In one coordinate let the nearest centre be at distance
$\delta \le h/2$ and its neighbour across $z_i$ (if any) at $h - \delta$; the pair alone has mean square distance
$\delta^2 + x\,\sigma(-\gamma x)$ with $x = h(h - 2\delta) \ge 0$, at most $h^2/4 + W/\gamma$ where
$W = \max_y y\,\sigma(-y) = W_0(1/e) \approx 0.2785$ (the Lambert function; at the maximum $y - 1 = e^{-y}$). Every
other centre is at distance $d \ge kh$, $k \ge 1$, two per $k$, and adds at most $d^2 e^{-\gamma(d^2 - h^2/4)}$
relative to the nearest one's weight; for $\gamma h^2 \ge 1$, $d^2e^{-\gamma d^2}$ decreases there, so with
$r = e^{-\gamma h^2}$ and $\sum_k k^2 r^{k^2} \le \sum_k k^2 r^k = r(1+r)/(1-r)^3$ the rest adds at most
$2h^2 e^{\gamma h^2/4} r(1+r)/(1-r)^3$. Hence

.. math::

    \sup_{z\in[a,b]^q}|\hat f(z) - f(z)| \le L_f\sqrt{q\Big(\frac{h^2}{4} + \frac{W}{\gamma}
        + \frac{2h^2 e^{-3\gamma h^2/4}(1 + e^{-\gamma h^2})}{(1 - e^{-\gamma h^2})^3}\Big)},
    \qquad h = (b - a)M^{-1/q},

which tends to $L_f h\sqrt q/2$ as $\gamma \to \infty$. With $c = \gamma h^2$ held fixed it is
$L_f (b - a)\sqrt q\,\kappa(c)\,M^{-1/q}$: a fixed error $\epsilon$ needs
$M = (L_f(b - a)\sqrt q\,\kappa(c)/\epsilon)^q$ grid tokens, exponential in $q$.

**Soft EM step with the log by staircase heads** (equal fixed weights, shared variance $1/\beta$). The E-step is an
exact softmax; the M-step weights are $e^{\hat\ell(w_{ik})}$ with $\hat\ell$ the staircase of $\log$ on
$[\varepsilon, 1]$ ($L_g = 1/\varepsilon$), so with every $w_{ik} \in [\varepsilon, 1]$ (the forward pass raises a
``DomainError`` otherwise) each weight is $w_{ik}e^{e_{ik}}$ with $|e_{ik}| \le \eta$, $\eta$ the staircase bound.
A weighted mean whose weights are rescaled by factors in $[e^{-\eta}, e^{\eta}]$ moves by at most
$D\sinh(\eta)e^{\eta} = D(e^{2\eta} - 1)/2$ (write each factor as $\cosh\eta$ plus at most $\sinh\eta$; the
$\cosh\eta$ part has zero moment about the exact mean), $D \ge$ the data diameter.
"""

from __future__ import annotations

import sympy as sp

from .approximation import SIGMOID_STAIRCASE_SCALED, L_g, M, a, b, c, gamma
from .bound import Bound

q = sp.symbols("q", positive=True, integer=True)
L_f, D, epsilon = sp.symbols("L_f D epsilon", positive=True)

LAMBERT_PEAK = sp.LambertW(sp.exp(-1))  # W = max_y y sigma(-y)


def grid_error(spacing: sp.Expr, inverse_temperature: sp.Expr) -> sp.Expr:
    r"""The soft-nearest-grid-point bound (module docstring) at spacing $h$ and inverse temperature $\gamma$."""
    ratio = sp.exp(-inverse_temperature * spacing**2)
    tail = 2 * spacing**2 * sp.exp(-3 * inverse_temperature * spacing**2 / 4) * (1 + ratio) / (1 - ratio) ** 3
    return L_f * sp.sqrt(q * (spacing**2 / 4 + LAMBERT_PEAK / inverse_temperature + tail))


_spacing = (b - a) * M ** (-1 / q)

SOFTMAX_GRID = Bound(
    name="softmax_grid",
    quantity=r"\sup_{z\in[a,b]^q} \Big|\sum_m f(g_m)\operatorname{softmax}_m(-\gamma\lVert z-g_m\rVert^2) - f(z)\Big|",
    expression=grid_error(_spacing, gamma),
    assumptions="f is L_f-Lipschitz (Euclidean) on [a, b]^q; M = P^q grid tokens at the cell centres of P cells per "
    "axis, h = (b - a) M^(-1/q); gamma h^2 >= 1",
    rate=L_f * (b - a) * sp.sqrt(q) * M ** (-1 / q) / 2,
)

SOFTMAX_GRID_SCALED = Bound(
    name="softmax_grid_scaled",
    quantity=r"\sup_{z\in[a,b]^q} |\hat f_M(z) - f(z)|,\ \gamma = c/h^2",
    expression=grid_error(_spacing, c / _spacing**2),
    assumptions="as softmax_grid with the sharpness per cell c = gamma h^2 >= 1 held fixed (e.g. c = 16)",
    rate=L_f * (b - a) * sp.sqrt(q) * M ** (-1 / q) / 2,
)

_log_error = SIGMOID_STAIRCASE_SCALED.expression.subs({L_g: 1 / epsilon, a: epsilon, b: 1})

SOFTMAX_HEADS_EM_STEP = Bound(
    name="softmax_heads_em_step",
    quantity=r"\max_k \|\hat\mu_k^+ - \mu_k^+\|",
    expression=D * (sp.exp(2 * _log_error) - 1) / 2,
    assumptions="one soft EM step (equal fixed weights, variance 1/beta) from an exact state; log w by the sigmoid "
    "staircase of M softmax heads on [epsilon, 1], gamma h = c; every responsibility in [epsilon, 1]; "
    "D >= data diameter",
    rate=D * (1 - epsilon) / (epsilon * M),
)

BOUNDS: list[Bound] = [SOFTMAX_GRID, SOFTMAX_GRID_SCALED, SOFTMAX_HEADS_EM_STEP]
