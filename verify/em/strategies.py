r"""K-class spherical Gaussian mixtures built to satisfy a clustering theorem's assumptions.

An instance is *constructed*, not filtered:

* centres with minimum pairwise distance exactly $\Delta$: for $K \le d$ the scaled
  orthogonal frame $\mu_k = (\Delta/\sqrt2)\,Q e_k$; for $K > d$ the first $K$ points of the
  grid $\Delta\,\{0,\dots,m-1\}^d$, $m = \lceil K^{1/d}\rceil$; then a random rotation $Q$
  and centring;
* exact cluster sizes $n_k$ (balanced unless sizes are given);
* noise $\sigma\varepsilon_i$, $\varepsilon_i \sim N(0, I_d)$, optionally clipped to norm
  $\le r_{noise}$ so that every point lies within $r_{noise}$ of its centre;
* an initialisation $\mu^{(0)}_k = \theta_k + r_k u_k$ with $\|u_k\| = 1$ and
  $r_k \le r_{init}$;
* an optional common scale $s$ and offset $c$: $x \mapsto s x + c$ (for scale tests).

With $r_{noise} + r_{init} \le \Delta/4$ every point is closer to its own initial centre than
to any other by the half-margin
$g_i = \tfrac12(\|x_i-\mu_{(2)}\|^2 - \|x_i-\mu_{(1)}\|^2) \ge \Delta(\Delta - 2r)/2 \ge \Delta^2/4$,
$r = r_{noise} + r_{init}$, so Lloyd's first assignment is the true labelling.

:func:`build_variance_mixture` builds mixtures with **unequal** variances (clipped noise $\sigma_k N(0, I)$) and a
state $(\mu, \pi, s)$ off the truth, for :class:`~tfconstruct.constructions.em.SphericalEM`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from tfconstruct.verify.em.reference import MixtureState, initial_state


@dataclass(frozen=True)
class MixtureInstance:
    """Points with their true labels and centres, and an initialisation near the truth."""

    points: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    init_means: np.ndarray
    separation: float
    noise: float
    seed: int

    @property
    def clusters(self) -> int:
        return self.centers.shape[0]

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    @property
    def size(self) -> int:
        return self.points.shape[0]

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.clusters)

    @property
    def radius(self) -> float:
        """The largest norm of a point or initial mean (the construction's ``radius``)."""
        return float(max(np.linalg.norm(self.points, axis=1).max(), np.linalg.norm(self.init_means, axis=1).max()))

    @property
    def coordinate_radius(self) -> float:
        """The largest |coordinate| of a point or initial mean (:class:`~tfconstruct.constructions.em.TwoBlockEM`'s
        ``radius``)."""
        return float(max(np.abs(self.points).max(), np.abs(self.init_means).max()))

    @property
    def diameter(self) -> float:
        r"""$\max_{i,j}\|x_i - x_j\|$: bounds the distance of any point to any convex combination of points."""
        diff = self.points[:, None, :] - self.points[None, :, :]
        return float(np.sqrt(np.einsum("ijd,ijd->ij", diff, diff).max()))

    def summary(self) -> dict[str, object]:
        """Sizes and parameters, for failure messages and report data."""
        return {
            "seed": self.seed,
            "K": self.clusters,
            "d": self.dim,
            "n": self.size,
            "separation": self.separation,
            "noise": self.noise,
        }


def half_margins(points: np.ndarray, means: np.ndarray) -> np.ndarray:
    r"""$g_i = \tfrac12(\|x_i-\mu_{(2)}\|^2 - \|x_i-\mu_{(1)}\|^2)$: how far point $i$ is from a tie."""
    diff = points[:, None, :] - means[None, :, :]
    distances = np.sort(np.einsum("nkd,nkd->nk", diff, diff), axis=1)
    return 0.5 * (distances[:, 1] - distances[:, 0])


def random_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def separated_centers(rng: np.random.Generator, clusters: int, dim: int, separation: float) -> np.ndarray:
    r"""$K$ centred points in $\mathbb{R}^d$ with minimum pairwise distance exactly ``separation``."""
    if clusters <= dim:
        frame = separation / math.sqrt(2.0) * np.eye(dim)[:clusters]
    else:
        side = math.ceil(clusters ** (1.0 / dim) - 1e-9)
        while side**dim < clusters:
            side += 1
        grid = itertools.islice(itertools.product(range(side), repeat=dim), clusters)
        frame = separation * np.array(list(grid), dtype=np.float64)
    frame = frame - frame.mean(axis=0)
    return frame @ random_rotation(rng, dim).T


def build_mixture(
    seed: int,
    clusters: int,
    dim: int,
    sizes: int | Sequence[int],
    *,
    separation: float,
    noise: float = 1.0,
    noise_radius: float | None = None,
    init_radius: float = 0.0,
    scale: float = 1.0,
    offset: float = 0.0,
) -> MixtureInstance:
    """Build one instance as described in the module docstring (points in random order)."""
    rng = np.random.default_rng(seed)
    counts = np.full(clusters, sizes) if np.isscalar(sizes) else np.asarray(sizes)
    if counts.shape != (clusters,) or np.any(counts < 1):
        raise ValueError(f"sizes must be one positive count or {clusters} positive counts, got {sizes!r}")
    centers = separated_centers(rng, clusters, dim, separation)
    labels = rng.permutation(np.repeat(np.arange(clusters), counts))
    eps = rng.normal(size=(labels.size, dim)) * noise
    if noise_radius is not None:
        norms = np.linalg.norm(eps, axis=1, keepdims=True)
        eps = eps * np.minimum(1.0, noise_radius / np.maximum(norms, 1e-300))
    directions = rng.normal(size=(clusters, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    init = centers + directions * (init_radius * rng.uniform(size=(clusters, 1)))
    shift = offset * np.ones(dim)
    return MixtureInstance(
        points=scale * (centers[labels] + eps) + shift,
        labels=labels,
        centers=scale * centers + shift,
        init_means=scale * init + shift,
        separation=scale * separation,
        noise=scale * noise,
        seed=seed,
    )


@st.composite
def mixtures(
    draw: st.DrawFn,
    clusters: st.SearchStrategy[int] = st.integers(2, 6),
    dims: st.SearchStrategy[int] = st.integers(1, 32),
    per_cluster: st.SearchStrategy[int] = st.integers(3, 10),
    separation: st.SearchStrategy[float] = st.floats(4.0, 12.0),
    noise_fraction: st.SearchStrategy[float] = st.floats(0.02, 0.125),
    init_fraction: st.SearchStrategy[float] = st.floats(0.0, 0.125),
    scale: st.SearchStrategy[float] = st.just(1.0),
    offset: st.SearchStrategy[float] = st.just(0.0),
    clip_noise: bool = True,
) -> MixtureInstance:
    r"""Well-separated instances: noise $\sigma$ = ``noise_fraction``$\cdot\Delta$, clipped to norm
    $\le \sigma$, and the initialisation within ``init_fraction``$\cdot\Delta$ of the truth (both
    $\le \Delta/8$ by default, so the half-margins are $\ge \Delta^2/4$ and Lloyd starts from the
    true labels). ``clip_noise=False`` keeps the Gaussian noise unclipped (overlapping clusters).
    """
    k, d, m = draw(clusters), draw(dims), draw(per_cluster)
    delta = draw(separation)
    noise = draw(noise_fraction) * delta
    return build_mixture(
        draw(st.integers(0, 2**32 - 1)),
        k,
        d,
        m,
        separation=delta,
        noise=noise,
        noise_radius=noise if clip_noise else None,
        init_radius=draw(init_fraction) * delta,
        scale=draw(scale),
        offset=draw(offset),
    )


@st.composite
def unit_variance_mixtures(
    draw: st.DrawFn,
    clusters: st.SearchStrategy[int] = st.integers(2, 4),
    dims: st.SearchStrategy[int] = st.integers(1, 6),
    cluster_size: st.SearchStrategy[int] = st.integers(15, 60),
    separation: st.SearchStrategy[float] = st.floats(3.5, 6.0),
    init_fraction: st.SearchStrategy[float] = st.floats(0.0, 0.25),
) -> MixtureInstance:
    r"""Unit-variance mixtures ($\sigma = 1$, Gaussian noise, not clipped) with unequal cluster sizes, one size
    drawn per cluster: the model of :class:`~tfconstruct.constructions.em.TwoBlockEM`. The separation
    $\Delta \ge 3.5\sigma$ and the sizes (at most 4 to 1) keep every EM weight well above $1/(5K)$, and the
    initialisation is within ``init_fraction``$\cdot\Delta$ of the truth.
    """
    k, d = draw(clusters), draw(dims)
    sizes = [draw(cluster_size) for _ in range(k)]
    delta = draw(separation)
    return build_mixture(
        draw(st.integers(0, 2**32 - 1)), k, d, sizes, separation=delta, init_radius=draw(init_fraction) * delta
    )


@dataclass(frozen=True)
class VarianceInstance:
    """A mixture with unequal variances (true ``labels`` and ``centers``) and an initial state off the truth."""

    points: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    start: MixtureState
    variance_range: tuple[float, float]
    separation: float
    seed: int

    @property
    def clusters(self) -> int:
        return self.start.means.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def radius(self) -> float:
        """The largest |coordinate| of a point or initial mean (:class:`~tfconstruct.constructions.em.SphericalEM`'s
        ``radius``)."""
        return float(max(np.abs(self.points).max(), np.abs(self.start.means).max()))

    @property
    def diameter(self) -> float:
        r"""$\max_{i,j}\|x_i - x_j\|$."""
        diff = self.points[:, None, :] - self.points[None, :, :]
        return float(np.sqrt(np.einsum("ijd,ijd->ij", diff, diff).max()))

    def fixed_variance(self) -> MixtureInstance:
        r"""The same points, labels and initial means as a :class:`MixtureInstance` whose ``noise`` is the one shared
        $\sigma$ a fixed-variance EM starts from: $\sigma^2 = \sum_k\pi^{(0)}_k s^{(0)}_k$."""
        return MixtureInstance(
            points=self.points,
            labels=self.labels,
            centers=self.centers,
            init_means=self.start.means,
            separation=self.separation,
            noise=float(np.sqrt(self.start.weights @ self.start.variances)),
            seed=self.seed,
        )


def build_variance_mixture(
    seed: int,
    sizes: Sequence[int],
    dim: int,
    variances: Sequence[float],
    *,
    separation: float,
    init_shift: float,
    tied: bool = False,
) -> VarianceInstance:
    r"""Centres at pairwise distance $\ge$ ``separation``; cluster $k$ has noise $\sigma_k N(0, I)$ clipped to norm
    $2\sigma_k\sqrt d$ (so every point is within $2\sigma_k\sqrt d$ of its centre); the start: means within
    ``init_shift`` of the centres, weights the cluster fractions mixed 1:1 with uniform, variances the true ones
    times factors in $[0.7, 1.4]$ (their weighted mean when ``tied``). ``variance_range`` covers $[0.3 s_{min},
    3 s_{max}]$ over the true variances and each cluster's sample variance about its sample mean (with a few points
    per cluster the sample variance, where EM settles, can lie far below the true one)."""
    rng = np.random.default_rng(seed)
    k = len(sizes)
    centers = separated_centers(rng, k, dim, separation)
    sigma = np.sqrt(np.asarray(variances))
    labels = rng.permutation(np.repeat(np.arange(k), sizes))
    noise = rng.normal(size=(labels.size, dim))
    norms = np.linalg.norm(noise, axis=1, keepdims=True)
    noise *= np.minimum(1.0, 2.0 * np.sqrt(dim) / np.maximum(norms, 1e-300))
    points = centers[labels] + sigma[labels, None] * noise
    directions = rng.normal(size=(k, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = centers + init_shift * directions
    weights = 0.5 * np.asarray(sizes) / sum(sizes) + 0.5 / k
    start_variances = np.asarray(variances) * rng.uniform(0.7, 1.4, size=k)
    if tied:
        start_variances = np.full(k, float(weights @ start_variances))
    sample = [float(np.mean((points[labels == j] - points[labels == j].mean(axis=0)) ** 2)) for j in range(k)]
    return VarianceInstance(
        points=points,
        labels=labels,
        centers=centers,
        start=initial_state(means, weights, start_variances),
        variance_range=(0.3 * min(*variances, *sample), 3.0 * max(*variances, *sample)),
        separation=separation,
        seed=seed,
    )


@st.composite
def variance_mixtures(
    draw: st.DrawFn, tied: bool = False, dims: st.SearchStrategy[int] = st.integers(1, 8)
) -> VarianceInstance:
    r"""$K \in [2, 6]$, $d$ from ``dims``, 6 to 14 points per cluster (unequal sizes), variances $10^{-u_k}$ with
    $u_k \in [0, 1]$ (ratio up to 10), separation $8$ to $12$ times $\max(1, \sqrt d/2)$ (at least $4\sigma_{max}
    \sqrt 2$ beyond the clipped noise, so every weight stays near its cluster's fraction), start within 0.5 of the
    centres."""
    k, d = draw(st.integers(2, 6)), draw(dims)
    sizes = [draw(st.integers(6, 14)) for _ in range(k)]
    variances = [10.0 ** -draw(st.floats(0.0, 1.0)) for _ in range(k)]
    separation = draw(st.floats(8.0, 12.0)) * max(1.0, np.sqrt(d) / 2)
    return build_variance_mixture(
        draw(st.integers(0, 2**32 - 1)),
        sizes,
        d,
        variances,
        separation=separation,
        init_shift=draw(st.floats(0.0, 0.5)),
        tied=tied,
    )
