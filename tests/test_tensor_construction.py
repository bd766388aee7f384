"""The tensor power iteration transformer, layer by layer and whole, against the numpy reference."""

import math

import numpy as np
import pytest
import torch

from tfconstruct.constructions.gadgets import InverseSqrt, NormalisationDomain
from tfconstruct.constructions.mlp import MLPBuilder
from tfconstruct.constructions.power import default_seeds
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.tensor import OdecoPowerIteration, WhitenedDataPowerIteration, preprocess
from tfconstruct.constructions.tensor.codes import position_codes
from tfconstruct.constructions.tensor.gmm import tutorial_example as gmm_tutorial_example
from tfconstruct.constructions.tensor.in_tokens import tutorial_example
from tfconstruct.theory.power import NORM_PER_STEP
from tfconstruct.theory.propagation import newton_norm_error
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.rates import assert_rate
from tfconstruct.verify.tensor.moments import whitened_contraction
from tfconstruct.verify.tensor.reference import contract, tensor_power_method
from tfconstruct.verify.tensor.strategies import build_means, build_odeco, sample_mixture, tgmm_weights

EPS = float(np.finfo(np.float64).eps)
ODECO = build_odeco(np.array([3.0, 2.0, 1.5, 1.2]), 4, seed=1)
ODECO_DOMAIN = NormalisationDomain.for_weights(1.2, 3.0)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def direction_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""$1 - |\cos\angle(a, b)|$ along the last axis."""
    cos = np.abs((a * b).sum(-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return 1.0 - cos


def gmm_instance(samples: int = 60, dimension: int = 4, components: int = 3, seed: int = 0):
    weights = tgmm_weights(np.linspace(0.3, 0.7, components))
    means = build_means(dimension, components, separation=5.0, cosine=0.3, seed=seed)
    return sample_mixture(weights, means, samples, seed=seed + 1)


def gmm_construction(pre, code="torus", iterations=2, width=32, newton_steps=0):
    n, d, k = pre.y.shape[1], pre.whiten.shape[1], pre.y.shape[2]
    bound = float(pre.y.norm(dim=-1).max())
    return WhitenedDataPowerIteration(
        n,
        d,
        components=k,
        iterations=iterations,
        width=width,
        domain=NormalisationDomain(1e-6, 1e4),
        data_bound=bound,
        newton_steps=newton_steps,
        code=code,
    )


# --- exact parts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads", ["shifted", "signed"])
def test_tensor_in_tokens_contracts_exactly(heads):
    """contract1 + contract2 add T(I, v, v) in every token, for any (even non-symmetric) tensor."""
    rng = np.random.default_rng(0)
    tensor = rng.standard_normal((3, 4, 4, 4))
    seeds = rng.standard_normal((3, 1, 4))
    seeds /= np.linalg.norm(seeds, axis=-1, keepdims=True)
    construction = OdecoPowerIteration(
        4, components=1, iterations=1, width=32, domain=NormalisationDomain(1e-3, 1e3), heads=heads
    )
    values, batch = construction.contraction.values(tensor)  # below embed, which refuses non-symmetric tensors
    stream = construction.engine.embed(values, seeds, batch, construction.contraction.tokens)
    u = construction.layout.read(construction.model.upto("component0.iter0.contract2")(stream), "u").numpy()
    for b in range(3):
        reference = contract(tensor[b], seeds[b, 0])
        np.testing.assert_allclose(u[b], np.tile(reference, (4, 1)), rtol=0, atol=1e-14 * np.abs(tensor[b]).sum())


@pytest.mark.parametrize("code", ["onehot", "circle", "torus"])
def test_whitened_data_contracts_exactly_and_loses_the_predicted_digits(code):
    """u = (1/n) sum (v.y)^2 y - (v'Gv) m - 2 (m.v) Gv from data tokens; round-off ~ eps / gap."""
    inst = gmm_instance(samples=120)
    pre = preprocess(inst.x, 3)
    construction = gmm_construction(pre, code)
    seeds = default_seeds(3, 3)
    u = construction.layout.read(
        construction.model.upto("component0.iter0.contract2")(construction.embed(pre, seeds)), "u"
    )[0].numpy()
    gram = (pre.whiten[0].T @ pre.whiten[0]).numpy()
    reference = whitened_contraction(pre.y[0].numpy(), pre.moment[0].numpy(), gram, seeds[0])
    relative = np.abs(u - reference).max() / np.abs(reference).max()
    assert relative <= 32 * EPS / construction.contraction.codes.gap


@pytest.mark.parametrize("kind", ["onehot", "circle", "torus"])
@pytest.mark.parametrize("tokens", [2, 5, 17, 50])
def test_position_code_gap_is_the_brute_force_gap(kind, tokens):
    codes = position_codes(tokens, kind)
    gram = codes.vectors @ codes.vectors.T
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-15)
    off_diagonal = gram[~np.eye(tokens, dtype=bool)].max()
    assert codes.gap == pytest.approx(1.0 - off_diagonal, rel=1e-9, abs=1e-15)


def test_unwhitening_layer_is_exact():
    inst = gmm_instance()
    pre = preprocess(inst.x, 3)
    construction = gmm_construction(pre)
    final = construction.model(construction.embed(pre, default_seeds(3, 3)))
    power, means = construction.readout(final)
    weighted = power.eigenvalues[0, :, None] * power.vectors[0]
    np.testing.assert_allclose(means[0].numpy(), (weighted @ pre.unwhiten[0].T).numpy(), rtol=1e-13, atol=1e-13)


# --- the normaliser ---------------------------------------------------------------------------------------------
def test_inverse_sqrt_mlp_interpolates_without_cancellation():
    """Right-anchored hinges: the MLP equals the interpolant to round-off even on [1e-12, 1e2], is positive
    everywhere and flat outside the knots; its relative error meets NORM_PER_STEP."""
    interpolant = InverseSqrt(NormalisationDomain(1e-12, 1e2), 64).interpolant
    layout = ResidualLayout([("s", 1), ("one", 1), ("f", 1)])
    mlp = interpolant.add_to(MLPBuilder(layout), "s", "f", anchor="right").build()
    s = np.concatenate([np.geomspace(1e-12, 1e2, 1001), [0.0, 1e-13, 1e3]])
    stream = layout.embed(1, s.size, {"s": torch.tensor(s)[:, None], "one": 1.0})
    f = layout.read(mlp(stream), "f")[0, :, 0].numpy()
    np.testing.assert_allclose(f, np.interp(s, interpolant.knots, interpolant.values), rtol=1e-14)
    assert (f > 0).all()
    check_bound(
        NORM_PER_STEP, float(np.abs(f[:1001] * np.sqrt(s[:1001]) - 1).max()), instance={"M": 64}, M=64, a=1e-12, b=1e2
    )


# --- the whole iteration ----------------------------------------------------------------------------------------
def test_first_component_follows_the_reference_direction_at_every_step():
    """Direction exact (phi > 0, T(I,.,.) homogeneous); the normaliser sees r_t = |v_t|^4 r_t(reference)."""
    seeds = default_seeds(4, 4)
    construction = OdecoPowerIteration(4, components=4, iterations=6, width=32, domain=ODECO_DOMAIN)
    trajectory = construction.trajectory(construction.embed(ODECO.tensor, seeds))
    reference = tensor_power_method(ODECO.tensor, seeds, 6)
    iterates = trajectory.iterates[0].numpy()
    assert direction_gap(iterates[0], reference.iterates[0]).max() <= 4 * EPS
    norms = np.linalg.norm(iterates[0, :-1], axis=-1)
    seen = trajectory.normaliser_inputs[0, 0].numpy()
    np.testing.assert_allclose(seen, norms**4 * reference.squared_norms[0], rtol=1e-12)
    assert ((seen >= ODECO_DOMAIN.low) & (seen <= ODECO_DOMAIN.high)).all()
    for norm in np.linalg.norm(iterates[:, 1:], axis=-1).ravel():
        check_bound(NORM_PER_STEP, abs(norm - 1.0), instance={"seed": 1}, M=32, a=ODECO_DOMAIN.low, b=ODECO_DOMAIN.high)


def test_newton_step_maps_the_norm_error_exactly():
    """|v| = 1 + e  ->  1 - e^2 (3 + e) / 2, checked on every component."""
    construction = OdecoPowerIteration(4, components=4, iterations=6, width=32, domain=ODECO_DOMAIN, newton_steps=1)
    trajectory = construction.trajectory(construction.embed(ODECO.tensor, default_seeds(4, 4)))
    before = np.linalg.norm(trajectory.iterates[0, :, -1].numpy(), axis=-1) - 1.0
    after = np.linalg.norm(construction.readout(trajectory.stream).vectors[0].numpy(), axis=-1) - 1.0
    assert np.abs(before).min() > 1e-4  # M = 32 leaves a visible error to refine
    np.testing.assert_allclose(after, -(before**2) * (3 + before) / 2, rtol=1e-9)


def test_broadcast_slots_stay_identical_and_scratch_ends_at_zero():
    inst = gmm_instance()
    pre = preprocess(inst.x, 3)
    construction = gmm_construction(pre, iterations=3, newton_steps=1)
    final = construction.model(construction.embed(pre, default_seeds(3, 3)))[0]
    layout = construction.layout
    for name in [
        "v",
        "moment",
        *[f"{kind}{j}" for j in range(3) for kind in ("component", "weighted", "eigenvalue", "mean")],
    ]:
        block = layout.read(final, name)
        assert (block - block[0]).abs().max() <= 1e-12 * max(1.0, float(block.abs().max())), name
    for name in ["u", "norm_sq", "inv_norm", "next", "overlap", "product", "gram_v"]:
        assert float(layout.read(final, name).abs().max()) <= 1e-12, name


def test_depth_and_width_accounting():
    """Depth R (4J + 3 + 2N) (+1 un-whitening); heads per layer max(k+1 + 2(R-1) ...); MLP width M + 1 + clears."""
    construction = OdecoPowerIteration(4, components=3, iterations=5, width=32, domain=ODECO_DOMAIN, newton_steps=2)
    assert construction.model.depth == 3 * (4 * 5 + 3 + 2 * 2)
    assert construction.model.max_heads == (4 + 1) + 2  # contract2 of the last component: k+1 slices + 2 deflations
    assert construction.layout.dim == 4**2 + 4 + 1 + 3 * 4 + 3 + 3 + 2 * 4 + 3 * (2 * 4 + 1)
    inst = gmm_instance(samples=30)
    pre = preprocess(inst.x, 3)
    gmm = gmm_construction(pre, iterations=5)
    assert gmm.model.depth == 3 * (4 * 5 + 3) + 1
    assert gmm.model.max_heads == 6 + 2  # contract2: cube, gram and moment pairs + 2 deflation squares


def test_norm_error_falls_as_width_squared_and_newton_squares_it():
    """|(|v| - 1)| <= delta_M at read-out, fitted log-log slope -2 (and -4 after one Newton step)."""
    widths = [32, 64, 128, 256, 512]
    plain, refined = [], []
    for newton_steps, errors in ((0, plain), (1, refined)):
        for width in widths:
            worst = 0.0
            for seed in (1, 2):
                inst = build_odeco(np.array([3.0, 2.2, 1.4]), 3, seed=seed)
                construction = OdecoPowerIteration(
                    3, components=3, iterations=10, width=width, domain=ODECO_DOMAIN, newton_steps=newton_steps
                )
                final = construction.model(construction.embed(inst.tensor, default_seeds(3, 3)))
                norms = np.linalg.norm(construction.readout(final).vectors[0].numpy(), axis=-1)
                worst = max(worst, float(np.abs(norms - 1).max()))
            bound = float(
                newton_norm_error(NORM_PER_STEP(M=width, a=ODECO_DOMAIN.low, b=ODECO_DOMAIN.high), newton_steps)
            )
            assert worst <= bound
            errors.append(worst)
    assert_rate(widths, plain, expected=-2.0, tolerance=0.4)
    assert_rate(widths, refined, expected=-4.0, tolerance=0.8)


# --- tutorials and bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [tutorial_example, gmm_tutorial_example])
def test_tutorial_examples_run(factory):
    example = factory()
    assert example.stream.shape[0] == 1
    assert torch.isfinite(example.model(example.stream)).all()
    assert "contract1" in example.notes or "contract" in example.notes


def test_bad_inputs_raise_clear_errors():
    construction = OdecoPowerIteration(3, components=2, iterations=2, width=32, domain=ODECO_DOMAIN)
    tensor = build_odeco(np.array([2.0, 1.0]), 3, seed=0).tensor
    assert torch.equal(
        construction.embed(tensor, 2 * default_seeds(3, 2)), construction.embed(tensor, default_seeds(3, 2))
    )
    with pytest.raises(ValueError, match="seeds must be non-zero vectors"):
        construction.embed(tensor, 0 * default_seeds(3, 2))
    with pytest.raises(ValueError, match=r"seeds must have shape \(R, k\)"):
        construction.embed(tensor, default_seeds(3, 3))
    with pytest.raises(ValueError, match="tensor must have shape"):
        construction.embed(np.zeros((2, 2, 2)), default_seeds(3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        construction.embed(np.full((3, 3, 3), np.nan), default_seeds(3, 2))
    with pytest.raises(ValueError, match="components must be an integer >= 1 and <= 3"):
        OdecoPowerIteration(3, components=4, iterations=2, width=32, domain=ODECO_DOMAIN)
    with pytest.raises(ValueError, match=r"width M=4 is too small .* use width >= \d+"):
        OdecoPowerIteration(3, components=2, iterations=2, width=4, domain=ODECO_DOMAIN)
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        OdecoPowerIteration(3, components=2, iterations=0, width=32, domain=ODECO_DOMAIN)
    with pytest.raises(ValueError, match="domain lower end a must be finite and > 0"):
        NormalisationDomain(0.0, 1.0)
    with pytest.raises(ValueError, match="domain must satisfy 0 < a < b < inf"):
        NormalisationDomain(1.0, math.inf)
    with pytest.raises(ValueError, match="heads must be"):
        OdecoPowerIteration(3, components=2, iterations=2, width=32, domain=ODECO_DOMAIN, heads="diagonal")
    with pytest.raises(ValueError, match="position code kind"):
        position_codes(10, "spiral")
    with pytest.raises(ValueError, match=r"dim \(components K\) must be an integer >= 1 and <= 2"):
        WhitenedDataPowerIteration(50, 2, components=3, iterations=2, width=32, domain=ODECO_DOMAIN, data_bound=10.0)
    pre = preprocess(gmm_instance().x, 3)
    small = gmm_construction(pre)
    too_tight = WhitenedDataPowerIteration(
        60, 4, components=3, iterations=2, width=32, domain=ODECO_DOMAIN, data_bound=0.5 * small.contraction.data_bound
    )
    with pytest.raises(ValueError, match="exceeds data_bound"):
        too_tight.embed(pre, default_seeds(3, 3))
