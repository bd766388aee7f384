r"""What a tutorial example tells a student beyond its weights: roles, pseudocode, reference values, a 2-D view.

A :class:`~tfconstruct.constructions.construction.TutorialExample` may carry these (all optional); the generated
tutorials and the interactive explorer (``tfconstruct explore``) read them, for shipped families and plugins alike.

* ``roles``: subspace name -> :data:`Role`. ``input`` blocks hold the data, ``state`` what the algorithm carries from
  step to step, ``scratch`` intermediate values that are cleared again, ``result`` what the read-out reads.
* ``pseudocode``: :class:`PseudoLine` s; each names the *phases* it covers, matched against the hook names'
  phases (``iter2.estep.attn`` has step ``iter2`` and phase ``estep.attn``; a line's phase ``estep`` matches it).
* ``checkpoints``: :class:`Checkpoint` s; after sublayer ``hook`` the reference algorithm says a block (or a head's
  attention pattern) holds ``expected``. ``exact`` marks parts that are exact up to round-off.
* ``geometry``: a :class:`Geometry` for examples in $d = 2$: which blocks are points, arrows and centres.
* ``at_width``: the same example rebuilt at approximation width $M$ (with ``widths`` to show and ``width`` the
  example's own), so the error of the approximate checkpoints can be watched falling as $M^{-2}$ while the exact
  ones stay at round-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Role = Literal["input", "state", "scratch", "result"]
ROLES: tuple[str, ...] = ("input", "state", "scratch", "result")


@dataclass(frozen=True)
class PseudoLine:
    """One line of the algorithm's pseudocode (plain text; Unicode symbols such as ← Σ ‖v‖ read well) and the
    phases it covers."""

    text: str
    phases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checkpoint:
    r"""After sublayer ``hook``, the reference algorithm's value ``expected`` (shape ``(len(tokens), size)``).

    Either ``subspace`` (a block of the stream, on ``tokens``; None: every token) or ``head`` (the label of an
    attention head of ``hook``: its pattern $A_{ij}$ on query rows ``tokens``, one column per key) is compared.
    ``compare="direction"`` compares unit vectors up to sign (power iteration's iterate is exact in direction
    only); ``exact`` says whether the construction is exact there (round-off) or approximate (bounded error).
    """

    hook: str
    label: str
    expected: np.ndarray
    subspace: str | None = None
    head: str | None = None
    tokens: tuple[int, ...] | None = None
    exact: bool = True
    compare: Literal["value", "direction"] = "value"

    def __post_init__(self) -> None:
        if (self.subspace is None) == (self.head is None):
            raise ValueError(f"checkpoint {self.label!r}: give exactly one of subspace= or head=")
        if self.compare not in ("value", "direction"):
            raise ValueError(f"checkpoint {self.label!r}: compare must be 'value' or 'direction', got {self.compare!r}")
        expected = np.atleast_2d(np.asarray(self.expected, dtype=np.float64))
        if not np.all(np.isfinite(expected)):
            raise ValueError(f"checkpoint {self.label!r}: expected values must be finite")
        object.__setattr__(self, "expected", expected)


@dataclass(frozen=True)
class Geometry:
    """The 2-D picture of an example: ``points`` (a block of size 2 on ``point_tokens``), ``arrows`` (blocks of size 2
    drawn from the origin, read from the first token), ``centres`` (a block on ``centre_tokens``, whose path over the
    forward pass is drawn), ``colour`` (a block on ``point_tokens`` whose largest entry colours each point) and
    ``fixed`` (reference arrows: label -> 2-vector, e.g. the eigenvectors)."""

    points: str
    point_tokens: tuple[int, ...] | None = None
    arrows: tuple[str, ...] = ()
    centres: str | None = None
    centre_tokens: tuple[int, ...] | None = None
    colour: str | None = None
    fixed: dict[str, tuple[float, float]] = field(default_factory=dict)
