r"""The odeco tensor example with its lesson: pseudocode, numpy's deflated tensor power method beside every step,
and the tensor's components in the plane.

The first component's iterates are exact in direction (the normaliser is a positive scalar); its eigenvalue and
norm carry the interpolant's error, and so does everything after the first deflation, which subtracts the
approximate $\hat\lambda_0 \hat v_0^{\otimes 3}$.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tfconstruct.constructions import Checkpoint, Geometry, PseudoLine, TutorialExample
from tfconstruct.constructions.tensor import gmm
from tfconstruct.constructions.tensor.in_tokens import tutorial_example

from ..explore.timeline import count_numbered
from . import reference

PSEUDOCODE = (
    PseudoLine("for each component r (from seed r):"),
    PseudoLine("    for t = 0, …, J−1:  u ← T_r(I, v, v)", ("contract1", "contract2")),
    PseudoLine("        v ← φ̂(‖u‖²) · u  ≈ u / ‖u‖", ("norm", "inv_sqrt", "rescale", "overwrite")),
    PseudoLine("    Newton: v ← (3/2 − ‖v‖²/2) v", ("newton",)),
    PseudoLine("    λ_r ← T_r(v, v, v);  T_{r+1} ← T_r − λ_r v^⊗3", ("finish",)),
)


def lesson() -> TutorialExample:
    """:func:`~tfconstruct.constructions.tensor.in_tokens.tutorial_example` with its lesson."""
    example = tutorial_example()
    layout, stream = example.model.layout, example.stream[0]
    k = layout.size("v")
    tensor = layout.read(stream, "tensor")[:k].numpy().reshape(k, k, k)
    seeds = _seeds(example)
    decomposition = reference.tensor_power_method(tensor, seeds, count_numbered(example.model.names, "component0.iter"))
    weights, basis = np.linalg.eigh(tensor.reshape(k, k * k) @ tensor.reshape(k, k * k).T)
    fixed = {f"component {i + 1} of T": tuple(map(float, basis[:, -1 - i])) for i in range(k)}
    return replace(
        example,
        pseudocode=PSEUDOCODE,
        checkpoints=_power_checkpoints(example.model.names, decomposition, ""),
        geometry=Geometry(points="v", point_tokens=(0,), arrows=("v",), fixed=fixed),
    )


def _seeds(example: TutorialExample) -> np.ndarray:
    """The two components' seeds, as the example's input stream holds them (``v`` and ``seed1``)."""
    layout, stream = example.model.layout, example.stream[0]
    return np.stack([layout.read(stream, "v")[0].numpy(), layout.read(stream, "seed1")[0].numpy()])


def _power_checkpoints(
    hooks: list[str], decomposition: reference.PowerDecomposition, space: str
) -> tuple[Checkpoint, ...]:
    """Numpy's iterate after every power step of every component (direction; exact for the first component, whose
    tensor is not yet deflated by an approximate eigenpair) and each eigenvalue after its component's last sublayer;
    ``space`` names the iterates' coordinates in the labels (``"whitened "``)."""
    found = []
    for r, path in enumerate(decomposition.iterates):
        found += [
            Checkpoint(f"component{r}.iter{t}.overwrite", f"component {r}: {space}v({t + 1}) (numpy), direction",
                       path[t + 1], subspace="v", tokens=(0,), compare="direction", exact=r == 0)
            for t in range(len(path) - 1)
        ]  # fmt: skip
        finish = [h for h in hooks if h.startswith(f"component{r}.finish.")][-1]
        found.append(
            Checkpoint(finish, f"λ_{r} (numpy)", [[decomposition.eigenvalues[r]]], subspace=f"eigenvalue{r}",
                       tokens=(0,), exact=False)
        )  # fmt: skip
    return tuple(found)


GMM_PSEUDOCODE = (
    PseudoLine("moments M₂, M₃ of the samples; whitening W (outside the transformer)"),
    *PSEUDOCODE,
    PseudoLine("μ_r ← λ_r B v_r (un-whiten);  π_r ← λ_r⁻²/Σλ⁻²", ("unwhiten",)),
)


def gmm_lesson() -> TutorialExample:
    """:func:`~tfconstruct.constructions.tensor.gmm.tutorial_example` with numpy's spectral method (the same samples
    and seeds, :func:`~tfconstruct.verify.tensor.reference.spectral_gmm`) beside every power step and the means."""
    example = gmm.tutorial_example()
    names = example.model.names
    x, _ = gmm.tutorial_samples()
    seeds = _seeds(example)
    estimate = reference.spectral_gmm(x, len(seeds), seeds, count_numbered(names, "component0.iter"))
    checkpoints = list(_power_checkpoints(names, estimate.decomposition, "whitened "))
    checkpoints += [
        Checkpoint("unwhiten", f"mean μ_{r} (numpy spectral method)", estimate.means[r][None], subspace=f"mean{r}",
                   tokens=(0,), exact=False)
        for r in range(len(seeds))
    ]  # fmt: skip
    return replace(example, pseudocode=GMM_PSEUDOCODE, checkpoints=tuple(checkpoints))
