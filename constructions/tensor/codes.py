r"""Position codes that let a ReLU head attend to its own token only ("self-selection").

A token-local product such as $(v\cdot y_i)\,y_i$ needs attention from token $i$ to itself: with unit
codes $p_i$ and a bound $B$, the score

.. math::

    s_{ij} = \pm\, v\cdot y_j + B\,(p_i\cdot p_j - 1)

equals $\pm v\cdot y_i$ at $j = i$ and is $\le |v\cdot y_j| - B\,\gamma < 0$ for $j \ne i$, where the
**gap** $\gamma = 1 - \max_{i\ne j} p_i\cdot p_j$. So $B > \max_j |v\cdot y_j| / \gamma$ makes
$\sigma(s_{ij})$ vanish off the diagonal **exactly**. The price is round-off: the diagonal score is
computed as $B - B$ plus the signal, so about $\log_{10}(B/\max|v\cdot y|) = \log_{10}(1/\gamma)$ digits
are lost.

======== ===================== ================================ =====================================
kind     width                 gap $\gamma$                     digits lost ($\approx\log_{10}1/\gamma$)
======== ===================== ================================ =====================================
onehot   $n$                   $1$                              0 (exact, but $D$ grows with $n$)
circle   2                     $1 - \cos(2\pi/n) \approx 2\pi^2/n^2$  $\approx 2\log_{10} n - 1.3$
torus    4                     $(1 - \cos(2\pi/r))/2 \approx \pi^2/r^2$, $r = \lceil\sqrt n\rceil$
$\approx \log_{10} n - 1$
======== ===================== ================================ =====================================

The torus code $p_i = (\cos\theta_a, \sin\theta_a, \cos\theta_b, \sin\theta_b)/\sqrt2$ (token $i = a r + b$,
$\theta_a = 2\pi a / r$) keeps the width constant and loses half the digits of the circle: it is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..checks import integer_in

CodeKind = Literal["onehot", "circle", "torus"]
CODE_KINDS: tuple[str, ...] = ("onehot", "circle", "torus")


@dataclass(frozen=True)
class PositionCodes:
    r"""Unit ``vectors`` (``(n, width)``) and their ``gap`` $1 - \max_{i\ne j} p_i\cdot p_j$."""

    kind: str
    vectors: np.ndarray
    gap: float

    @property
    def width(self) -> int:
        return self.vectors.shape[1]


def position_codes(tokens: int, kind: CodeKind = "torus") -> PositionCodes:
    r"""The codes of ``kind`` for ``tokens`` $n \ge 2$ tokens."""
    n = integer_in("tokens", tokens, 2)
    if kind == "onehot":
        return PositionCodes(kind, np.eye(n), 1.0)
    if kind == "circle":
        angles = 2.0 * math.pi * np.arange(n) / n
        return PositionCodes(
            kind, np.stack([np.cos(angles), np.sin(angles)], axis=1), 1.0 - math.cos(2.0 * math.pi / n)
        )
    if kind == "torus":
        side = max(2, math.ceil(math.sqrt(n)))
        first, second = np.divmod(np.arange(n), side)
        a, b = 2.0 * math.pi * first / side, 2.0 * math.pi * second / side
        vectors = np.stack([np.cos(a), np.sin(a), np.cos(b), np.sin(b)], axis=1) / math.sqrt(2.0)
        return PositionCodes(kind, vectors, (1.0 - math.cos(2.0 * math.pi / side)) / 2.0)
    raise ValueError(f"position code kind must be one of {CODE_KINDS}, got {kind!r}")
