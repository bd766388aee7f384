r"""The EM tutorial example with its lesson: pseudocode, numpy's EM beside every step, the points coloured by
responsibility with the path of the means, and the example rebuilt at other widths $M$ of the log interpolants.

Two references are shown at the E-step. *Exact EM* uses the true $\log\pi_k$; the transformer reads
$\hat\ell(\pi_k)$, a width-$M$ hinge interpolant, so it differs from exact EM by an error that falls as $M^{-2}$.
The same softmax computed in numpy *from the stream's own* $\hat\ell(\pi_k)$ and $\mu_k$ is what the head computes
exactly, and matches to round-off: the head is exact, the logarithm is not.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import torch

from tfconstruct.constructions import Checkpoint, Geometry, PseudoLine, TutorialExample
from tfconstruct.constructions.em.construction import tutorial_example

from ..explore.timeline import count_numbered
from . import reference

VARIANCE = 1.0  # the example's beta = 1; a mismatch would show as an "exact" checkpoint off by more than round-off
EXAMPLE_WIDTH = inspect.signature(tutorial_example).parameters["width"].default
WIDTHS = (4, 8, 16, 32, 64)
PSEUDOCODE = (
    PseudoLine("for t = 0, 1, …, T−1:"),
    PseudoLine("    refresh the keys: s_k ← ‖μ_k‖²,  ℓ_k ← ℓ̂(π_k) ≈ log π_k", ("refresh",)),
    PseudoLine("    E: w_ik ← softmax_k(⟨x_i, μ_k⟩ − s_k/2 + ℓ_k)", ("estep.attn",)),
    PseudoLine("       resp ← w_i,  log_resp ← ℓ̂(w_i)", ("estep.mlp",)),
    PseudoLine("    M: μ_k ← Σ_i w_ik x_i / Σ_i w_ik,  π_k ← (1/n) Σ_i w_ik", ("mstep",)),
)


def lesson(width: int | None = None) -> TutorialExample:
    """:func:`~tfconstruct.constructions.em.construction.tutorial_example` with its lesson (at ``width`` if given)."""
    example = tutorial_example() if width is None else tutorial_example(width=width)
    model, layout, stream = example.model, example.model.layout, example.stream[0]
    data = tuple(torch.nonzero(layout.flagged(stream, "is_data")).flatten().tolist())
    centroids = tuple(torch.nonzero(layout.flagged(stream, "is_centroid")).flatten().tolist())
    order = [centroids[k] for k in np.argsort([int(layout.read(stream, "cluster")[c].argmax()) for c in centroids])]
    points = layout.read(stream, "x")[list(data)].numpy()
    state = reference.initial_state(
        layout.read(stream, "mu")[order].numpy(), layout.read(stream, "pi")[order, 0].numpy(), VARIANCE
    )
    with torch.no_grad():
        trace = model(example.stream, trace=True)
    iterations = range(count_numbered(model.names, "iter"))
    checkpoints = []
    tokens = stream.shape[0]
    for t in iterations:
        keys = trace[f"iter{t}.refresh.mlp"][0]
        own = reference.MixtureState(
            layout.read(keys, "mu")[order].numpy(),
            np.exp(layout.read(keys, "log_pi")[order, 0].numpy()),
            state.variances,
        )
        step = reference.soft_em_step(points, state)
        checkpoints += [
            Checkpoint(
                f"iter{t}.estep.attn",
                f"exact EM responsibilities w_ik, iteration {t} (numpy, true log π)",
                _pattern(step.responsibilities, tokens, order),
                head="responsibilities",
                tokens=data,
                exact=False,
            ),
            Checkpoint(
                f"iter{t}.estep.attn",
                f"E-step from the stream's own μ_k and ℓ̂(π_k), iteration {t} (numpy)",
                _pattern(reference.responsibilities(points, own), tokens, order),
                head="responsibilities",
                tokens=data,
            ),
            Checkpoint(
                f"iter{t}.mstep.mlp",
                f"means μ_k after iteration {t} (numpy EM)",
                step.means,
                subspace="mu",
                tokens=tuple(order),
                exact=False,
            ),
            Checkpoint(
                f"iter{t}.mstep.mlp",
                f"weights π_k after iteration {t} (numpy EM)",
                step.weights[:, None],
                subspace="pi",
                tokens=tuple(order),
                exact=False,
            ),
        ]
        state = step
    return replace(
        example,
        pseudocode=PSEUDOCODE,
        checkpoints=tuple(checkpoints),
        geometry=Geometry(points="x", point_tokens=data, centres="mu", centre_tokens=tuple(order), colour="resp"),
        at_width=lesson if width is None else None,
        widths=WIDTHS if width is None else (),
        width=EXAMPLE_WIDTH if width is None else width,
    )


def _pattern(responsibilities: np.ndarray, tokens: int, order: list[int]) -> np.ndarray:
    """Rows of the E-step pattern: ``responsibilities[i, k]`` in centroid token ``order[k]``'s column, 0 elsewhere."""
    rows = np.zeros((responsibilities.shape[0], tokens))
    rows[:, order] = responsibilities
    return rows
