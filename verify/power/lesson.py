r"""The power tutorial example with its lesson: pseudocode, numpy's power iteration at every step, eigh's
eigenvectors in the plane, and the example rebuilt at other widths $M$ of the $s^{-1/2}$ normaliser."""

from __future__ import annotations

import inspect
from dataclasses import replace

from tfconstruct.constructions import Checkpoint, Geometry, PseudoLine, TutorialExample
from tfconstruct.constructions.power.covariance import tutorial_example

from ..explore.timeline import count_numbered
from . import reference

EXAMPLE_WIDTH = inspect.signature(tutorial_example).parameters["width"].default
WIDTHS = (6, 8, 12, 16, 24, 32, 48)
PSEUDOCODE = (
    PseudoLine("for t = 0, 1, …, J−1:"),
    PseudoLine("    u ← Σ̂ v⁽ᵗ⁾ = (1/n) Σ_j ⟨v⁽ᵗ⁾, x_j⟩ x_j", ("contract1",)),
    PseudoLine("    s ← ‖u‖²", ("norm",)),
    PseudoLine("    f ← φ̂(s) ≈ s^(−1/2)   (hinge interpolant, width M)", ("inv_sqrt",)),
    PseudoLine("    v⁽ᵗ⁺¹⁾ ← f · u", ("rescale", "overwrite")),
    PseudoLine("u ← Σ̂ v⁽ᴶ⁾;  λ ← ⟨v⁽ᴶ⁾, u⟩", ("finish.contract1", "finish.eigen")),
    PseudoLine("store v⁽ᴶ⁾ and λ v⁽ᴶ⁾ (for deflation)", ("finish.store",)),
)


def lesson(width: int | None = None) -> TutorialExample:
    """:func:`~tfconstruct.constructions.power.covariance.tutorial_example` with its lesson (at ``width`` if given)."""
    example = tutorial_example() if width is None else tutorial_example(width=width)
    layout, stream = example.model.layout, example.stream[0]
    points = layout.read(stream, "x").numpy()
    seed = layout.read(stream, "v")[0].numpy()
    sigma = reference.second_moment(points)
    steps = count_numbered(example.model.names, "component0.iter")
    path = reference.power_iteration(sigma, seed, steps)
    checkpoints = []
    for t in range(steps):
        exact_next = path.iterates[t + 1]
        checkpoints += [
            Checkpoint(
                f"component0.iter{t}.rescale",
                f"v({t + 1}) = Σ̂v/‖Σ̂v‖ of power iteration (numpy), value",
                exact_next,
                subspace="next",
                tokens=(0,),
                exact=False,
            ),
            Checkpoint(
                f"component0.iter{t}.overwrite",
                f"v({t + 1}) of power iteration (numpy), direction",
                exact_next,
                subspace="v",
                tokens=(0,),
                compare="direction",
            ),
        ]
    v_last = path.iterates[-1]
    checkpoints.append(
        Checkpoint(
            "component0.finish.eigen",
            f"λ = ⟨v, Σ̂v⟩ at v({steps}) (numpy)",
            [[float(v_last @ sigma @ v_last)]],
            subspace="eigenvalue0",
            tokens=(0,),
            exact=False,
        )
    )
    values, vectors = reference.top_eigenpairs(sigma, 2)
    fixed = {f"eigh eigenvector {i + 1} (λ = {values[i]:.4g})": tuple(map(float, vectors[i])) for i in range(2)}
    return replace(
        example,
        pseudocode=PSEUDOCODE,
        checkpoints=tuple(checkpoints),
        geometry=Geometry(points="x", arrows=("v",), fixed=fixed),
        at_width=lesson if width is None else None,
        widths=WIDTHS if width is None else (),
        width=EXAMPLE_WIDTH if width is None else width,
    )
