r"""Power iteration with the normaliser in attention heads (``normaliser="heads"``, the shape of Lemma B.2 of
*Learning Spectral Methods by Transformers*): $\hat\phi_M(s)\,u$ from $M + 2$ ReLU heads instead of an MLP.

Against the hinge MLP (``normaliser="mlp"``) and numpy: the same function (float64 round-off), the exact direction,
the norm error's $\frac{3}{32}(\ln(b/a)/M)^2$ rate, the resources counted from the built model, float32 direction
accuracy, and the domain check.
"""

import math

import numpy as np
import pytest
import torch

from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.gadgets import InverseSqrt, NormalisationDomain, inverse_sqrt_heads
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.power import PowerIteration, default_seeds
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.tensor import OdecoPowerIteration
from tfconstruct.verify.power.reference import (
    exact_inverse_sqrt,
    hinge_inverse_sqrt,
    power_iteration,
    second_moment,
    sin_angle,
)
from tfconstruct.verify.power.strategies import data_with_second_moment, random_orthogonal
from tfconstruct.verify.rates import assert_rate
from tfconstruct.verify.tensor.strategies import build_odeco

pytestmark = pytest.mark.usefixtures("single_torch_thread")

DOMAIN = (1e-2, 1e2)
WIDTHS = (8, 32, 128)
EPS32 = float(torch.finfo(torch.float32).eps)


def gaussian_data(batch=2, n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, n, d)) * np.sqrt(np.array([4.0, 2.0, 1.0, 0.5, 0.3, 0.2])[:d])


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def both(d, **options):
    """The MLP and the heads variant of the same construction."""
    return {form: PowerIteration(d, normaliser=form, **options) for form in ("mlp", "heads")}


def anchor_left(construction: PowerIteration) -> PowerIteration:
    r"""The same model with the rescale heads in the left-anchored form $\hat\phi_M(a) + \sum_m w_m\sigma(s - t_m)$
    (scores $s - t_m$): one layer object serves every iteration, so replacing its heads changes them all."""
    layer = construction.model["component0.iter0.rescale"]
    layer.heads = inverse_sqrt_heads(
        construction.layout, "norm_sq", "u", "next", construction.engine.normaliser, anchor="left"
    ).heads
    return construction


# --- the gadget alone ------------------------------------------------------------------------------------------
def gadget_stream(s: torch.Tensor, u: np.ndarray, tokens: int = 3):
    layout = ResidualLayout([("one", 1), ("s", 1), ("u", 4), ("next", 4)])
    values = {"one": 1.0, "s": s[:, None, None], "u": torch.as_tensor(u)[None, None, :].expand(len(s), 1, 4)}
    return layout, layout.embed(len(s), tokens, values)


@pytest.mark.parametrize("anchor", ["right", "left"])
def test_heads_add_the_hinge_interpolant_times_the_vector(anchor):
    r"""Inside $[a, b]$ and outside (flat there; only a forward pass checks the domain): $\hat\phi_M(s)\,u$ as
    numpy's interpolant, with $M + 2$ heads."""
    s = torch.logspace(-1.5, 1.5, 61, dtype=torch.float64)
    u = np.array([0.3, -1.2, 0.7, 2.0])
    layout, stream = gadget_stream(s, u)
    normaliser = InverseSqrt(NormalisationDomain(0.1, 10.0), 8)
    layer = inverse_sqrt_heads(layout, "s", "u", "next", normaliser, anchor=anchor)
    assert len(layer.heads) == 8 + 2
    out = layout.read(layer(stream) + stream, "next").numpy()
    phi = hinge_inverse_sqrt((0.1, 10.0), 8)
    expected = np.array([phi(value) for value in s.numpy()])[:, None, None] * u
    # right: every active term is >= 0, so a few ulp; left: terms up to (b/a)^{3/2} = 1000 times the result cancel
    assert relative(out, np.broadcast_to(expected, out.shape)) < (1e-15 if anchor == "right" else 1e-12)
    with pytest.raises(ValueError, match="anchor must be 'left' or 'right'"):
        inverse_sqrt_heads(layout, "s", "u", "next", normaliser, anchor="middle")


def test_left_anchored_heads_turn_the_direction_in_float32():
    r"""One rescale layer in float32 at $s$ across $[a, b] = [10^{-2}, 10^2]$, $M = 32$: the right-anchored heads
    keep the direction of $u$ to float32 round-off ($\le 1.3\times10^{-7}$ measured), the left-anchored ones (terms
    $\sim (s/a)^{3/2}\hat\phi_M(s)$ that cancel, rounded coordinate by coordinate) turn it by an angle growing as
    $(s/a)^{3/2}$ (fitted order 1.50 on $[1, 100]$), $1.5\times10^{-2}$ at $s = b$."""
    s = torch.logspace(-2, 2, 21, dtype=torch.float64)
    u = np.random.default_rng(5).standard_normal(4)
    layout, stream = gadget_stream(s, u)
    normaliser = InverseSqrt(NormalisationDomain(*DOMAIN), 32)
    angles = {}
    for anchor in ("right", "left"):
        model = Transformer(layout, [inverse_sqrt_heads(layout, "s", "u", "next", normaliser, anchor=anchor)])
        out = layout.read(model(stream.float())[:, 0], "next").double().numpy()
        angles[anchor] = np.array([sin_angle(row, u) for row in out])
    assert angles["right"].max() < 4 * EPS32
    assert angles["left"][-1] > 1e4 * angles["right"].max()
    assert_rate(s[10:].numpy(), angles["left"][10:], 1.5, 0.2)


# --- (a) the same function as the MLP ---------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scoring", ["relu", "linear"])
def test_heads_equal_the_mlp_variant_in_float64(width, scoring):
    r"""Top-2 with a Newton step: every iterate, normaliser input, eigenvalue and eigenvector of the heads variant
    equal the MLP variant's to round-off. Measured (largest relative difference, ReLU and linear scoring alike, at
    $M = 8, 32, 128$): iterates $\le 2.2\times10^{-15}$, eigenvalues $\le 3.2\times10^{-15}$, eigenvectors
    $\le 1.7\times10^{-15}$."""
    X = torch.as_tensor(gaussian_data())
    seeds = default_seeds(5, 2, seed=3)
    found = {}
    for form, construction in both(
        5, components=2, iterations=20, width=width, domain=DOMAIN, newton_steps=1, attention=scoring
    ).items():
        trajectory = construction.trajectory(construction.embed(X, seeds))
        found[form] = (trajectory, construction.readout(trajectory.stream))
    (mlp_path, mlp), (heads_path, heads) = found["mlp"], found["heads"]
    assert relative(heads_path.iterates, mlp_path.iterates) < 2e-14
    assert relative(heads_path.normaliser_inputs, mlp_path.normaliser_inputs) < 2e-14
    assert relative(heads.eigenvalues, mlp.eigenvalues) < 2e-14
    assert relative(heads.vectors, mlp.vectors) < 2e-14


def test_heads_equal_the_mlp_variant_for_a_cubic_tensor():
    """The order-3 contraction (odeco tensor, 2 components: the deflation's overlap scratch is cleared by the
    overwrite MLP now that there is no inv_sqrt MLP): the same eigenpairs."""
    odeco = build_odeco(np.array([3.0, 2.0, 1.5]), 4, seed=1)
    found = {}
    for form in ("mlp", "heads"):
        construction = OdecoPowerIteration(
            4,
            components=2,
            iterations=8,
            width=32,
            domain=NormalisationDomain.for_weights(1.5, 3.0),
            normaliser=form,
        )
        found[form] = construction.readout(construction.model(construction.embed(odeco.tensor, default_seeds(4, 2))))
    assert relative(found["heads"].eigenvalues, found["mlp"].eigenvalues) < 1e-13
    assert relative(found["heads"].vectors, found["mlp"].vectors) < 1e-13


# --- (b) the direction is exact ----------------------------------------------------------------------------------
@pytest.mark.parametrize("width", (6,) + WIDTHS)
def test_direction_is_exactly_that_of_power_iteration(width):
    """At any width (6 is the narrowest accepted on the domain) every iterate's direction is numpy's exact power
    iteration's to round-off (measured: largest sin <= 1.9e-15 over 41 iterates at M = 6, 8, 32, 128); the width
    error is in the norm only (0.17 at M = 6, 4.6e-4 at M = 128)."""
    X = gaussian_data(n=50, d=4)
    construction = PowerIteration(4, iterations=40, width=width, domain=DOMAIN, normaliser="heads")
    trajectory = construction.trajectory(construction.embed(torch.as_tensor(X)))
    seed = default_seeds(4, 1)[0]
    for b in range(2):
        exact = power_iteration(second_moment(X[b]), seed, 40, normaliser=exact_inverse_sqrt).iterates
        found = trajectory.iterates[b, 0].numpy()
        assert max(sin_angle(found[t], exact[t]) for t in range(41)) < 1e-14
    norm_error = np.abs(np.linalg.norm(trajectory.iterates[:, 0, -1].numpy(), axis=-1) - 1).max()
    assert 1e-6 < norm_error <= construction.engine.norm_error


# --- (c) the norm error's rate -----------------------------------------------------------------------------------
def test_norm_error_falls_as_the_squared_knot_spacing():
    r"""$\max |\lVert v\rVert - 1|$ over 24 instances whose $\lambda_1^2$ spread over $[0.36, 16]$ (so every
    position within a knot interval is met) against the number of heads $M + 2$: the fitted order in $M$ is $-2$
    and the error is $\frac{3}{32}(\ln(b/a)/M)^2$ within 5 % (measured: $1.03, 0.99, 1.00, 1.00, 1.00$ times it at
    $M = 8..128$, fitted order $-2.007$), never above the interpolant's exact sup error."""
    rng = np.random.default_rng(7)
    tops = np.exp(np.linspace(np.log(0.6), np.log(4.0), 24))
    X = np.stack(
        [data_with_second_moment(np.array([t, t / 2, t / 5]), random_orthogonal(3, rng), 8, rng) for t in tops]
    )
    widths, errors = (8, 16, 32, 64, 128), []
    low, high = DOMAIN
    for width in widths:
        construction = PowerIteration(3, iterations=15, width=width, domain=DOMAIN, normaliser="heads")
        assert len(construction.model["component0.iter0.rescale"].heads) == width + 2
        vectors = construction.readout(construction.model(construction.embed(torch.as_tensor(X)))).vectors
        error = float(np.abs(np.linalg.norm(vectors[:, 0].numpy(), axis=-1) - 1).max())
        assert error <= construction.engine.norm_error * (1 + 1e-9)
        assert error == pytest.approx(3 / 32 * (math.log(high / low) / width) ** 2, rel=0.05)
        errors.append(error)
    assert_rate(widths, errors, -2.0, 0.05)


# --- (d) resources ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("components, newton", [(1, 0), (3, 1)])
def test_resources_counted_from_the_built_model(components, newton):
    r"""The rescale layer holds $M + 1$ hinge heads and one constant head and nothing else; there is no ``inv_sqrt``
    MLP and no ``inv_norm`` slot; the widest MLP (the overwrite, $6d + 2$, or with a next component the store, $8d$)
    does not grow with $M$, while the MLP variant's is $\max(M + 2, 6d + 4, \dots)$. Depth is unchanged."""
    d, steps = 5, 4
    mlp_widths = []
    for width in WIDTHS:
        models = both(d, components=components, iterations=steps, width=width, domain=DOMAIN, newton_steps=newton)
        mlp, heads = models["mlp"], models["heads"]
        rescale = heads.model["component0.iter0.rescale"]
        assert len(rescale.heads) == width + 2
        assert sum(head.label.startswith("hinge") for head in rescale.heads) == width + 1
        assert sum(head.label.startswith("const") for head in rescale.heads) == 1
        assert all(head.scoring == "relu" for head in rescale.heads)
        assert not any(name.endswith(".inv_sqrt") for name in heads.model.names)
        assert "inv_norm" not in heads.layout.names
        assert heads.layout.dim == mlp.layout.dim - 1
        assert heads.model.depth == mlp.model.depth == components * (3 * steps + 2 * newton + 2)
        assert len(heads.model) == len(mlp.model) - components * steps  # one MLP fewer per power step
        assert heads.model.max_heads == max(width + 2, 2 * components)
        assert heads.model.max_mlp_width == max(6 * d + 2, 8 * d if components > 1 else 0)
        assert mlp.model["component0.iter0.inv_sqrt"].width == width + 2
        assert len(mlp.model["component0.iter0.rescale"].heads) == 1
        mlp_widths.append(mlp.model.max_mlp_width)
    assert mlp_widths == [max(M + 2, 6 * d + 4, 8 * d if components > 1 else 0) for M in WIDTHS]


# --- (e) float32 --------------------------------------------------------------------------------------------------
def test_float32_direction_error_of_each_normaliser():
    r"""Each variant run in float32 (a float32 stream; the weights follow its dtype), its final direction against
    numpy's exact power iteration in float64, the largest $\sin$ over 3 instances ($d = 5$, $n = 40$, $J = 40$,
    $[a, b] = [10^{-2}, 10^2]$):

    ========  =============  ==================  ===========================
    $M$       MLP            heads (right)       heads, left-anchored
    ========  =============  ==================  ===========================
    8         3.4e-7         2.7e-7              1.1e-3
    32        2.8e-7         2.5e-7              1.6e-3
    128       1.0e-7         1.3e-7              1.6e-3
    ========  =============  ==================  ===========================

    (in float64 the three give $\le 6\times10^{-16}$, $\le 2\times10^{-16}$ and $\le 5\times10^{-12}$). The engine's
    heads are right-anchored like the MLP ($\hat\phi_M(b) + \sum_m w_m\sigma(t_m - s)$: every active
    term $\ge 0$, nothing cancels), and lose nothing against it: both sit at the float32 floor of the contraction.
    The left-anchored form (scores $s - t_m$, constant $\hat\phi_M(a)$: the same function) cancels terms of size
    $(s/a)^{3/2}\hat\phi_M(s)$, rounded coordinate by coordinate, and loses 3 to 4 orders of magnitude in direction.
    """
    X = gaussian_data(batch=3)
    seed = default_seeds(5, 1)[0]
    exact = [
        power_iteration(second_moment(X[b]), seed, 40, normaliser=exact_inverse_sqrt).iterates[-1] for b in range(3)
    ]
    for width in WIDTHS:
        models = both(5, iterations=40, width=width, domain=DOMAIN)
        models["left"] = anchor_left(PowerIteration(5, iterations=40, width=width, domain=DOMAIN, normaliser="heads"))
        errors = {}
        for form, construction in models.items():
            final = construction.trajectory(construction.embed(torch.as_tensor(X)).float()).iterates[:, 0, -1]
            assert final.dtype == torch.float32
            errors[form] = max(sin_angle(final[b].double().numpy(), exact[b]) for b in range(3))
        assert max(errors["mlp"], errors["heads"]) < 10 * EPS32
        assert errors["heads"] < 5 * errors["mlp"]
        assert errors["left"] > 1e3 * max(errors["mlp"], errors["heads"])


# --- (f) the domain -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, end", [(30.0, "upper"), (1e-3, "lower")])
def test_normaliser_input_outside_the_domain_raises_naming_the_rescale_layer(scale, end):
    X = torch.as_tensor(gaussian_data() * scale)
    construction = PowerIteration(5, iterations=5, width=16, domain=DOMAIN, normaliser="heads")
    stream = construction.embed(X)
    with pytest.raises(DomainError, match=rf"sublayer 'component0\.iter0\.rescale' read norm_sq .* {end} end") as error:
        construction.model(stream)
    assert error.value.violation.domain.parameter.startswith("domain=(a, b)")
    violations = construction.trajectory(stream, outside="record").violations
    assert violations and {v.sublayer.rsplit(".", 1)[-1] for v in violations} == {"rescale"}


def test_bad_normaliser_is_refused():
    with pytest.raises(ValueError, match=r"normaliser must be one of \('mlp', 'heads'\), got 'head'"):
        PowerIteration(3, normaliser="head")
