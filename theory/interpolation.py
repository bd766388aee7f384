r"""Error bounds of the piecewise-linear ReLU interpolants in :mod:`tfconstruct.constructions.piecewise`.

All follow from the interpolation estimate on one knot interval of length $h$:
$|f - \hat f| \le \tfrac{h^2}{8} \max |f''|$.

* $s^{-1/2}$ on geometric knots in $[a, b]$, $\rho = (b/a)^{1/M}$: on $[t_m, \rho t_m]$,
  $h = t_m(\rho-1)$, $|f''| \le \tfrac34 t_m^{-5/2}$ and $f \ge t_m^{-1/2}\rho^{-1/2}$, so the
  **relative** error is at most $\tfrac{3}{32}(\rho-1)^2\sqrt{\rho} \approx \tfrac{3}{32}(\ln(b/a)/M)^2$.
* $\log s$ on geometric knots in $[a, b]$: $|f''| \le t_m^{-2}$, so the absolute error is
  at most $(\rho-1)^2/8 \approx (\ln(b/a)/M)^2/8$.
* $s^2$ on uniform knots in $[-R, R]$: $h = 2R/M$, $f'' = 2$, so the error is at most $R^2/M^2$.

Each is exact to leading order, so measured errors should sit just below the bound
and fall as $M^{-2}$.
"""

from __future__ import annotations

import sympy as sp

from .bound import Bound

M, a, b, R = sp.symbols("M a b R", positive=True)
rho = (b / a) ** (1 / M)

INV_SQRT_RELATIVE = Bound(
    name="inv_sqrt_geometric",
    quantity=r"\sup_{s\in[a,b]} |\sqrt{s}\,\hat\phi_M(s) - 1|",
    expression=sp.Rational(3, 32) * (rho - 1) ** 2 * sp.sqrt(rho),
    assumptions="hinges at M+1 geometric knots in [a, b], 0 < a < b",
    rate=sp.Rational(3, 32) * sp.log(b / a) ** 2 / M**2,
)

LOG_ABSOLUTE = Bound(
    name="log_geometric",
    quantity=r"\sup_{s\in[a,b]} |\hat\ell_M(s) - \log s|",
    expression=(rho - 1) ** 2 / 8,
    assumptions="hinges at M+1 geometric knots in [a, b], 0 < a < b",
    rate=sp.log(b / a) ** 2 / (8 * M**2),
)

SQUARE_ABSOLUTE = Bound(
    name="square_uniform",
    quantity=r"\sup_{s\in[-R,R]} |\hat q_M(s) - s^2|",
    expression=R**2 / M**2,
    assumptions="hinges at M+1 uniform knots in [-R, R]",
    rate=R**2 / M**2,
)

BOUNDS = [INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE]
