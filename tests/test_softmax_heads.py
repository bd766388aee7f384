r"""Softmax heads as universal approximators (the He et al. shape, arXiv 2502.06007) and the soft EM built on them.

Against numpy: the sigmoid staircase of $M$ anchor-softmax heads approximates $\log$ on $[0.05, 1]$ within the sympy
bound, equals the independent numpy staircase to round-off and its error falls as $M^{-1}$; the soft nearest grid
point over $M = P^q$ grid tokens approximates a ridge function on $[-1, 1]^q$ within its bound, its error falls as
$M^{-1/q}$ and the grid needed for a fixed error grows exponentially in $q$; inputs outside the domain raise
``DomainError``; bad arguments are named; the EM step matches numpy soft EM within its bound, with $K + 3$ attention
layers per step.
"""

import math

import numpy as np
import pytest
import torch

from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.em.softmax_heads import SoftmaxHeadsEM
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.residual import ResidualLayout
from tfconstruct.constructions.softmax_heads import (
    GRID_SHARPNESS,
    Anchors,
    GridTokens,
    SigmoidStaircase,
    SoftGrid,
    grid_head,
    staircase_heads,
)
from tfconstruct.theory.approximation import SIGMOID_STAIRCASE_SCALED
from tfconstruct.theory.softmax_heads import SOFTMAX_GRID_SCALED, SOFTMAX_HEADS_EM_STEP
from tfconstruct.verify.approximation.approximants import sigmoid_staircase
from tfconstruct.verify.em.reference import initial_state, responsibilities, soft_em
from tfconstruct.verify.rates import assert_rate

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ANCHORS = Anchors()
LOW, HIGH = 0.05, 1.0
HEADS = (8, 32, 128, 512)
RIDGE_FREQUENCY = 1.0  # f(z) = sin(w <1, z> / sqrt(q)): Lipschitz constant w in every dimension


# --- the staircase ---------------------------------------------------------------------------------------------
def staircase_model(staircase: SigmoidStaircase) -> tuple[ResidualLayout, Transformer]:
    layout = ResidualLayout([("u", 1), ("g", 1), ("is_data", 1), ("one", 1), *ANCHORS.blocks()])
    layer = staircase_heads(layout, "u", "g", staircase, tokens="is_data", parameter="domain=(low, high)")
    return layout, Transformer(layout, [layer], ["staircase"])


def staircase_stream(layout: ResidualLayout, u: np.ndarray) -> torch.Tensor:
    """Data tokens holding ``u``, then the two anchors."""
    data = layout.embed(1, len(u), {"u": torch.as_tensor(u)[:, None], "is_data": 1.0, "one": 1.0})
    return torch.cat([data, ANCHORS.embed(layout, 1)], dim=1)


def run_staircase(staircase: SigmoidStaircase, u: np.ndarray) -> np.ndarray:
    layout, model = staircase_model(staircase)
    return layout.read(model(staircase_stream(layout, u)), "g")[0, : len(u), 0].numpy()


def test_staircase_approximates_log_within_the_bound_at_rate_one():
    u = np.linspace(LOW, HIGH, 4001)
    errors = []
    for heads in HEADS:
        staircase = SigmoidStaircase(np.log, LOW, HIGH, heads)
        out = run_staircase(staircase, u)
        # the transformer computes exactly the numpy staircase (an independent implementation of the same formula)
        np.testing.assert_allclose(out, sigmoid_staircase(np.log, LOW, HIGH, heads, staircase.gamma)(u), atol=1e-13)
        error = float(np.max(np.abs(out - np.log(u))))
        bound = SIGMOID_STAIRCASE_SCALED(L_g=1 / LOW, a=LOW, b=HIGH, M=heads, c=staircase.sharpness)
        assert error <= bound, (heads, error, bound)
        errors.append(error)
    assert errors[0] == pytest.approx(0.334, abs=1e-3)  # M = 8, as in the recipe
    assert_rate(HEADS, errors, expected=-1.0, tolerance=0.1)


def test_staircase_writes_one_coordinate_of_a_block():
    layout = ResidualLayout([("w", 3), ("lw", 3), ("is_data", 1), ("one", 1), *ANCHORS.blocks()])
    staircase = SigmoidStaircase(np.log, LOW, HIGH, 16)
    layer = staircase_heads(layout, "w", "lw", staircase, src_index=1, dst_index=2, tokens="is_data")
    w = np.array([[0.1, 0.2, 0.3], [0.5, 0.7, 0.9]])
    data = layout.embed(1, 2, {"w": torch.as_tensor(w), "is_data": 1.0, "one": 1.0})
    stream = torch.cat([data, ANCHORS.embed(layout, 1)], dim=1)
    out = layout.read(Transformer(layout, [layer], ["log"])(stream), "lw")[0, :2].numpy()
    expected = sigmoid_staircase(np.log, LOW, HIGH, 16, staircase.gamma)(w[:, 1])
    np.testing.assert_allclose(out[:, 2], expected, atol=1e-14)
    np.testing.assert_array_equal(out[:, :2], 0.0)
    assert len(layer.heads) == 17  # M sigmoid heads and the constant head


# --- the grid --------------------------------------------------------------------------------------------------
def ridge(q: int):
    return lambda z: np.sin(RIDGE_FREQUENCY * z.sum(-1) / math.sqrt(q))


def soft_nearest(grid: SoftGrid, z: np.ndarray) -> np.ndarray:
    r"""$\sum_m f(g_m)\operatorname{softmax}_m(-\gamma\lVert z - g_m\rVert^2)$ from the distances themselves."""
    distances = ((z[:, None, :] - grid.points[None, :, :]) ** 2).sum(-1)
    logits = -grid.gamma * distances
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (weights / weights.sum(axis=1, keepdims=True)) @ grid.values[:, 0]


def run_grid(grid: SoftGrid, z: np.ndarray) -> np.ndarray:
    names = GridTokens()
    layout = ResidualLayout([("z", grid.dim), ("f", 1), ("is_data", 1), ("one", 1), *names.blocks(grid.dim)])
    data = layout.embed(1, len(z), {"z": torch.as_tensor(z), "is_data": 1.0, "one": 1.0})
    stream = torch.cat([data, grid.embed(layout, 1, names)], dim=1)
    model = Transformer(layout, [grid_head(layout, "z", "f", grid, names, tokens="is_data")], ["grid"])
    return layout.read(model(stream), "f")[0, : len(z), 0].numpy()


def grid_error(q: int, per_axis: int, z: np.ndarray) -> float:
    grid = SoftGrid(ridge(q), q, -1.0, 1.0, per_axis)
    out = run_grid(grid, z)
    np.testing.assert_allclose(out, soft_nearest(grid, z), atol=1e-10)
    return float(np.max(np.abs(out - ridge(q)(z))))


def sample_points(q: int, count: int = 1500) -> np.ndarray:
    return np.random.default_rng(q).uniform(-1.0, 1.0, (count, q))


@pytest.mark.parametrize("q, per_axis", [(1, (8, 16, 32, 64)), (2, (6, 12, 24, 48)), (3, (6, 9, 12, 16))])
def test_grid_error_within_the_bound_falls_as_m_to_the_minus_one_over_q(q, per_axis):
    z = sample_points(q)
    sizes = [p**q for p in per_axis]
    errors = [grid_error(q, p, z) for p in per_axis]
    for size, error in zip(sizes, errors):
        bound = SOFTMAX_GRID_SCALED(L_f=RIDGE_FREQUENCY, q=q, a=-1.0, b=1.0, M=size, c=GRID_SHARPNESS)
        assert error <= bound, (q, size, error, bound)
    assert_rate(sizes, errors, expected=-1.0 / q, tolerance=0.15)


def test_grid_needed_for_a_fixed_error_grows_exponentially_in_q():
    target = 0.1
    needed = {}
    for q in (1, 2, 3):
        z = sample_points(q)
        per_axis = next(p for p in range(1, 64) if grid_error(q, p, z) <= target)
        by_bound = SOFTMAX_GRID_SCALED.width_for(target, "M", L_f=RIDGE_FREQUENCY, q=q, a=-1.0, b=1.0, c=GRID_SHARPNESS)
        assert per_axis <= math.ceil(by_bound ** (1 / q) - 1e-9)  # the bound never asks for fewer
        needed[q] = per_axis**q
    # P never falls with q, so M = P^q >= M(1)^q: exponential in the dimension
    assert needed[2] >= needed[1] ** 2 and needed[3] >= needed[1] ** 3, needed
    assert needed[3] / needed[2] > needed[1], needed


# --- domains ---------------------------------------------------------------------------------------------------
def test_staircase_input_outside_its_domain_raises():
    staircase = SigmoidStaircase(np.log, LOW, HIGH, 8)
    layout, model = staircase_model(staircase)
    with pytest.raises(DomainError, match=r"read u = 0\.01.*\[0\.05, 1\].*domain=\(low, high\)"):
        model(staircase_stream(layout, np.array([0.5, 0.01])))
    with pytest.raises(DomainError, match="upper end"):
        model(staircase_stream(layout, np.array([0.5, 1.5])))
    trace = model(staircase_stream(layout, np.array([0.5, 0.01])), outside="record")
    assert [v.value for v in trace.violations] == [0.01]
    # the anchors' own input (0) is not checked: only the tokens flagged is_data
    run_staircase(staircase, np.array([LOW, HIGH]))


def test_grid_input_outside_its_box_raises():
    grid = SoftGrid(ridge(2), 2, -1.0, 1.0, 4)
    with pytest.raises(DomainError, match=r"read z = 1\.2"):
        run_grid(grid, np.array([[0.0, 0.5], [0.3, 1.2]]))
    with pytest.raises(DomainError, match=r"read z = -3"):
        run_grid(grid, np.array([[-3.0, 0.5]]))


# --- arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [
        ({"heads": 0}, "heads must be an integer >= 1 and <= 100000"),
        ({"heads": 2.5}, "heads must be an integer"),
        ({"sharpness": 0.0}, "sharpness must be finite and > 0"),
        ({"low": 1.0, "high": 1.0}, "low < high"),
        ({"low": float("nan")}, "low must be a finite real number"),
        ({"low": -1.0}, "function must be finite"),
    ],
)
def test_staircase_arguments_are_named(options, message):
    arguments = {"function": np.log, "low": LOW, "high": HIGH, "heads": 8} | options
    with pytest.raises(ValueError, match=message):
        SigmoidStaircase(**arguments)


def test_staircase_slots_are_checked():
    layout = ResidualLayout([("w", 3), ("g", 1), ("one", 1), *ANCHORS.blocks()])
    staircase = SigmoidStaircase(np.log, LOW, HIGH, 4)
    with pytest.raises(ValueError, match=r"src 'w' has size 3; pass src_index in \[0, 2\]"):
        staircase_heads(layout, "w", "g", staircase)
    with pytest.raises(ValueError, match="src_index must be an integer >= 0 and <= 2"):
        staircase_heads(layout, "w", "g", staircase, src_index=3)
    with pytest.raises(KeyError, match="no subspace named 'anchor_on'"):
        staircase_heads(ResidualLayout([("u", 1), ("g", 1), ("one", 1)]), "u", "g", staircase)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"per_axis": 0}, "per_axis must be an integer >= 1"),
        ({"dim": 0}, "dim must be an integer >= 1"),
        ({"dim": 3, "per_axis": 101}, r"per_axis must be in \[1, 100\]"),
        ({"sharpness": -1.0}, "sharpness must be finite and > 0"),
        ({"high": -2.0}, "low < high"),
        ({"function": lambda z: z.sum()}, "function must map points of shape"),
        ({"function": lambda z: np.log(z[:, 0])}, "function must be finite"),
    ],
)
def test_grid_arguments_are_named(options, message):
    arguments = {"function": ridge(2), "dim": 2, "low": -1.0, "high": 1.0, "per_axis": 4} | options
    with pytest.raises(ValueError, match=message):
        SoftGrid(**arguments)


def test_grid_slots_are_checked():
    grid = SoftGrid(ridge(2), 2, -1.0, 1.0, 4)
    layout = ResidualLayout([("z", 3), ("f", 1), ("one", 1), *GridTokens().blocks(2)])
    with pytest.raises(ValueError, match="the grid needs subspace 'z' of size 2, the layout's has 3"):
        grid_head(layout, "z", "f", grid)


# --- soft EM with the log by softmax heads ---------------------------------------------------------------------
def mixture(seed: int = 0, n: int = 30):
    """Three overlapping clusters in the plane (every responsibility above the floor at beta = 0.3)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
    points = centres[np.arange(n) % 3] + 0.5 * rng.standard_normal((n, 2))
    return points, centres + 0.3 * rng.standard_normal((3, 2))


BETA, FLOOR = 0.3, 0.05


def test_em_step_matches_numpy_soft_em_within_the_bound_at_rate_one():
    points, means = mixture()
    state = initial_state(means, variance=1 / BETA)
    reference = soft_em(points, state, 1, update_weights=False)[-1]
    assert responsibilities(points, state).min() >= FLOOR
    diameter = float(np.linalg.norm(points[:, None] - points[None], axis=-1).max())
    errors = []
    for heads in HEADS:
        em = SoftmaxHeadsEM(2, components=3, iterations=1, heads=heads, beta=BETA, radius=4.0, floor=FLOOR)
        out = em.run(points, means)
        np.testing.assert_allclose(out.responsibilities[0].numpy(), reference.responsibilities, atol=1e-14)
        error = float(np.linalg.norm(out.means[0].numpy() - reference.means, axis=-1).max())
        assert error <= SOFTMAX_HEADS_EM_STEP(D=diameter, epsilon=FLOOR, M=heads, c=em.log.sharpness)
        errors.append(error)
    assert_rate(HEADS, errors, expected=-1.0, tolerance=0.2)
    # three steps: the error still falls as 1/M
    three = [
        SoftmaxHeadsEM(2, components=3, iterations=3, heads=heads, beta=BETA, radius=4.0, floor=FLOOR).run(
            points, means
        )
        for heads in (32, 512)
    ]
    exact = soft_em(points, state, 3, update_weights=False)[-1].means
    assert_rate((32, 512), [float(np.abs(r.means[0].numpy() - exact).max()) for r in three], -1.0, 0.25)


def test_em_attention_layers_per_step_grow_linearly_in_k():
    per_step = {}
    for k in (2, 3, 4):
        one, two = (SoftmaxHeadsEM(2, components=k, iterations=t, heads=8, floor=0.05) for t in (1, 2))
        per_step[k] = two.model.depth - one.model.depth
        assert two.model.max_heads == 9  # M sigmoid heads and the constant head
        assert [name for name in one.model.names if name.startswith("iter0.log")] == [f"iter0.log{j}" for j in range(k)]
    assert per_step == {2: 5, 3: 6, 4: 7}  # K + 3: refresh, E-step, K log layers, M-step


def test_em_responsibility_below_the_floor_raises_naming_floor():
    points, means = mixture()
    em = SoftmaxHeadsEM(2, components=3, iterations=1, heads=8, beta=3.0, radius=4.0, floor=FLOOR)
    with pytest.raises(DomainError, match=r"'iter0\.log0' read resp = .* \(set by floor\)"):
        em.run(points, means)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"components": 1}, "components must be an integer >= 2"),
        ({"heads": 0}, "heads must be an integer >= 1 and <= 100000"),
        ({"floor": 0.5}, r"floor must be finite and > 0 and <= 0\.333"),
        ({"sharpness": 0.0}, "sharpness must be finite and > 0"),
        ({"beta": -1.0}, "beta must be finite and > 0"),
    ],
)
def test_em_arguments_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxHeadsEM(2, **({"components": 3, "iterations": 1, "heads": 8} | options))
