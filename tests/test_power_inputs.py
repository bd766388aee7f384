"""Bad input to the power-iteration and clustering transformers: a ValueError naming the parameter and range."""

import math

import numpy as np
import pytest
import torch

from tfconstruct.constructions.power import PowerIteration, SpectralClustering, default_domain, stable_width

pytestmark = pytest.mark.usefixtures("single_torch_thread")

X = torch.randn(2, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dim": 0}, r"dim must be an integer >= 1, got 0"),
        ({"components": 0}, r"components must be an integer >= 1 and <= 3, got 0"),
        ({"components": 4}, r"components must be an integer >= 1 and <= 3, got 4"),
        ({"iterations": 0}, r"iterations must be an integer >= 1, got 0"),
        ({"width": 0}, r"width must be an integer >= 1, got 0"),
        ({"width": 2.5}, r"width must be an integer >= 1, got 2.5"),
        ({"newton_steps": -1}, r"newton_steps must be an integer >= 0, got -1"),
        ({"attention": "softmax"}, r"attention must be one of \('relu', 'linear'\), got 'softmax'"),
        ({"domain": (0.0, 1.0)}, r"domain lower end a must be finite and > 0, got 0.0"),
        ({"domain": (2.0, 1.0)}, r"domain must satisfy 0 < a < b < inf, got a=2.0, b=1.0"),
        ({"domain": (1.0, math.inf)}, r"domain must satisfy 0 < a < b < inf"),
        ({"domain": (math.nan, 1.0)}, r"domain lower end a must be finite and > 0"),
        ({"domain": 5.0}, r"domain must be a NormalisationDomain or a pair \(a, b\) of numbers with 0 < a < b"),
    ],
)
def test_bad_construction_parameters(options, message):
    arguments = {"dim": 3, **options}
    with pytest.raises(ValueError, match=message):
        PowerIteration(arguments.pop("dim"), **arguments)


@pytest.mark.parametrize("margin", [0.0, -1.0, math.inf, math.nan])
def test_bad_clustering_margin(margin):
    with pytest.raises(ValueError, match="margin must be finite and > 0"):
        SpectralClustering(3, margin=margin)


@pytest.mark.parametrize(
    "data, seeds, message",
    [
        (torch.zeros(3), None, r"X must have 2 or 3 dimensions \(with a leading batch\), got shape \(3,\)"),
        (torch.zeros(2, 10, 4), None, r"X must have shape \(batch, n >= 1, d = 3\), got \(2, 10, 4\)"),
        (torch.zeros(2, 0, 3), None, r"X must have shape \(batch, n >= 1, d = 3\), got \(2, 0, 3\)"),
        (
            X.clone().index_put_(
                (torch.tensor(0), torch.tensor(1), torch.tensor(2)), torch.tensor(np.nan, dtype=torch.float64)
            ),
            None,
            r"X contains non-finite values \(NaN or inf\)",
        ),
        (X * math.inf, None, r"X contains non-finite values"),
        (X, torch.ones(2, 3), r"seeds must have shape \(R, k\) = \(1, 3\) or \(2, R, k\), got \(1, 2, 3\)"),
        (X, torch.ones(3, 1, 3), r"seeds must have shape \(R, k\) = \(1, 3\) or \(2, R, k\)"),
        (X, torch.ones(1, 4), r"seeds must have shape"),
        (X, torch.zeros(1, 3), r"seeds must be non-zero vectors"),
        (X, torch.tensor([[1.0, math.nan, 0.0]]), r"seeds contains non-finite values"),
    ],
)
def test_bad_embedding_input(data, seeds, message):
    with pytest.raises(ValueError, match=message):
        PowerIteration(3).embed(data, seeds)


def test_bad_default_domain_input():
    with pytest.raises(ValueError, match=r"dynamic_range must be finite and > 1, got 1.0"):
        default_domain(X, dynamic_range=1.0)
    with pytest.raises(ValueError, match="zero second-moment matrix in every instance"):
        default_domain(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="zero second-moment matrix"):
        PowerIteration.for_data(torch.ones(1, 5, 3), centre=True)  # centred data are all zero
    with pytest.raises(ValueError, match="domain must satisfy 0 < a < b"):
        stable_width((1.0, 1.0))


def test_good_input_of_every_accepted_form_runs():
    """Unbatched X and seeds, numpy input, a batch of seeds, and for_data: all give finite results."""
    construction = PowerIteration(3, components=2, iterations=3)
    for data, seeds in [(X[0].numpy(), None), (X, np.ones((2, 3))), (X, torch.ones(2, 2, 3))]:
        result = construction.run(data, seeds)
        assert torch.isfinite(result.vectors).all() and torch.isfinite(result.eigenvalues).all()
    assert SpectralClustering.for_data(X, iterations=3).cluster(X).shape == (2, 10)
