r"""Method-of-moments statistics of a spherical Gaussian mixture (Hsu & Kakade 2013, Thm 1).

For $x = \mu_z + \varepsilon$ with $z \sim \mathrm{Cat}(\pi)$ over $K$ components and
$\varepsilon \sim \mathcal N(0, \sigma^2 I_d)$, with $K \le d$ linearly independent means:

* $\sigma^2$ is the smallest eigenvalue of $\mathrm{Cov}(x)$, $u$ its eigenvector;
* $M_1 = \mathbb E[x\,(u^\top(x - \mathbb E x))^2] = \sigma^2 \sum_k \pi_k \mu_k$;
* $M_2 = \mathbb E[x x^\top] - \sigma^2 I = \sum_k \pi_k \mu_k \mu_k^\top$;
* $M_3 = \mathbb E[x^{\otimes 3}] - \sum_a (M_1 \otimes e_a \otimes e_a + e_a \otimes M_1 \otimes e_a
  + e_a \otimes e_a \otimes M_1) = \sum_k \pi_k \mu_k^{\otimes 3}$.

Whitening with the top-$K$ eigenpairs $(U, \Lambda)$ of $M_2$, $W = U \Lambda^{-1/2}$ ($W^\top M_2 W = I_K$),
turns $M_3$ into the orthogonally decomposable
$T = M_3(W, W, W) = \sum_k \lambda_k v_k^{\otimes 3}$ with $v_k = \sqrt{\pi_k} W^\top \mu_k$ orthonormal
and $\lambda_k = \pi_k^{-1/2}$; $B = U \Lambda^{1/2}$ undoes it: $\mu_k = \lambda_k B v_k$, $\pi_k = \lambda_k^{-2}$.

Everything here is plain numpy on one data set ``x`` of shape ``(n, d)`` (rows are samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SphericalMoments:
    r"""Sample moments: ``mean`` $\bar x$, ``second`` $S = \frac1n\sum x x^\top$, ``noise`` $\hat\sigma^2$,
    ``noise_direction`` $u$, ``first`` $M_1$ and ``pairs`` $M_2 = S - \hat\sigma^2 I$."""

    mean: np.ndarray
    second: np.ndarray
    noise: float
    noise_direction: np.ndarray
    first: np.ndarray
    pairs: np.ndarray


@dataclass(frozen=True)
class Whitening:
    r"""``whiten`` $W = U\Lambda^{-1/2}$ and ``unwhiten`` $B = U\Lambda^{1/2}$ (both ``(d, K)``) from the top-$K$
    eigenpairs ``eigenvalues`` $\Lambda$ (descending) of $M_2$."""

    whiten: np.ndarray
    unwhiten: np.ndarray
    eigenvalues: np.ndarray


def check_components(components: int, dimension: int) -> int:
    r"""The spectral method needs $1 \le K \le d$: a clear error otherwise."""
    if isinstance(components, bool) or int(components) != components or components < 1:
        raise ValueError(f"components K must be an integer >= 1, got {components!r}")
    if components > dimension:
        raise ValueError(
            f"components K={components} exceeds the data dimension d={dimension}: the spectral method of moments "
            f"needs K <= d (linearly independent means, sigma^2 as the smallest eigenvalue of Cov(x))"
        )
    return int(components)


def spherical_moments(x: np.ndarray, components: int) -> SphericalMoments:
    r"""The Hsu-Kakade moments of the samples ``x`` (``(n, d)``), for ``components`` $K \le d$."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (n, d) with n >= 2 samples, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains non-finite values (NaN or inf); all entries must be finite")
    n, d = x.shape
    check_components(components, d)
    mean = x.mean(axis=0)
    second = x.T @ x / n
    covariance = second - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(covariance)
    noise, direction = float(values[0]), vectors[:, 0]
    projections = (x - mean) @ direction
    first = (x * projections[:, None] ** 2).mean(axis=0)
    return SphericalMoments(mean, second, noise, direction, first, second - noise * np.eye(d))


def whitening(pairs: np.ndarray, components: int) -> Whitening:
    """Top-$K$ whitening of $M_2$; a clear error when its $K$-th eigenvalue is not positive."""
    values, vectors = np.linalg.eigh(pairs)
    top = np.argsort(values)[::-1][:components]
    values, vectors = values[top], vectors[:, top]
    if not values[-1] > 0:
        raise ValueError(
            f"M2 has a non-positive K-th eigenvalue {values[-1]:.3g} for K={components}: the means are not "
            f"linearly independent at this sample size, so the data cannot be whitened"
        )
    return Whitening(vectors / np.sqrt(values), vectors * np.sqrt(values), values)


def whitened_tensor(x: np.ndarray, moments: SphericalMoments, white: Whitening) -> np.ndarray:
    r"""$T = \frac1n\sum_i y_i^{\otimes 3} - \sum_a (m \otimes w_a \otimes w_a + w_a \otimes m \otimes w_a
    + w_a \otimes w_a \otimes m)$ as an explicit ``(K, K, K)`` array, $y_i = W^\top x_i$, $m = W^\top M_1$,
    $w_a = W^\top e_a$ (row $a$ of $W$)."""
    y = np.asarray(x, dtype=np.float64) @ white.whiten
    m = white.whiten.T @ moments.first
    raw = np.einsum("ia,ib,ic->abc", y, y, y) / y.shape[0]
    gram = white.whiten.T @ white.whiten
    correction = np.einsum("a,bc->abc", m, gram) + np.einsum("b,ac->abc", m, gram) + np.einsum("c,ab->abc", m, gram)
    return raw - correction


def whitened_contraction(y: np.ndarray, moment: np.ndarray, gram: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""$T(I, v, v) = \frac1n \sum_i (y_i \cdot v)^2 y_i - (v^\top G v)\, m - 2 (m \cdot v)\, G v$ without
    forming $T$ ($G = W^\top W$): the data-token form the transformer computes."""
    projections = y @ v
    return (projections**2) @ y / y.shape[0] - (v @ gram @ v) * moment - 2.0 * (moment @ v) * (gram @ v)


def population_tensor(weights: np.ndarray, means: np.ndarray, white: Whitening) -> np.ndarray:
    r"""$\sum_k \pi_k (W^\top\mu_k)^{\otimes 3}$: the value the sample tensor estimates (``means`` is ``(K, d)``)."""
    whitened = means @ white.whiten
    return np.einsum("k,ka,kb,kc->abc", weights, whitened, whitened, whitened)
