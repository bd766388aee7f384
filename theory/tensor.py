r"""Error bounds of the cubic tensor power iteration transformer (:mod:`tfconstruct.constructions.tensor`,
:mod:`tfconstruct.constructions.tensor`).

Setting: the transformer computes $v_{t+1} = \hat\phi_M(r_t)\,u_t$ with $u_t = T_j(I, v_t, v_t)$ exact,
$r_t = \lVert u_t\rVert^2$ and $\hat\phi_M > 0$ the hinge interpolant of $r^{-1/2}$ on $M$ geometric intervals of
$[a, b]$; $N$ Newton steps $v \leftarrow (\tfrac32 - \tfrac12\lVert v\rVert^2) v$ precede each read-out
$\hat\lambda_j = T_j(\hat v, \hat v, \hat v)$; then $\hat\pi_j = \hat\lambda_j^{-2}$ and
$\hat\mu_j = \hat\lambda_j B\hat v_j$.

**Direction (depth).** $T(I, \cdot, \cdot)$ is homogeneous of degree 2 and $\hat\phi_M > 0$, so
$v_t \parallel$ the exact iterate: for component 0 the direction equals the reference's to round-off, and
the quadratic convergence on an odeco tensor is the algorithm's own
(:data:`tfconstruct.theory.propagation.TENSOR_POWER_DEPTH`; exact $\tan\theta_t$ from
:func:`tfconstruct.theory.propagation.tensor_power_tan`).

**Norm (width).** $\lVert v_{t+1}\rVert = \sqrt{r_t}\,\hat\phi_M(r_t)$, so $|\lVert v\rVert - 1| \le \delta_M$,
the relative error of the interpolant (:data:`tfconstruct.theory.interpolation.INV_SQRT_RELATIVE`), whenever every
$r_t \in [a, b]$; it does not accumulate. After $N$ Newton steps, $\delta = \nu^N(\delta_M)$ with
$\nu(e) = e^2(3+e)/2$ (:func:`tfconstruct.theory.propagation.newton_norm_error`).

**Read-out (exact direction).** With $\hat v = s\,v$, $s = \lVert\hat v\rVert \in [1-\delta, 1+\delta]$ and $v$ the
reference's unit vector: $\hat\lambda = s^3\lambda$, $\hat\pi = \hat\lambda^{-2} = s^{-6}\pi$,
$\hat\mu = \hat\lambda B\hat v = s^4\mu$. Hence, **rigorously** (these are identities in $s$):
$|\hat\lambda/\lambda - 1| \le (1+\delta)^3 - 1$, $|\hat\pi/\pi - 1| \le (1-\delta)^{-6} - 1$,
normalised weights within $((1+\delta)/(1-\delta))^6 - 1$, and
$\lVert\hat\mu - \mu\rVert/\lVert\mu\rVert \le (1+\delta)^4 - 1$.
Leading orders $3\delta$, $6\delta$, $12\delta$ and $4\delta$.
These hold for component 0 always, and for every component of an odeco tensor once the iterates have
converged (the deflation residual below is then orthogonal to the later components).

**Deflation leak (first order).** Later components are deflated with $\hat\lambda_p \hat v_p^{\otimes 3}
= s_p^6 \lambda_p v_p^{\otimes 3}$, so $T_j$ carries the residual $E = -\sum_{p<j}\varepsilon_p\lambda_p v_p^{\otimes 3}$,
$|\varepsilon_p| \le \varepsilon = (1+\delta)^6 - 1$. At a fixed point $v_j$ of a near-odeco $T_j$ the map
$v \mapsto T_j(I, v, v)/\lambda_j$ has Jacobian $\approx 0$ on $v_j^\perp$, so to first order the fixed point
moves by $\lVert P_\perp E(I, v_j, v_j)\rVert/\lambda_j \le (K-1)\,\varepsilon\,\Lambda\,\omega^2$, with
$\Lambda = \lambda_{\max}/\lambda_{\min}$ and $\omega = \max_{p\ne j}|v_p\cdot v_j|$ (the reference's components;
$\omega = 0$ for odeco). Through $B$ this moves $\mu_j$ by at most $\kappa_B$ times that, relative
($\kappa_B = \sqrt{\Lambda_{M_2,1}/\Lambda_{M_2,K}}$ the condition number of $B$). The eigenvalue moves by
$E(v_j, v_j, v_j)/\lambda_j \le (K-1)\varepsilon\Lambda\omega^3$. The bounds below double these first-order terms
(the safety factor covers the neglected Jacobian and second-order terms).
"""

from __future__ import annotations

import sympy as sp

from .bound import Bound
from .power import readout_norm_error as readout_norm_error
from .propagation import TENSOR_POWER_DEPTH, tensor_power_tan

delta, kappa_B, spread, omega, K = sp.symbols("delta kappa_B Lambda omega K", positive=True)
eig_error = sp.Symbol("epsilon_lambda", positive=True)

#: Quadratic convergence on odeco tensors (generic form, registered in :mod:`tfconstruct.theory.propagation`).
QUADRATIC_CONVERGENCE = TENSOR_POWER_DEPTH
exact_tangent = tensor_power_tan

#: $\varepsilon = (1+\delta)^6 - 1$: the relative error of a deflated term $\hat\lambda_p\hat v_p^{\otimes 3}$.
DEFLATION_RESIDUAL = (1 + delta) ** 6 - 1


EIGENVALUE = Bound(
    name="tensor_eigenvalue",
    quantity=r"|\hat\lambda_j / \lambda_j - 1|",
    expression=(1 + delta) ** 3 - 1,
    assumptions="read-out norm error |s - 1| <= delta and exact direction (component 0; every component of a "
    "converged odeco decomposition); lambda_j = the reference's T_j(v, v, v)",
    rate=3 * delta,
)

WEIGHT = Bound(
    name="tensor_weight",
    quantity=r"|\hat\pi_j / \pi_j - 1|,\ \pi = \lambda^{-2}",
    expression=(1 - delta) ** -6 - 1,
    assumptions="as tensor_eigenvalue, delta < 1; unnormalised weights lambda^-2",
    rate=6 * delta,
)

WEIGHT_NORMALISED = Bound(
    name="tensor_weight_normalised",
    quantity=r"|\hat\pi_j / \pi_j - 1|,\ \pi_j = \lambda_j^{-2} / \sum_l \lambda_l^{-2}",
    expression=((1 + delta) / (1 - delta)) ** 6 - 1,
    assumptions="as tensor_weight for every component",
    rate=12 * delta,
)

WEIGHT_FROM_EIGENVALUES = Bound(
    name="tensor_weight_from_eigenvalues",
    quantity=r"|\hat\pi_j / \pi_j - 1|,\ \pi_j = \lambda_j^{-2} / \sum_l \lambda_l^{-2}",
    expression=((1 + eig_error) / (1 - eig_error)) ** 2 - 1,
    assumptions="every |hat lambda_l / lambda_l - 1| <= epsilon_lambda < 1 (e.g. tensor_eigenvalue_deflated): "
    "hat pi_j / pi_j = (lambda_j / hat lambda_j)^2 / sum_l pi_l (lambda_l / hat lambda_l)^2",
    rate=4 * eig_error,
)

MEAN = Bound(
    name="tensor_mean",
    quantity=r"\|\hat\mu_j - \mu_j\| / \|\mu_j\|",
    expression=(1 + delta) ** 4 - 1,
    assumptions="as tensor_eigenvalue; mu_j = lambda_j B v_j of the reference (exact un-whitening)",
    rate=4 * delta,
)

EIGENVALUE_DEFLATED = Bound(
    name="tensor_eigenvalue_deflated",
    quantity=r"|\hat\lambda_j / \lambda_j - 1|",
    expression=(1 + delta) ** 3 - 1 + 2 * (K - 1) * spread * omega**3 * DEFLATION_RESIDUAL,
    assumptions="first order in the deflation residual (factor 2 safety): converged iterates of a near-odeco T, "
    "Lambda = lambda_max / lambda_min, omega = max_{p != j} |v_p . v_j| of the reference",
    rate=3 * delta,
)

MEAN_DEFLATED = Bound(
    name="tensor_mean_deflated",
    quantity=r"\|\hat\mu_j - \mu_j\| / \|\mu_j\|",
    expression=(1 + delta) ** 4 - 1 + 2 * kappa_B * (K - 1) * spread * omega**2 * DEFLATION_RESIDUAL,
    assumptions="as tensor_eigenvalue_deflated; kappa_B = condition number of the un-whitening B",
    rate=4 * delta,
)

BOUNDS = [
    EIGENVALUE,
    WEIGHT,
    WEIGHT_NORMALISED,
    WEIGHT_FROM_EIGENVALUES,
    MEAN,
    EIGENVALUE_DEFLATED,
    MEAN_DEFLATED,
]
