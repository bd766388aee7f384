"""The SphericalEM report part (verify/em/spherical_part.py): the log-likelihood helper against scikit-learn, the part
in quick mode with every check passing, iris over 20 warm-started GaussianMixture steps within the propagated bound,
and the step bound for d up to 32."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from tfconstruct.verify.em.reference import (
    MixtureState,
    soft_em,
    soft_em_step,
    spherical_log_likelihood,
    state_distance,
)
from tfconstruct.verify.em.spherical_part import (
    as_state,
    real_data_errors,
    real_start,
    spherical_part,
    spherical_trajectory,
    standardised,
    step_bound,
)
from tfconstruct.verify.em.strategies import VarianceInstance, build_variance_mixture, variance_mixtures
from tfconstruct.verify.results import ReportContext
from tfconstruct.verify.testing import assert_exact

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def fitted_mixture(points: np.ndarray, start: MixtureState, steps: int) -> GaussianMixture:
    model = GaussianMixture(
        n_components=start.means.shape[0],
        covariance_type="spherical",
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=1.0 / start.variances,
        max_iter=1,
        n_init=1,
        tol=0.0,
        reg_covar=0.0,
        warm_start=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(steps):
            model.fit(points)
    return model


@pytest.mark.parametrize("data", ["iris", "synthetic"])
def test_log_likelihood_is_scikit_learn_score_times_n(data: str):
    if data == "iris":
        points, start = standardised("iris"), real_start(standardised("iris"))
    else:
        instance = build_variance_mixture(3, [30, 50, 70], 5, [1.0, 0.3, 0.1], separation=3.0, init_shift=0.5)
        points, start = instance.points, instance.start
    model = fitted_mixture(points, start, 3)
    state = MixtureState(model.means_, model.weights_, np.asarray(model.covariances_))
    ours = spherical_log_likelihood(points, state)
    assert ours == pytest.approx(model.score(points) * points.shape[0], rel=1e-12)
    assert ours == pytest.approx(float(model.score_samples(points).sum()), rel=1e-12)
    before = spherical_log_likelihood(points, start)
    assert ours > before  # three EM steps raise the likelihood


def test_the_part_runs_in_quick_mode_and_every_check_passes(tmp_path):
    bound_checks = []
    part = spherical_part(ReportContext(tmp_path, quick=True), bound_checks)
    assert [c.name for c in part.checks if not c.passed] == []
    assert len(part.checks) == 7
    assert bound_checks and all(c.passed for c in bound_checks)
    data = part.data["spherical"]
    width = data["width"]["errors"]
    assert max(width["weights"][w][0] for w in range(2)) < 1e-14  # the first step's weights are exact
    for name in ("means", "variances"):  # M = 16 -> 64: at least 8 times smaller (order -2 is 16)
        assert width[name][1][-1] < width[name][0][-1] / 8
    depth = data["depth"]
    assert len(depth["errors"]) == 5 and max(depth["errors"]) < 5e-3
    likelihood = np.array(depth["log_likelihood"]["reference"])
    assert np.all(np.diff(likelihood) >= 0)
    for row in data["accuracy"]:
        scores = np.array(row["accuracy"])
        assert np.all(scores[:, 0] >= scores[:, 1]) and np.all(scores[:, 0] == scores[:, 2])
    rows = sum(line.startswith("| ") for line in part.markdown)  # table headers and rows, not separators
    assert rows == 5 + 2 + 5 + 2 + 2 * 5  # 5 headers; widths, depths, separations, L per data set


def test_iris_twenty_steps_track_gaussian_mixture_within_the_propagated_bound():
    """M = 128, L = 1..20 warm-started GaussianMixture steps (spherical): every state error within em_propagation, the
    largest below 5e-3 (measured 1.8e-3), and scikit-learn's trajectory is numpy soft EM's to round-off."""
    errors, checks, sklearn, readouts = real_data_errors("iris", 128, 20)
    assert len(errors) == len(checks) == len(sklearn) == len(readouts) == 20
    assert all(c.passed for c in checks), [(c.measured, c.bound) for c in checks if not c.passed]
    assert errors.max() < 5e-3
    points = standardised("iris")
    reference = soft_em(points, real_start(points), 20, variance_update="spherical")
    for theirs, ours in zip(sklearn, reference):
        assert_exact(theirs.means, ours.means, depth=8, scale=10.0, what="means")
        assert_exact(theirs.variances, ours.variances, depth=8, scale=10.0, what="variances")
    final = as_state(readouts[-1])
    assert np.abs(final.weights - sklearn[-1].weights).max() < 1e-3
    assert np.isclose(final.weights.sum(), 1.0, atol=1e-12)


@settings(max_examples=4, deadline=None)
@given(variance_mixtures(dims=st.integers(9, 32)))
def test_each_step_is_within_the_step_bound_up_to_dimension_32(instance: VarianceInstance):
    """d in [9, 32] (tests/test_em_spherical.py draws d <= 8): first step's weights exact; steps 1 to 3 each within
    em_spherical_step of the EM step from the construction's own state."""
    width = 128
    readouts = spherical_trajectory(instance.points, instance.start, width, 3, instance.variance_range)
    first = soft_em_step(instance.points, instance.start, variance_update="spherical")
    assert_exact(readouts[0].weights[0], first.weights, depth=4, what="pi after step 1")
    previous = instance.start
    for readout in readouts:
        expected = soft_em_step(instance.points, previous, variance_update="spherical")
        ours = as_state(readout)
        error = state_distance(ours, expected, instance.diameter)
        pi_min = min(float(expected.weights.min()), float(ours.weights.min()))
        bound = step_bound(instance.diameter, width, pi_min, instance.clusters, instance.dim, instance.variance_range)
        note(f"d = {instance.dim}: step error {error:.3g}, bound {bound:.3g}")
        assert error <= bound
        previous = MixtureState(ours.means, ours.weights, ours.variances)


def test_a_new_users_refusals_name_the_cause():
    """A range reaching below the floor's leak, weights not summing to 1, default variances outside the range and a
    NaN at a named index."""
    from tfconstruct.constructions.em import SphericalEM

    rng = np.random.default_rng(0)
    points, means = rng.standard_normal((60, 2)), np.array([[0.0, 0.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match=r"lower end 1e-06 is below what the log-responsibility floor leaks"):
        SphericalEM(2, components=2, iterations=1, radius=8.0, variance_range=(1e-6, 10.0)).embed(points, means)
    good = SphericalEM(2, components=2, iterations=1, radius=8.0)
    with pytest.raises(ValueError, match="entry 0 sums to 0.9"):
        good.embed(points, means, np.array([0.45, 0.45]))
    with pytest.raises(ValueError, match=r"the default variances 1 \(none were given\)"):
        SphericalEM(2, components=2, iterations=1, radius=8.0, variance_range=(0.01, 0.5)).embed(points, means)
    bad = points.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"the first at index \(0, 4, 1\)"):
        good.embed(bad, means)
