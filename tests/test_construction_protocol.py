"""Every family's construction has the one shared shape: the Construction protocol, hook-named sublayers, ``run``
equal to ``readout(model(embed(...)))``, and traces read by name."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tfconstruct.constructions import Construction, NormalisationDomain, Trace
from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.power import PowerIteration, SpectralClustering
from tfconstruct.constructions.tensor import OdecoPowerIteration, SpectralGMM, preprocess
from tfconstruct.verify.tensor.strategies import build_means, build_odeco, sample_mixture

pytestmark = pytest.mark.usefixtures("single_torch_thread")

RNG = np.random.default_rng(0)
DATA = RNG.standard_normal((2, 12, 3)) * np.array([2.0, 1.0, 0.5])
ODECO = build_odeco(np.array([2.0, 1.0]), 3, seed=0)
MIXTURE = sample_mixture(np.array([0.5, 0.5]), build_means(3, 2, 5.0, 0.3, seed=0), 30, seed=1)
PRE = preprocess(MIXTURE.x, 2)
POINTS = np.concatenate([RNG.standard_normal((6, 2)) + 3.0, RNG.standard_normal((6, 2)) - 3.0])


def cases():
    """(construction, embed arguments, a hook every iteration of it has) for every family."""
    gmm = SpectralGMM(2, iterations=3, width=64, newton_steps=1).build(PRE)
    return {
        "pca": (
            PowerIteration.for_data(DATA, components=2, iterations=3, newton_steps=1),
            (DATA,),
            "component1.iter2.norm",
        ),
        "clustering": (SpectralClustering(3, iterations=3), (DATA,), "component0.iter2.rescale"),
        "em": (
            EMConstruction(2, components=2, iterations=3, radius=10.0),
            (POINTS, POINTS[[0, 6]]),
            "iter2.estep.attn",
        ),
        "odeco": (
            OdecoPowerIteration(3, components=2, iterations=3, width=32, domain=NormalisationDomain.for_weights(1, 2)),
            (ODECO.tensor,),
            "component1.iter2.contract2",
        ),
        "gmm": (gmm, (PRE,), "component1.iter2.inv_sqrt"),
    }


@pytest.mark.parametrize("name", ["pca", "clustering", "em", "odeco", "gmm"])
def test_every_family_has_the_construction_shape(name):
    construction, inputs, hook = cases()[name]
    assert isinstance(construction, Construction)
    names = construction.model.names
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", n) for n in names)
    stream = construction.embed(*inputs)
    assert stream.shape[-1] == construction.layout.dim
    final = construction.model(stream)
    assert torch.equal(
        torch.as_tensor(_first(construction.run(*inputs))), torch.as_tensor(_first(construction.readout(final)))
    )
    trace = construction.trace(*inputs)
    assert isinstance(trace, Trace) and torch.equal(trace.output, final)
    assert torch.equal(trace[hook], construction.model.upto(hook)(stream))
    partial = construction.trace(*inputs, hooks=[hook])
    assert torch.equal(partial[hook], trace[hook]) and sum(s is not None for s in partial.streams) == 3


def _first(result):
    """The first tensor of a read-out (a dataclass, or a tuple of them)."""
    while not isinstance(result, torch.Tensor):
        result = result[0] if isinstance(result, tuple) else next(iter(vars(result).values()))
    return result
