"""Top-3 principal directions of the (standardised) wine data, which ships with scikit-learn, against eigh."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from tfconstruct.constructions.power import PowerIteration, default_seeds
from tfconstruct.theory.power import ANGLE_AFTER_STEPS, EIGENVALUE_RELATIVE, NORM_AFTER_TWO_NEWTON, NORM_PER_STEP
from tfconstruct.verify.bound_check import check_bound
from tfconstruct.verify.power.reference import second_moment, sin_angle, tan_angle, top_eigenpairs

pytestmark = pytest.mark.usefixtures("single_torch_thread")

STEPS, WIDTH, K = 70, 32, 3  # lambda_4/lambda_3 = 0.635: 0.635^70 tan(theta_0) < 1e-12


@pytest.fixture(scope="module")
def wine():
    data = load_wine().data
    return (data - data.mean(axis=0)) / data.std(axis=0)


@pytest.mark.parametrize("newton, norm_bound", [(0, NORM_PER_STEP), (2, NORM_AFTER_TWO_NEWTON)])
def test_top_three_wine_components_match_eigh(wine, newton, norm_bound):
    r"""Directions to within the depth bound $(\lambda_{j+1}/\lambda_l)^T\tan\theta_0$; norms and eigenvalues within
    the width bounds. For $j \ge 1$ the deflation residual along $v_p$ is $\lambda_p((1+\epsilon)^4-1) < \lambda_{j+1}$,
    so the same rate applies, and the eigenvalue bound holds up to the $O(\sin\theta_p)$ coupling (here < 1e-12)."""
    X = torch.as_tensor(wine)
    construction = PowerIteration.for_data(
        X, components=K, iterations=STEPS, width=WIDTH, newton_steps=newton, centre=True
    )
    result = construction.run(X)
    values, vectors = top_eigenpairs(second_moment(wine, centre=True), K + 1)
    seeds = default_seeds(wine.shape[1], K)
    a, b = construction.engine.domain.low, construction.engine.domain.high
    epsilon = norm_bound(M=WIDTH, a=a, b=b)
    for j in range(K):
        vector, value = result.vectors[0, j].numpy(), float(result.eigenvalues[0, j])
        instance = {"data": "wine standardised", "l": j, "J": newton, "M": WIDTH, "domain": (a, b)}
        others = seeds[j] - (seeds[j] @ vectors[j]) * vectors[j]
        theta_0 = np.arctan(tan_angle(seeds[j], vectors[j])) if np.linalg.norm(others) > 0 else 0.0
        check_bound(
            ANGLE_AFTER_STEPS,
            tan_angle(vector, vectors[j]),
            instance=instance,
            atol=1e-12,
            rho=values[j + 1] / values[j],
            theta_0=theta_0,
            L=STEPS,
        )
        check_bound(norm_bound, abs(np.linalg.norm(vector) - 1), instance=instance, atol=1e-14, M=WIDTH, a=a, b=b)
        theta = np.arcsin(min(1.0, sin_angle(vector, vectors[j])))
        check_bound(
            EIGENVALUE_RELATIVE, abs(value / values[j] - 1), instance=instance, atol=1e-12, epsilon=epsilon, theta=theta
        )
        assert sin_angle(vector, vectors[j]) < 1e-12
