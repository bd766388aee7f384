r"""Hypothesis strategies that *build* spectral instances with prescribed properties.

Nothing is filtered: each instance is constructed to satisfy the assumptions of the
power-iteration and clustering claims.

* **Spectrum** $\lambda_1 > \lambda_2 > \dots > \lambda_d > 0$ with a prescribed eigengap
  ratio $g = \lambda_2/\lambda_1$ and condition number $\kappa = \lambda_1/\lambda_d$; the
  tail decays geometrically, $\lambda_{j+1}/\lambda_j = q$ for $j \ge 2$.
* **Data with exactly that second moment:** $X = \sqrt n\,U\,\mathrm{diag}(\sqrt\lambda)\,Q^\top$
  with $U \in \mathbb{R}^{n\times d}$ orthonormal columns orthogonal to $\mathbf 1$, so
  $\tfrac1n X^\top X = Q\,\mathrm{diag}(\lambda)\,Q^\top$ and $\bar x = 0$ (the sample
  covariance is the same matrix, to round-off).
* **Seeds** at a prescribed angle $\theta_0$ to their target eigenvector $q_l$:
  $\cos\theta_0\, q_l + \sin\theta_0\, w$ with $w \perp q_l$, where $w$ has a prescribed share
  on the next eigenvector so the asymptotic rate $(\lambda_{l+1}/\lambda_l)^t$ is visible.
* **2-class mixtures** $x_i = y_i\mu + \sigma z_i$ with $\|\mu\|/\sigma$ prescribed and balanced labels.

Random orthogonal factors come from ``numpy.random.default_rng`` seeded by hypothesis, so
every example is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class PowerInstance:
    """A batch of instances with shared sizes.

    ``X`` (B, n, d); ``values`` (B, d) descending; ``vectors`` (B, d, d) with eigenvector $j$ in
    row $j$; ``seeds`` (B, k, d) unit; ``seed_angles`` (B, k) the angle of seed $l$ to row $l$.
    """

    X: np.ndarray
    values: np.ndarray
    vectors: np.ndarray
    seeds: np.ndarray
    seed_angles: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        r"""$\lambda_2/\lambda_1$ per instance."""
        return self.values[:, 1] / self.values[:, 0]


@dataclass(frozen=True)
class Mixture:
    r"""``X`` (n, d) with ``labels`` $\pm1$ (balanced), mean ``mean`` ($\pm\mu$) and noise scale ``sigma``."""

    X: np.ndarray
    labels: np.ndarray
    mean: np.ndarray
    sigma: float

    @property
    def separation(self) -> float:
        return float(np.linalg.norm(self.mean) / self.sigma)


def random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian with the sign of $R$'s diagonal fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def prescribed_spectrum(dim: int, top: float, gap: float, condition: float) -> np.ndarray:
    r"""$\lambda = \lambda_1\,(1, g, gq, \dots, gq^{d-2})$ with $q = (\kappa g)^{-1/(d-2)}$, so
    $\lambda_d = \lambda_1/\kappa$.

    Requires $0 < g < 1$ and, for $d \ge 3$, $\kappa g > 1$ (so $\lambda_3 < \lambda_2$).
    """
    if not 0 < gap < 1:
        raise ValueError(f"gap must be in (0, 1), got {gap}")
    if dim == 1:
        return np.array([top])
    if dim == 2:
        return top * np.array([1.0, gap])
    if not condition * gap > 1:
        raise ValueError(f"condition * gap must be > 1 so that lambda_3 < lambda_2, got {condition} * {gap}")
    ratio = (condition * gap) ** (-1.0 / (dim - 2))
    return top * np.concatenate([[1.0], gap * ratio ** np.arange(dim - 1)])


def data_with_second_moment(values: np.ndarray, vectors: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    r"""Centred $X$ (n, d) with $\frac1n X^\top X = \sum_j \lambda_j q_j q_j^\top$ (``vectors`` rows $q_j$); needs $n > d$."""
    dim = len(values)
    gaussian = rng.standard_normal((n, dim))
    gaussian -= gaussian.mean(axis=0)
    u, _ = np.linalg.qr(gaussian)
    return np.sqrt(n) * (u * np.sqrt(values)) @ vectors


def seed_at_angle(
    target: np.ndarray, angle: float, towards: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    r"""Unit $\cos\theta\,q + \sin\theta\,w$ with $w \perp q$ unit and $\langle w, \text{towards}\rangle^2 \ge$ ``share``."""
    noise = rng.standard_normal(target.shape)
    noise -= (noise @ target) * target + (noise @ towards) * towards
    noise /= max(np.linalg.norm(noise), 1e-300)
    w = np.sqrt(share) * towards + np.sqrt(1.0 - share) * noise
    return np.cos(angle) * target + np.sin(angle) * w


@st.composite
def power_instances(
    draw,
    *,
    dims: tuple[int, int] = (3, 6),
    tokens: tuple[int, int] = (20, 40),
    k: int = 1,
    batch: int = 1,
    gap: tuple[float, float] = (0.3, 0.8),
    condition: tuple[float, float] = (5.0, 50.0),
    top: tuple[float, float] = (1.0, 5.0),
    max_seed_angle: float = 1.2,
    next_share: float = 0.3,
) -> PowerInstance:
    r"""Instances with $\lambda_2/\lambda_1 \in$ ``gap``, $\kappa \in$ ``condition`` (raised to $2/g$ if smaller),
    $\lambda_1 \in$ ``top`` and seeds at angle $\theta_0 \in [0.05, $ ``max_seed_angle`` $]$ with a share
    ``next_share`` of $\sin^2\theta_0$ on the next eigenvector."""
    dim = draw(st.integers(max(dims[0], k + 1), dims[1]))
    n = draw(st.integers(max(tokens[0], dim + 1), max(tokens[1], dim + 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X, values, vectors, seeds, angles = [], [], [], [], []
    for _ in range(batch):
        g = draw(st.floats(*gap))
        kappa = max(draw(st.floats(*condition)), 2.0 / g)
        spectrum = prescribed_spectrum(dim, draw(st.floats(*top)), g, kappa)
        q = random_orthogonal(dim, rng)
        theta = [draw(st.floats(0.05, max_seed_angle)) for _ in range(k)]
        X.append(data_with_second_moment(spectrum, q, n, rng))
        values.append(spectrum)
        vectors.append(q)
        seeds.append([seed_at_angle(q[j], theta[j], q[j + 1], next_share, rng) for j in range(k)])
        angles.append(theta)
    return PowerInstance(*(np.array(a) for a in (X, values, vectors, seeds, angles)))


@st.composite
def two_class_mixtures(
    draw,
    *,
    dims: tuple[int, int] = (2, 6),
    tokens: tuple[int, int] = (40, 80),
    separation: tuple[float, float] = (1.0, 4.0),
    sigma: tuple[float, float] = (0.5, 2.0),
) -> Mixture:
    r"""$x_i = y_i\mu + \sigma z_i$, $z_i \sim N(0, I_d)$, $\|\mu\|/\sigma \in$ ``separation``, half the labels $+1$."""
    dim = draw(st.integers(*dims))
    n = 2 * draw(st.integers(tokens[0] // 2, tokens[1] // 2))
    scale = draw(st.floats(*sigma))
    ratio = draw(st.floats(*separation))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    direction = rng.standard_normal(dim)
    mean = ratio * scale * direction / np.linalg.norm(direction)
    labels = rng.permutation(np.repeat([1, -1], n // 2))
    X = labels[:, None] * mean + scale * rng.standard_normal((n, dim))
    return Mixture(X, labels, mean, scale)
