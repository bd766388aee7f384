"""The numpy reference: moments, whitening, step-by-step tensor power method, tensorly cross-check."""

import numpy as np
import pytest

from tfconstruct.theory.tensor import exact_tangent
from tfconstruct.verify.tensor.moments import (
    check_components,
    population_tensor,
    spherical_moments,
    whitened_contraction,
    whitened_tensor,
    whitening,
)
from tfconstruct.verify.tensor.reference import (
    contract,
    match_components,
    matched_mean_errors,
    spectral_gmm,
    tensor_power_method,
    tensorly_decomposition,
    unwhiten,
)
from tfconstruct.verify.tensor.strategies import (
    build_means,
    build_odeco,
    random_orthonormal,
    sample_mixture,
    tgmm_weights,
)


def sine(u: np.ndarray, v: np.ndarray) -> float:
    r"""$\sin\angle(u, v)$ (sign-blind)."""
    cos = abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.sqrt(max(0.0, 1.0 - cos**2)))


def test_contract_is_the_double_sum():
    rng = np.random.default_rng(0)
    tensor, v = rng.standard_normal((4, 4, 4)), rng.standard_normal(4)
    loops = np.array([sum(tensor[a, b, c] * v[b] * v[c] for b in range(4) for c in range(4)) for a in range(4)])
    np.testing.assert_allclose(contract(tensor, v), loops, rtol=1e-13)


def test_power_method_recovers_an_odeco_decomposition():
    inst = build_odeco(np.array([3.0, 2.0, 1.5, 1.1]), 5, seed=1)
    seeds = random_orthonormal(5, 4, np.random.default_rng(7)).T
    result = tensor_power_method(inst.tensor, seeds, iterations=20)
    order = match_components(result.vectors, inst.vectors)  # positive weights: converged vectors are +v_k
    np.testing.assert_allclose(result.eigenvalues[order], inst.weights, rtol=1e-12)
    np.testing.assert_allclose(result.vectors[order], inst.vectors, atol=1e-12)
    # the deflated remainder is zero: every component was removed exactly
    deflated = inst.tensor - np.einsum(
        "k,ka,kb,kc->abc", result.eigenvalues, result.vectors, result.vectors, result.vectors
    )
    assert np.abs(deflated).max() < 1e-12


def test_first_component_converges_quadratically_as_the_formula_says():
    """On an odeco tensor the exact tan(theta_t) is a closed form (theory.propagation.tensor_power_tan)."""
    inst = build_odeco(np.array([2.0, 1.7, 1.3]), 3, seed=3)
    seed = random_orthonormal(3, 1, np.random.default_rng(11)).T
    result = tensor_power_method(inst.tensor, seed, iterations=8)
    overlaps = inst.vectors @ seed[0]
    top = int(np.argmax(inst.weights * np.abs(overlaps)))
    checked = 0
    for t in range(1, 6):
        v = result.iterates[0, t]
        measured = np.linalg.norm(v - (v @ inst.vectors[top]) * inst.vectors[top]) / abs(v @ inst.vectors[top])
        predicted = float(exact_tangent(list(inst.weights), list(overlaps), t, top=top))
        if predicted > 1e-10:
            assert measured == pytest.approx(predicted, rel=1e-8)
            checked += 1
    assert checked >= 3


def test_tensorly_agrees_on_converged_odeco_decompositions():
    """tensorly is only a converged-decomposition cross-check (random restarts, 3 updates per iteration)."""
    inst = build_odeco(np.array([4.0, 2.5, 1.5]), 4, seed=5)
    ours = tensor_power_method(inst.tensor, random_orthonormal(4, 3, np.random.default_rng(2)).T, iterations=25)
    weights, vectors = tensorly_decomposition(inst.tensor, 3, seed=0)
    order = match_components(np.abs(vectors), np.abs(ours.vectors))
    np.testing.assert_allclose(weights[order], ours.eigenvalues, rtol=1e-9)
    for k in range(3):
        assert sine(vectors[order[k]], ours.vectors[k]) < 1e-8


def test_tensorly_adapter_restores_the_global_rng():
    np.random.seed(123)
    expected = np.random.random_sample()
    np.random.seed(123)
    tensorly_decomposition(build_odeco(np.array([2.0, 1.0]), 2, seed=0).tensor, 2, seed=9)
    assert np.random.random_sample() == expected


def test_moments_estimate_their_population_values():
    weights = tgmm_weights(np.array([0.3, 0.5, 0.7]))
    means = build_means(4, 3, separation=5.0, cosine=0.2, seed=2)
    inst = sample_mixture(weights, means, samples=40_000, seed=4, noise=1.0)
    moments = spherical_moments(inst.x, 3)
    assert moments.noise == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(moments.first, weights @ means, atol=0.15)
    pairs = np.einsum("k,ka,kb->ab", weights, means, means)
    assert np.abs(moments.pairs - pairs).max() < 0.25
    white = whitening(moments.pairs, 3)
    np.testing.assert_allclose(white.whiten.T @ moments.pairs @ white.whiten, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(white.unwhiten @ white.whiten.T @ white.unwhiten, white.unwhiten, atol=1e-12)
    tensor = whitened_tensor(inst.x, moments, white)
    truth = population_tensor(weights, means, white)
    assert np.abs(tensor - truth).max() < 0.15 * np.abs(truth).max()


def test_data_form_of_the_contraction_equals_the_explicit_tensor():
    inst = sample_mixture(tgmm_weights(np.array([0.4, 0.6])), build_means(3, 2, 4.0, 0.1, 0), 300, seed=1)
    moments = spherical_moments(inst.x, 2)
    white = whitening(moments.pairs, 2)
    tensor = whitened_tensor(inst.x, moments, white)
    y, m = inst.x @ white.whiten, white.whiten.T @ moments.first
    gram = white.whiten.T @ white.whiten
    for v in np.random.default_rng(0).standard_normal((5, 2)):
        np.testing.assert_allclose(whitened_contraction(y, m, gram, v), contract(tensor, v), rtol=1e-12, atol=1e-12)


def test_spectral_estimate_recovers_a_well_sampled_mixture():
    weights = tgmm_weights(np.array([0.25, 0.5, 0.75]))
    means = build_means(5, 3, separation=6.0, cosine=0.3, seed=8)
    inst = sample_mixture(weights, means, samples=20_000, seed=9)
    estimate = spectral_gmm(inst.x, 3, random_orthonormal(3, 3, np.random.default_rng(0)).T, iterations=30)
    assert matched_mean_errors(estimate.means, means).max() < 0.3
    order = match_components(estimate.means, means)
    np.testing.assert_allclose(estimate.weights[order], weights, atol=0.03)
    weights_again, means_again = unwhiten(estimate.decomposition, estimate.whitening)
    np.testing.assert_array_equal(means_again, estimate.means)


def test_matching_undoes_a_permutation():
    truth = np.random.default_rng(0).standard_normal((4, 3))
    permutation = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(truth[permutation][match_components(truth[permutation], truth)], truth)
    assert matched_mean_errors(truth[permutation], truth).max() == 0.0


@pytest.mark.parametrize("components", [3, 5])
def test_more_components_than_dimensions_is_a_clear_error(components):
    x = np.random.default_rng(0).standard_normal((100, 2))
    with pytest.raises(ValueError, match=r"K=\d exceeds the data dimension d=2"):
        spherical_moments(x, components)
    with pytest.raises(ValueError, match="K <= d"):
        check_components(components, 2)


@pytest.mark.parametrize(
    "x, components, message",
    [
        (np.ones((5,)), 1, r"shape \(n, d\)"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), 1, "non-finite"),
        (np.ones((10, 3)), 0, "integer >= 1"),
    ],
)
def test_bad_inputs_are_named(x, components, message):
    with pytest.raises(ValueError, match=message):
        spherical_moments(x, components)


def test_power_method_rejects_bad_shapes():
    with pytest.raises(ValueError, match="cubic"):
        tensor_power_method(np.zeros((2, 3, 3)), np.eye(2), 3)
    with pytest.raises(ValueError, match="seeds"):
        tensor_power_method(np.zeros((2, 2, 2)), np.eye(3), 3)
    with pytest.raises(ValueError, match="iterations"):
        tensor_power_method(np.zeros((2, 2, 2)), np.eye(2), 0)
