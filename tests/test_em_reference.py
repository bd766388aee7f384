"""The numpy EM / Lloyd reference against scikit-learn, step by step, to round-off."""

from __future__ import annotations

import numpy as np
import pytest

from tfconstruct.verify.em.reference import (
    MixtureState,
    initial_state,
    lloyd,
    lloyd_step,
    responsibilities,
    sklearn_gmm_steps,
    sklearn_kmeans,
    sklearn_responsibilities,
    soft_em,
    soft_em_step,
    step_lipschitz,
)
from tfconstruct.verify.em.strategies import build_mixture

ROUND_OFF = 1e-12


@pytest.fixture(scope="module")
def mixture():
    """Three unequal clusters in R^3 with Gaussian noise, initialised off the truth."""
    return build_mixture(7, 3, 3, [60, 80, 60], separation=4.0, noise=1.0, init_radius=1.0)


def state_for(mixture, variances) -> MixtureState:
    return initial_state(mixture.init_means, [0.25, 0.4, 0.35], variances)


def assert_states_close(ours: MixtureState, theirs: MixtureState, tol: float = ROUND_OFF) -> None:
    np.testing.assert_allclose(ours.means, theirs.means, rtol=0, atol=tol)
    np.testing.assert_allclose(ours.weights, theirs.weights, rtol=0, atol=tol)
    np.testing.assert_allclose(ours.variances, theirs.variances, rtol=tol, atol=0)


def test_e_step_matches_predict_proba(mixture):
    state = state_for(mixture, np.array([0.8, 1.3, 1.1]))
    ours = responsibilities(mixture.points, state)
    np.testing.assert_allclose(ours, sklearn_responsibilities(mixture.points, state), rtol=0, atol=ROUND_OFF)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, rtol=0, atol=ROUND_OFF)


@pytest.mark.parametrize("steps", [1, 5])
def test_spherical_steps_match_sklearn(mixture, steps):
    state = state_for(mixture, np.array([0.8, 1.3, 1.1]))
    ours = soft_em(mixture.points, state, steps, variance_update="spherical")[-1]
    assert_states_close(ours, sklearn_gmm_steps(mixture.points, state, covariance_type="spherical", steps=steps))


def test_shared_variance_step_matches_sklearn_tied(mixture):
    state = state_for(mixture, 1.2)
    ours = soft_em_step(mixture.points, state, variance_update="shared")
    assert_states_close(ours, sklearn_gmm_steps(mixture.points, state, covariance_type="tied"))


def test_fixed_variance_step_has_sklearn_means_and_weights(mixture):
    """The construction's variant (variance kept) agrees with sklearn's full step on means and weights."""
    state = state_for(mixture, 1.0)
    fixed = soft_em_step(mixture.points, state)
    full = sklearn_gmm_steps(mixture.points, state)
    np.testing.assert_allclose(fixed.means, full.means, rtol=0, atol=ROUND_OFF)
    np.testing.assert_allclose(fixed.weights, full.weights, rtol=0, atol=ROUND_OFF)
    np.testing.assert_array_equal(fixed.variances, state.variances)


def test_fixed_variance_trajectory_matches_sklearn_restarted_each_step(mixture):
    """Several fixed-variance steps = sklearn steps each restarted from the previous means and weights."""
    state = state_for(mixture, 1.0)
    for ours in soft_em(mixture.points, state, 4):
        theirs = sklearn_gmm_steps(mixture.points, state)
        np.testing.assert_allclose(ours.means, theirs.means, rtol=0, atol=ROUND_OFF)
        np.testing.assert_allclose(ours.weights, theirs.weights, rtol=0, atol=ROUND_OFF)
        state = MixtureState(theirs.means, theirs.weights, state.variances)


@pytest.mark.parametrize("steps", [1, 4])
def test_lloyd_matches_kmeans(mixture, steps):
    trajectory = lloyd(mixture.points, mixture.init_means, steps + 1)
    centres, labels = sklearn_kmeans(mixture.points, mixture.init_means, steps)
    np.testing.assert_allclose(trajectory[steps - 1].means, centres, rtol=0, atol=ROUND_OFF)
    np.testing.assert_array_equal(trajectory[steps].labels, labels)


def test_lloyd_is_the_zero_variance_limit_of_soft_em(mixture):
    lloyd_means = lloyd_step(mixture.points, mixture.init_means).means
    cold = soft_em_step(mixture.points, initial_state(mixture.init_means, variance=1e-6), update_weights=False).means
    np.testing.assert_allclose(cold, lloyd_means, rtol=0, atol=1e-9)


def test_empty_cluster_takes_the_data_mean(mixture):
    far = mixture.init_means.copy()
    far[2] = 1e3
    state = lloyd_step(mixture.points, far)
    assert state.weights[2] == 0
    np.testing.assert_allclose(state.means[2], mixture.points.mean(axis=0), rtol=0, atol=ROUND_OFF)
    underflow = soft_em_step(mixture.points, initial_state(far, variance=1e-3))
    np.testing.assert_allclose(underflow.means[2], mixture.points.mean(axis=0), rtol=0, atol=ROUND_OFF)


def test_floor_raises_small_weights_to_the_floor(mixture):
    state = initial_state(mixture.init_means)
    resp = responsibilities(mixture.points, state)
    floored = soft_em_step(mixture.points, state, floor=1e-3)
    expected = np.maximum(resp, 1e-3).T @ mixture.points / np.maximum(resp, 1e-3).sum(axis=0)[:, None]
    np.testing.assert_allclose(floored.means, expected, rtol=0, atol=ROUND_OFF)
    np.testing.assert_allclose(floored.weights, resp.mean(axis=0), rtol=0, atol=ROUND_OFF)


def test_step_lipschitz_is_small_near_a_well_separated_fixed_point():
    separated = build_mixture(3, 3, 2, 40, separation=8.0, noise=1.0, init_radius=0.5)
    state = soft_em(separated.points, initial_state(separated.init_means), 20)[-1]
    fixed_point = MixtureState(state.means, state.weights, state.variances)
    kappa = step_lipschitz(separated.points, fixed_point, weight_scale=separated.diameter)
    assert 0 < kappa < 0.2
    close = build_mixture(3, 3, 2, 40, separation=1.5, noise=1.0, init_radius=0.5)
    assert step_lipschitz(close.points, initial_state(close.init_means), weight_scale=close.diameter) > kappa


def test_unknown_variance_update_is_rejected(mixture):
    with pytest.raises(ValueError, match="variance_update"):
        soft_em_step(mixture.points, initial_state(mixture.init_means), variance_update="diag")
