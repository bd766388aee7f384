"""The bound registry, its printing, and the bounds of theory/approximation.py and theory/propagation.py."""

import math
import re
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tfconstruct.constructions.piecewise import PiecewiseLinear, geometric_knots
from tfconstruct.theory.approximation import (
    CENTRAL_DIFFERENCE,
    ONE_SIDED_DIFFERENCE,
    PRODUCT_VIA_SQUARES,
    SIGMOID_STAIRCASE,
    SIGMOID_STAIRCASE_SCALED,
    SOFTMAX_HARDMAX,
)
from tfconstruct.theory.interpolation import INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE
from tfconstruct.theory.latex import escape_text, format_latex, format_markdown, format_text
from tfconstruct.theory.propagation import (
    CONTRACTION_DEPTH,
    POWER_ANGLE_DEPTH,
    POWER_NORM_DEPTH,
    TENSOR_POWER_DEPTH,
    contraction_bound,
    newton_norm_error,
    tensor_power_coefficients,
    tensor_power_tan,
)
from tfconstruct.theory.registry import all_bounds, get
from tfconstruct.verify.approximation.approximants import (
    central_difference_head,
    central_difference_leading_order,
    centred_linear_head,
    one_sided_difference_head,
    product_via_squares,
    sigmoid_staircase,
    softmax_head,
)
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.cli import main
from tfconstruct.verify.rates import assert_rate

# ------------------------------------------------------------------------------------ registry


def test_registry_collects_every_theory_module():
    names = [b.name for b in all_bounds()]
    for bound in (INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE):
        assert bound.name in names
    assert len(names) == len(set(names))
    assert get("square_uniform") is SQUARE_ABSOLUTE


def test_unknown_name_lists_the_registered_bounds():
    with pytest.raises(KeyError, match="registered bounds: .*square_uniform"):
        get("no_such_bound")


def test_a_new_module_is_discovered_and_duplicate_names_are_refused(tmp_path, monkeypatch):
    import tfconstruct.theory as theory

    (tmp_path / "zz_extra.py").write_text(
        "import sympy as sp\nfrom tfconstruct.theory.bound import Bound\n"
        "BOUNDS = [Bound('zz_extra', 'e', sp.Symbol('M') ** -1, 'M >= 1')]\n"
    )
    monkeypatch.setattr(theory, "__path__", [*theory.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "tfconstruct.theory.zz_extra", raising=False)
    assert get("zz_extra").name == "zz_extra"
    (tmp_path / "zz_duplicate.py").write_text(
        "from tfconstruct.theory.interpolation import SQUARE_ABSOLUTE\nBOUNDS = [SQUARE_ABSOLUTE]\n"
    )
    with pytest.raises(ValueError, match="'square_uniform' is defined in both"):
        all_bounds()
    for name in ("tfconstruct.theory.zz_extra", "tfconstruct.theory.zz_duplicate"):
        sys.modules.pop(name, None)


# ------------------------------------------------------------------------------------ printing


def test_latex_fragment_has_one_labelled_equation_per_bound():
    bounds = all_bounds()
    fragment = format_latex(bounds)
    environments = fragment.count(r"\begin{equation}") + fragment.count(r"\begin{multline}")
    assert environments == len(bounds) == fragment.count(r"\end{equation}") + fragment.count(r"\end{multline}")
    assert r"\texttt{square\_uniform}" in fragment
    assert r"\le \frac{R^{2}}{M^{2}}" in fragment
    assert r"\label{eq:inv-sqrt-geometric}" in fragment


def test_markdown_table_cells_contain_no_bare_pipes():
    table = format_markdown(all_bounds())
    rows = table.splitlines()
    unescaped = re.compile(r"(?<!\\)\|")
    assert all(len(unescaped.findall(row)) == 5 for row in rows if not row.startswith("|---")), rows


def test_escape_text_keeps_math_spans():
    assert escape_text("x_1 & $a_1 < b$ 50%") == r"x\_1 \& $a_1 < b$ 50\%"


def test_bounds_command_prints_text_and_latex(capsys):
    assert main(["bounds"]) == 0
    text = capsys.readouterr().out
    assert text == format_text(all_bounds()) + "\n"
    assert "leading order: R**2/M**2" in text
    assert main(["bounds", "--latex", "--name", "log_geometric"]) == 0
    assert capsys.readouterr().out == format_latex([LOG_ABSOLUTE], mode="document") + "\n"
    assert main(["bounds", "--name", "nope"]) == 2
    assert "registered bounds" in capsys.readouterr().err


# ------------------------------------------------------------------- approximation.py bounds


def product_error(radius: float, width: int) -> float:
    """Sup error over a grid that contains the worst points (x+y at a midpoint, x-y at a knot)."""
    grid = np.linspace(-radius, radius, 4 * width + 1)  # spacing h/8, h = 4R/M
    x, y = np.meshgrid(grid, grid)
    return float(np.max(np.abs(product_via_squares(x, y, radius, width) - x * y)))


@given(st.floats(0.1, 50.0), st.integers(1, 64))
def test_product_via_squares_meets_its_bound(radius, width):
    check = check_bound(
        PRODUCT_VIA_SQUARES,
        product_error(radius, width),
        instance={"R": radius, "M": width},
        atol=1e-13 * radius**2,
        R=radius,
        M=width,
    )
    assert check.passed


def test_product_bound_is_sharp_rate_two_and_width_for():
    widths = [4, 8, 16, 32, 64]
    errors = [product_error(2.0, m) for m in widths]
    assert_rate(widths, errors, expected=-2.0, tolerance=0.05)
    assert errors[-1] == pytest.approx(PRODUCT_VIA_SQUARES(R=2.0, M=64), rel=1e-9)  # attained: slack 1
    needed = PRODUCT_VIA_SQUARES.width_for(1e-4, R=1.0)
    assert needed == 100  # R^2/M^2 <= 1e-4  <=>  M >= 100
    assert product_error(1.0, needed) <= 1e-4 * (1 + 1e-9) and product_error(1.0, needed - 1) > 1e-4


staircase_instances = st.fixed_dictionaries(
    {
        "amplitude": st.floats(0.1, 5.0),
        "frequency": st.floats(0.1, 6.0),
        "phase": st.floats(0.0, 6.3),
        "a": st.floats(-3.0, 3.0),
        "length": st.floats(0.5, 5.0),
        "M": st.integers(2, 128),
        "c": st.floats(1.0, 12.0),
    }
)


@given(staircase_instances)
def test_sigmoid_staircase_meets_its_bound(inst):
    low, high, heads = inst["a"], inst["a"] + inst["length"], inst["M"]
    g_fn = lambda u: inst["amplitude"] * np.sin(inst["frequency"] * u + inst["phase"])  # noqa: E731
    lipschitz = inst["amplitude"] * inst["frequency"]
    sharpness = inst["c"] * heads / (high - low)
    grid = np.linspace(low, high, 40 * heads + 1)
    measured = float(np.max(np.abs(sigmoid_staircase(g_fn, low, high, heads, sharpness)(grid) - g_fn(grid))))
    check_bound(SIGMOID_STAIRCASE, measured, instance=inst, L_g=lipschitz, a=low, b=high, M=heads, gamma=sharpness)
    check_bound(SIGMOID_STAIRCASE_SCALED, measured, instance=inst, L_g=lipschitz, a=low, b=high, M=heads, c=inst["c"])


def test_sigmoid_staircase_is_first_order_and_width_for():
    heads = [8, 16, 32, 64, 128, 256]
    grid = np.linspace(0.05, 1.0, 100_001)
    errors = [np.max(np.abs(sigmoid_staircase(np.log, 0.05, 1.0, m, 8 * m / 0.95)(grid) - np.log(grid))) for m in heads]
    assert_rate(heads, errors, expected=-1.0, tolerance=0.1)
    values = dict(L_g=20.0, a=0.05, b=1.0, c=8.0)  # log on [0.05, 1] is 20-Lipschitz
    needed = SIGMOID_STAIRCASE_SCALED.width_for(0.05, **values)
    assert SIGMOID_STAIRCASE_SCALED(M=needed, **values) <= 0.05 < SIGMOID_STAIRCASE_SCALED(M=needed - 1, **values)
    f = sigmoid_staircase(np.log, 0.05, 1.0, needed, 8 * needed / 0.95)
    assert np.max(np.abs(f(grid) - np.log(grid))) <= 0.05


difference_instances = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "keys": st.integers(3, 60),
        "queries": st.integers(1, 4),
        "p": st.integers(1, 4),
        "score_scale": st.floats(0.1, 3.0),
        "value_scale": st.floats(0.1, 10.0),
        "tau": st.floats(1e-2, 1.0),
    }
)


@given(difference_instances)
def test_softmax_differences_meet_their_bounds(inst):
    rng = np.random.default_rng(inst["seed"])
    scores = inst["score_scale"] * rng.standard_normal((inst["queries"], inst["keys"]))
    values = inst["value_scale"] * rng.standard_normal((inst["keys"], inst["p"]))
    target = centred_linear_head(scores, values)
    central = np.linalg.norm(central_difference_head(scores, values, inst["tau"]) - target, axis=-1)
    one_sided = np.linalg.norm(one_sided_difference_head(scores, values, inst["tau"]) - target, axis=-1)
    value_norm = float(np.max(np.linalg.norm(values, axis=-1)))
    for row in range(inst["queries"]):
        spread = float(np.ptp(scores[row]))
        both = dict(tau=inst["tau"], w=spread, Y=value_norm)
        check_bound(CENTRAL_DIFFERENCE, central[row], instance=inst, atol=1e-13 * value_norm / inst["tau"], **both)
        check_bound(ONE_SIDED_DIFFERENCE, one_sided[row], instance=inst, atol=1e-13 * value_norm / inst["tau"], **both)


def test_central_difference_is_second_order_and_matches_its_leading_term():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((300, 10))
    values -= values.mean(axis=0)
    direction = rng.standard_normal(10)
    scores = (values @ (direction / np.linalg.norm(direction)))[None, :]  # a mat-vec row: t_j = <v, x_j>
    taus = np.array([0.4, 0.2, 0.1, 0.05, 0.025])
    target = centred_linear_head(scores, values)
    central = [np.linalg.norm(central_difference_head(scores, values, t) - target) for t in taus]
    one_sided = [np.linalg.norm(one_sided_difference_head(scores, values, t) - target) for t in taus]
    assert_rate(taus, central, expected=2.0, tolerance=0.05)
    assert_rate(taus, one_sided, expected=1.0, tolerance=0.1)
    estimate = central_difference_leading_order(scores, values, 0.025)[0]
    assert central[-1] == pytest.approx(estimate, rel=1e-2)
    assert np.allclose(softmax_head(scores, values, 0.0), values.mean(axis=0))


hardmax_instances = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "K": st.integers(2, 8),
        "gap": st.floats(0.05, 3.0),
        "beta": st.floats(0.1, 30.0),
    }
)


@given(hardmax_instances)
def test_softmax_hardmax_meets_its_bound(inst):
    rng = np.random.default_rng(inst["seed"])
    others = -inst["gap"] - rng.exponential(1.0, inst["K"] - 1)
    others[0] = -inst["gap"]  # the runner-up sits exactly at the prescribed gap
    scores = np.concatenate([[0.0], others])[None, :]
    weights = softmax_head(inst["beta"] * scores, np.eye(inst["K"]), 1.0)[0]
    measured = float(np.abs(weights - np.eye(inst["K"])[0]).sum())
    check_bound(SOFTMAX_HARDMAX, measured, instance=inst, atol=1e-15, K=inst["K"], beta=inst["beta"], g=inst["gap"])


def test_hardmax_rate_is_the_gap():
    betas = np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    scores = np.array([[0.0, -0.7, -2.0]])
    errors = [2 * (1 - softmax_head(b * scores, np.eye(3), 1.0)[0, 0]) for b in betas]
    assert_rate(betas, errors, expected=-0.7, tolerance=0.02, scale="semilog")


# -------------------------------------------------------------------- propagation.py bounds


@given(st.integers(0, 2**31 - 1), st.floats(0.1, 0.95), st.floats(1e-6, 1e-1), st.floats(0.0, 5.0))
def test_contraction_bound_holds_for_perturbed_contractions(seed, kappa, eps, e0):
    rng = np.random.default_rng(seed)
    dim = 4
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    fixed_point = rng.standard_normal(dim)
    start = rng.standard_normal(dim)
    x = fixed_point + e0 * start / np.linalg.norm(start)
    for depth in range(1, 25):
        push = rng.standard_normal(dim)
        x = fixed_point + kappa * rotation @ (x - fixed_point) + eps * rng.uniform() * push / np.linalg.norm(push)
        check_bound(
            CONTRACTION_DEPTH,
            np.linalg.norm(x - fixed_point),
            instance={"seed": seed, "L": depth},
            atol=1e-12,
            kappa=kappa,
            varepsilon=eps,
            e_0=e0,
            L=depth,
        )


def test_contraction_bound_is_attained_and_covers_lipschitz_and_kappa_one():
    for kappa in (0.5, 1.0, 1.7):
        exact, emulated = 0.0, 0.0  # T(x) = kappa x; the emulation adds eps every step, always the same sign
        for depth in range(1, 15):
            exact, emulated = kappa * exact, kappa * emulated + 1e-3
            assert emulated - exact == pytest.approx(float(contraction_bound(kappa, 1e-3, 0.0, depth)), rel=1e-12)
    assert contraction_bound(1, 0.1, 2.0, 5) == pytest.approx(2.5)


def _spectrum_matrix(rng, eigenvalues):
    basis, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return basis @ np.diag(eigenvalues) @ basis.T, basis


@given(st.integers(0, 2**31 - 1), st.integers(2, 8), st.floats(0.1, 0.95), st.booleans())
def test_power_iteration_angle_with_arbitrary_positive_rescaling(seed, dim, ratio, top_two_only):
    rng = np.random.default_rng(seed)
    eigenvalues = np.concatenate([[1.0, ratio], ratio * rng.uniform(0.0, 1.0, dim - 2)])
    sigma, basis = _spectrum_matrix(rng, eigenvalues)
    coefficients = rng.standard_normal(dim)
    if top_two_only:
        coefficients[2:] = 0.0
    v = basis @ coefficients
    theta0 = math.atan(np.linalg.norm(coefficients[1:]) / abs(coefficients[0]))
    for depth in range(1, 30):
        v = rng.uniform(0.1, 10.0) * sigma @ v  # any positive scalar: the direction is exact
        in_basis = basis.T @ v
        tan = np.linalg.norm(in_basis[1:]) / abs(in_basis[0])
        check = check_bound(
            POWER_ANGLE_DEPTH, tan, instance={"seed": seed, "L": depth}, atol=1e-12, rho=ratio, theta_0=theta0, L=depth
        )
        if top_two_only and tan > 1e-6:
            assert check.slack == pytest.approx(1.0, rel=1e-8)  # equality in the top-two eigenspace


@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.sampled_from([16, 32, 64]))
def test_power_iteration_norm_error_does_not_accumulate(seed, dim, width):
    rng = np.random.default_rng(seed)
    eigenvalues = np.sort(rng.uniform(0.5, 5.0, dim))[::-1]
    sigma, _ = _spectrum_matrix(rng, eigenvalues)
    low, high = (0.5 * eigenvalues[-1]) ** 2, (1.5 * eigenvalues[0]) ** 2
    phi = PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(low, high, width))
    e_phi = INV_SQRT_RELATIVE(M=width, a=low, b=high)
    v = rng.standard_normal(dim)
    v /= np.linalg.norm(v)
    for depth in range(1, 40):
        u = sigma @ v
        s = float(u @ u)
        assert low <= s <= high
        v = phi(s) * u
        check_bound(
            POWER_NORM_DEPTH, abs(np.linalg.norm(v) - 1.0), instance={"seed": seed, "L": depth}, atol=1e-14, e_phi=e_phi
        )


@pytest.mark.parametrize("error", [0.3, 0.05, -0.2, -0.01])
def test_newton_norm_error_bounds_the_iteration(error):
    radius = 1.0 + error
    for steps in range(4):
        bound = float(newton_norm_error(abs(error), steps))
        assert abs(radius - 1.0) <= bound * (1 + 1e-12) + 1e-16
        if steps == 1 and error > 0:
            assert abs(radius - 1.0) == pytest.approx(bound, rel=1e-12)  # attained from e_0 = +|e_0|
        radius = radius * (3.0 - radius**2) / 2.0
    with pytest.raises(ValueError, match="steps"):
        newton_norm_error(0.1, -1)


tensor_instances = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "K": st.integers(2, 5),
        "extra_dims": st.integers(0, 3),
        "r": st.floats(0.2, 0.9),
    }
)


@given(tensor_instances)
def test_tensor_power_iteration_is_quadratic_as_derived(inst):
    rng = np.random.default_rng(inst["seed"])
    components, dim = inst["K"], inst["K"] + inst["extra_dims"]
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    vectors = basis[:, :components]
    lambdas = rng.uniform(0.5, 3.0, components)
    c0 = rng.uniform(0.2, 1.0, components) * rng.choice([-1.0, 1.0], components)
    c0[0] = np.max(np.abs(lambdas[1:] * c0[1:])) / (lambdas[0] * inst["r"])  # prescribed ratio r
    tensor = np.einsum("k,ik,jk,lk->ijl", lambdas, vectors, vectors, vectors)
    u = vectors @ c0 + (basis[:, components:] @ rng.standard_normal(dim - components))
    for steps in range(1, 5):
        u = np.einsum("ijl,j,l->i", tensor, u, u)
        u /= np.linalg.norm(u)
        predicted = np.array([float(x) for x in tensor_power_coefficients(lambdas, c0, steps)])
        assert np.allclose(vectors.T @ u, predicted / np.linalg.norm(predicted), rtol=0, atol=1e-12)
        in_basis = vectors.T @ u
        tan = np.linalg.norm(in_basis[1:]) / abs(in_basis[0])
        assert tan == pytest.approx(float(tensor_power_tan(lambdas, c0, steps)), rel=1e-9, abs=1e-14)
        check_bound(
            TENSOR_POWER_DEPTH,
            tan,
            instance={**inst, "t": steps},
            atol=1e-14,
            r=inst["r"],
            K=components,
            lambda_1=lambdas[0],
            lambda_min=lambdas.min(),
            t=steps,
        )


def test_approximation_study_rows_meet_their_bounds(tmp_path):
    from tfconstruct.verify.approximation.study import PARTS, approximation_sweep

    rows = approximation_sweep(tmp_path, list(PARTS), [8, 16], 2, progress=False).run()
    assert len(rows) == len(PARTS) * 2 * 2
    for row in rows:
        assert row["error"] <= row["bound"] + row["round_off"], row
    for name in PARTS:  # the same random instance at both widths (seed_keys=["part"])
        assert len({r["seed"] for r in rows if r["part"] == name and r["replicate"] == 0}) == 1
