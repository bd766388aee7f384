"""Top-3 principal directions of the (standardised) wine data, which ships with scikit-learn, against eigh."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from constructions.power import PowerIteration, default_seeds
from theory.power import ANGLE_AFTER_STEPS, EIGENVALUE_RELATIVE, NORM_AFTER_TWO_NEWTON, NORM_PER_STEP
from verify.bound_check import check_bound
from verify.reference.power import second_moment, sin_angle, tan_angle, top_eigenpairs

pytestmark = pytest.mark.usefixtures("single_torch_thread")

STEPS, WIDTH, K = 60, 32, 3


@pytest.fixture(scope="module")
def wine():
    data = load_wine().data
    return (data - data.mean(axis=0)) / data.std(axis=0)


@pytest.mark.parametrize("newton, norm_bound", [(0, NORM_PER_STEP), (2, NORM_AFTER_TWO_NEWTON)])
def test_top_three_wine_components_match_eigh(wine, newton, norm_bound):
    """Directions to within the depth bound $(\\lambda_{l+1}/\\lambda_l)^T\\tan\\theta_0$; norms and eigenvalues within
    the width bounds. For $l \\ge 1$ the deflation residual along $v_p$ is $\\lambda_p((1+\\epsilon)^4-1) < \\lambda_{l+1}$,
    so the same rate applies, and the eigenvalue bound holds up to the $O(\\sin\\theta_p)$ coupling (here < 1e-12)."""
    X = torch.as_tensor(wine)
    construction = PowerIteration.for_data(X, k=K, steps=STEPS, width=WIDTH, newton=newton, centre=True)
    result = construction.run(X)
    values, vectors = top_eigenpairs(second_moment(wine, centre=True), K + 1)
    seeds = default_seeds(wine.shape[1], K).numpy()
    a, b = construction.domain
    epsilon = norm_bound(M=WIDTH, a=a, b=b)
    for l in range(K):
        vector, value = result.vectors[0, l].numpy(), float(result.values[0, l])
        instance = {"data": "wine standardised", "l": l, "J": newton, "M": WIDTH, "domain": (a, b)}
        others = seeds[l] - (seeds[l] @ vectors[l]) * vectors[l]
        theta_0 = np.arctan(tan_angle(seeds[l], vectors[l])) if np.linalg.norm(others) > 0 else 0.0
        check_bound(
            ANGLE_AFTER_STEPS, tan_angle(vector, vectors[l]), instance=instance, atol=1e-12,
            rho=values[l + 1] / values[l], theta_0=theta_0, L=STEPS,
        )
        check_bound(norm_bound, abs(np.linalg.norm(vector) - 1), instance=instance, atol=1e-14, M=WIDTH, a=a, b=b)
        theta = np.arcsin(min(1.0, sin_angle(vector, vectors[l])))
        check_bound(EIGENVALUE_RELATIVE, abs(value / values[l] - 1), instance=instance, atol=1e-12, epsilon=epsilon, theta=theta)
        assert sin_angle(vector, vectors[l]) < 1e-12
