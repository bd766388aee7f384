"""Power-iteration transformer: each layer and the whole stack against numpy, to float64 round-off."""

import numpy as np
import pytest
import torch

from tfconstruct.constructions import MLPBuilder, PiecewiseLinear, ResidualLayout, geometric_knots
from tfconstruct.constructions.power import PowerIteration, default_domain, default_seeds, stable_width
from tfconstruct.constructions.power.covariance import tutorial_example
from tfconstruct.verify.power.reference import (
    deflated,
    deflated_power_method,
    exact_inverse_sqrt,
    hinge_inverse_sqrt,
    power_iteration,
    second_moment,
    sin_angle,
)
from tfconstruct.verify.power.strategies import data_with_second_moment, prescribed_spectrum, random_orthogonal

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SCORINGS = ["relu", "linear"]
# Layers through the (right-anchored) hinge MLP agree with numpy.interp to a few ulp of each term;
# a whole run compounds that over ~40 steps of three deflated iterations.
HINGE_ROUND_OFF = 1e-13
RUN_ROUND_OFF = 1e-12


def gaussian_data(batch=2, n=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.sqrt(np.array([4.0, 2.0, 1.0, 0.5, 0.3, 0.2])[:d])
    return rng.standard_normal((batch, n, d)) * scales


def stream_with(construction, X, **blocks):
    """``construction.embed(X)`` with extra broadcast blocks written in (per instance)."""
    stream = construction.embed(torch.as_tensor(X))
    for name, value in blocks.items():
        stream[..., construction.layout[name].slice] = torch.as_tensor(value)[:, None, :]
    return stream


def relative(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b)))


@pytest.mark.parametrize("scoring", SCORINGS)
def test_matvec_with_implicit_deflation_is_exact(scoring):
    X = gaussian_data()
    construction = PowerIteration(4, components=3, attention=scoring)
    rng = np.random.default_rng(1)
    v, V0, V1 = (rng.standard_normal((2, 4)) for _ in range(3))
    lam0, lam1 = rng.uniform(1, 3, (2, 1)), rng.uniform(0.5, 1, (2, 1))
    stream = stream_with(
        construction,
        X,
        v=v,
        component0=V0,
        component1=V1,
        eigenvalue0=lam0,
        eigenvalue1=lam1,
        weighted0=lam0 * V0,
        weighted1=lam1 * V1,
    )
    contract = construction.model.part("component2.iter0.contract1")
    u = construction.layout.read(contract(stream), "u").numpy()
    for b in range(2):
        sigma_2 = deflated(second_moment(X[b]), [(lam0[b, 0], V0[b]), (lam1[b, 0], V1[b])])
        expected = sigma_2 @ v[b]
        assert relative(u[b], expected[None, :].repeat(30, 0)) < 1e-13


@pytest.mark.parametrize("scoring", SCORINGS)
def test_one_power_step_is_hinge_normalised_matvec(scoring):
    X = gaussian_data()
    construction = PowerIteration(4, width=8, domain=(0.05, 50.0), attention=scoring)
    v = np.random.default_rng(2).standard_normal((2, 4))
    stream = stream_with(construction, X, v=v)
    out = construction.model.part("component0.iter0")(stream)
    phi = hinge_inverse_sqrt((0.05, 50.0), 8)
    for b in range(2):
        u = second_moment(X[b]) @ v[b]
        expected = phi(u @ u) * u
        assert (
            relative(construction.layout.read(out, "v")[b].numpy(), expected[None, :].repeat(30, 0)) < HINGE_ROUND_OFF
        )
    for scratch in ("next", "u", "norm_sq", "inv_norm"):
        assert construction.layout.read(out, scratch).abs().max() == 0.0


def test_right_anchored_hinges_are_the_same_function_without_the_cancellation():
    r"""$b^{-1/2} + \sum w_m\sigma(t_m - s)$ equals $a^{-1/2} + \sum w_m\sigma(s - t_m)$; at $s/a = 10^4$ only the former is accurate."""
    layout = ResidualLayout([("one", 1), ("s", 1), ("f", 1)])
    phi = PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(1e-2, 1e2, 16))
    s = torch.logspace(-3, 3, 301, dtype=torch.float64)
    stream = layout.embed(1, len(s), {"one": 1.0, "s": s[None, :, None]})
    exact = torch.as_tensor(np.interp(s.numpy(), phi.knots, phi.values))
    errors = {}
    for anchor in ("left", "right"):
        mlp = phi.add_to(MLPBuilder(layout), "s", "f", anchor=anchor).build()
        errors[anchor] = float(((layout.read(mlp(stream), "f")[0, :, 0] - exact) / exact).abs().max())
    assert errors["right"] < 1e-15 and errors["left"] > 10 * errors["right"]
    with pytest.raises(ValueError, match="anchor must be 'left' or 'right'"):
        phi.add_to(MLPBuilder(layout), "s", "f", anchor="middle")


@pytest.mark.parametrize("scoring", SCORINGS)
def test_newton_step_is_the_exact_quadratic_map(scoring):
    construction = PowerIteration(4, newton_steps=1, attention=scoring)
    rng = np.random.default_rng(3)
    v = rng.standard_normal((2, 4))
    v *= np.array([[1.3], [0.6]]) / np.linalg.norm(v, axis=1, keepdims=True)  # norm errors +0.3 and -0.4
    out = construction.model.part("component0.newton0")(stream_with(construction, gaussian_data(), v=v))
    e = np.linalg.norm(v, axis=1) - 1
    new_norm = np.linalg.norm(construction.layout.read(out, "v")[:, 0].numpy(), axis=1)
    np.testing.assert_allclose(new_norm - 1, -(e**2) * (3 + e) / 2, rtol=1e-13)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_whole_stack_matches_the_hinge_reference(scoring):
    """Top-3 by deflation with one Newton step: every iterate, eigenvector and eigenvalue as numpy."""
    X = gaussian_data(d=5, n=40)
    construction = PowerIteration(
        5, components=3, iterations=12, width=12, domain=(0.02, 80.0), newton_steps=1, attention=scoring
    )
    seeds = default_seeds(5, 3, seed=4)
    trajectory = construction.trajectory(construction.embed(torch.as_tensor(X), seeds))
    result = construction.readout(trajectory.stream)
    for b in range(2):
        reference = deflated_power_method(
            second_moment(X[b]), seeds, 12, normaliser=hinge_inverse_sqrt((0.02, 80.0), 12), newton=1
        )
        for j in range(3):
            assert relative(trajectory.iterates[b, j].numpy(), reference.paths[j].iterates) < RUN_ROUND_OFF
            assert (
                relative(trajectory.normaliser_inputs[b, j].numpy(), reference.paths[j].squared_norms) < RUN_ROUND_OFF
            )
        assert relative(result.vectors[b].numpy(), reference.vectors) < RUN_ROUND_OFF
        assert relative(result.eigenvalues[b].numpy(), reference.values) < RUN_ROUND_OFF


def test_direction_is_exactly_that_of_power_iteration():
    """With a coarse MLP (M = 6) the norm is off by percent, the direction by round-off only."""
    X = gaussian_data(d=4, n=50)
    construction = PowerIteration(4, iterations=40, width=6, domain=(0.01, 100.0))
    trajectory = construction.trajectory(construction.embed(torch.as_tensor(X)))
    seed = default_seeds(4, 1)[0]
    norm_errors = []
    for b in range(2):
        exact = power_iteration(second_moment(X[b]), seed, 40, normaliser=exact_inverse_sqrt).iterates
        tf = trajectory.iterates[b, 0].numpy()
        assert max(sin_angle(tf[t], exact[t]) for t in range(41)) < 1e-14
        norm_errors.append(np.abs(np.linalg.norm(tf[1:], axis=1) - 1).max())
    assert max(norm_errors) > 1e-3  # the width error is there, and only in the norm


def test_trajectory_runs_the_same_layers_as_the_model():
    X = torch.as_tensor(gaussian_data())
    construction = PowerIteration(4, components=2, iterations=5, newton_steps=1, centre=True)
    stream = construction.embed(X)
    assert torch.equal(construction.trajectory(stream).stream, construction.model(stream))


def test_broadcast_blocks_stay_identical_across_tokens():
    """Per-token MLP overwrites keep the broadcast copies equal over hundreds of layers."""
    X = torch.as_tensor(gaussian_data(n=60, d=5))
    construction = PowerIteration(5, components=3, iterations=60, width=16, newton_steps=1)
    out = construction.model(construction.embed(X))
    assert construction.broadcast_spread(out) <= 1e-12 * float(out.abs().max())


@pytest.mark.parametrize("k, steps, newton, centre", [(1, 5, 0, False), (3, 7, 2, True)])
def test_size_accounting(k, steps, newton, centre):
    d, M = 6, 40
    construction = PowerIteration(d, components=k, iterations=steps, width=M, newton_steps=newton, centre=centre)
    model = construction.model
    assert model.depth == k * (3 * steps + 2 * newton + 2) + int(centre)
    assert model.max_heads == 2 * k
    # widest MLPs: the hinges, the overwrite (v <- next, clear u, norm_sq, inv_norm) and, with a next component,
    # the store (copy v, clear u and v, load the next seed)
    assert model.max_mlp_width == max(M + 2, 6 * d + 4, 8 * d if k > 1 else 0)
    assert construction.layout.dim == (3 + 3 * k) * d + k + 3


def test_centring_layer_subtracts_the_token_mean():
    X = gaussian_data() + 5.0
    construction = PowerIteration(4, centre=True)
    stream = construction.embed(torch.as_tensor(X))
    centred = construction.layout.read(construction.model.part("centre")(stream), "x").numpy()
    np.testing.assert_allclose(centred, X - X.mean(axis=1, keepdims=True), atol=1e-13)


def test_default_domain_contains_every_squared_norm():
    X = torch.as_tensor(gaussian_data(batch=3, d=5, n=40))
    construction = PowerIteration.for_data(X, components=3, iterations=30, width=32, newton_steps=1)
    low, high = construction.engine.domain.low, construction.engine.domain.high
    assert construction.engine.domain == default_domain(X, components=3)
    s = construction.trajectory(construction.embed(X)).normaliser_inputs
    assert float(s.min()) >= low and float(s.max()) <= high


def test_norm_map_settles_from_stable_width_on_and_the_direction_never_depends_on_it():
    r"""$\lambda_1^2 = 0.9$ sits near the right end of the knot interval $[0.1, 1]$ of $M = 4$ ($\rho = 10$), where
    the norm map's slope is below $-1$: the norm keeps jumping inside its band. From stable_width on it settles."""
    rng = np.random.default_rng(5)
    q = random_orthogonal(4, rng)
    X = torch.as_tensor(data_with_second_moment(prescribed_spectrum(4, 0.9**0.5, 0.5, 10.0), q, 50, rng))[None]
    seed = default_seeds(4, 1)[0]
    for width, settles in [(6, False), (stable_width((0.01, 100.0)), True)]:
        construction = PowerIteration(4, iterations=60, width=width, domain=(0.01, 100.0))
        iterates = construction.trajectory(construction.embed(X)).iterates[0, 0].numpy()
        assert (np.ptp(np.linalg.norm(iterates[-5:], axis=1)) < 1e-8) == settles
        exact = power_iteration(second_moment(X[0].numpy()), seed, 60).iterates
        assert max(sin_angle(iterates[t], exact[t]) for t in range(61)) < 1e-14


def test_tutorial_example_is_two_power_steps():
    example = tutorial_example()
    out = example.model(example.stream)
    layout = example.model.layout
    X = layout.read(example.stream, "x")[0].numpy()
    sigma = second_moment(X)
    expected = sigma @ sigma @ np.array([1.0, 1.0])
    assert sin_angle(layout.read(out, "component0")[0, 0].numpy(), expected) < 1e-14
    assert "component0" in example.notes and example.stream.shape[0] == 1
