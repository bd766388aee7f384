r"""What the papers state about their constructions' resources, as stated (the toolkit's own counts are measured
from built models in :mod:`tfconstruct.verify.resources`, never typed in).

A :class:`Claim` holds one theorem's stated shape: attention layers per algorithm step where the paper gives a
number, the heads as stated (and as a number at given sizes where the statement is a formula), and the stated
error behaviour. Where the papers leave a quantity unstated (the spectral paper's head count as a function of
$\epsilon$, TGMM's error formula) the claim says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class Claim:
    """One theorem's stated resources.

    Attributes:
        source: the paper and the statement (``"TGMM (arXiv 2505.11918), Theorem 1"``).
        layers_per_step: attention layers per algorithm step, where the paper gives a number (None: not a number).
        heads: the heads per layer as stated (``"O(1)"``, ``"d ReLU heads"``).
        heads_at: the stated head count at the built sizes (``{"d": 4, "K": 3, ...}``), where it is a formula.
        error: the stated error behaviour.
        layers: the layers per step as stated, where that is not a number (``"O(K)"``).
    """

    source: str
    layers_per_step: float | None
    heads: str
    heads_at: Callable[[Mapping[str, int]], float] | None = None
    error: str = "not stated"
    layers: str = "not stated"


TGMM_EM = Claim(
    source="TGMM (arXiv 2505.11918), Theorem 1",
    layers_per_step=2,
    heads="O(1)",
    error="polynomial in d (formula not stated)",
)
HE_EM = Claim(
    source="He et al. (arXiv 2502.06007), as TGMM reports it",
    layers_per_step=None,
    heads="M -> infinity (softmax heads as universal approximators)",
    error="exponential in d",
    layers="O(K)",
)
TGMM_TENSOR = Claim(
    source="TGMM (arXiv 2505.11918), Theorem 2",
    layers_per_step=None,
    heads="d ReLU heads, one per tensor index",
    heads_at=lambda sizes: sizes["d"],
    error="not stated",
)
SPECTRAL_POWER = Claim(
    source="Learning Spectral Methods by Transformers (arXiv 2501.01312), power step with Lemma B.2",
    layers_per_step=2,
    heads="multi-head ReLU; the inverse norm as a sum of heads (Lemma B.2; count vs epsilon not retrieved)",
    error="not stated",
)
CLAIMS: tuple[Claim, ...] = (TGMM_EM, HE_EM, TGMM_TENSOR, SPECTRAL_POWER)
