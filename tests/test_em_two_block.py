"""Soft EM in TGMM's Theorem 1 shape (TwoBlockEM): resources counted from the model, exact parts to round-off,
means within the registered bound, the M^-2 rate, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, note

from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.em import TwoBlockEM, TwoBlockReadout
from tfconstruct.constructions.piecewise import PiecewiseLinear, geometric_knots, uniform_knots
from tfconstruct.theory.em import EM_PROPAGATION, EM_TWO_BLOCK_STEP
from tfconstruct.theory.interpolation import M
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.em.family import FAMILY
from tfconstruct.verify.em.reference import MixtureState, initial_state, soft_em, step_lipschitz
from tfconstruct.verify.em.strategies import MixtureInstance, build_mixture, unit_variance_mixtures
from tfconstruct.verify.rates import assert_rate
from tfconstruct.verify.testing import assert_exact

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FLOOR, WEIGHT_FLOOR, STEPS = 1e-8, 0.02, 5
WIDTHS = (8, 16, 32, 64, 128)


def two_block_for(instance: MixtureInstance, width: int, iterations: int = STEPS) -> TwoBlockEM:
    """A TwoBlockEM sized for ``instance``: radius its largest |coordinate|."""
    return TwoBlockEM(
        instance.dim,
        components=instance.clusters,
        iterations=iterations,
        width=width,
        radius=instance.coordinate_radius,
        floor=FLOOR,
        weight_floor=WEIGHT_FLOOR,
    )


def run_pair(
    instance: MixtureInstance, width: int, iterations: int = STEPS
) -> tuple[TwoBlockEM, list[TwoBlockReadout], list[MixtureState]]:
    """The transformer's trajectory and numpy soft EM (unit variance) from the instance's initial means."""
    construction = two_block_for(instance, width, iterations)
    readouts = construction.trajectory(construction.embed(instance.points, instance.init_means))
    return construction, readouts, soft_em(instance.points, initial_state(instance.init_means), iterations)


def mean_errors(readouts: list[TwoBlockReadout], reference: list[MixtureState]) -> np.ndarray:
    r"""$\max_k\|\hat\mu_k^{(t)} - \mu_k^{(t)}\|$, $t = 1..L$."""
    return np.array([np.linalg.norm(r.means[0].numpy() - s.means, axis=1).max() for r, s in zip(readouts, reference)])


@pytest.fixture(scope="module")
def tgmm():
    """n = 300 in R^4, K = 3, sizes 60 / 90 / 150 (pi = 0.2, 0.3, 0.5), unit noise, initialised off the truth."""
    return build_mixture(0, 3, 4, [60, 90, 150], separation=4.0, init_radius=1.0)


# ------------------------------------------------------------------------------------ (a) resources


def test_resources_are_two_attention_layers_per_step_and_do_not_grow_with_n():
    d, k, m = 4, 3, 16
    one, two = (TwoBlockEM(d, components=k, iterations=t, width=m, radius=6.0) for t in (1, 2))
    assert two.model.depth - one.model.depth == 2 and one.model.depth == 2
    assert len(two.model) - len(one.model) == 4  # 2 attention + 2 MLP sublayers per step
    assert [len(one.model[f"iter0.{b}.attn"].heads) for b in ("estep", "mstep")] == [1, 2]
    assert two.model.max_heads == 2
    assert one.layout.dim == 3 * d + 3 * k + 6
    widths = [one.model[f"iter0.{b}.mlp"].width for b in ("estep", "mstep")]
    assert widths == [k * (m + 4), (d + 1) * (m + 1) + 6 * d + 4 * k + 8]
    assert two.model.names == [
        f"iter{t}.{b}.{s}" for t in range(2) for b in ("estep", "mstep") for s in ("attn", "mlp")
    ]
    # n = 50 and n = 500: the same widths (nothing depends on n), and both follow EM to the interpolation error
    mlp_widths = []
    for sizes in ([16, 17, 17], [166, 167, 167]):
        instance = build_mixture(1, k, d, sizes, separation=5.0, init_radius=1.0)
        construction = TwoBlockEM(d, components=k, iterations=2, width=m, radius=instance.coordinate_radius)
        mlp_widths.append(construction.model.max_mlp_width)
        readouts = construction.trajectory(construction.embed(instance.points, instance.init_means))
        assert mean_errors(readouts, soft_em(instance.points, initial_state(instance.init_means), 2)).max() < 0.1
    assert mlp_widths == [max(widths)] * 2


def test_registered_in_the_em_family():
    assert FAMILY.constructions["tgmm_two_block"] is TwoBlockEM
    assert EM_TWO_BLOCK_STEP in FAMILY.bounds
    assert float(sp.simplify(M * sp.diff(EM_TWO_BLOCK_STEP.rate, M) / EM_TWO_BLOCK_STEP.rate)) == -2.0


# ------------------------------------------------------------------------------------ (b) exact parts


def test_first_step_weights_and_responsibilities_are_exact(tgmm):
    construction, readouts, reference = run_pair(tgmm, width=8, iterations=1)
    assert_exact(readouts[0].weights[0], reference[0].weights, depth=4, what="pi after step 1")
    assert_exact(readouts[0].responsibilities[0], reference[0].responsibilities, depth=4, what="w of step 1")
    assert (
        construction.readout(construction.model(construction.embed(tgmm.points, tgmm.init_means))).responsibilities
        is None
    )


def test_m_step_writes_the_interpolated_key_and_clears_its_scratch(tgmm):
    construction, readouts, _ = run_pair(tgmm, width=16, iterations=1)
    stream = construction.model(construction.embed(tgmm.points, tgmm.init_means))
    n, read = tgmm.size, construction.layout.read
    means, weights = readouts[0].means[0].numpy(), readouts[0].weights[0].numpy()
    log_pi = PiecewiseLinear.interpolate(np.log, geometric_knots(WEIGHT_FLOOR, 1.0, 16))
    square = PiecewiseLinear.interpolate(np.square, uniform_knots(-construction.radius, construction.radius, 16))
    expected = log_pi(weights) - 0.5 * square(means).sum(-1)
    assert_exact(read(stream, "c")[0, n:, 0], expected, depth=2, scale=construction.radius**2, what="c")
    assert not np.allclose(expected, np.log(weights) - 0.5 * (means**2).sum(-1), atol=1e-3)  # really approximated
    for name in ("w", "lw", "smu", "spi"):
        assert float(read(stream, name).abs().max()) == 0.0, name
    assert float(read(stream, "mu")[0, :n].abs().max()) == 0.0 == float(read(stream, "pi")[0, :n].abs().max())


def test_factored_and_dense_forward_passes_agree(tgmm):
    construction = two_block_for(tgmm, width=16, iterations=2)
    stream = construction.embed(tgmm.points, tgmm.init_means)
    factored, dense = construction.model(stream), construction.model(stream, dense=True)
    assert_exact(factored, dense, depth=8, scale=construction.mask, what="factored vs dense")


# ------------------------------------------------------------------------------------ (c) bound, (d) rate


@given(unit_variance_mixtures())
def test_means_stay_within_the_propagated_bound(instance: MixtureInstance):
    """Five steps at width 32: max_k ||mu_TF - mu_EM|| <= eps_step (kappa^t - 1) / (kappa - 1) at every t."""
    width = 32
    construction, readouts, reference = run_pair(instance, width)
    diameter = instance.diameter
    states = [initial_state(instance.init_means)] + [MixtureState(s.means, s.weights, s.variances) for s in reference]
    kappa = max(step_lipschitz(instance.points, s, weight_scale=diameter) for s in states[:-1])
    pi_min = min(min(s.weights.min() for s in reference), min(float(r.weights.min()) for r in readouts))
    values = dict(D=diameter, M=width, epsilon=FLOOR, pi_min=pi_min, pi_floor=WEIGHT_FLOOR, K=instance.clusters)
    step = EM_TWO_BLOCK_STEP(**values, d=instance.dim, R=construction.radius)
    errors = mean_errors(readouts, reference)
    note(f"errors {errors}, kappa {kappa:.3g}, step bound {step:.3g}")
    for t, error in enumerate(errors, start=1):
        check_bound(EM_PROPAGATION, error, instance=instance.summary(), epsilon_step=step, kappa=kappa, L=t)


def test_mean_error_falls_as_width_to_the_minus_two(tgmm):
    """The largest mean error over five steps, fitted over M = 8..128: slope -2 (the registered bound's order)
    within 0.3; responsibilities within a knot interval of 1 make the log's error first order at small M (the
    local slope steepens to -2: 8.3e-3, 6.0e-4, 3.7e-5 at M = 32, 128, 512 on the TGMM note's instance)."""
    reference = soft_em(tgmm.points, initial_state(tgmm.init_means), STEPS)
    errors = []
    for width in WIDTHS:
        construction = two_block_for(tgmm, width)
        errors.append(
            mean_errors(construction.trajectory(construction.embed(tgmm.points, tgmm.init_means)), reference).max()
        )
    order = float(sp.simplify(M * sp.diff(EM_TWO_BLOCK_STEP.rate, M) / EM_TWO_BLOCK_STEP.rate))
    assert_rate(WIDTHS, errors, expected=order, tolerance=0.3)
    assert errors[-1] < 2e-3


# ------------------------------------------------------------------------------------ (e) refusals


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"dim": 0}, "dim"),
        ({"components": 1}, "components"),
        ({"iterations": 0}, "iterations"),
        ({"width": 0}, "width"),
        ({"width": 2.5}, "width"),
        ({"radius": -1.0}, "radius"),
        ({"radius": float("inf")}, "radius"),
        ({"floor": 0.7}, "floor"),
        ({"weight_floor": 0.5}, "weight_floor"),
        ({"mask": 10.0}, "mask"),
        ({"mask": float("nan")}, "mask"),
    ],
)
def test_bad_arguments_name_the_parameter(options: dict, name: str):
    arguments = {"dim": 2, "components": 3, "iterations": 1, "radius": 4.0, **options}
    with pytest.raises(ValueError, match=rf"^{name} must"):
        TwoBlockEM(arguments.pop("dim"), **arguments)


def test_inputs_outside_the_assumptions_are_refused(tgmm):
    construction = two_block_for(tgmm, width=16, iterations=1)
    points, means = tgmm.points, tgmm.init_means
    with pytest.raises(ValueError, match=r"radius"):
        construction.embed(points * 1.01, means)
    with pytest.raises(ValueError, match=r"weight_floor"):
        construction.embed(points, means, np.array([0.01, 0.49, 0.5]))
    with pytest.raises(ValueError, match=r"points must have dim=4"):
        construction.embed(points[:, :3], means)
    with pytest.raises(ValueError, match=r"means must have shape"):
        construction.embed(points, means[:2])


def test_an_updated_weight_below_the_floor_raises_a_domain_error():
    """A cluster of 2 points among 202: pi^+ ~ 0.01 < weight_floor 0.05 at the M-step's log interpolant."""
    instance = build_mixture(3, 2, 2, [2, 200], separation=6.0, init_radius=0.5)
    construction = TwoBlockEM(
        2, components=2, iterations=2, width=16, radius=instance.coordinate_radius, weight_floor=0.05
    )
    stream = construction.embed(instance.points, instance.init_means)
    with pytest.raises(DomainError, match=r"iter0\.mstep\.mlp.*spi.*weight_floor"):
        construction.model(stream)
    violations = construction.model(stream, outside="record").violations
    assert {v.sublayer for v in violations} == {"iter0.mstep.mlp", "iter1.mstep.mlp"}
    assert all(v.value < 0.05 and v.domain.parameter == "weight_floor" for v in violations)


def test_a_mean_outside_the_square_interpolants_range_raises_a_domain_error(tgmm):
    """The square's domain [-R, R] is checked on the new means (here the stream is edited to put data beyond R)."""
    construction = two_block_for(tgmm, width=16, iterations=1)
    stream = construction.embed(tgmm.points, tgmm.init_means)
    construction.layout.read(stream, "x")[0, : tgmm.size] *= 10.0
    with pytest.raises(DomainError, match=r"iter0\.mstep\.mlp.*smu.*radius"):
        construction.model(stream)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, 0.3, 0.3], "weights must sum to 1 .* entry 0 sums to 1.1"),
        ([1.1, -0.05, -0.05], "weights must be > 0, got smallest -0.05"),
        ([0.995, 0.004, 0.001], "weights must be >= weight_floor=0.02; got smallest 0.001"),
    ],
)
def test_initial_weights_name_what_is_wrong_with_them(tgmm, weights, message):
    with pytest.raises(ValueError, match=message):
        two_block_for(tgmm, 8).embed(tgmm.points, tgmm.init_means, np.array(weights))
