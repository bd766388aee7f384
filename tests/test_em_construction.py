"""The EM / Lloyd transformer, block by block and end to end, against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from em_support import EPS, hard_pair, mean_errors, score_tolerance, soft_pair

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.em.construction import tutorial_example
from tfconstruct.constructions.piecewise import PiecewiseLinear, geometric_knots
from tfconstruct.theory.em import (
    EM_HARD_MSTEP,
    EM_PROPAGATION,
    EM_SOFT_ESTEP,
    EM_SOFT_MSTEP,
    EM_SOFT_STATE_STEP,
    EM_SOFT_STEP,
)
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em.reference import (
    MixtureState,
    initial_state,
    lloyd,
    responsibilities,
    soft_em,
    step_lipschitz,
)
from tfconstruct.verify.em.strategies import build_mixture, half_margins
from tfconstruct.verify.rates import assert_rate

SCRATCH = ("resp_new", "mu_new", "sq_norm_new", "resp_mean")


@pytest.fixture(scope="module")
def gaussian():
    """Three clusters in R^3, Gaussian noise (sigma = 1), separation 4, initialised off the truth."""
    return build_mixture(0, 3, 3, 40, separation=4.0, noise=1.0, init_radius=1.0)


@pytest.fixture(scope="module")
def clipped():
    """Three clusters in R^3 with noise clipped to 0.7 and separation 6: half-margins >= 12."""
    return build_mixture(2, 3, 3, 20, separation=6.0, noise=0.5, noise_radius=0.7, init_radius=0.7)


def centroid_rows(construction: EMConstruction, stream: torch.Tensor, name: str) -> torch.Tensor:
    n = stream.shape[-2] - construction.components
    return construction.layout.read(stream, name)[..., n:, :]


def test_depth_heads_and_layouts():
    soft = EMConstruction(2, components=3, iterations=4)
    assert (soft.model.depth, len(soft.model), soft.model.max_heads) == (12, 24, 2)
    assert {"pi", "log_pi", "log_resp", "resp_mean"} <= set(soft.layout.names)
    hard = EMConstruction(2, components=3, iterations=4, mode="hard", beta=100.0)
    assert (hard.model.depth, hard.model.max_heads) == (12, 1)
    assert not {"pi", "log_pi", "log_resp", "resp_mean"} & set(hard.layout.names)
    equal = EMConstruction(2, components=3, iterations=1, update_weights=False)
    assert "log_resp" in equal.layout.names and "pi" not in equal.layout.names
    assert soft.model.max_mlp_width == 3 * (32 + 2) + 6 + 4 * 3


def test_refresh_writes_exact_squared_norms_and_interpolated_log_weights(gaussian):
    construction = EMConstruction(3, components=3, iterations=1, radius=gaussian.radius, width=16, weight_floor=0.05)
    weights = np.array([0.2, 0.5, 0.3])
    stream = construction.refresh(construction.embed(gaussian.points, gaussian.init_means, weights))
    norms = (gaussian.init_means**2).sum(axis=1)
    np.testing.assert_allclose(
        centroid_rows(construction, stream, "sq_norm")[0, :, 0], norms, rtol=0, atol=8 * EPS * gaussian.radius**2
    )
    interpolant = PiecewiseLinear.interpolate(np.log, geometric_knots(0.05, 1.0, 16))
    np.testing.assert_allclose(
        centroid_rows(construction, stream, "log_pi")[0, :, 0], interpolant(weights), rtol=0, atol=1e-14
    )
    assert not np.allclose(interpolant(weights), np.log(weights), atol=1e-4)  # the log really is approximated


def test_e_step_is_exact_given_its_keys(gaussian):
    """Exact squared norms and log-weights in the keys: responsibilities to round-off."""
    beta = 0.7
    construction = EMConstruction(3, components=3, iterations=1, beta=beta, radius=gaussian.radius)
    weights = np.array([0.2, 0.5, 0.3])
    stream = construction.embed(gaussian.points, gaussian.init_means, weights)
    centroid_rows(construction, stream, "sq_norm")[0, :, 0] = torch.as_tensor((gaussian.init_means**2).sum(axis=1))
    centroid_rows(construction, stream, "log_pi")[0, :, 0] = torch.log(torch.as_tensor(weights))
    ours = construction.readout(construction.e_step(stream)).responsibilities[0].numpy()
    expected = responsibilities(gaussian.points, initial_state(gaussian.init_means, weights, 1.0 / beta))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=score_tolerance(beta, gaussian.radius))


def test_log_responsibilities_are_the_interpolant_to_round_off(gaussian):
    """The right-anchored hinge log has no cancellation: even at M = 1024 it matches the interpolant to 1e-13."""
    construction = EMConstruction(3, components=3, iterations=1, radius=gaussian.radius, width=1024)
    stream = construction.e_step(construction.refresh(construction.embed(gaussian.points, gaussian.init_means)))
    n = gaussian.size
    resp = construction.layout.read(stream, "resp")[0, :n].numpy()
    knots = geometric_knots(1e-8, 1.0, 1024)
    expected = np.interp(resp, knots, np.log(knots))  # linear interpolation, flat outside [eps, 1]
    np.testing.assert_allclose(
        construction.layout.read(stream, "log_resp")[0, :n].numpy(), expected, rtol=0, atol=1e-13
    )


def test_scratch_is_zero_and_norms_fresh_after_every_iteration(gaussian):
    construction = EMConstruction(3, components=3, iterations=3, radius=gaussian.radius, width=16)
    trace = construction.model(construction.embed(gaussian.points, gaussian.init_means), trace=True)
    per_iteration = len(construction.iteration)
    for t in range(1, 4):
        stream = trace.streams[t * per_iteration]
        for name in SCRATCH:
            assert torch.count_nonzero(construction.layout.read(stream, name)) == 0, (name, t)
        refreshed = construction.refresh(stream)
        means = centroid_rows(construction, stream, "mu")
        np.testing.assert_allclose(
            centroid_rows(construction, refreshed, "sq_norm")[0, :, 0],
            (means[0] ** 2).sum(-1),
            rtol=0,
            atol=8 * EPS * gaussian.radius**2,
        )


def test_first_soft_step_weights_exact_and_means_within_bound(gaussian):
    """Uniform initial weights: the first E-step is exact, so pi^(1) is exact and the means meet the M-step bound."""
    _, readouts, reference = soft_pair(gaussian, 1, width=32)
    np.testing.assert_allclose(readouts[0].weights[0].numpy(), reference[0].weights, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        readouts[0].responsibilities[0].numpy(),
        reference[0].responsibilities,
        rtol=0,
        atol=score_tolerance(1.0, gaussian.radius),
    )
    check_bound(
        EM_SOFT_MSTEP,
        mean_errors(readouts, reference)[0],
        instance=gaussian.summary(),
        D=gaussian.diameter,
        M=32,
        epsilon=1e-8,
        pi_min=reference[0].weights.min(),
    )


def test_soft_mean_error_falls_as_width_to_the_minus_two(gaussian):
    widths = [16, 32, 64, 128, 256]
    errors = []
    for width in widths:
        _, readouts, reference = soft_pair(gaussian, 1, width=width)
        errors.append(mean_errors(readouts, reference)[0])
        values = dict(D=gaussian.diameter, M=width, epsilon=1e-8, pi_min=reference[0].weights.min())
        check_bound(EM_SOFT_MSTEP, errors[-1], instance=gaussian.summary(), **values)
    assert_rate(widths, errors, expected=-2.0, tolerance=0.3)


def test_soft_error_does_not_grow_over_iterations(gaussian):
    """Non-uniform initial weights (log pi approximated from the start), 8 iterations: within the propagation bound."""
    weights = np.array([0.2, 0.5, 0.3])
    iterations, width = 8, 64
    construction = EMConstruction(3, components=3, iterations=iterations, radius=gaussian.radius, width=width)
    readouts = construction.trajectory(construction.embed(gaussian.points, gaussian.init_means, weights))
    state = initial_state(gaussian.init_means, weights)
    reference = soft_em(gaussian.points, state, iterations)
    diameter = gaussian.diameter
    kappa = max(
        step_lipschitz(gaussian.points, s, weight_scale=diameter)
        for s in [state] + [MixtureState(r.means, r.weights, r.variances) for r in reference[:-1]]
    )
    pi_min = min(min(r.weights.min() for r in reference), min(float(r.weights.min()) for r in readouts))
    step = EM_SOFT_STATE_STEP(D=diameter, M=width, epsilon=1e-8, pi_min=pi_min, pi_floor=1e-2, K=3)
    errors = mean_errors(readouts, reference)
    for t, error in enumerate(errors, start=1):
        check_bound(EM_PROPAGATION, error, instance=gaussian.summary(), epsilon_step=step, kappa=kappa, L=t)
    single_step = EM_SOFT_STEP(D=diameter, M=width, epsilon=1e-8, pi_min=pi_min, pi_floor=1e-2)
    assert errors.max() <= single_step


def test_equal_weights_variant_tracks_equal_weight_em(gaussian):
    """Equal fixed weights: every E-step is exact, the M-step log is the only approximation."""
    _, readouts, reference = soft_pair(gaussian, 4, width=64, update_weights=False)
    assert readouts[0].weights is None
    states = [initial_state(gaussian.init_means)] + [
        MixtureState(r.means, r.weights, r.variances) for r in reference[:-1]
    ]
    kappa = max(step_lipschitz(gaussian.points, s, weight_scale=1.0, update_weights=False) for s in states)
    pi_min = min(r.responsibilities.mean(axis=0).min() for r in reference)
    step = np.sqrt(3) * EM_SOFT_MSTEP(D=gaussian.diameter, M=64, epsilon=1e-8, pi_min=pi_min)
    for t, error in enumerate(mean_errors(readouts, reference), start=1):
        check_bound(EM_PROPAGATION, error, instance=gaussian.summary(), epsilon_step=step, kappa=kappa, L=t)


def test_hard_mode_is_lloyd_to_round_off(clipped):
    reference_margin = half_margins(clipped.points, clipped.init_means).min()
    _, readouts, reference = hard_pair(clipped, 4, beta=60.0 / reference_margin)
    for ours, theirs in zip(readouts, reference):
        np.testing.assert_array_equal(ours.labels[0].numpy(), theirs.labels)
    assert mean_errors(readouts, reference).max() <= 16 * EPS * clipped.radius


def test_hard_mode_error_decays_like_exp_minus_beta_margin(clipped):
    margin = half_margins(clipped.points, clipped.init_means).min()
    betas = np.array([4.0, 8.0, 12.0, 16.0]) / margin
    errors = []
    for beta in betas:
        _, readouts, reference = hard_pair(clipped, 1, beta=beta)
        np.testing.assert_array_equal(readouts[0].labels[0].numpy(), reference[0].labels)
        errors.append(mean_errors(readouts, reference)[0])
        check_bound(
            EM_HARD_MSTEP,
            errors[-1],
            instance=clipped.summary(),
            D=clipped.diameter,
            a=50.0,
            n=clipped.size,
            n_min=clipped.sizes.min(),
            K=3,
            beta=beta,
            g=margin,
        )
    assert_rate(betas, errors, expected=-margin, tolerance=0.15 * margin, scale="semilog")


def test_batch_entries_are_independent():
    first = build_mixture(11, 2, 2, 15, separation=5.0, noise=0.5, init_radius=0.5)
    second = build_mixture(12, 2, 2, 15, separation=5.0, noise=0.5, init_radius=0.5)
    radius = max(first.radius, second.radius)
    construction = EMConstruction(2, components=2, iterations=2, radius=radius, width=32)
    both = construction.run(np.stack([first.points, second.points]), np.stack([first.init_means, second.init_means]))
    for item, instance in enumerate([first, second]):
        alone = construction.run(instance.points, instance.init_means)
        np.testing.assert_allclose(both.means[item], alone.means[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(both.weights[item], alone.weights[0], rtol=0, atol=1e-15)


def test_one_set_of_weights_serves_every_n():
    construction = EMConstruction(2, components=2, iterations=2, mode="hard", beta=200.0, radius=20.0)
    for per_cluster in (1, 7, 60):
        instance = build_mixture(5, 2, 2, per_cluster, separation=6.0, noise=0.5, noise_radius=0.5, init_radius=0.5)
        readout = construction.run(instance.points, instance.init_means)
        expected = lloyd(instance.points, instance.init_means, 2)[-1]
        np.testing.assert_allclose(readout.means[0].numpy(), expected.means, rtol=0, atol=1e-13)


def test_tutorial_example_is_one_soft_em_step():
    example = tutorial_example(iterations=1)
    assert example.stream.shape[0] == 1
    assert all(f"`{name}`" in example.notes for name in example.model.layout.names)
    layout, out = example.model.layout, example.model(example.stream)
    n = example.stream.shape[1] - 2
    points = layout.read(example.stream, "x")[0, :n].numpy()
    state = initial_state(
        layout.read(example.stream, "mu")[0, n:].numpy(), layout.read(example.stream, "pi")[0, n:, 0].numpy()
    )
    expected = soft_em(points, state, 1)[0]
    resp_error = np.abs(layout.read(out, "resp")[0, :n].numpy() - expected.responsibilities).sum(axis=1).max()
    check_bound(EM_SOFT_ESTEP, resp_error, instance={"tutorial": True}, M=4, pi_floor=0.1)
    weight_error = np.abs(layout.read(out, "pi")[0, n:, 0].numpy() - expected.weights).sum()
    check_bound(EM_SOFT_ESTEP, weight_error, instance={"tutorial": True}, M=4, pi_floor=0.1)
    diameter = np.linalg.norm(points[:, None] - points[None], axis=-1).max()
    mean_error = np.linalg.norm(layout.read(out, "mu")[0, n:].numpy() - expected.means, axis=1).max()
    check_bound(
        EM_SOFT_STEP,
        mean_error,
        instance={"tutorial": True},
        D=diameter,
        M=4,
        epsilon=1e-4,
        pi_min=expected.weights.min(),
        pi_floor=0.1,
    )
