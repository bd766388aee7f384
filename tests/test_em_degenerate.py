"""Degenerate inputs: empty clusters, duplicates, ties, extreme scales, overflow-prone beta, bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from em_support import EPS, hard_pair, mean_errors, score_tolerance, soft_pair

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.theory.em import EM_SOFT_MSTEP
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em.reference import initial_state, lloyd, lloyd_step, responsibilities, soft_em_step
from tfconstruct.verify.em.strategies import build_mixture, half_margins


@pytest.fixture(scope="module")
def mixture():
    return build_mixture(4, 3, 2, 12, separation=6.0, noise=0.5, noise_radius=0.7, init_radius=0.7)


def far_centroid(mixture, distance: float = 40.0) -> np.ndarray:
    """The initial means with the last one moved far from all data (its cluster will be empty)."""
    means = mixture.init_means.copy()
    means[-1] = distance * np.ones(mixture.dim) / math.sqrt(mixture.dim)
    return means


# ----------------------------------------------------------------------------------- empty clusters


def test_hard_empty_cluster_takes_the_data_mean_like_the_reference(mixture):
    means = far_centroid(mixture)
    reference = lloyd(mixture.points, means, 2)
    margin = min(half_margins(mixture.points, m).min() for m in [means, reference[0].means])
    construction = EMConstruction(2, components=3, iterations=2, mode="hard", beta=60.0 / margin, radius=41.0)
    readouts = construction.trajectory(construction.embed(mixture.points, means))
    assert reference[0].weights[-1] == 0
    np.testing.assert_allclose(readouts[0].means[0, -1].numpy(), mixture.points.mean(axis=0), rtol=0, atol=1e-13)
    for ours, theirs in zip(readouts, reference):
        np.testing.assert_array_equal(ours.labels[0].numpy(), theirs.labels)
        np.testing.assert_allclose(ours.means[0].numpy(), theirs.means, rtol=0, atol=1e-13)


def test_soft_empty_cluster_takes_the_data_mean_like_the_floored_reference(mixture):
    """Every responsibility of the far cluster is below the floor: all its M-step weights equal the floor."""
    means = far_centroid(mixture)
    construction = EMConstruction(2, components=3, iterations=1, beta=4.0, radius=41.0, width=64, update_weights=False)
    ours = construction.run(mixture.points, means).means[0].numpy()
    state = initial_state(means, variance=0.25)
    assert responsibilities(mixture.points, state)[:, -1].max() < 1e-8
    expected = soft_em_step(mixture.points, state, floor=1e-8, update_weights=False).means
    np.testing.assert_allclose(ours[-1], mixture.points.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours[-1], expected[-1], rtol=0, atol=1e-12)


def test_soft_weight_of_an_empty_cluster_is_exactly_its_tiny_mass(mixture):
    means = far_centroid(mixture)
    construction = EMConstruction(2, components=3, iterations=1, beta=4.0, radius=41.0, width=64)
    ours = construction.run(mixture.points, means).weights[0].numpy()
    expected = soft_em_step(mixture.points, initial_state(means, variance=0.25)).weights
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-15)
    assert np.all(np.isfinite(ours)) and ours[-1] < 1e-8


# ------------------------------------------------------------------------------ duplicates and ties


def test_duplicated_points_count_twice(mixture):
    doubled = np.concatenate([mixture.points, mixture.points[:5]])
    beta = 60.0 / half_margins(doubled, mixture.init_means).min()
    construction = EMConstruction(2, components=3, iterations=2, mode="hard", beta=beta, radius=mixture.radius)
    readouts = construction.trajectory(construction.embed(doubled, mixture.init_means))
    reference = lloyd(doubled, mixture.init_means, 2)
    assert mean_errors(readouts, reference).max() <= 16 * EPS * mixture.radius
    soft = EMConstruction(2, components=3, iterations=1, beta=4.0, radius=mixture.radius, width=256).run(
        doubled, mixture.init_means
    )
    expected = soft_em_step(doubled, initial_state(mixture.init_means, variance=0.25))
    np.testing.assert_allclose(soft.weights[0].numpy(), expected.weights, rtol=0, atol=1e-15)
    error = np.linalg.norm(soft.means[0].numpy() - expected.means, axis=1).max()
    diameter = np.linalg.norm(doubled[:, None] - doubled[None], axis=-1).max()
    check_bound(
        EM_SOFT_MSTEP, error, instance={"duplicates": 5}, D=diameter, M=256, epsilon=1e-8, pi_min=expected.weights.min()
    )


def test_exact_tie_splits_the_point_and_the_hard_m_step_leaves_it_out():
    """A point equidistant from two centroids gets responsibility 1/2 each, then weight e^{-a/2}: excluded."""
    left = np.array([[-3.0, 0.2], [-3.4, -0.1], [-2.6, 0.3]])
    right = -left
    tie = np.array([[0.0, 1.5]])
    points = np.concatenate([left, right, tie])
    means = np.array([[-1.0, 0.0], [1.0, 0.0]])
    sharpness = 50.0
    construction = EMConstruction(
        2, components=2, iterations=1, mode="hard", beta=40.0, radius=4.0, sharpness=sharpness
    )
    readout = construction.run(points, means)
    np.testing.assert_array_equal(readout.responsibilities[0, -1].numpy(), [0.5, 0.5])
    without_tie = lloyd_step(points[:-1], means).means
    leak = np.linalg.norm(tie - without_tie, axis=1).max() * math.exp(-sharpness / 2) / len(left)
    np.testing.assert_allclose(readout.means[0].numpy(), without_tie, rtol=0, atol=leak)
    assert lloyd_step(points, means).labels[-1] == 0  # Lloyd's argmin takes the lowest index instead


def test_soft_em_is_continuous_at_ties():
    points = np.array([[-3.0, 0.2], [-2.6, 0.3], [3.0, -0.2], [2.6, -0.3], [0.0, 1.5], [0.0, -1.5]])
    means = np.array([[-1.0, 0.0], [1.0, 0.0]])
    construction = EMConstruction(2, components=2, iterations=1, beta=1.0, radius=4.0, width=256)
    readout = construction.run(points, means)
    expected = soft_em_step(points, initial_state(means))
    np.testing.assert_allclose(readout.responsibilities[0].numpy(), expected.responsibilities, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(readout.responsibilities[0, 4:].numpy(), 0.5)
    error = np.linalg.norm(readout.means[0].numpy() - expected.means, axis=1).max()
    diameter = np.linalg.norm(points[:, None] - points[None], axis=-1).max()
    check_bound(EM_SOFT_MSTEP, error, instance={"ties": 2}, D=diameter, M=256, epsilon=1e-8, pi_min=0.5)


# ------------------------------------------------------------------------------------------ scales


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_hard_mode_is_scale_equivariant(mixture, scale):
    scaled = build_mixture(4, 3, 2, 12, separation=6.0, noise=0.5, noise_radius=0.7, init_radius=0.7, scale=scale)
    beta = 60.0 / half_margins(scaled.points, scaled.init_means).min()
    _, readouts, reference = hard_pair(scaled, 3, beta=beta)
    assert mean_errors(readouts, reference).max() <= 16 * EPS * scaled.radius
    for ours, theirs in zip(readouts, reference):
        np.testing.assert_array_equal(ours.labels[0].numpy(), theirs.labels)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_soft_mode_is_scale_equivariant(mixture, scale):
    """beta = 1/sigma^2 scales with the data: the scaled run is the unscaled run times the scale."""
    scaled = build_mixture(4, 3, 2, 12, separation=6.0, noise=0.5, noise_radius=0.7, init_radius=0.7, scale=scale)
    _, unit_readouts, _ = soft_pair(mixture, 2, width=32)
    _, readouts, reference = soft_pair(scaled, 2, width=32)
    for ours, unit in zip(readouts, unit_readouts):
        np.testing.assert_allclose(ours.means[0].numpy() / scale, unit.means[0].numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.weights[0].numpy(), unit.weights[0].numpy(), rtol=0, atol=1e-12)
    assert np.all(np.isfinite(mean_errors(readouts, reference)))


@pytest.mark.parametrize("offset", [1e2, 1e4, 1e6])
def test_offset_data_errors_scale_with_beta_radius_squared(offset):
    """Uncentred overlapping data: the E-step error grows like eps * beta * R^2 (the documented
    tolerance, here with a factor 4), never NaN."""
    shifted = build_mixture(4, 3, 2, 12, separation=2.5, noise=1.0, init_radius=0.5, offset=offset)
    construction = EMConstruction(
        2, components=3, iterations=1, beta=1.0, radius=shifted.radius, width=32, update_weights=False
    )
    ours = construction.run(shifted.points, shifted.init_means).responsibilities[0].numpy()
    expected = responsibilities(shifted.points, initial_state(shifted.init_means))
    assert expected.min() > 1e-7  # genuinely soft responsibilities
    assert np.abs(ours - expected).max() <= score_tolerance(1.0, shifted.radius, factor=4.0)


# -------------------------------------------------------------------------------- overflow and beta


def test_large_beta_cannot_overflow_the_softmax(mixture):
    """beta * margin >> 709 (exp would overflow): the softmax subtracts its max, outputs stay exact one-hots."""
    beta = 1e8
    assert beta * half_margins(mixture.points, mixture.init_means).min() > 1e3
    _, readouts, reference = hard_pair(mixture, 2, beta=beta)
    for ours, theirs in zip(readouts, reference):
        assert torch.isfinite(ours.means).all() and torch.isfinite(ours.responsibilities).all()
        np.testing.assert_array_equal(ours.responsibilities[0].numpy(), theirs.responsibilities)
    assert mean_errors(readouts, reference).max() <= 16 * EPS * mixture.radius


def test_beta_whose_scores_would_overflow_is_rejected():
    with pytest.raises(ValueError, match=r"beta \* radius\*\*2 must be <= 1e\+300.*beta must be in \(0, 1e\+298\]"):
        EMConstruction(2, components=2, iterations=1, mode="hard", beta=1e300, radius=10.0)


# ------------------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(components=1), "components must be an integer >= 2"),
        (dict(dim=0), "dim must be an integer >= 1"),
        (dict(iterations=0), "iterations must be an integer >= 1"),
        (dict(mode="medium"), "mode must be one of"),
        (dict(beta=0.0), "beta must be finite and > 0"),
        (dict(beta=float("nan")), "beta must be finite and > 0"),
        (dict(beta=float("inf")), "beta must be finite and > 0"),
        (dict(radius=-1.0), "radius must be finite and > 0"),
        (dict(width=0), "width must be an integer >= 1"),
        (dict(width=2.5), "width must be an integer >= 1"),
        (dict(floor=0.0), "floor must be finite and > 0 and <= 0.5"),
        (dict(floor=0.7), "floor must be finite and > 0 and <= 0.5"),
        (dict(weight_floor=0.6), r"weight_floor must be finite and > 0 and <= 0.5"),
        (dict(sharpness=-2.0), "sharpness must be finite and > 0"),
        (dict(mode="hard", update_weights=True), "update_weights=True needs mode='soft'"),
    ],
)
def test_bad_construction_arguments_are_named(arguments, message):
    options = dict(components=2, dim=2, iterations=1) | arguments
    with pytest.raises(ValueError, match=message):
        EMConstruction(options.pop("dim"), **options)


@pytest.mark.parametrize(
    ("points", "means", "weights", "message"),
    [
        (np.zeros((4, 3)), np.zeros((2, 2)), None, "points must have dim=2 features"),
        (
            np.zeros((1, 2)),
            np.zeros((2, 2)),
            None,
            r"number of points n \(at least components\) must be an integer >= 2",
        ),
        (np.full((4, 2), np.nan), np.zeros((2, 2)), None, "points contains non-finite values"),
        (np.zeros((4, 2)), np.zeros((3, 2)), None, r"means must have shape \(1, 2, 2\)"),
        (np.zeros((4, 2)), np.array([[0.0, 0.0], [0.0, np.inf]]), None, "means contains non-finite values"),
        (
            np.full((4, 2), 8.0),
            np.zeros((2, 2)),
            None,
            "a vector of points and initial means has norm 11.3137 > radius=10",
        ),
        (np.zeros((4, 2)), np.full((2, 2), 8.0), None, "initial means has norm 11.3137 > radius=10"),
        (np.zeros((4, 2)), np.zeros((2, 2)), np.array([0.5, 0.6]), "weights must be > 0 and sum to 1"),
        (np.zeros((4, 2)), np.zeros((2, 2)), np.array([1.0, 0.0]), "weights must be > 0 and sum to 1"),
        (np.zeros((4, 2)), np.zeros((2, 2)), np.array([0.5, 0.5, 0.0]), r"weights must have shape \(1, 2\)"),
    ],
)
def test_bad_inputs_are_named(points, means, weights, message):
    construction = EMConstruction(2, components=2, iterations=1, radius=10.0)
    with pytest.raises(ValueError, match=message):
        construction.embed(points, means, weights)


def test_weights_are_refused_where_they_are_not_used():
    construction = EMConstruction(2, components=2, iterations=1, mode="hard", beta=10.0, radius=10.0)
    with pytest.raises(ValueError, match="weights are only used with mode='soft' and update_weights=True"):
        construction.embed(np.zeros((4, 2)), np.zeros((2, 2)), np.array([0.5, 0.5]))
