r"""How per-block errors compose over depth: contraction, power iteration, tensor power iteration.

Each function accepts sympy symbols or numbers and returns a sympy expression, so a
construction-specific module (``theory/power.py``, ``theory/em.py``, ``theory/tensor.py``) can
substitute its own per-block error and rate; the module-level :class:`Bound` objects are the
generic statements (registered and printed by ``tfconstruct bounds``).

**Contraction with per-step error.** If the exact step $T$ satisfies
$\|T(x) - x^*\| \le \kappa\|x - x^*\|$ near the optimum and the emulated step $\hat T$ is
within $\varepsilon$ of $T$, then $e_{l+1} \le \kappa e_l + \varepsilon$, so

.. math::  e_L \le \kappa^L e_0 + \varepsilon\,\frac{1-\kappa^L}{1-\kappa}.

The same recursion with $\kappa$ a Lipschitz constant of $T$ (any $\kappa > 0$) bounds the
distance between the emulated and the exact trajectory ($e_0 = 0$):
$\varepsilon(\kappa^L - 1)/(\kappa - 1)$; at $\kappa = 1$ both read $e_0 + L\varepsilon$.

**Power iteration.** $v_{t+1} = \varphi(s_t)\,\Sigma v_t$ with a positive scalar $\varphi$, so the
direction is that of exact power iteration whatever the accuracy of $\varphi$: with $v_0$'s
coefficients $c_k$ in the eigenbasis, $\tan\theta_L = \sqrt{\sum_{k\ge2}\lambda_k^{2L}c_k^2}
/(\lambda_1^L|c_1|) \le (\lambda_2/\lambda_1)^L\tan\theta_0$ (equality when $v_0$ lies in the
top-two eigenspace). The norm is reset every step: $\|v_{t+1}\| = \varphi(s_t)\sqrt{s_t}$ with
$s_t = \|\Sigma v_t\|^2$, so if every $s_t \in [a, b]$, $|\|v_L\| - 1| \le e_\varphi$ (the relative
error of $\varphi \approx s^{-1/2}$) for every $L \ge 1$: the norm error does not accumulate. One
Newton step $r \mapsto r(3 - r^2)/2$ maps the norm error $e = r - 1$ to $-e^2(3 + e)/2$ exactly
($r(3-r^2)/2 - 1 = -(r-1)^2(r+2)/2$).

**Tensor power iteration** on an orthogonally decomposable
$T = \sum_k \lambda_k v_k^{\otimes 3}$, $\lambda_k > 0$: $T(I, u, u) = \sum_k \lambda_k c_k^2 v_k$ for
$u = \sum_k c_k v_k (+ u_\perp)$, so by induction the unnormalised coefficients after $t$ steps are

.. math::  c_k^{(t)} \propto \lambda_k^{2^t - 1}\,(c_k^{(0)})^{2^t},

(the part of $u_0$ outside $\operatorname{span}\{v_k\}$ vanishes after one step). With
$r = \max_{j\ne1}|\lambda_j c_j^{(0)}|/|\lambda_1 c_1^{(0)}| < 1$ (component 1 has the largest
$\lambda_k|c_k^{(0)}|$),
$|c_j^{(t)}/c_1^{(t)}| = (\lambda_1/\lambda_j)\,(\lambda_j c_j^{(0)}/\lambda_1 c_1^{(0)})^{2^t}$,
hence for $t \ge 1$

.. math::  \tan\theta_t \le \sqrt{K-1}\,\frac{\lambda_1}{\lambda_{\min}}\, r^{2^t}:

quadratic convergence (the exponent doubles every step).
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp

from .bound import Bound

Number = sp.Expr | float | int

kappa, eps, e_0, L = sp.symbols("kappa varepsilon e_0 L", positive=True)
rho, theta_0, e_phi = sp.symbols("rho theta_0 e_phi", positive=True)
r, t, K, lam_1, lam_min = sp.symbols("r t K lambda_1 lambda_min", positive=True)


def contraction_bound(kappa: Number, eps: Number, e0: Number, depth: Number) -> sp.Expr:
    r"""$\kappa^L e_0 + \varepsilon(1-\kappa^L)/(1-\kappa)$, or $e_0 + L\varepsilon$ when $\kappa$ is exactly 1.

    Covers both a contraction ($\kappa < 1$: the error tends to $\varepsilon/(1-\kappa)$) and a
    Lipschitz step ($\kappa > 1$: the expression equals $\varepsilon(\kappa^L-1)/(\kappa-1)$).
    """
    kappa, eps, e0, depth = (sp.sympify(v) for v in (kappa, eps, e0, depth))
    if kappa.is_number and float(kappa) == 1.0:
        return e0 + depth * eps
    return kappa**depth * e0 + eps * (1 - kappa**depth) / (1 - kappa)


def power_iteration_angle(ratio: Number, tan0: Number, depth: Number) -> sp.Expr:
    r"""$(\lambda_2/\lambda_1)^L \tan\theta_0$: the angle to the top eigenvector after $L$ power steps."""
    ratio, tan0, depth = (sp.sympify(v) for v in (ratio, tan0, depth))
    return ratio**depth * tan0


def power_iteration_norm(inv_sqrt_error: Number) -> sp.Expr:
    r"""$|\|v_L\| - 1| \le e_\varphi$ for $L \ge 1$ (the norm is reset every step, no accumulation)."""
    return sp.sympify(inv_sqrt_error)


def newton_norm_error(error: Number, steps: int) -> sp.Expr:
    r"""Bound on the norm error after ``steps`` Newton steps $r \mapsto r(3-r^2)/2$, given $|e_0| \le$ ``error``.

    The signed error maps to $e' = -e^2(3+e)/2 \le 0$, so $|e'| \le \bar e^2(3+\bar e)/2$ for
    $|e| \le \bar e$ (equality at $e = +\bar e$), and later steps, from a negative error, obey the
    same bound: iterate $\bar e \mapsto \bar e^2(3+\bar e)/2$ (quadratic: the exponent doubles).
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps}")
    error = sp.sympify(error)
    for _ in range(int(steps)):
        error = error**2 * (3 + error) / 2
    return error


def tensor_power_coefficients(lambdas: Sequence[Number], c0: Sequence[Number], steps: Number) -> list[sp.Expr]:
    r"""Unnormalised coefficients $\lambda_k^{2^t-1}(c_k^{(0)})^{2^t}$ after $t$ tensor power steps."""
    if len(lambdas) != len(c0):
        raise ValueError(f"need one initial coefficient per component, got {len(lambdas)} lambdas and {len(c0)} c0")
    steps = sp.sympify(steps)
    return [sp.sympify(lk) ** (2**steps - 1) * sp.sympify(ck) ** (2**steps) for lk, ck in zip(lambdas, c0)]


def tensor_power_tan(lambdas: Sequence[Number], c0: Sequence[Number], steps: Number, top: int = 0) -> sp.Expr:
    r"""Exact $\tan\theta_t$ to component ``top`` after $t \ge 1$ steps (from the coefficient formula)."""
    coefficients = tensor_power_coefficients(lambdas, c0, steps)
    others = [ck**2 for k, ck in enumerate(coefficients) if k != top]
    return sp.sqrt(sp.Add(*others)) / sp.Abs(coefficients[top])


def tensor_power_angle(ratio: Number, components: Number, spread: Number, steps: Number) -> sp.Expr:
    r"""$\sqrt{K-1}\,(\lambda_1/\lambda_{\min})\,r^{2^t}$ with $r$ = the largest $|\lambda_j c_j^{(0)}|/|\lambda_1 c_1^{(0)}|$."""
    ratio, components, spread, steps = (sp.sympify(v) for v in (ratio, components, spread, steps))
    return sp.sqrt(components - 1) * spread * ratio ** (2**steps)


CONTRACTION_DEPTH = Bound(
    name="contraction_depth",
    quantity=r"e_L",
    expression=contraction_bound(kappa, eps, e_0, L),
    assumptions="e_{l+1} <= kappa e_l + varepsilon (exact step contracts by kappa < 1 near the optimum, "
    "emulated step within varepsilon); kappa > 1 (Lipschitz) and e_0 = 0 bounds the distance "
    "to the exact trajectory; kappa != 1 (else e_0 + L varepsilon)",
    rate=eps / (1 - kappa),
)

POWER_ANGLE_DEPTH = Bound(
    name="power_iteration_angle_depth",
    quantity=r"\tan\theta(v_L, u_1)",
    expression=power_iteration_angle(rho, sp.tan(theta_0), L),
    assumptions="v_{t+1} = phi_t Sigma v_t with phi_t > 0; Sigma symmetric PSD, rho = lambda_2/lambda_1 < 1; "
    "theta_0 = angle(v_0, u_1) < pi/2",
    rate=rho**L,
)

POWER_NORM_DEPTH = Bound(
    name="power_iteration_norm_depth",
    quantity=r"\big|\|v_L\| - 1\big|",
    expression=power_iteration_norm(e_phi),
    assumptions="L >= 1; every s_t = ||Sigma v_t||^2 in [a, b] where phi has relative error e_phi "
    "(e.g. inv_sqrt_geometric); independent of L",
    rate=e_phi,
)

TENSOR_POWER_DEPTH = Bound(
    name="tensor_power_angle_depth",
    quantity=r"\tan\theta(u_t, v_1)",
    expression=tensor_power_angle(r, K, lam_1 / lam_min, t),
    assumptions="T = sum_k lambda_k v_k^{(x)3}, orthonormal v_k, lambda_k > 0, K components; t >= 1; "
    "r = max_{j!=1} |lambda_j c_j^0| / |lambda_1 c_1^0| < 1",
    rate=r ** (2**t),
)

BOUNDS = [CONTRACTION_DEPTH, POWER_ANGLE_DEPTH, POWER_NORM_DEPTH, TENSOR_POWER_DEPTH]
