"""Property tests over built mixtures: K from 2 to 6, d from 1 to 32, prescribed separation."""

from __future__ import annotations

import numpy as np
import torch
from em_support import EPS, hard_pair, mean_errors, score_tolerance, soft_pair
from hypothesis import given, note, settings, strategies as st

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.theory.em import EM_PROPAGATION, EM_SOFT_MSTEP, EM_SOFT_STATE_STEP
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em.reference import MixtureState, initial_state, lloyd, responsibilities, step_lipschitz
from tfconstruct.verify.em.strategies import MixtureInstance, half_margins, mixtures
from tfconstruct.verify.rates import assert_rate, fit_slope

# Overlapping mixtures (Gaussian noise, Delta / sigma from 2.2 to 3.3): responsibilities spread over
# [floor, 1]. On well-separated data most responsibilities sit within one knot interval of 1, where
# the interpolation error is first order (h |log w| / 2), so the measured slope drifts towards -1
# until h < |log w|; the sup bound itself is second order either way.
overlapping = mixtures(
    clusters=st.integers(2, 4),
    dims=st.integers(1, 8),
    per_cluster=st.integers(40, 60),
    separation=st.floats(3.0, 5.0),
    noise_fraction=st.floats(0.3, 0.45),
    clip_noise=False,
)


@st.composite
def mixture_weights(draw: st.DrawFn, clusters: int) -> np.ndarray:
    raw = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=clusters, max_size=clusters)))
    return raw / raw.sum()


@given(mixtures(), st.data())
def test_e_step_is_exact(instance: MixtureInstance, data: st.DataObject):
    """Responsibilities from the E-step head equal the reference's for any weights, to score round-off."""
    weights = data.draw(mixture_weights(instance.clusters))
    beta = 1.0 / instance.noise**2
    construction = EMConstruction(
        instance.dim, components=instance.clusters, iterations=1, beta=beta, radius=instance.radius
    )
    stream = construction.embed(instance.points, instance.init_means, weights)
    centroids = slice(instance.size, None)
    construction.layout.read(stream, "sq_norm")[0, centroids, 0] = torch.as_tensor((instance.init_means**2).sum(axis=1))
    construction.layout.read(stream, "log_pi")[0, centroids, 0] = torch.log(torch.as_tensor(weights))
    ours = construction.readout(construction.e_step(stream)).responsibilities[0].numpy()
    expected = responsibilities(instance.points, initial_state(instance.init_means, weights, 1.0 / beta))
    error = np.abs(ours - expected).max()
    note(f"E-step error {error:.3g}, tolerance {score_tolerance(beta, instance.radius):.3g}")
    assert error <= score_tolerance(beta, instance.radius)


@given(mixtures())
def test_hard_labels_are_lloyds_and_means_exact(instance: MixtureInstance):
    """With beta * (smallest half-margin) = 60, three Lloyd iterations to round-off, identical labels."""
    trajectory = [instance.init_means] + [s.means for s in lloyd(instance.points, instance.init_means, 2)]
    margin = min(half_margins(instance.points, means).min() for means in trajectory)
    _, readouts, reference = hard_pair(instance, 3, beta=60.0 / margin)
    for ours, theirs in zip(readouts, reference):
        np.testing.assert_array_equal(ours.labels[0].numpy(), theirs.labels)
    assert mean_errors(readouts, reference).max() <= 64 * EPS * instance.radius
    np.testing.assert_array_equal(reference[0].labels, instance.labels)  # the instance was built for this


@given(mixtures())
def test_soft_means_stay_within_the_propagated_bound(instance: MixtureInstance):
    """Three soft EM iterations at width 32: error <= eps_step (1 - kappa^L) / (1 - kappa) at every L."""
    width, iterations = 32, 3
    _, readouts, reference = soft_pair(instance, iterations, width=width)
    diameter = instance.diameter
    states = [initial_state(instance.init_means, variance=instance.noise**2)]
    states += [MixtureState(s.means, s.weights, s.variances) for s in reference[:-1]]
    kappa = max(step_lipschitz(instance.points, s, weight_scale=diameter) for s in states)
    pi_min = min(min(s.weights.min() for s in reference), min(float(r.weights.min()) for r in readouts))
    step = EM_SOFT_STATE_STEP(D=diameter, M=width, epsilon=1e-8, pi_min=pi_min, pi_floor=1e-2, K=instance.clusters)
    errors = mean_errors(readouts, reference)
    note(f"errors {errors}, kappa {kappa:.3g}, step bound {step:.3g}")
    for t, error in enumerate(errors, start=1):
        check_bound(EM_PROPAGATION, error, instance=instance.summary(), epsilon_step=step, kappa=kappa, L=t)


@settings(max_examples=6)
@given(overlapping)
def test_soft_m_step_error_falls_at_rate_two_in_width(instance: MixtureInstance):
    """One iteration from uniform weights (exact E-step): M-step error <= bound, and its fitted slope
    in M within 0.45 of the bound's slope over the same widths (-2.25 here; -2 asymptotically)."""
    widths = [32, 64, 128, 256]
    errors, bounds = [], []
    for width in widths:
        _, readouts, reference = soft_pair(instance, 1, width=width)
        errors.append(mean_errors(readouts, reference)[0])
        values = dict(D=instance.diameter, M=width, epsilon=1e-8, pi_min=reference[0].weights.min())
        bounds.append(check_bound(EM_SOFT_MSTEP, errors[-1], instance=instance.summary(), **values).bound)
    note(f"errors {errors}")
    assert_rate(widths, errors, expected=fit_slope(widths, bounds), tolerance=0.45)
