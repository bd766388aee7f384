"""2-class spectral clustering: the transformer's labels are the numpy spectral labels, point for point."""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from tfconstruct.constructions.power import SpectralClustering, default_seeds
from tfconstruct.verify.power.reference import (
    misclassification,
    power_iteration,
    second_moment,
    sin_angle,
    spectral_labels,
    top_eigenpairs,
)
from tfconstruct.verify.power.strategies import two_class_mixtures

pytestmark = pytest.mark.usefixtures("single_torch_thread")

STEPS = 60


@given(two_class_mixtures(), st.sampled_from(["relu", "linear"]))
def test_labels_equal_the_reference_power_iteration_labels(mixture, attention):
    X = torch.as_tensor(mixture.X)
    construction = SpectralClustering.for_data(X, iterations=STEPS, width=32, attention=attention)
    stream = construction.model(construction.embed(X))
    labels = construction.labels(stream)[0].numpy()
    seed = default_seeds(X.shape[-1], 1)[0]
    direction = power_iteration(second_moment(mixture.X, centre=True), seed, STEPS).iterates[-1]
    reference = spectral_labels(mixture.X, direction)
    np.testing.assert_array_equal(labels, reference)
    assert misclassification(labels, mixture.labels) == misclassification(reference, mixture.labels)


@given(two_class_mixtures(separation=(2.0, 4.0)))
def test_labels_differ_from_the_eigh_labels_only_within_the_angle_margin(mixture):
    r"""Against the limit: a point may switch only if $|\langle x_i - \bar x, v\rangle| \le \|x_i - \bar x\|\sin\theta$."""
    X = torch.as_tensor(mixture.X)
    construction = SpectralClustering.for_data(X, iterations=STEPS, width=32)
    stream = construction.model(construction.embed(X))
    labels = construction.labels(stream)[0].numpy()
    top = top_eigenpairs(second_moment(mixture.X, centre=True), 1)[1][0]
    theta = sin_angle(construction.readout(stream).vectors[0, 0].numpy(), top)
    centred = mixture.X - mixture.X.mean(axis=0)
    limit = spectral_labels(mixture.X)
    flip = 1 if np.mean(labels == limit) >= 0.5 else -1
    switched = labels != flip * limit
    assert np.all(np.abs(centred[switched] @ top) <= np.linalg.norm(centred[switched], axis=1) * theta + 1e-12)


def test_clip_mlp_is_sign_outside_the_margin_and_linear_inside():
    r"""With margin $\eta = 1$: $y_i = \mathrm{clip}(\langle x_i - \bar x, V_0\rangle, -1, 1)$, point for point."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 40, 3)) * np.array([2.0, 1.0, 0.5])
    construction = SpectralClustering(3, iterations=30, width=32, domain=(1e-2, 1e2), margin=1.0)
    stream = construction.model(construction.embed(torch.as_tensor(data)))
    V0 = construction.readout(stream).vectors[0, 0].numpy()
    z = (data[0] - data[0].mean(axis=0)) @ V0
    y = construction.layout.read(stream, "y")[0, :, 0].numpy()
    assert np.any(np.abs(z) < 1) and np.any(np.abs(z) > 1)
    np.testing.assert_allclose(y, np.clip(z, -1, 1), atol=1e-13)
    np.testing.assert_array_equal(construction.labels(stream)[0].numpy(), np.where(z >= 0, 1, -1))
