"""Soft EM with spherical and tied variance updates (SphericalEM): exact parts against numpy soft EM and scikit-learn,
every step within the registered step bound, five steps within the propagated bound, the M^-2 rate, the shape
counted from the model, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, note, settings

from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.em.spherical import SphericalEM, SphericalReadout
from tfconstruct.theory.em import EM_PROPAGATION, EM_SPHERICAL_KEY, EM_SPHERICAL_STEP
from tfconstruct.theory.interpolation import M
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em.family import FAMILY
from tfconstruct.verify.em.reference import (
    MixtureState,
    sklearn_gmm_steps,
    soft_em,
    soft_em_step,
    state_distance,
    variance_step_lipschitz,
)
from tfconstruct.verify.em.strategies import VarianceInstance, build_variance_mixture, variance_mixtures
from tfconstruct.verify.rates import assert_rate
from tfconstruct.verify.testing import assert_exact

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FLOOR, WEIGHT_FLOOR, STEPS = 1e-8, 0.02, 5
WIDTHS = (16, 32, 64, 128, 256)


def spherical_for(instance: VarianceInstance, width: int, iterations: int = STEPS, tied: bool = False) -> SphericalEM:
    return SphericalEM(
        instance.dim,
        components=instance.clusters,
        iterations=iterations,
        tied=tied,
        width=width,
        radius=instance.radius,
        variance_range=instance.variance_range,
        weight_floor=WEIGHT_FLOOR,
        floor=FLOOR,
    )


def run(instance: VarianceInstance, width: int, iterations: int = STEPS, tied: bool = False) -> list[SphericalReadout]:
    construction = spherical_for(instance, width, iterations, tied)
    start = instance.start
    return construction.trajectory(construction.embed(instance.points, start.means, start.weights, start.variances))


def as_state(readout: SphericalReadout) -> MixtureState:
    return MixtureState(readout.means[0].numpy(), readout.weights[0].numpy(), readout.variances[0].numpy())


def step_bound(instance: VarianceInstance, width: int, pi_min: float) -> float:
    s_min, s_max = instance.variance_range
    return EM_SPHERICAL_STEP(
        D=instance.diameter,
        M=width,
        epsilon=FLOOR,
        pi_min=pi_min,
        pi_floor=WEIGHT_FLOOR,
        K=instance.clusters,
        d=instance.dim,
        s_min=s_min,
        s_max=s_max,
    )


@pytest.fixture(scope="module")
def mixture() -> VarianceInstance:
    """n = 300 in R^4, K = 3, sizes 60 / 90 / 150, variances 1, 0.3, 0.1 (ratio 10), centres 3 apart (overlapping,
    so the responsibilities are not saturated and every interpolant matters), started off the truth."""
    return build_variance_mixture(0, [60, 90, 150], 4, [1.0, 0.3, 0.1], separation=3.0, init_shift=0.5)


# ------------------------------------------------------------------------------------ (a) one step


def test_first_step_matches_numpy_soft_em_and_scikit_learn(mixture):
    """Responsibilities and weights exact to round-off; means and variances off only by the M-step's hinge log
    (no key error in the first step), within the step bound and at the stated order as M grows."""
    start = mixture.start
    reference = soft_em_step(mixture.points, start, variance_update="spherical")
    sklearn = sklearn_gmm_steps(mixture.points, start, covariance_type="spherical")
    for name in ("means", "weights", "variances"):  # the two references agree
        assert_exact(getattr(reference, name), getattr(sklearn, name), depth=8, scale=10.0, what=name)
    errors = []
    for width in (32, 128):
        readout = run(mixture, width, iterations=1)[0]
        assert_exact(readout.responsibilities[0], reference.responsibilities, depth=4, what="w of step 1")
        assert_exact(readout.weights[0], reference.weights, depth=4, what="pi after step 1")
        assert_exact(readout.weights[0], sklearn.weights, depth=8, what="pi vs scikit-learn")
        ours = as_state(readout)
        mean_error = np.abs(ours.means - sklearn.means).max()
        variance_error = np.abs(ours.variances - sklearn.variances).max()
        bound = step_bound(mixture, width, pi_min=float(reference.weights.min()))
        assert state_distance(ours, sklearn, mixture.diameter) <= bound
        errors.append(max(mean_error, variance_error))
    assert errors[1] < errors[0] / 8


def test_variance_is_the_weighted_variance_under_the_m_step_weights(mixture):
    """With the log-w hinge's weights w~ = exp(l(w)) the reference (floor 0) gives the construction's variance to
    round-off: the only approximation in the first step's variance is that reweighting."""
    construction = spherical_for(mixture, 32, iterations=1)
    stream = construction.embed(mixture.points, *(getattr(mixture.start, f) for f in ("means", "weights", "variances")))
    trace = construction.model(stream, trace=[construction.model.hook_after("iter0.estep")])
    n, read = mixture.points.shape[0], construction.layout.read
    tilde = np.exp(read(trace[construction.model.hook_after("iter0.estep")], "lw")[0, :n].numpy())
    totals = tilde.sum(0)
    means = tilde.T @ mixture.points / totals[:, None]
    diff = mixture.points[:, None, :] - means[None]
    expected = (tilde * np.einsum("nkd,nkd->nk", diff, diff)).sum(0) / (mixture.dim * totals)
    readout = construction.readout(trace.output)
    assert_exact(readout.means[0], means, depth=8, scale=mixture.radius, what="means")
    assert_exact(readout.variances[0], expected, depth=8, scale=mixture.radius**2, what="variances")


# ------------------------------------------------------------------------------------ (b) five steps, (c) rate


def test_five_warm_started_steps_stay_within_the_propagated_bound(mixture):
    width = 128
    readouts = run(mixture, width)
    reference = soft_em(mixture.points, mixture.start, STEPS, variance_update="spherical")
    states = [mixture.start] + [MixtureState(s.means, s.weights, s.variances) for s in reference]
    kappa = max(variance_step_lipschitz(mixture.points, s, mixture.diameter, "spherical") for s in states[:-1])
    pi_min = min(min(s.weights.min() for s in reference), min(float(r.weights.min()) for r in readouts))
    step = step_bound(mixture, width, pi_min)
    errors = [state_distance(as_state(r), s, mixture.diameter) for r, s in zip(readouts, reference)]
    for t, error in enumerate(errors, start=1):
        check_bound(EM_PROPAGATION, error, instance={"K": 3, "d": 4}, epsilon_step=step, kappa=kappa, L=t)
    assert max(errors) < 5e-3


def test_error_falls_as_width_to_the_minus_two(mixture):
    """max over five steps of the mean and variance errors, M = 16..256: slope -2 (the bound's order) within 0.35."""
    reference = soft_em(mixture.points, mixture.start, STEPS, variance_update="spherical")
    errors = []
    for width in WIDTHS:
        readouts = run(mixture, width)
        errors.append(
            max(
                max(np.abs(r.means[0].numpy() - s.means).max(), np.abs(r.variances[0].numpy() - s.variances).max())
                for r, s in zip(readouts, reference)
            )
        )
    order = float(sp.simplify(M * sp.diff(EM_SPHERICAL_STEP.rate, M) / EM_SPHERICAL_STEP.rate))
    assert order == -2.0
    assert_rate(WIDTHS, errors, expected=order, tolerance=0.35)


# ------------------------------------------------------------------------------------ (d) tied


def test_tied_variance_matches_the_shared_update_and_scikit_learn():
    instance = build_variance_mixture(2, [40, 60, 100], 3, [0.5, 0.5, 0.5], separation=7.0, init_shift=0.4, tied=True)
    width = 128
    readouts = run(instance, width, tied=True)
    reference = soft_em(instance.points, instance.start, STEPS, variance_update="shared")
    sklearn = sklearn_gmm_steps(instance.points, instance.start, covariance_type="tied")
    assert_exact(reference[0].variances, sklearn.variances, depth=8, scale=10.0, what="shared vs tied")
    first = readouts[0]
    assert_exact(first.weights[0], sklearn.weights, depth=8, what="pi vs scikit-learn (tied)")
    for readout in readouts:  # one shared variance in every component
        assert float(readout.variances.max() - readout.variances.min()) == 0.0
    states = [instance.start] + [MixtureState(s.means, s.weights, s.variances) for s in reference]
    kappa = max(variance_step_lipschitz(instance.points, s, instance.diameter, "shared") for s in states[:-1])
    pi_min = min(s.weights.min() for s in reference) * 0.99
    step = step_bound(instance, width, pi_min)
    for t, (readout, state) in enumerate(zip(readouts, reference), start=1):
        error = state_distance(as_state(readout), state, instance.diameter)
        check_bound(EM_PROPAGATION, error, instance={"tied": True}, epsilon_step=step, kappa=kappa, L=t)
        assert np.abs(readout.variances[0].numpy() - state.variances).max() < 1e-3


# ------------------------------------------------------------------------------------ (e) resources


@pytest.mark.parametrize("tied", [False, True])
def test_resources_are_counted_from_the_model_and_do_not_grow_with_n(tied: bool):
    d, k, m = 4, 3, 16
    one, two = (SphericalEM(d, components=k, iterations=t, tied=tied, width=m, radius=8.0) for t in (1, 2))
    attention = 5 if tied else 4
    assert two.model.depth - one.model.depth == attention == one.model.depth
    assert len(two.model) - len(one.model) == attention + 3
    heads = [len(one.model[f"iter0.{b}"].heads) for b in ("estep.attn", "mstep.attn", "norm.attn", "key.attn")]
    assert heads == [1, 2, 1, 2] and two.model.max_heads == 2
    if tied:
        assert len(one.model["iter0.norm.tied"].heads) == 1
    widths = [one.model[f"iter0.{b}.mlp"].width for b in ("estep", "mstep", "norm")]
    assert widths == [k * (m + 4) + 2, 8 * d + 4 * k + m + 10, 2 * m + 12]
    assert one.layout.dim == 4 * d + 3 * k + 12
    for sizes in ([10, 12, 14], [100, 120, 140]):  # the same weights serve every n
        instance = build_variance_mixture(1, sizes, d, [1.0, 0.5, 0.2], separation=7.0, init_shift=0.3, tied=tied)
        construction = SphericalEM(
            d, components=k, iterations=2, tied=tied, width=m, radius=8.0, variance_range=instance.variance_range
        )
        assert construction.model.max_mlp_width == max(widths)
        start = instance.start
        readouts = construction.trajectory(
            construction.embed(instance.points, start.means, start.weights, start.variances)
        )
        reference = soft_em(instance.points, start, 2, variance_update="shared" if tied else "spherical")
        assert max(np.abs(r.means[0].numpy() - s.means).max() for r, s in zip(readouts, reference)) < 0.05


def test_registered_in_the_em_family():
    assert FAMILY.constructions["spherical"] is SphericalEM
    assert EM_SPHERICAL_STEP in FAMILY.bounds and EM_SPHERICAL_KEY in FAMILY.bounds


# ------------------------------------------------------------------------------------ (f) property


@settings(max_examples=12, deadline=None)
@given(variance_mixtures())
def test_every_step_is_within_the_step_bound_of_em_from_its_own_state(instance: VarianceInstance):
    """First step: responsibilities and weights exact. Steps 2 and 3: the construction's step from its own state is
    within em_spherical_step of the EM step from that state."""
    width = 128
    readouts = run(instance, width, iterations=3)
    first = soft_em_step(instance.points, instance.start, variance_update="spherical")
    assert_exact(readouts[0].responsibilities[0], first.responsibilities, depth=4, what="w of step 1")
    assert_exact(readouts[0].weights[0], first.weights, depth=4, what="pi after step 1")
    previous = instance.start
    for readout in readouts:
        expected = soft_em_step(instance.points, previous, variance_update="spherical")
        ours = as_state(readout)
        error = state_distance(ours, expected, instance.diameter)
        bound = step_bound(instance, width, pi_min=min(float(expected.weights.min()), float(ours.weights.min())))
        note(f"step error {error:.3g}, bound {bound:.3g}")
        assert error <= bound
        previous = ours


# ------------------------------------------------------------------------------------ (g) refusals


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"dim": 0}, "dim"),
        ({"components": 1}, "components"),
        ({"iterations": 0}, "iterations"),
        ({"tied": "yes"}, "tied"),
        ({"width": 0}, "width"),
        ({"radius": -1.0}, "radius"),
        ({"variance_range": (1.0, 0.5)}, "variance_range"),
        ({"variance_range": (0.0, 1.0)}, "variance_range"),
        ({"variance_range": 3.0}, "variance_range"),
        ({"weight_floor": 0.5}, "weight_floor"),
        ({"floor": 0.7}, "floor"),
        ({"mask": 10.0}, "mask"),
    ],
)
def test_bad_arguments_name_the_parameter(options: dict, name: str):
    arguments = {"dim": 2, "components": 3, "iterations": 1, "radius": 4.0, **options}
    with pytest.raises(ValueError, match=rf"^{name} must"):
        SphericalEM(arguments.pop("dim"), **arguments)


def test_inputs_outside_the_assumptions_are_refused(mixture):
    construction = spherical_for(mixture, 16, iterations=1)
    start = mixture.start
    with pytest.raises(ValueError, match=r"variance_range"):
        construction.embed(mixture.points, start.means, start.weights, start.variances * 100.0)
    with pytest.raises(ValueError, match=r"variances must have shape"):
        construction.embed(mixture.points, start.means, start.weights, start.variances[:2])
    with pytest.raises(ValueError, match=r"radius"):
        construction.embed(mixture.points * 1.01, start.means)
    with pytest.raises(ValueError, match=r"weight_floor"):
        construction.embed(mixture.points, start.means, np.array([0.01, 0.49, 0.5]))
    tied = spherical_for(mixture, 16, iterations=1, tied=True)
    with pytest.raises(ValueError, match=r"equal across components"):
        tied.embed(mixture.points, start.means, start.weights, start.variances)


def test_a_component_collapsing_to_one_point_raises_a_domain_error_naming_variance_range():
    """Four copies of one point far from a cluster of 40: that component's variance goes to 0 < s_min."""
    rng = np.random.default_rng(5)
    points = np.vstack([rng.normal(size=(40, 2)), np.tile([[8.0, 8.0]], (4, 1))])
    construction = SphericalEM(2, components=2, iterations=2, width=16, radius=8.0, variance_range=(0.05, 5.0))
    stream = construction.embed(points, np.array([[0.0, 0.0], [7.5, 7.5]]), variances=np.array([1.0, 1.0]))
    with pytest.raises(DomainError, match=r"iter0\.norm\.mlp.*sv.*variance_range"):
        construction.model(stream)
    violations = construction.model(stream, outside="record").violations
    assert violations and all(v.domain.parameter == "variance_range" and v.value < 0.05 for v in violations)
