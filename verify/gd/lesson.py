r"""The in-context regression example with its lesson: pseudocode and numpy's gradient descent beside every step.

Written, like the rest of this family, against the public interface only; every checkpoint here is exact (one
linear head per step computes the step exactly)."""

from __future__ import annotations

from dataclasses import replace

import torch

from tfconstruct.constructions import Checkpoint, PseudoLine, TutorialExample
from tfconstruct.constructions.gd.regression import tutorial_example
from tfconstruct.verify import count_numbered

from . import reference

ETA = 0.5  # the example's step size; a mismatch would show as an exact checkpoint off by more than round-off
PSEUDOCODE = (
    PseudoLine("w₀ ← 0;  every data token holds the residual r_i = y_i − x_iᵀw, the query −x_qᵀw"),
    PseudoLine("for t = 0, 1, …, L−1:  w ← w + (η/n) Xᵀ(y − Xw)", ("gd",)),
    PseudoLine("ŷ ← x_qᵀ w_L", ("readout",)),
)


def lesson() -> TutorialExample:
    """:func:`~tfconstruct.constructions.gd.regression.tutorial_example` with its lesson."""
    example = tutorial_example()
    layout, stream = example.model.layout, example.stream[0]
    data = tuple(torch.nonzero(layout.flagged(stream, "is_data")).flatten().tolist())
    query = next(t for t in range(stream.shape[0]) if t not in data)
    X, y = layout.read(stream, "x")[list(data)].numpy(), layout.read(stream, "y")[list(data), 0].numpy()
    x_q = layout.read(stream, "x")[query].numpy()
    steps = count_numbered(example.model.names, "iter")
    path = reference.gradient_descent(X, y, x_q, ETA, steps)
    checkpoints = []
    for t in range(steps):
        w = path.weights[t + 1]
        checkpoints += [
            Checkpoint(f"iter{t}.gd", f"residuals y − Xw after step {t + 1} (numpy GD)", (y - X @ w)[:, None],
                       subspace="y", tokens=data),
            Checkpoint(f"iter{t}.gd", f"−x_qᵀw after step {t + 1} (numpy GD)", [[-float(x_q @ w)]],
                       subspace="y", tokens=(query,)),
        ]  # fmt: skip
    checkpoints.append(
        Checkpoint("readout", "prediction x_qᵀw_L (numpy GD)", [[float(path.predictions[-1])]],
                   subspace="prediction", tokens=(query,))
    )  # fmt: skip
    return replace(example, pseudocode=PSEUDOCODE, checkpoints=tuple(checkpoints))
