"""Measurements of the power-iteration transformer for the report (no plotting, no checks).

Each study builds its instances (prescribed spectra from :mod:`tfconstruct.verify.power.strategies`,
scikit-learn's bundled data sets, sampled 2-class mixtures), runs the transformer and the
numpy references, and returns plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf, sqrt
from typing import Literal

import numpy as np
import torch

from tfconstruct.constructions.power import PowerIteration, PowerTrajectory, SpectralClustering, default_seeds
from tfconstruct.theory.power import deflation_threshold
from tfconstruct.verify.power.reference import (
    misclassification,
    power_iteration,
    second_moment,
    sin_angle,
    spectral_labels,
    tan_angle,
    top_eigenpairs,
)
from tfconstruct.verify.power.strategies import data_with_second_moment, prescribed_spectrum, random_orthogonal


def unit_rows(array: np.ndarray) -> np.ndarray:
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def run_trajectory(
    construction: PowerIteration,
    X: np.ndarray,
    seeds: np.ndarray | None,
    device: str,
    outside: Literal["raise", "record"] = "raise",
) -> PowerTrajectory:
    """The transformer's trajectory on ``device``, returned on the CPU (``outside``: see
    :meth:`~tfconstruct.constructions.power.PowerIteration.trajectory`)."""
    construction.model.to(device)
    seeds_tensor = None if seeds is None else torch.as_tensor(seeds)
    stream = construction.embed(torch.as_tensor(X), seeds_tensor, device=device)
    trajectory = construction.trajectory(stream, outside=outside)
    tensors = (t.cpu() for t in (trajectory.iterates, trajectory.normaliser_inputs, trajectory.stream))
    return PowerTrajectory(*tensors, trajectory.violations)


def spectrum_instances(
    rng: np.random.Generator, count: int, dim: int, tokens: int, top: np.ndarray, gap: float, condition: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``count`` instances with exact second moment $Q\,\mathrm{diag}(\lambda)Q^\top$, $\lambda_1 =$ ``top[i]``:
    data (count, n, d), eigenvalues (count, d), eigenvectors (count, d, d) (rows)."""
    X, values, vectors = [], [], []
    for i in range(count):
        spectrum = prescribed_spectrum(dim, float(top[i]), gap, condition)
        q = random_orthogonal(dim, rng)
        X.append(data_with_second_moment(spectrum, q, tokens, rng))
        values.append(spectrum)
        vectors.append(q)
    return np.array(X), np.array(values), np.array(vectors)


@dataclass(frozen=True)
class DepthStudy:
    r"""``sines[g, seed, L]`` = $\sin\angle(v_L, v_1)$; ``tan0[g, seed]``; ``emulation[g]`` = max $\sin\angle(v_L, v_L^{PI})$."""

    gaps: tuple[float, ...]
    depths: np.ndarray
    sines: np.ndarray
    tan0: np.ndarray
    emulation: np.ndarray


def depth_study(
    gaps: tuple[float, ...],
    seeds: int,
    dim: int,
    tokens: int,
    steps: int,
    width: int,
    domain: tuple[float, float],
    rng: np.random.Generator,
    device: str,
) -> DepthStudy:
    r"""Angle to the top eigenvector after every power step, for prescribed eigengaps $\lambda_2/\lambda_1$."""
    sines, tan0, emulation = [], [], []
    construction = PowerIteration(dim, iterations=steps, width=width, domain=domain)
    for gap in gaps:
        X, _, vectors = spectrum_instances(rng, seeds, dim, tokens, np.full(seeds, 2.0), gap, 50.0)
        starts = unit_rows(rng.standard_normal((seeds, 1, dim)))
        iterates = run_trajectory(construction, X, starts, device).iterates[:, 0].numpy()
        sines.append([[sin_angle(v, vectors[b, 0]) for v in iterates[b]] for b in range(seeds)])
        tan0.append([tan_angle(starts[b, 0], vectors[b, 0]) for b in range(seeds)])
        exact = [power_iteration(second_moment(X[b]), starts[b, 0], steps).iterates for b in range(seeds)]
        emulation.append(max(sin_angle(iterates[b, L], exact[b][L]) for b in range(seeds) for L in range(steps + 1)))
    return DepthStudy(tuple(gaps), np.arange(steps + 1), np.array(sines), np.array(tan0), np.array(emulation))


@dataclass(frozen=True)
class SampleStudy:
    r"""A Gaussian sample of population spectrum (5, 3, 2, 1, .8, .6, .4, .2), $n = 200$.

    ``sines``: angle to ``eigh``'s $v_1$ at each depth; ``bound``: $g^L\tan\theta_0$; ``emulation``: angle to exact
    power iteration from the same seed."""

    depths: tuple[int, ...]
    sines: np.ndarray
    bound: np.ndarray
    emulation: np.ndarray
    gap: float


def sample_study(
    depths: tuple[int, ...], width: int, domain: tuple[float, float], rng: np.random.Generator, device: str
) -> SampleStudy:
    population = np.array([5.0, 3.0, 2.0, 1.0, 0.8, 0.6, 0.4, 0.2])
    X = (rng.standard_normal((200, 8)) * np.sqrt(population)) @ random_orthogonal(8, rng)
    values, vectors = top_eigenpairs(second_moment(X), 2)
    seed = unit_rows(rng.standard_normal((1, 1, 8)))
    steps = max(depths)
    iterates = (
        run_trajectory(PowerIteration(8, iterations=steps, width=width, domain=domain), X[None], seed, device)
        .iterates[0, 0]
        .numpy()
    )
    exact = power_iteration(second_moment(X), seed[0, 0], steps).iterates
    gap = values[1] / values[0]
    return SampleStudy(
        depths,
        np.array([sin_angle(iterates[L], vectors[0]) for L in depths]),
        np.array([gap**L * tan_angle(seed[0, 0], vectors[0]) for L in depths]),
        np.array([sin_angle(iterates[L], exact[L]) for L in depths]),
        float(gap),
    )


@dataclass(frozen=True)
class WidthStudy:
    r"""``norm[J][seed, M]`` = worst $|\|V\| - 1|$ over one octave of scales after $J$ Newton steps; ``eigenvalue``
    likewise
    for $|\hat\lambda/\lambda_1 - 1|$; ``sine`` the worst direction error over everything."""

    widths: tuple[int, ...]
    newtons: tuple[int, ...]
    norm: dict[int, np.ndarray]
    eigenvalue: dict[int, np.ndarray]
    sine: float


def width_study(
    widths: tuple[int, ...],
    newtons: tuple[int, ...],
    seeds: int,
    copies: int,
    dim: int,
    tokens: int,
    steps: int,
    domain: tuple[float, float],
    rng: np.random.Generator,
    device: str,
) -> WidthStudy:
    r"""For each seed, ``copies`` scalings of one instance put $s = \lambda_1^2$ at evenly spread points of one knot
    interval of the coarsest width, so the worst error over them estimates the sup that falls as $M^{-2}$."""
    octave = (domain[1] / domain[0]) ** (1 / min(widths))
    norm = {J: np.zeros((seeds, len(widths))) for J in newtons}
    eigenvalue = {J: np.zeros((seeds, len(widths))) for J in newtons}
    sine = 0.0
    for seed in range(seeds):
        top = rng.uniform(1.0, 2.0) * octave ** (np.arange(copies) / (2 * copies))
        X, values, vectors = spectrum_instances(rng, copies, dim, tokens, top, 0.4, 20.0)
        starts = unit_rows(rng.standard_normal((copies, 1, dim)))
        for w, width in enumerate(widths):
            for J in newtons:
                construction = PowerIteration(dim, iterations=steps, width=width, domain=domain, newton_steps=J)
                read = construction.readout(run_trajectory(construction, X, starts, device).stream)
                vector, value = read.vectors[:, 0].numpy(), read.eigenvalues[:, 0].numpy()
                norm[J][seed, w] = np.max(np.abs(np.linalg.norm(vector, axis=1) - 1))
                eigenvalue[J][seed, w] = np.max(np.abs(value / values[:, 0] - 1))
                sine = max(sine, max(sin_angle(vector[b], vectors[b, 0]) for b in range(copies)))
    return WidthStudy(tuple(widths), tuple(newtons), norm, eigenvalue, sine)


@dataclass(frozen=True)
class RealDataRow:
    """One eigenpair of a real data set: transformer against ``eigh``."""

    data: str
    newton: int
    index: int
    eigh_value: float
    value: float
    sine: float
    norm_error: float
    next_ratio: float
    deflation_residual: float  # ||lam_hat V V^T - lam v v^T||_2 / lam
    domain: tuple[float, float]
    squared_norms_inside: bool


def real_data_study(
    name: str, data: np.ndarray, k: int, steps: int, width: int, newtons: tuple[int, ...], device: str
) -> list[RealDataRow]:
    """Top-$k$ principal directions of standardised ``data`` (centred inside the transformer)."""
    values, vectors = top_eigenpairs(second_moment(data, centre=True), k + 1)
    rows = []
    for J in newtons:
        construction = PowerIteration.for_data(
            torch.as_tensor(data), components=k, iterations=steps, width=width, newton_steps=J, centre=True
        )
        trajectory = run_trajectory(construction, data[None], None, device)
        result = construction.readout(trajectory.stream)
        low, high = construction.engine.domain.low, construction.engine.domain.high
        inside = bool(
            low <= float(trajectory.normaliser_inputs.min()) and float(trajectory.normaliser_inputs.max()) <= high
        )
        for j in range(k):
            vector, value = result.vectors[0, j].numpy(), float(result.eigenvalues[0, j])
            residual = np.linalg.norm(
                value * np.outer(vector, vector) - values[j] * np.outer(vectors[j], vectors[j]), 2
            )
            rows.append(
                RealDataRow(
                    name,
                    J,
                    j,
                    float(values[j]),
                    value,
                    sin_angle(vector, vectors[j]),
                    float(abs(np.linalg.norm(vector) - 1)),
                    float(values[j + 1] / values[j]),
                    float(residual / values[j]),
                    (low, high),
                    inside,
                )
            )
    return rows


def standardised(data: np.ndarray) -> np.ndarray:
    return (data - data.mean(axis=0)) / data.std(axis=0)


@dataclass(frozen=True)
class ClusteringStudy:
    r"""Misclassification (up to a global flip) per separation and repetition: ``transformer``, ``power`` (numpy power
    iteration, same seed and $T$), ``eigh`` (the limit) and ``bayes`` $= \Phi(-\|\mu\|/\sigma)$; ``agree_power`` is
    whether the transformer's labels equal the numpy power-iteration labels point for point."""

    separations: tuple[float, ...]
    transformer: np.ndarray
    power: np.ndarray
    eigh: np.ndarray
    bayes: np.ndarray
    agree_power: np.ndarray
    domain_ok: bool


def clustering_study(
    separations: tuple[float, ...],
    repetitions: int,
    tokens: int,
    dim: int,
    steps: int,
    width: int,
    rng: np.random.Generator,
    device: str,
) -> ClusteringStudy:
    r"""$x_i = y_i\mu + z_i$, $z_i \sim N(0, I_d)$, balanced labels, $\|\mu\| =$ separation."""
    shape = (len(separations), repetitions)
    transformer, power, limit, agree = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    domain_ok = True
    seed = default_seeds(dim, 1)
    for i, separation in enumerate(separations):
        truths, data = [], []
        for _ in range(repetitions):
            labels = rng.permutation(np.repeat([1, -1], tokens // 2))
            mean = separation * unit_rows(rng.standard_normal(dim))
            data.append(labels[:, None] * mean + rng.standard_normal((tokens, dim)))
            truths.append(labels)
        X = np.array(data)
        construction = SpectralClustering.for_data(torch.as_tensor(X), iterations=steps, width=width)
        trajectory = run_trajectory(construction, X, seed, device)
        low, high = construction.engine.domain.low, construction.engine.domain.high
        domain_ok &= bool(
            low <= float(trajectory.normaliser_inputs.min()) and float(trajectory.normaliser_inputs.max()) <= high
        )
        labels_tf = construction.labels(trajectory.stream).numpy()
        for r in range(repetitions):
            direction = power_iteration(second_moment(X[r], centre=True), seed[0], steps).iterates[-1]
            labels_power = spectral_labels(X[r], direction)
            transformer[i, r] = misclassification(labels_tf[r], truths[r])
            power[i, r] = misclassification(labels_power, truths[r])
            limit[i, r] = misclassification(spectral_labels(X[r]), truths[r])
            agree[i, r] = bool(np.array_equal(labels_tf[r], labels_power))
    bayes = np.array([0.5 * (1 - erf(s / sqrt(2))) for s in separations])
    return ClusteringStudy(tuple(separations), transformer, power, limit, bayes, agree, domain_ok)


@dataclass(frozen=True)
class DeflationRow:
    r"""Second eigenvector with a tiny gap $\lambda_2/\lambda_1$: found iff the norm error is below the threshold."""

    newton: int
    norm_error: float
    threshold: float
    sine_to_second: float
    sine_to_first: float
    domain_violations: int
    unresolved: bool  # the read-out's deflation check flagged component 1 (PowerIteration.readout)


def deflation_study(
    gap: float, width: int, newtons: tuple[int, ...], domain: tuple[float, float], rng: np.random.Generator, device: str
) -> list[DeflationRow]:
    r"""$\lambda_1^2$ halfway (geometrically) between two knots, where the norm error is largest."""
    dim = 4
    knot_ratio = (domain[1] / domain[0]) ** (1 / width)
    top = np.sqrt(domain[0] * knot_ratio ** (width // 2 + 0.5))
    X, _, vectors = spectrum_instances(rng, 1, dim, 40, np.array([top]), gap, 100.0)
    start = unit_rows(vectors[0, :3].sum(axis=0))
    rows = []
    for J in newtons:
        construction = PowerIteration(dim, components=2, iterations=60, width=width, domain=domain, newton_steps=J)
        # recorded, not raised: when deflation fails the second component's normaliser sees a tiny input
        trajectory = run_trajectory(construction, X, np.stack([start, start])[None], device, outside="record")
        result = construction.readout(trajectory.stream, outside="record")
        second = result.vectors[0, 1].numpy()
        rows.append(
            DeflationRow(
                J,
                float(abs(np.linalg.norm(result.vectors[0, 0].numpy()) - 1)),
                deflation_threshold(gap),
                sin_angle(second, vectors[0, 1]),
                sin_angle(second, vectors[0, 0]),
                len(trajectory.violations),
                bool(result.unresolved),
            )
        )
    return rows
