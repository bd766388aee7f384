"""In-context gradient descent by linear attention against numpy gradient descent and least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, note

from tfconstruct.constructions.gd import InContextRegression
from tfconstruct.theory.gd import GD_PREDICTION, contraction_factor, per_layer_rate
from tfconstruct.verify import assert_exact, assert_rate, check_bound
from tfconstruct.verify.gd.reference import gradient_descent, least_squares, preconditioned_spectrum
from tfconstruct.verify.gd.strategies import build_regression, regression_instances, study_spectrum
from tfconstruct.verify.gd.sweep import fit_window

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def trajectory(instance, steps):
    construction = InContextRegression(
        instance.X.shape[1], steps=steps, eta=instance.eta, preconditioner=instance.preconditioner
    )
    return construction.trajectory(construction.embed(instance.X, instance.y, instance.query))[0].numpy()


@given(regression_instances())
def test_every_layer_is_one_exact_gd_step_and_the_error_meets_the_bound(instance):
    steps = 30
    path = trajectory(instance, steps)
    exact = gradient_descent(instance.X, instance.y, instance.query, instance.eta, steps, instance.preconditioner)
    for t in range(steps + 1):
        assert_exact(path[t], exact.predictions[t], depth=t, scale=max(1.0, np.abs(exact.predictions).max()))
    weights, limit = least_squares(instance.X, instance.y, instance.query)
    mu = preconditioned_spectrum(instance.X, instance.preconditioner)
    kappa = 1.0 if instance.preconditioner is None else float(np.linalg.cond(instance.preconditioner))
    rho = contraction_factor(instance.eta, mu)
    note(f"rho {rho:.4f}, kappa {kappa:.3g}")
    for t in range(steps + 1):
        check_bound(
            GD_PREDICTION, abs(path[t] - limit), instance={"t": t}, atol=1e-12 * max(1.0, abs(limit)),
            q=float(np.linalg.norm(instance.query)), w=float(np.linalg.norm(weights)), kappa=kappa, rho=rho, L=t,
        )  # fmt: skip


@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5])
def test_the_per_layer_rate_is_log_rho_to_three_digits(eta):
    spectrum = study_spectrum(4)
    window = fit_window(eta, spectrum)
    depths = np.arange(window, window + 60, 6)
    errors = []
    for seed in range(3):
        instance = build_regression(seed, 4, 64, spectrum, eta)
        limit = least_squares(instance.X, instance.y, instance.query)[1]
        errors.append(np.abs(trajectory(instance, int(depths[-1]))[depths] - limit))
    expected = per_layer_rate(eta, spectrum)
    assert_rate(depths, np.median(errors, axis=0), expected, tolerance=1e-3 * abs(expected), scale="semilog")


def test_no_step_predicts_zero_and_the_preconditioner_sigma_inverse_solves_in_one_layer():
    spectrum = study_spectrum(3)
    instance = build_regression(0, 3, 20, spectrum, 1.0)
    assert float(InContextRegression(3, steps=0, eta=1.0).run(instance.X, instance.y, instance.query).prediction) == 0.0
    inverse = instance.rotation @ np.diag(1.0 / spectrum) @ instance.rotation.T
    one = InContextRegression(3, steps=1, eta=1.0, preconditioner=inverse).run(instance.X, instance.y, instance.query)
    limit = least_squares(instance.X, instance.y, instance.query)[1]
    assert_exact(one.prediction[0], limit, scale=float(np.linalg.cond(inverse)) * max(1.0, abs(limit)))
    residuals = one.residuals[0].numpy()
    np.testing.assert_allclose(
        residuals, instance.y - instance.X @ np.linalg.lstsq(instance.X, instance.y)[0], atol=1e-12
    )


def test_the_division_is_by_the_attended_data_tokens_not_all_tokens():
    """One step with n data tokens: the update is eta/n X^T r, not eta/(n + 1) (the query is not a key)."""
    instance = build_regression(3, 2, 5, study_spectrum(2), 1.0)
    step = trajectory(instance, 1)[1]
    assert_exact(step, instance.query @ (1.0 / 5 * instance.X.T @ instance.y))


def test_sublayers_are_named_by_step_and_the_model_is_minimal():
    construction = InContextRegression(3, steps=4, eta=0.5)
    assert construction.model.names == ["iter0.gd", "iter1.gd", "iter2.gd", "iter3.gd", "readout"]
    assert construction.model.depth == 4 and construction.model.max_heads == 1
    assert construction.model.max_mlp_width == 2 and construction.layout.dim == 3 + 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dim": 0}, "dim must be an integer >= 1, got 0"),
        ({"steps": -1}, "steps must be an integer >= 0, got -1"),
        ({"eta": 0.0}, "eta must be finite and > 0, got 0.0"),
        ({"eta": float("nan")}, "eta must be finite and > 0"),
        ({"preconditioner": np.eye(2)}, r"preconditioner must have shape \(3, 3\), got \(2, 2\)"),
        ({"preconditioner": np.triu(np.ones((3, 3)))}, "preconditioner must be symmetric"),
        ({"preconditioner": -np.eye(3)}, "preconditioner must be positive definite, its smallest eigenvalue is -1"),
    ],
)
def test_bad_parameters_are_named(options, message):
    arguments = {"dim": 3, "steps": 2, "eta": 0.5, **options}
    with pytest.raises(ValueError, match=message):
        InContextRegression(arguments.pop("dim"), **arguments)


def test_bad_inputs_are_named():
    construction = InContextRegression(2, steps=1, eta=0.5)
    X, y, q = np.ones((4, 2)), np.ones(4), np.ones(2)
    with pytest.raises(ValueError, match=r"X must have shape \(batch, n >= 1, d = 2\), got \(1, 4, 3\)"):
        construction.embed(np.ones((4, 3)), y, q)
    with pytest.raises(ValueError, match=r"y must have shape \(1, 4\) \(one label per data point\), got \(1, 3\)"):
        construction.embed(X, np.ones(3), q)
    with pytest.raises(ValueError, match=r"query must have shape \(1, 2\), got \(1, 3\)"):
        construction.embed(X, y, np.ones(3))
    with pytest.raises(ValueError, match="y contains non-finite values"):
        construction.embed(X, np.array([1.0, np.nan, 0.0, 1.0]), q)
    assert torch.isfinite(construction.embed(X, y, q)).all()
