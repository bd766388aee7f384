r"""Error bounds of the power-iteration transformer (:mod:`tfconstruct.constructions.power`).

Setting: $\hat\Sigma$ symmetric positive semi-definite with eigenvalues
$\lambda_1 > \lambda_2 \ge \dots \ge \lambda_d \ge 0$, eigenvectors $v_1, \dots$; the transformer
computes $v_{t+1} = \hat\phi_M(s_t)\,\hat\Sigma v_t$, $s_t = \|\hat\Sigma v_t\|^2$, with
$\hat\phi_M > 0$ the hinge interpolant of $s^{-1/2}$ on $M$ geometric intervals of $[a, b]$.

**Direction (depth).** $\hat\phi_M > 0$ is a scalar, so $v_t \parallel \hat\Sigma^t v_0$ exactly and
the textbook bound applies unchanged
(:data:`tfconstruct.theory.propagation.POWER_ANGLE_DEPTH`, re-exported here as ``ANGLE_AFTER_STEPS``): writing
$v_0 = \sum_j c_j v_j$,
$\tan\theta_t = \|\sum_{j\ge2}\lambda_j^t c_j v_j\| / (\lambda_1^t |c_1|) \le (\lambda_2/\lambda_1)^t \tan\theta_0$.

**Norm (width).** $\|v_{t+1}\| = \hat\phi_M(s_t)\sqrt{s_t}$, so $|\|v_{t+1}\| - 1| \le \epsilon_M$, the
relative error of the interpolant (:data:`tfconstruct.theory.interpolation.INV_SQRT_RELATIVE`), whenever
$s_t \in [a, b]$; the error does not accumulate because every step renormalises.

**Newton.** $v \leftarrow (\tfrac32 - \tfrac12\|v\|^2)\,v$ with $\|v\| = 1 + e$ gives
$(1+e)(\tfrac32 - \tfrac12(1+e)^2) - 1 = -\tfrac12 e^2 (3 + e)$ exactly, so $|e| \le \epsilon$
implies $|e'| \le \nu(\epsilon) = \epsilon^2(3+\epsilon)/2$; $\nu$ is increasing, so $J$ steps give
$\nu^{J}(\epsilon_M)$ (:func:`tfconstruct.theory.propagation.newton_norm_error`).

**Eigenvalue.** $\hat\lambda = V^\top\hat\Sigma V$ with $V = (1+e)\tilde v$, $\|\tilde v\| = 1$,
$\sin\angle(\tilde v, v_1) = \sin\theta$. Then $\hat\lambda = (1+e)^2\rho$ with
$\rho = \tilde v^\top\hat\Sigma\tilde v \in [\lambda_1(1-\sin^2\theta), \lambda_1]$ (PSD), hence
$(1+e)^2(1-\sin^2\theta) - 1 \le \hat\lambda/\lambda_1 - 1 \le (1+e)^2 - 1$ and
$|\hat\lambda/\lambda_1 - 1| \le 2\epsilon + \epsilon^2 + \sin^2\theta$.

**Deflation.** $\Delta = \hat\lambda VV^\top - \lambda_1 v_1v_1^\top
= [(1+e)^4\rho - \lambda_1]\,\tilde v\tilde v^\top + \lambda_1(\tilde v\tilde v^\top - v_1v_1^\top)$;
$\|\tilde v\tilde v^\top - v_1v_1^\top\|_2 = \sin\theta$ and, as above,
$|(1+e)^4\rho - \lambda_1| \le \lambda_1((1+\epsilon)^4 - 1 + \sin^2\theta)$ (using
$1-(1-\epsilon)^4 \le (1+\epsilon)^4 - 1$). The deflated matrix is
$\hat\Sigma - \lambda_1 v_1 v_1^\top - \Delta$. With an exact direction ($\sin\theta = 0$) its
eigenvectors are exactly $v_1, v_2, \dots$ and $v_1$'s eigenvalue becomes $-c\lambda_1$,
$|c| \le (1+\epsilon)^4 - 1$: the next power iteration converges to $v_2$ at rate
$\max(|c|\lambda_1, \lambda_3)/\lambda_2$ **if $\lambda_1((1+\epsilon)^4 - 1) < \lambda_2$**, i.e.
$\epsilon < (1 + \lambda_2/\lambda_1)^{1/4} - 1 \approx \lambda_2/(4\lambda_1)$ (:func:`deflation_threshold`).
"""

from __future__ import annotations

import sympy as sp

from .bound import Bound
from .interpolation import INV_SQRT_RELATIVE
from .propagation import POWER_ANGLE_DEPTH, newton_norm_error

eps, theta = sp.symbols("epsilon theta", positive=True)

#: $\epsilon_M$: relative error of the $s^{-1/2}$ hinge MLP with $M$ intervals on $[a, b]$ (symbols ``M, a, b``).
EPS_M = INV_SQRT_RELATIVE.expression
EPS_M_RATE = INV_SQRT_RELATIVE.rate

#: The direction bound is generic (:mod:`tfconstruct.theory.propagation`, symbols ``rho, theta_0, L``); it holds for the
#: transformer unchanged because its per-step scaling $\hat\phi_M > 0$.
ANGLE_AFTER_STEPS = POWER_ANGLE_DEPTH


def readout_norm_error(width: int, low: float, high: float, newton_steps: int = 0) -> float:
    r"""$\nu^N(\epsilon_M)$: the bound on the norm error at read-out for $M$ = ``width`` intervals on $[a, b]$."""
    epsilon = INV_SQRT_RELATIVE(M=width, a=low, b=high)
    return float(newton_norm_error(sp.Float(epsilon, 30), newton_steps))


def deflation_threshold(gap: float) -> float:
    r"""The largest norm error $\epsilon$ with $\lambda_1((1+\epsilon)^4 - 1) < \lambda_2$: $(1 + g)^{1/4} - 1$, $g = \lambda_2/\lambda_1$."""
    return (1.0 + gap) ** 0.25 - 1.0


NORM_PER_STEP = Bound(
    name="power_norm_per_step",
    quantity=r"\big|\|v_{t+1}\| - 1\big|",
    expression=EPS_M,
    assumptions="s_t = ||Sigma_l v_t||^2 in [a, b]; hinge 1/sqrt MLP with M geometric intervals on [a, b]",
    rate=EPS_M_RATE,
)

NEWTON_STEP = Bound(
    name="power_newton_step",
    quantity=r"\big|\|(\tfrac32 - \tfrac12\|v\|^2) v\| - 1\big|",
    expression=newton_norm_error(eps, 1),
    assumptions="| ||v|| - 1 | <= epsilon (exact identity e' = -e^2 (3 + e) / 2)",
    rate=sp.Rational(3, 2) * eps**2,
)

NORM_AFTER_ONE_NEWTON = Bound(
    name="power_norm_newton1",
    quantity=r"\big|\|V_l\| - 1\big| \text{ (1 Newton step)}",
    expression=newton_norm_error(EPS_M, 1),
    assumptions="last power step with s in [a, b], then one Newton step",
    rate=sp.Rational(3, 2) * EPS_M_RATE**2,
)

NORM_AFTER_TWO_NEWTON = Bound(
    name="power_norm_newton2",
    quantity=r"\big|\|V_l\| - 1\big| \text{ (2 Newton steps)}",
    expression=newton_norm_error(EPS_M, 2),
    assumptions="last power step with s in [a, b], then two Newton steps",
    rate=sp.Rational(27, 8) * EPS_M_RATE**4,
)

EIGENVALUE_RELATIVE = Bound(
    name="power_eigenvalue_relative",
    quantity=r"|\hat\lambda_1/\lambda_1 - 1|",
    expression=2 * eps + eps**2 + sp.sin(theta) ** 2,
    assumptions="PSD Sigma; lambda_hat = V^T Sigma V with | ||V|| - 1 | <= epsilon and angle(V, v_1) = theta",
    rate=2 * eps,
)

DEFLATION_RESIDUAL = Bound(
    name="power_deflation_residual",
    quantity=r"\|\hat\lambda_1 V V^\top - \lambda_1 v_1 v_1^\top\|_2 / \lambda_1",
    expression=(1 + eps) ** 4 - 1 + sp.sin(theta) + sp.sin(theta) ** 2,
    assumptions="as power_eigenvalue_relative; with theta = 0 deflation still finds v_2 when lambda_1 * bound < lambda_2",
    rate=4 * eps + theta,
)

BOUNDS: list[Bound] = [
    NORM_PER_STEP,
    NEWTON_STEP,
    NORM_AFTER_ONE_NEWTON,
    NORM_AFTER_TWO_NEWTON,
    EIGENVALUE_RELATIVE,
    DEFLATION_RESIDUAL,
]
