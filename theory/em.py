r"""Error bounds for the EM / Lloyd transformer (:mod:`tfconstruct.constructions.em`).

Notation: responsibilities $w_{ik}$, their approximation $\hat w_{ik}$; $D$ bounds the distance
from any data point to any convex combination of data points (the data diameter);
$\eta(\ell, M) = ((1/\ell)^{1/M} - 1)^2/8$ is the sup error of the hinge interpolant of
$\log$ on $M$ geometric intervals of $[\ell, 1]$ (:data:`tfconstruct.theory.interpolation.LOG_ABSOLUTE`);
the interpolant of a concave function lies *below* it, so its error is in $[-\eta, 0]$.

**Hard E-step.** With the half-margin $g_i = \tfrac12(\|x_i-\mu_{(2)}\|^2-\|x_i-\mu_{(1)}\|^2)$
the winning score beats every other by $\beta g_i$, so $1 - \hat w_{i,z_i} \le (K-1)e^{-\beta g_i}$,
$\hat w_{il} \le e^{-\beta g_i}$, and $\|\hat w_i - e_{z_i}\|_1 \le 2(K-1)e^{-\beta g_i}$.

**Hard M-step.** Weights $v_i = e^{a\hat w_{ik}}$ with $|\hat w_{ik} - z_{ik}| \le \delta = (K-1)e^{-\beta g}$.
Since $\sum_{i\in k}(x_i - \bar x_k) = 0$, replacing in-cluster weights by $e^a$ costs
$e^a(1-e^{-a\delta})$ each, out-of-cluster weights are $\le e^{a\delta}$, and the total is
$\ge n_k e^{a(1-\delta)}$:
$\|\hat\mu_k - \bar x_k\| \le D\,[(e^{a\delta}-1) + \tfrac{n-n_k}{n_k}e^{-a(1-2\delta)}]$.

**Soft M-step** (exact $w$, weights $\tilde w_i = e^{\hat\ell(w_{ik})}$). For $w \ge \varepsilon$,
$\tilde w \in [w e^{-\eta_r}, w]$; below, $\tilde w = \varepsilon$ (flat). With
$\sum_i w_{ik}(x_i - \mu_k^+) = 0$: $\|\hat\mu_k - \mu_k^+\| \le
D[(1-e^{-\eta_r})N_k + n\varepsilon]/(e^{-\eta_r}N_k)$, $N_k = n\pi_k^+$, i.e.
$D[(e^{\eta_r}-1) + e^{\eta_r}\varepsilon/\pi_{min}]$.
The bound is second order in $1/M$. The *measured* error can decay more slowly on
well-separated data: a responsibility within one knot interval of 1 (so
$|\log w| < h = \ln(1/\varepsilon)/M$) has interpolation error $\approx h|\log w|/2$, first
order in $1/M$, until $M > \ln(1/\varepsilon)/|\log w|$; the constant part of the error cancels
because $\sum_i w_{ik}(x_i - \mu_k^+) = 0$.

**Soft E-step with $\hat\ell(\pi)$.** Scores shift by $\delta_k \in [-\eta_\pi, 0]$, so
$\hat w_{ik}/w_{ik} \in [e^{-\eta_\pi}, e^{\eta_\pi}]$ and $\|\hat w_i - w_i\|_1 \le e^{\eta_\pi} - 1$
(also for $\pi^+ = \tfrac1n\sum_i w_i$). A weighted mean with weights rescaled by factors in
$[e^{-\eta}, e^{\eta}]$ moves by at most $D\sinh(\eta)e^{\eta} = D(e^{2\eta}-1)/2$.

**One soft iteration** (exact input state): the two effects add, with $N_k$ shrunk by at most
$e^{-\eta_\pi}$ in the floor term. In the state norm
$\|(\mu,\pi)\| = (\sum_k\|\mu_k\|^2 + D^2\|\pi\|_2^2)^{1/2}$ the step error is at most
$\sqrt K\,\varepsilon_\mu + D(e^{\eta_\pi}-1)$.

**Two-block variant (the TGMM Theorem 1 shape,** :class:`tfconstruct.constructions.em.TwoBlockEM` **).** Unit
variance; the E-step key carries $c_k = \hat\ell(\pi_k) - \tfrac12\sum_a \hat q(\mu_{ka})$ with $\hat\ell$ the
hinge log on $M$ geometric intervals of $[\pi_{floor}, 1]$ and $\hat q$ the hinge square on $M$ uniform intervals
of $[-R, R]$, where $|\mu_{ka}| \le R$. The interpolant of the convex $s^2$ lies *above* it, by at most
$R^2/M^2$ (:data:`tfconstruct.theory.interpolation.SQUARE_ABSOLUTE`), so
$c_k - (\log\pi_k - \tfrac12\|\mu_k\|^2) \in [-\Delta, 0]$ with $\Delta = \eta_\pi + dR^2/(2M^2)$: the soft
E-step analysis above holds with $\eta_\pi$ replaced by $\Delta$, and the M-step is the soft one. The first step
starts from an exact $c^{(0)}$, so it is covered with room to spare.

**Spherical EM with variance updates** (:class:`tfconstruct.constructions.em.spherical.SphericalEM`). The E-step
key is that of the variance $1/\hat r_k$ with $\hat r$ the hinge of $1/s$ on $M$ geometric intervals of
$[s_{min}, s_{max}]$, $\rho_s = (s_{max}/s_{min})^{1/M}$: on $[t, \rho_s t]$, $h = t(\rho_s - 1)$ and
$|f''| \le 2/t^3$, so $0 \le \hat r - 1/s \le (\rho_s - 1)^2/(4 s_{min})$ (convex, interpolant above). With
$\|x_i - \mu_k\| \le D$, $\hat\lambda \approx \log s$ within $\eta_s$ (:data:`tfconstruct.theory.interpolation.LOG_ABSOLUTE`
on $[s_{min}, s_{max}]$) and $\hat\ell(\pi)$ within $\eta_\pi$, every score is off by at most
$\Delta = D^2(\rho_s - 1)^2/(8 s_{min}) + \tfrac d2\eta_s + \eta_\pi$ (two-sided), so
$\hat w_{ik}/w_{ik} \in [e^{-2\Delta}, e^{2\Delta}]$: the soft step above with key error $2\Delta$ moves the means by
at most $D\delta$, $\delta = (e^{4\Delta}-1)/2 + (e^{\eta_r}-1) + e^{\eta_r + 2\Delta}\varepsilon/\pi_{min}$, and
$\|\hat\pi^+ - \pi^+\|_1 \le e^{2\Delta} - 1$. The variance is the weighted variance of the points under the M-step
weights $\tilde w$: with $g_i = \|x_i - \mu_k^+\|^2 \in [0, D^2]$, $V(\tilde w) = E_{\tilde w}g - \|m(\tilde w) -
\mu_k^+\|^2$, so $|\hat s_k - s_k| \le D^2(\delta + \delta^2)/d$; the tied $s = \sum_k\pi_k s_k$ adds at most
$(e^{2\Delta} - 1)s_{max}$ (the bound includes it in both cases). In the state norm
$(\sum_k\|\mu_k\|^2 + D^2\|\pi\|_2^2 + \sum_k s_k^2)^{1/2}$ one step is off by at most
$\sqrt K(D\delta + \varepsilon_s) + D(e^{2\Delta} - 1)$, $\varepsilon_s$ the variance error. The first step starts
from an exact key ($\Delta = 0$ there).

**Propagation.** If the emulated map $\hat T$ is within $\varepsilon_{step}$ of the EM map $T$
and $T$ is $\kappa$-Lipschitz on a region holding both trajectories, then
$e_L \le \varepsilon_{step} + \kappa e_{L-1}$, so from the same start
$e_L \le \varepsilon_{step}(1-\kappa^L)/(1-\kappa)$ (:func:`tfconstruct.theory.propagation.contraction_bound` with
$e_0 = 0$): bounded in $L$ when $\kappa < 1$ (EM near a
well-separated fixed point). For Lloyd with unchanged labels, $T$ is locally constant ($\kappa = 0$).
"""

from __future__ import annotations

import sympy as sp

from .bound import Bound
from .interpolation import LOG_ABSOLUTE, SQUARE_ABSOLUTE, M, R, a as knot_low, b as knot_high
from .propagation import contraction_bound

K, beta, g, D, sharpness, n, n_min = sp.symbols("K beta g D a n n_min", positive=True)
epsilon, pi_min, pi_floor = sp.symbols("epsilon pi_min pi_floor", positive=True)
epsilon_step, kappa, L = sp.symbols("epsilon_step kappa L", nonnegative=True)
d = sp.symbols("d", positive=True)


def log_error(low: sp.Expr) -> sp.Expr:
    r"""$\eta(\ell, M)$: the hinge-log error on $M$ geometric intervals of $[\ell, 1]$."""
    return LOG_ABSOLUTE.expression.subs({knot_low: low, knot_high: 1})


eta_resp = log_error(epsilon)
eta_pi = log_error(pi_floor)
leak = (K - 1) * sp.exp(-beta * g)

EM_HARD_ASSIGNMENT = Bound(
    name="em_hard_assignment",
    quantity=r"\|\hat w_i - e_{z_i}\|_1",
    expression=2 * (K - 1) * sp.exp(-beta * g),
    assumptions="z_i = argmin_k ||x_i - mu_k||^2; g <= half-margin of point i, g > 0",
)

EM_HARD_MSTEP = Bound(
    name="em_hard_mstep",
    quantity=r"\max_k \|\hat\mu_k - \bar x_k\|",
    expression=D * ((sp.exp(sharpness * leak) - 1) + (n / n_min - 1) * sp.exp(-sharpness * (1 - 2 * leak))),
    assumptions="hard E-step at inverse temperature beta, every half-margin >= g, every cluster has >= n_min "
    "of the n points, D >= data diameter, 2(K-1)exp(-beta g) < 1",
)

EM_SOFT_MSTEP = Bound(
    name="em_soft_mstep",
    quantity=r"\max_k \|\hat\mu_k - \mu_k^+\|",
    expression=D * ((sp.exp(eta_resp) - 1) + sp.exp(eta_resp) * epsilon / pi_min),
    assumptions="exact responsibilities; log interpolant with M geometric intervals of [epsilon, 1]; "
    "every updated weight pi_k^+ >= pi_min; D >= data diameter",
    rate=D * sp.log(1 / epsilon) ** 2 / (8 * M**2),
)

EM_SOFT_ESTEP = Bound(
    name="em_soft_estep",
    quantity=r"\|\hat w_i - w_i\|_1,\ \|\hat\pi^+ - \pi^+\|_1",
    expression=sp.exp(eta_pi) - 1,
    assumptions="exact means and squared norms; log pi by the interpolant with M geometric intervals of "
    "[pi_floor, 1]; every pi_k >= pi_floor",
    rate=sp.log(1 / pi_floor) ** 2 / (8 * M**2),
)


def soft_step_means(key_error: sp.Expr) -> sp.Expr:
    r"""$\max_k\|\hat\mu_k^+ - \mu_k^+\|$ after one soft step whose E-step keys are off by $[-\Delta, 0]$."""
    return D * (
        (sp.exp(2 * key_error) - 1) / 2 + (sp.exp(eta_resp) - 1) + sp.exp(eta_resp + key_error) * epsilon / pi_min
    )


_SOFT_STEP_MEANS = soft_step_means(eta_pi)

EM_SOFT_STEP = Bound(
    name="em_soft_step",
    quantity=r"\max_k \|\hat\mu_k^+ - \mu_k^+\|",
    expression=_SOFT_STEP_MEANS,
    assumptions="one soft iteration from an exact state; both log interpolants with M intervals; "
    "every pi_k >= pi_floor, every updated pi_k^+ >= pi_min; D >= data diameter "
    "(pi_floor = 1 for equal fixed weights)",
    rate=D * (sp.log(1 / epsilon) ** 2 + sp.log(1 / pi_floor) ** 2) / (8 * M**2),
)

EM_SOFT_STATE_STEP = Bound(
    name="em_soft_state_step",
    quantity=r"\|(\hat\mu^+, \hat\pi^+) - (\mu^+, \pi^+)\|",
    expression=sp.sqrt(K) * _SOFT_STEP_MEANS + D * (sp.exp(eta_pi) - 1),
    assumptions="as em_soft_step; state norm (sum_k ||mu_k||^2 + D^2 ||pi||_2^2)^(1/2)",
    rate=D
    * (sp.sqrt(K) * (sp.log(1 / epsilon) ** 2 + sp.log(1 / pi_floor) ** 2) + sp.log(1 / pi_floor) ** 2)
    / (8 * M**2),
)

key_error_two_block = eta_pi + d * SQUARE_ABSOLUTE.expression / 2

EM_TWO_BLOCK_STEP = Bound(
    name="em_two_block_step",
    quantity=r"\|(\hat\mu^+, \hat\pi^+) - (\mu^+, \pi^+)\|",
    expression=sp.sqrt(K) * soft_step_means(key_error_two_block) + D * (sp.exp(key_error_two_block) - 1),
    assumptions="one step of the two-block EM (unit variance) from an exact state; hinge log with M geometric "
    "intervals of [epsilon, 1] and of [pi_floor, 1], hinge square with M uniform intervals of [-R, R]; every "
    "|mu_ka| <= R, every pi_k >= pi_floor, every updated pi_k^+ >= pi_min; D >= data diameter; masked keys at "
    "weight 0 (the default mask); state norm (sum_k ||mu_k||^2 + D^2 ||pi||_2^2)^(1/2)",
    rate=D
    * (
        sp.sqrt(K) * (sp.log(1 / epsilon) ** 2 + sp.log(1 / pi_floor) ** 2 + 4 * d * R**2)
        + sp.log(1 / pi_floor) ** 2
        + 4 * d * R**2
    )
    / (8 * M**2),
)

s_min, s_max = sp.symbols("s_min s_max", positive=True)
rho_variance = (s_max / s_min) ** (1 / M)
eta_variance = LOG_ABSOLUTE.expression.subs({knot_low: s_min, knot_high: s_max})
inverse_error = (rho_variance - 1) ** 2 / (4 * s_min)
key_error_spherical = D**2 * inverse_error / 2 + d * eta_variance / 2 + eta_pi
_spherical_delta = soft_step_means(2 * key_error_spherical) / D
_spherical_variance = (
    D**2 * (_spherical_delta + _spherical_delta**2) / d + (sp.exp(2 * key_error_spherical) - 1) * s_max
)
_spherical_log_range = sp.log(s_max / s_min) ** 2
_spherical_key_rate = (
    D**2 * _spherical_log_range / (8 * s_min) + d * _spherical_log_range / 16 + sp.log(1 / pi_floor) ** 2 / 8
)
_spherical_delta_rate = 2 * _spherical_key_rate + sp.log(1 / epsilon) ** 2 / 8

EM_SPHERICAL_KEY = Bound(
    name="em_spherical_key",
    quantity=r"\max_{i,k} |\hat s_{ik} - s_{ik}|",
    expression=key_error_spherical,
    assumptions="E-step key of SphericalEM: hinge 1/s and log s with M geometric intervals of [s_min, s_max], hinge "
    "log pi with M geometric intervals of [pi_floor, 1]; every variance in [s_min, s_max], every pi_k >= pi_floor; "
    "||x_i - mu_k|| <= D",
    rate=_spherical_key_rate / M**2,
)

EM_SPHERICAL_STEP = Bound(
    name="em_spherical_step",
    quantity=r"\|(\hat\mu^+, \hat\pi^+, \hat s^+) - (\mu^+, \pi^+, s^+)\|",
    expression=sp.sqrt(K) * (D * _spherical_delta + _spherical_variance) + D * (sp.exp(2 * key_error_spherical) - 1),
    assumptions="one step of SphericalEM (spherical or tied variances) from an exact state; interpolants as "
    "em_spherical_key and the log w hinge with M geometric intervals of [epsilon, 1]; every variance in "
    "[s_min, s_max], every pi_k >= pi_floor, every updated pi_k^+ >= pi_min; D >= data diameter; masked keys at "
    "weight 0 (the default mask); state norm (sum_k ||mu_k||^2 + D^2 ||pi||_2^2 + sum_k s_k^2)^(1/2)",
    rate=(
        sp.sqrt(K) * (D * _spherical_delta_rate + D**2 * _spherical_delta_rate / d + 2 * _spherical_key_rate * s_max)
        + 2 * D * _spherical_key_rate
    )
    / M**2,
)

EM_PROPAGATION = Bound(
    name="em_propagation",
    quantity=r"\|\hat\theta^{(L)} - \theta^{(L)}\|",
    expression=contraction_bound(kappa, epsilon_step, 0, L),
    assumptions="same start; every emulated step within epsilon_step of the EM map, which is "
    "kappa-Lipschitz (kappa != 1) on a region holding both trajectories",
)

BOUNDS: list[Bound] = [
    EM_HARD_ASSIGNMENT,
    EM_HARD_MSTEP,
    EM_SOFT_MSTEP,
    EM_SOFT_ESTEP,
    EM_SOFT_STEP,
    EM_SOFT_STATE_STEP,
    EM_TWO_BLOCK_STEP,
    EM_SPHERICAL_KEY,
    EM_SPHERICAL_STEP,
    EM_PROPAGATION,
]
