r"""Instances BUILT to satisfy the tensor-power-method assumptions (never filtered random arrays).

* Orthogonally decomposable tensors $T = \sum_{k<R} \lambda_k v_k^{\otimes 3}$ with prescribed weights
  $\lambda_k$ and orthonormal $v_k$ (columns of a Haar-random orthogonal matrix).
* Spherical Gaussian mixtures with $K \le d$ and prescribed geometry: every pair of means has cosine
  exactly $c$ and distance exactly $\Delta$, via $\mu_k = r\,Q\,\ell_k$ where $Q \in \mathbb R^{d\times K}$
  has orthonormal columns, $\ell_k$ are the rows of the Cholesky factor of $G = (1-c) I + c\,\mathbf 1\mathbf 1^\top$
  (so $\ell_j\cdot\ell_k = G_{jk}$) and $r = \Delta / \sqrt{2(1-c)}$. Weights follow the TGMM sampler:
  $u_k \sim U[0.2, 0.8]$, sorted ascending, normalised. For $K > d$ (where the spectral method must
  refuse) the means sit on a regular $K$-gon with neighbours $\Delta$ apart.

The ``build_*`` functions are plain numpy (the report uses them); the strategies draw their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class OdecoInstance:
    r"""$T = \sum_k$ ``weights[k]`` ``vectors[k]``$^{\otimes 3}$ of dimension ``tensor.shape[0]``."""

    tensor: np.ndarray
    weights: np.ndarray
    vectors: np.ndarray


@dataclass(frozen=True)
class MixtureInstance:
    r"""Samples ``x`` $(n, d)$ with ``labels`` drawn from ``weights`` $\pi$ and ``means`` $(K, d)$, noise $\sigma$."""

    x: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    noise: float


def random_orthonormal(rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(rows, columns)`` matrix with Haar-distributed orthonormal columns (QR with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, columns)))
    return q * np.sign(np.diag(r))


def build_odeco(weights: np.ndarray, dimension: int, seed: int) -> OdecoInstance:
    r"""The odeco tensor with the given weights and random orthonormal components in $\mathbb R^{dimension}$."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.size > dimension:
        raise ValueError(
            f"an odeco tensor of dimension {dimension} has at most {dimension} components, got {weights.size}"
        )
    vectors = random_orthonormal(dimension, weights.size, np.random.default_rng(seed)).T
    tensor = np.einsum("k,ka,kb,kc->abc", weights, vectors, vectors, vectors)
    return OdecoInstance(tensor, weights, vectors)


def build_means(dimension: int, components: int, separation: float, cosine: float, seed: int) -> np.ndarray:
    r"""$K$ means in $\mathbb R^d$ with pairwise distance ``separation`` and pairwise cosine ``cosine``."""
    if components > dimension:
        raise ValueError(f"linearly independent means need components <= dimension, got K={components} > d={dimension}")
    if not -1.0 / max(components - 1, 1) < cosine < 1.0:
        raise ValueError(f"cosine must lie in (-1/(K-1), 1) for a valid Gram matrix, got {cosine}")
    gram = (1.0 - cosine) * np.eye(components) + cosine * np.ones((components, components))
    rows = np.linalg.cholesky(gram)
    radius = separation / np.sqrt(2.0 * (1.0 - cosine))
    basis = random_orthonormal(dimension, components, np.random.default_rng(seed))
    return radius * rows @ basis.T


def build_polygon_means(dimension: int, components: int, separation: float, seed: int) -> np.ndarray:
    """$K$ means on a regular $K$-gon in a random 2-plane, neighbours ``separation`` apart; works for $K > d$
    (they are linearly dependent once $K > 2$: the regime where the spectral method does not apply)."""
    if dimension < 2:
        raise ValueError(f"a polygon needs dimension >= 2, got {dimension}")
    angles = 2.0 * np.pi * np.arange(components) / components
    radius = separation / (2.0 * np.sin(np.pi / components))
    plane = random_orthonormal(dimension, 2, np.random.default_rng(seed))
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1) @ plane.T


def tgmm_weights(raw: np.ndarray) -> np.ndarray:
    """TGMM's mixing weights: raw draws in $[0.2, 0.8]$, sorted ascending, normalised."""
    raw = np.sort(np.asarray(raw, dtype=np.float64))
    return raw / raw.sum()


def sample_mixture(
    weights: np.ndarray, means: np.ndarray, samples: int, seed: int, noise: float = 1.0
) -> MixtureInstance:
    r"""``samples`` draws $x = \mu_z + \sigma\varepsilon$."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(weights), size=samples, p=weights)
    x = means[labels] + noise * rng.standard_normal((samples, means.shape[1]))
    return MixtureInstance(x, labels, np.asarray(weights), means, noise)


@st.composite
def odeco_tensors(
    draw: st.DrawFn,
    dimensions: tuple[int, int] = (2, 5),
    weight_range: tuple[float, float] = (1.0, 4.0),
    full_rank: bool = False,
) -> OdecoInstance:
    r"""An odeco tensor with dimension in ``dimensions``, $1 \le R \le$ dimension components (all of them
    when ``full_rank``) and weights in ``weight_range``."""
    dimension = draw(st.integers(*dimensions))
    rank = dimension if full_rank else draw(st.integers(1, dimension))
    weights = draw(st.lists(st.floats(*weight_range), min_size=rank, max_size=rank))
    return build_odeco(np.array(weights), dimension, draw(st.integers(0, 2**32 - 1)))


@st.composite
def spherical_mixtures(
    draw: st.DrawFn,
    dimensions: tuple[int, int] = (2, 6),
    components: tuple[int, int] = (2, 4),
    separations: tuple[float, float] = (4.0, 8.0),
    cosines: tuple[float, float] = (0.0, 0.6),
    samples: int = 400,
) -> MixtureInstance:
    r"""A sampled spherical mixture with $K \le d$, prescribed separation and pairwise cosine, TGMM weights."""
    dimension = draw(st.integers(*dimensions))
    k = draw(st.integers(components[0], min(components[1], dimension)))
    raw = draw(st.lists(st.floats(0.2, 0.8), min_size=k, max_size=k))
    means = build_means(
        dimension, k, draw(st.floats(*separations)), draw(st.floats(*cosines)), draw(st.integers(0, 2**32 - 1))
    )
    return sample_mixture(tgmm_weights(np.array(raw)), means, samples, draw(st.integers(0, 2**32 - 1)))
