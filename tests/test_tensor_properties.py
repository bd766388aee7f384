"""Property tests on BUILT instances: odeco tensors with prescribed weights, population and sampled spherical GMMs."""

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from tfconstruct.constructions.gadgets import NormalisationDomain
from tfconstruct.constructions.power import default_seeds
from tfconstruct.constructions.tensor import OdecoPowerIteration, SpectralGMM
from tfconstruct.theory.tensor import (
    EIGENVALUE,
    MEAN,
    MEAN_DEFLATED,
    WEIGHT_NORMALISED,
    exact_tangent,
    readout_norm_error,
)
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.tensor.moments import (
    Whitening,
    population_tensor,
    spherical_moments,
    whitened_tensor,
    whitening,
)
from tfconstruct.verify.tensor.reference import match_components, tensor_power_method, unwhiten
from tfconstruct.verify.tensor.strategies import build_means, odeco_tensors, spherical_mixtures, tgmm_weights

EPS = float(np.finfo(np.float64).eps)
WIDTH, ITERATIONS = 64, 16


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def sines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""$\min_\pm \lVert \hat a \mp \hat b\rVert \approx \sin\angle(a, b)$, without the cancellation of $1 - \cos^2$."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.minimum(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))


def tangent(v: np.ndarray, target: np.ndarray) -> float:
    along = v @ target
    return float(np.linalg.norm(v - along * target) / abs(along))


@given(odeco_tensors(dimensions=(2, 5)), st.sampled_from(["shifted", "signed"]))
def test_odeco_decomposition_is_recovered_within_the_norm_bound(instance, heads):
    k, rank = instance.tensor.shape[0], instance.weights.size
    domain = NormalisationDomain.for_weights(instance.weights.min(), instance.weights.max())
    seeds = default_seeds(k, rank)
    construction = OdecoPowerIteration(
        k, components=rank, iterations=ITERATIONS, width=WIDTH, domain=domain, heads=heads
    )
    trajectory = construction.trajectory(construction.embed(instance.tensor, seeds))
    readout = construction.readout(trajectory.stream)
    reference = tensor_power_method(instance.tensor, seeds, ITERATIONS)
    iterates = trajectory.iterates[0].numpy()
    # exact part: component 0 moves along the reference's direction at every step
    assert sines(iterates[0], reference.iterates[0]).max() <= 1e-13
    # the bound's assumption: every normaliser input inside [a, b]
    seen = trajectory.normaliser_inputs.numpy()
    assert ((seen >= domain.low) & (seen <= domain.high)).all(), (seen.min(), seen.max(), domain)
    # converged: directions are the true components, eigenvalues |v|^3 lambda within (1 + delta)^3 - 1
    vectors, eigenvalues = readout.vectors[0].numpy(), readout.eigenvalues[0].numpy()
    order = match_components(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), instance.vectors)
    assert sines(vectors[order], instance.vectors).max() <= 1e-10
    norms = np.linalg.norm(vectors[order], axis=1)
    np.testing.assert_allclose(eigenvalues[order], norms**3 * instance.weights, rtol=1e-9)
    delta = readout_norm_error(WIDTH, domain.low, domain.high)
    for j in range(rank):
        check_bound(
            EIGENVALUE,
            abs(eigenvalues[order[j]] / instance.weights[j] - 1),
            instance={"weights": instance.weights},
            atol=1e-12,
            delta=delta,
        )


@given(odeco_tensors(dimensions=(2, 5), full_rank=True))
def test_iterates_converge_quadratically_as_the_reference_does(instance):
    """tan(theta_t) of the transformer's first component = the closed form lambda^(2^t - 1) c^(2^t) ratio."""
    k = instance.tensor.shape[0]
    domain = NormalisationDomain.for_weights(instance.weights.min(), instance.weights.max())
    seeds = default_seeds(k, 1)
    construction = OdecoPowerIteration(k, components=1, iterations=6, width=WIDTH, domain=domain)
    iterates = construction.trajectory(construction.embed(instance.tensor, seeds)).iterates[0, 0].numpy()
    overlaps = instance.vectors @ seeds[0]
    top = int(np.argmax(instance.weights * np.abs(overlaps)))
    for t in range(1, 7):
        predicted = float(exact_tangent(list(instance.weights), list(overlaps), t, top=top))
        measured = tangent(iterates[t], instance.vectors[top])
        note(f"t={t} predicted={predicted:.3e} measured={measured:.3e}")
        assert abs(measured - predicted) <= 1e-9 * predicted + 1e-12


@given(
    st.integers(2, 5).flatmap(lambda d: st.tuples(st.just(d), st.integers(2, d))),
    st.lists(st.floats(0.2, 0.8), min_size=5, max_size=5),
    st.floats(3.0, 8.0),
    st.floats(0.0, 0.6),
    st.integers(0, 2**32 - 1),
)
def test_population_moments_give_back_the_true_mixture(sizes, raw, separation, cosine, seed):
    """With exact moments the whitened tensor is odeco with lambda_k = pi_k^(-1/2): the construction returns
    (pi, mu) within the read-out bounds."""
    d, k = sizes
    weights = tgmm_weights(np.array(raw[:k]))
    means = build_means(d, k, separation, cosine, seed)
    pairs = np.einsum("k,ka,kb->ab", weights, means, means)
    white = whitening(pairs, k)
    tensor = population_tensor(weights, means, white)
    lam = weights**-0.5
    domain = NormalisationDomain.for_weights(lam.min(), lam.max())
    construction = OdecoPowerIteration(k, components=k, iterations=ITERATIONS, width=WIDTH, domain=domain)
    readout = construction.readout(construction.model(construction.embed(tensor, default_seeds(k, k))))
    found_weights = readout.eigenvalues[0].numpy() ** -2.0
    found_means = readout.eigenvalues[0].numpy()[:, None] * readout.vectors[0].numpy() @ white.unwhiten.T
    order = match_components(found_means, means)
    delta = readout_norm_error(WIDTH, domain.low, domain.high)
    instance = {"d": d, "K": k, "seed": seed}
    for j in range(k):
        relative = np.linalg.norm(found_means[order[j]] - means[j]) / np.linalg.norm(means[j])
        check_bound(MEAN, relative, instance=instance, atol=1e-9, delta=delta)
        normalised = found_weights[order[j]] / found_weights.sum() / weights[j]
        check_bound(WEIGHT_NORMALISED, abs(normalised - 1), instance=instance, atol=1e-9, delta=delta)


@given(spherical_mixtures(dimensions=(2, 5), components=(2, 3), samples=160))
def test_sampled_mixtures_match_the_reference_within_the_deflation_bound(mixture):
    k = mixture.means.shape[0]
    pipeline = SpectralGMM(k, iterations=12, width=WIDTH, newton_steps=1)
    estimate = pipeline.fit(mixture.x, trace=True)
    pre = estimate.preprocessed
    white = Whitening(pre.whiten[0].numpy(), pre.unwhiten[0].numpy(), pre.pair_eigenvalues[0].numpy())
    decomposition = tensor_power_method(
        whitened_tensor(mixture.x, spherical_moments(mixture.x, k), white), pipeline.seeds, 12
    )
    _, means = unwhiten(decomposition, white)
    engine = estimate.construction.engine
    seen = engine.normaliser_inputs(estimate.trace).numpy()
    assert ((seen >= engine.domain.low) & (seen <= engine.domain.high)).all()
    iterates = engine.iterates(estimate.trace)[0, 0].numpy()
    assert sines(iterates, decomposition.iterates[0]).max() <= 1e-11  # exact direction; round-off ~ eps / gap
    overlaps = np.abs(decomposition.vectors @ decomposition.vectors.T - np.eye(k)).max()
    context = dict(
        delta=readout_norm_error(WIDTH, engine.domain.low, engine.domain.high, 1),
        K=k,
        Lambda=decomposition.eigenvalues.max() / decomposition.eigenvalues.min(),
        omega=overlaps,
        kappa_B=float(np.sqrt(white.eigenvalues[0] / white.eigenvalues[-1])),
    )
    errors = np.linalg.norm(estimate.means[0].numpy() - means, axis=1) / np.linalg.norm(means, axis=1)
    note(f"relative mean errors {errors}, context {context}")
    for j in range(k):
        check_bound(MEAN_DEFLATED, errors[j], instance={"K": k, "j": j}, atol=1e-9, **context)
