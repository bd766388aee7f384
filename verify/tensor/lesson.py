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
    seeds = np.stack([layout.read(stream, "v")[0].numpy(), layout.read(stream, "seed1")[0].numpy()])
    names = example.model.names
    iterations = len({h.split(".")[1] for h in names if h.startswith("component0.iter")})
    decomposition = reference.tensor_power_method(tensor, seeds, iterations)
    checkpoints = []
    for r in range(len(seeds)):
        for t in range(iterations):
            checkpoints.append(
                Checkpoint(f"component{r}.iter{t}.overwrite", f"component {r}: v({t + 1}) (numpy), direction",
                           decomposition.iterates[r, t + 1], subspace="v", tokens=(0,), compare="direction",
                           exact=r == 0)
            )  # fmt: skip
        finish = [h for h in names if h.startswith(f"component{r}.finish.")][-1]
        checkpoints.append(
            Checkpoint(finish, f"λ_{r} (numpy)", [[decomposition.eigenvalues[r]]], subspace=f"eigenvalue{r}",
                       tokens=(0,), exact=False)
        )  # fmt: skip
    weights, basis = np.linalg.eigh(tensor.reshape(k, k * k) @ tensor.reshape(k, k * k).T)
    fixed = {f"component {i + 1} of T": tuple(map(float, basis[:, -1 - i])) for i in range(k)}
    return replace(
        example,
        pseudocode=PSEUDOCODE,
        checkpoints=tuple(checkpoints),
        geometry=Geometry(points="v", point_tokens=(0,), arrows=("v",), fixed=fixed),
    )


GMM_PSEUDOCODE = (
    PseudoLine("moments M₂, M₃ of the samples; whitening W (outside the transformer)"),
    *PSEUDOCODE,
    PseudoLine("μ_r ← λ_r B v_r (un-whiten);  π_r ← λ_r⁻²/Σλ⁻²", ("unwhiten",)),
)


def gmm_lesson() -> TutorialExample:
    """:func:`~tfconstruct.constructions.tensor.gmm.tutorial_example` with numpy's spectral method (the same samples
    and seeds, :func:`~tfconstruct.verify.tensor.reference.spectral_gmm`) beside every power step and the means."""
    example = gmm.tutorial_example()
    layout, stream, names = example.model.layout, example.stream[0], example.model.names
    x, _ = gmm.tutorial_samples()
    seeds = np.stack([layout.read(stream, "v")[0].numpy(), layout.read(stream, "seed1")[0].numpy()])
    iterations = len({h.split(".")[1] for h in names if h.startswith("component0.iter")})
    estimate = reference.spectral_gmm(x, len(seeds), seeds, iterations)
    checkpoints = []
    for r in range(len(seeds)):
        for t in range(iterations):
            checkpoints.append(
                Checkpoint(f"component{r}.iter{t}.overwrite", f"component {r}: whitened v({t + 1}) (numpy), direction",
                           estimate.decomposition.iterates[r, t + 1], subspace="v", tokens=(0,),
                           compare="direction", exact=r == 0)
            )  # fmt: skip
        finish = [h for h in names if h.startswith(f"component{r}.finish.")][-1]
        checkpoints.append(
            Checkpoint(finish, f"λ_{r} (numpy)", [[estimate.decomposition.eigenvalues[r]]],
                       subspace=f"eigenvalue{r}", tokens=(0,), exact=False)
        )  # fmt: skip
    checkpoints += [
        Checkpoint("unwhiten", f"mean μ_{r} (numpy spectral method)", estimate.means[r][None], subspace=f"mean{r}",
                   tokens=(0,), exact=False)
        for r in range(len(seeds))
    ]  # fmt: skip
    return replace(example, pseudocode=GMM_PSEUDOCODE, checkpoints=tuple(checkpoints))
