"""The spectral GMM pipeline on sampled spherical mixtures: pre-processing, transformer, post-processing."""

import numpy as np
import pytest

from tfconstruct.constructions.power import default_seeds
from tfconstruct.constructions.tensor import SpectralGMM, preprocess
from tfconstruct.theory.tensor import (
    EIGENVALUE,
    EIGENVALUE_DEFLATED,
    MEAN,
    MEAN_DEFLATED,
    WEIGHT_FROM_EIGENVALUES,
    readout_norm_error,
)
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.tensor.moments import Whitening, spherical_moments, whitened_tensor, whitening
from tfconstruct.verify.tensor.reference import (
    em_from_bad_init,
    matched_mean_errors,
    spectral_gmm,
    tensor_power_method,
    unwhiten,
)
from tfconstruct.verify.tensor.strategies import build_means, build_polygon_means, sample_mixture, tgmm_weights

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def mixture(dimension=4, components=3, samples=200, seed=0, separation=5.0, cosine=0.3):
    weights = tgmm_weights(np.linspace(0.25, 0.75, components))
    return sample_mixture(weights, build_means(dimension, components, separation, cosine, seed), samples, seed=seed + 1)


def reference_in_the_same_whitening(x, estimate, seeds, iterations):
    """The numpy reference run on the pipeline's own whitening (eigenvector signs are arbitrary, so a step-by-step
    comparison needs the same W): explicit tensor, explicit deflation."""
    pre = estimate.preprocessed
    white = Whitening(pre.whiten[0].numpy(), pre.unwhiten[0].numpy(), pre.pair_eigenvalues[0].numpy())
    moments = spherical_moments(x, white.whiten.shape[1])
    tensor = whitened_tensor(x, moments, white)
    return tensor_power_method(tensor, seeds, iterations), white


def test_preprocessing_matches_the_numpy_moments():
    inst = mixture(samples=300)
    pre = preprocess(inst.x, 3)
    moments = spherical_moments(inst.x, 3)
    white = whitening(moments.pairs, 3)
    assert pre.noise[0].item() == pytest.approx(moments.noise, rel=1e-12)
    np.testing.assert_allclose(pre.pair_eigenvalues[0].numpy(), white.eigenvalues, rtol=1e-12)
    signs = np.sign((pre.whiten[0].numpy() * white.whiten).sum(axis=0))  # eigenvectors are defined up to sign
    np.testing.assert_allclose(pre.whiten[0].numpy(), white.whiten * signs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pre.unwhiten[0].numpy(), white.unwhiten * signs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pre.y[0].numpy(), inst.x @ white.whiten * signs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pre.moment[0].numpy(), (white.whiten * signs).T @ moments.first, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("newton_steps", [0, 1])
def test_transformer_matches_the_reference_within_the_readout_bounds(newton_steps):
    """Component 0: rigorous read-out bounds; later components: plus the first-order deflation leak."""
    inst = mixture(samples=200)
    pipeline = SpectralGMM(3, iterations=15, width=64, newton_steps=newton_steps)
    estimate = pipeline.fit(inst.x)
    decomposition, white = reference_in_the_same_whitening(inst.x, estimate, pipeline.seeds, 15)
    _, means = unwhiten(decomposition, white)
    domain = estimate.construction.engine.domain
    delta = readout_norm_error(64, domain.low, domain.high, newton_steps)
    overlaps = np.abs(decomposition.vectors @ decomposition.vectors.T - np.eye(3)).max()
    context = dict(
        delta=delta,
        K=3,
        Lambda=decomposition.eigenvalues.max() / decomposition.eigenvalues.min(),
        omega=overlaps,
        kappa_B=float(np.sqrt(white.eigenvalues[0] / white.eigenvalues[-1])),
    )
    eigen_ratio = estimate.power.eigenvalues[0].numpy() / decomposition.eigenvalues
    mean_errors = np.linalg.norm(estimate.means[0].numpy() - means, axis=1) / np.linalg.norm(means, axis=1)
    # component 0 has the reference's direction exactly: lambda ratio = s^3 and mu = s^4 mu_ref, s = |v_0|
    s = np.linalg.norm(estimate.power.vectors[0, 0].numpy())
    assert eigen_ratio[0] == pytest.approx(s**3, rel=1e-10)
    np.testing.assert_allclose(estimate.means[0, 0].numpy(), s**4 * means[0], rtol=1e-9, atol=1e-12)
    instance = {"samples": 200, "newton_steps": newton_steps}
    check_bound(EIGENVALUE, abs(eigen_ratio[0] - 1), instance=instance, delta=delta)
    check_bound(MEAN, mean_errors[0], instance=instance, delta=delta)
    eigen_bound = EIGENVALUE_DEFLATED(**{k: context[k] for k in ("delta", "K", "Lambda", "omega")})
    for j in range(3):
        check_bound(
            EIGENVALUE_DEFLATED,
            abs(eigen_ratio[j] - 1),
            instance=instance,
            **{k: context[k] for k in ("delta", "K", "Lambda", "omega")},
        )
        check_bound(MEAN_DEFLATED, mean_errors[j], instance=instance, **context)
    raw = decomposition.eigenvalues**-2.0
    weight_errors = np.abs(estimate.weights[0].numpy() / (raw / raw.sum()) - 1)
    check_bound(WEIGHT_FROM_EIGENVALUES, weight_errors.max(), instance=instance, epsilon_lambda=eigen_bound)


def test_pipeline_recovers_the_truth_as_the_reference_does():
    """Against the true means: the transformer's error is the reference's (statistical) error. The reference
    whitens with numpy's eigenvector signs, so its seeds start elsewhere and may deflate in another order; the
    estimates then differ at the sampling-noise level of the deflation, far below the statistical error."""
    inst = mixture(dimension=4, components=3, samples=500, seed=3, separation=6.0)
    pipeline = SpectralGMM(3, iterations=12, width=64, newton_steps=2)
    ours = matched_mean_errors(pipeline.fit(inst.x).means[0].numpy(), inst.means)
    theirs = matched_mean_errors(spectral_gmm(inst.x, 3, pipeline.seeds, iterations=12).means, inst.means)
    assert ours.max() < 0.6  # statistical error at n = 500, separation 6
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@pytest.mark.parametrize("components", [3, 5])
def test_more_components_than_dimensions_is_a_clear_error(components):
    means = build_polygon_means(2, components, separation=4.0, seed=0)
    inst = sample_mixture(np.full(components, 1.0 / components), means, 200, seed=1)
    with pytest.raises(ValueError, match=rf"components K={components} exceeds the data dimension d=2"):
        SpectralGMM(components).fit(inst.x)
    with pytest.raises(ValueError, match="K <= d"):
        preprocess(inst.x, components)
    with pytest.raises(ValueError, match="K <= d"):
        spectral_gmm(inst.x, components, np.eye(components), 5)


def test_too_few_knots_for_the_data_domain_is_a_clear_error():
    """Below the engine's tolerance (norm error 1/2) and below the pipeline's domain assumption (0.1) alike,
    the message names the smallest width that works, and that width does work."""
    x = mixture(samples=60).x
    with pytest.raises(ValueError, match=r"width M=8 is too small .* use width >= \d+"):
        SpectralGMM(3, width=8).fit(x)
    with pytest.raises(ValueError, match=r"width M=24 gives a normaliser error .* use width >= (\d+)") as error:
        SpectralGMM(3, width=24).fit(x)
    smallest = int(error.value.args[0].rsplit(">= ", 1)[1])
    assert np.isfinite(SpectralGMM(3, width=smallest).fit(x).means.numpy()).all()


def test_bad_samples_are_named():
    with pytest.raises(ValueError, match="x contains non-finite"):
        SpectralGMM(2).fit(np.full((20, 3), np.inf))
    with pytest.raises(ValueError, match="x must have 2 or 3 dimensions"):
        SpectralGMM(2).fit(np.zeros(5))
    with pytest.raises(ValueError, match="M2 has no K=2 well-separated positive eigenvalues"):
        preprocess(
            np.tile(np.array([[1.0, 0.0, 0.0]]), (50, 1)) + 1e-3 * np.arange(50)[:, None] * np.array([1.0, 0, 0]), 2
        )


def test_em_from_a_bad_start_fails_where_the_spectral_method_does_not():
    """On built mixtures (d = 8, K = 5) one N(0, I) start strands EM in a local optimum for some seeds; the
    spectral estimate has no start to get wrong."""
    em_worst, spectral_worst = [], []
    for seed in range(6):
        inst = mixture(dimension=8, components=5, samples=2000, seed=seed)
        em_worst.append(matched_mean_errors(em_from_bad_init(inst.x, 5, seed=1000 + seed), inst.means).max())
        spectral_worst.append(
            matched_mean_errors(spectral_gmm(inst.x, 5, default_seeds(5, 5), 30).means, inst.means).max()
        )
    assert max(spectral_worst) < 1.0
    assert max(em_worst) > 2.5  # a mean off by more than half the separation
