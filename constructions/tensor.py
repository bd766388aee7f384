"""Cubic tensor power iteration with deflation as a hand-built ReLU transformer.

The engine :class:`TensorPowerIteration` runs, for components $j = 0, \\dots, R-1$ and $J$ iterations each,

.. math::

    v \\leftarrow \\hat\\phi_M\\big(\\lVert u\\rVert^2\\big)\\, u, \\qquad
    u = T_j(I, v, v) = T(I, v, v) - \\sum_{p<j} \\lambda_p (v_p\\cdot v)^2\\, v_p,

then reads out $\\lambda_j = \\langle v, T_j(I, v, v)\\rangle$ and $v_j = v$, and restarts from the next seed.
Everything is exact except $\\hat\\phi_M \\approx s^{-1/2}$ (a hinge MLP with $M$ intervals on geometric knots
in $[a, b]$). Since $\\hat\\phi_M > 0$ and $T(I, \\cdot, \\cdot)$ is homogeneous of degree 2, the **direction** of
every iterate of component 0 equals the exact power method's; only the norm is off, by
$\\delta \\le \\tfrac{3}{32}(\\rho-1)^2\\sqrt\\rho$, $\\rho = (b/a)^{1/M}$ (:mod:`theory.tensor`). Later components are
deflated by $\\hat\\lambda_p\\hat v_p^{\\otimes 3} = s_p^6\\lambda_p v_p^{\\otimes 3}$ ($s_p = \\lVert\\hat v_p\\rVert$), an
$O(\\delta)$ residual along the finished components: it perturbs their transients, not their converged vectors on
odeco tensors, and moves them to first order in $\\delta\\,\\omega^2$ on sampled ones ($\\omega$ = the overlap of the
reference's components). Optional Newton steps $v \\leftarrow (\\tfrac32 - \\tfrac12\\lVert v\\rVert^2) v$ before each
read-out shrink $\\delta$ to $\\tfrac32\\delta^2$.

The part that depends on where the tensor lives is a :class:`Contraction`: two attention layers that add
$T(I, v, v)$ into ``u``. :class:`TensorInTokens` (here) holds the tensor in $k$ tokens (paper_tgmm §4.4(a));
:class:`constructions.tensor_gmm.WhitenedData` computes the whitened Hsu-Kakade tensor from data tokens.

**Subspaces owned by the engine** (broadcast: identical in every token):

=================== ====== ==============================================================
``one``             1      constant 1 (biases, constant scores)
``v``               k      the iterate $v$
``u``               k      scratch: $T_j(I, v, v)$
``norm_sq``         1      scratch: $r = \\lVert u\\rVert^2$ (or $\\lVert v\\rVert^2$ in a Newton step)
``inv_norm``        1      scratch: $\\hat\\phi_M(r) \\approx r^{-1/2}$
``next``            k      scratch: the new iterate before it overwrites ``v``
``overlap``         R      scratch: $c_p = v_p\\cdot v$ for the finished components
``seed{j}``         k      seed of component $j \\ge 1$ (component 0 starts in ``v``)
``component{j}``    k      finished $v_j$
``weighted{j}``     k      $\\lambda_j v_j$ (what the deflation and un-whitening heads read)
``eigenvalue{j}``   1      $\\lambda_j$
=================== ====== ==============================================================

**One iteration = 4 attention + 2 MLP sublayers**: ``contract1``, ``contract2`` (contraction heads, plus
deflation heads $\\pm\\langle v, v_p\\rangle \\to c_p$ and $\\langle c_p, c_p\\rangle \\to -\\lambda_p v_p$), ``norm``
($\\langle u, u\\rangle \\to r$), MLP ``inv_sqrt`` ($M+2$ right-anchored hinge units, and exact clears of the scratch),
``rescale`` (score $f\\cdot 1 > 0$, value $u \\to$ ``next``) and MLP ``overwrite`` (``v`` $\\leftarrow$ ``next``
per token, which keeps broadcast slots identical to round-off). **Finishing a component** = ``contract1``,
``contract2``, ``eigen`` (heads $\\pm\\langle v, u\\rangle$ writing $\\lambda_j$ and $\\lambda_j v$) and an MLP
that copies $v$ into ``component{j}`` and loads the next seed. Depth: $R\\,(4J + 3 + 2N_{\\rm newton})$
attention sublayers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Protocol

import numpy as np
import torch

from theory.interpolation import INV_SQRT_RELATIVE

from .attention import AttentionHead, MultiHeadAttention
from .checks import as_batch, integer_in, positive
from .example import TutorialExample
from .mlp import MLPBuilder
from .model import Sublayer, Trace, Transformer
from .moves import clear, copy, replace
from .piecewise import PiecewiseLinear, geometric_knots
from .residual import ResidualLayout
from .weights import Bilinear, LinearMap

SEED_NORM_TOLERANCE = 1e-6
MAX_NORM_ERROR = 0.5
SEED_STREAM = 0x5EED


def signed_pair(
    layout: ResidualLayout,
    score: Callable[[Bilinear, float], Bilinear],
    value: Callable[[LinearMap, float], LinearMap],
    label: str,
) -> list[AttentionHead]:
    """Two ReLU heads with score and value built for $s = \\pm 1$: since $\\sigma(t) - \\sigma(-t) = t$,
    a score $s\\,t$ with value $s\\,w$ adds $t\\,w$ exactly, whatever the sign of $t$."""
    return [
        AttentionHead(score(Bilinear(layout), s), value(LinearMap(layout), s), "relu", f"{label}{'+' if s > 0 else '-'}")
        for s in (1.0, -1.0)
    ]


class Contraction(Protocol):
    """Where the tensor lives: two attention layers that add $T(I, v, v)$ (undeflated) into ``u``."""

    dim: int
    tokens: int
    scratch: tuple[str, ...]

    def blocks(self, components: int) -> list[tuple[str, int]]: ...

    def first_heads(self, layout: ResidualLayout) -> list[AttentionHead]: ...

    def second_heads(self, layout: ResidualLayout) -> list[AttentionHead]: ...

    def final_layers(self, layout: ResidualLayout, components: int) -> list[Sublayer]: ...


@dataclass(frozen=True)
class NormalisationDomain:
    """$[a, b]$ = [``low``, ``high``]: the range of $r = \\lVert T_j(I, v, v)\\rVert^2$ the $r^{-1/2}$ hinges cover."""

    low: float
    high: float

    def __post_init__(self) -> None:
        positive("domain low", self.low)
        if not (math.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"domain high must be finite and > low={self.low:g}, got {self.high!r}")

    @classmethod
    def for_weights(cls, low: float, high: float, floor: float = 1e-9) -> "NormalisationDomain":
        """For an (approximately) odeco tensor with weights in $[\\lambda_-, \\lambda_+]$:
        $[\\text{floor}\\cdot\\lambda_-^2,\\ 1.5\\,\\lambda_+^2]$. The top covers $\\lambda_+^2 (1+\\delta)^4$ for
        $\\delta \\le 0.1$; ``floor`` covers seeds whose overlaps $c$ with the remaining components have
        $\\sum c^4 \\ge$ floor."""
        positive("weight low", low)
        positive("weight high", high)
        return cls(floor * low**2, 1.5 * high**2)

    def interpolant(self, width: int) -> PiecewiseLinear:
        """$\\hat\\phi_M$: the interpolant of $s^{-1/2}$ on $M$ = ``width`` geometric intervals. The engine builds it
        **right-anchored**, $f_M + \\sum_m w_m\\sigma(t_m - s)$: on $[a, b]$ every active term is $\\ge 0$ (convex,
        decreasing $f$), so nothing cancels, whereas the left-anchored form sums terms of size $a^{-3/2}s$ down to
        $s^{-1/2}$ and loses $\\log_{10}(a^{-3/2} b)$ digits ($10^{-4}$ relative already on $[2.5\\cdot10^{-7}, 10^2]$)."""
        return PiecewiseLinear.interpolate(lambda s: s**-0.5, geometric_knots(self.low, self.high, width))


@dataclass(frozen=True)
class PowerReadout:
    """``eigenvalues`` $(b, R)$ and ``vectors`` $(b, R, k)$ read from token 0."""

    eigenvalues: torch.Tensor
    vectors: torch.Tensor


class TensorPowerIteration:
    """$R$ components x $J$ iterations of deflated power iteration over a :class:`Contraction`.

    Args:
        contraction: where $T$ lives and how $T(I, v, v)$ is computed.
        components: $R \\le k$ components to extract.
        iterations: $J \\ge 1$ power steps per component.
        width: $M$ knot intervals of the $r^{-1/2}$ MLP; the norm-error bound $\\delta_M$ must be $\\le 1/2$
            (so that $\\lVert v\\rVert < 2$ everywhere), else a ``ValueError`` names the smallest valid $M$.
        domain: the range $[a, b]$ of $r$ that the knots cover.
        newton_steps: Newton norm refinements before each read-out.
    """

    def __init__(
        self,
        contraction: Contraction,
        components: int,
        iterations: int,
        width: int,
        domain: NormalisationDomain,
        newton_steps: int = 0,
    ):
        self.contraction = contraction
        self.dim = contraction.dim
        self.components = integer_in("components", components, 1, self.dim)
        self.iterations = integer_in("iterations", iterations, 1)
        self.width = integer_in("width", width, 1)
        self.newton_steps = integer_in("newton_steps", newton_steps, 0)
        self.domain = domain
        self.norm_error_bound = INV_SQRT_RELATIVE(M=self.width, a=domain.low, b=domain.high)
        if not self.norm_error_bound <= MAX_NORM_ERROR:
            raise ValueError(
                f"width M={self.width} is too small for the domain [{domain.low:.3g}, {domain.high:.3g}]: the norm error "
                f"bound {self.norm_error_bound:.3g} exceeds {MAX_NORM_ERROR} (needed for |v| < 2 in the self-selection, "
                f"shift and Newton scores); use M >= {INV_SQRT_RELATIVE.width_for(MAX_NORM_ERROR, a=domain.low, b=domain.high)}"
            )
        self.interpolant = domain.interpolant(self.width)
        k, r = self.dim, self.components
        blocks = contraction.blocks(r) + [
            ("one", 1), ("v", k), ("u", k), ("norm_sq", 1), ("inv_norm", 1), ("next", k), ("overlap", r),
        ]
        blocks += [(f"seed{j}", k) for j in range(1, r)]
        blocks += [block for j in range(r) for block in ((f"component{j}", k), (f"weighted{j}", k), (f"eigenvalue{j}", 1))]
        self.layout = ResidualLayout(blocks)
        self.iterate_layers: list[list[int]] = []
        self.norm_layers: list[list[int]] = []
        # Repeated steps reuse the same sublayer objects (as ``block * L`` does), so memory grows with R, not R*J.
        newton = self._newton("newton")
        layers: list[Sublayer] = []
        for j in range(r):
            step = self._iteration(j, f"c{j}/iterate")
            self.iterate_layers.append([len(layers)])
            self.norm_layers.append([])
            for _ in range(self.iterations):
                self.norm_layers[j].append(len(layers) + 3)
                layers += step
                self.iterate_layers[j].append(len(layers))
            layers += newton * self.newton_steps
            layers += self._finish(j, f"c{j}/finish")
        layers += contraction.final_layers(self.layout, r)
        self.model = Transformer(self.layout, layers)

    # --- layers -------------------------------------------------------------------------------------------
    def _contract(self, j: int, label: str) -> list[Sublayer]:
        """``u`` $\\mathrel{+}= T(I, v, v) - \\sum_{p<j} \\lambda_p c_p^2 v_p$ with $c_p = v_p\\cdot v$."""
        layout = self.layout
        first = self.contraction.first_heads(layout)
        second = self.contraction.second_heads(layout)
        for p in range(j):
            first += signed_pair(
                layout,
                lambda q, s, p=p: q.add("v", f"component{p}", s),
                lambda o, s, p=p: o.add("one", "overlap", s, dst_index=p),
                f"overlap{p}",
            )
            square = Bilinear(layout).add("overlap", "overlap", 1.0, query_index=p, key_index=p)
            second.append(AttentionHead(square, LinearMap(layout).add(f"weighted{p}", "u", -1.0), "relu", f"deflate{p}"))
        return [
            MultiHeadAttention(first, label=f"{label}/contract1"),
            MultiHeadAttention(second, label=f"{label}/contract2"),
        ]

    def _clear_scratch(self, builder: MLPBuilder) -> MLPBuilder:
        for name in (*self.contraction.scratch, "overlap"):
            clear(builder, name)
        return builder

    def _iteration(self, j: int, label: str) -> list[Sublayer]:
        layout = self.layout
        norm = AttentionHead(Bilinear(layout).add("u", "u"), LinearMap(layout).add("one", "norm_sq"), "relu", "norm")
        hinges = self.interpolant.add_to(MLPBuilder(layout, f"{label}/inv_sqrt"), "norm_sq", "inv_norm", anchor="right")
        inv_sqrt = self._clear_scratch(hinges)
        rescale = AttentionHead(Bilinear(layout).add("inv_norm", "one"), LinearMap(layout).add("u", "next"), "relu", "rescale")
        overwrite = replace(MLPBuilder(layout, f"{label}/overwrite"), "next", "v")
        for name in ("u", "norm_sq", "inv_norm"):
            clear(overwrite, name)
        return self._contract(j, label) + [
            MultiHeadAttention([norm], label=f"{label}/norm"),
            inv_sqrt.build(),
            MultiHeadAttention([rescale], label=f"{label}/rescale"),
            overwrite.build(),
        ]

    def _newton(self, label: str) -> list[Sublayer]:
        """$v \\leftarrow (\\tfrac32 - \\tfrac12\\lVert v\\rVert^2)\\,v$: the score $\\tfrac32 - \\tfrac12 r > 0$ for $r < 3$."""
        layout = self.layout
        norm = AttentionHead(Bilinear(layout).add("v", "v"), LinearMap(layout).add("one", "norm_sq"), "relu", "norm")
        newton_score = Bilinear(layout).add("one", "one", 1.5).add("norm_sq", "one", -0.5)
        step = AttentionHead(newton_score, LinearMap(layout).add("v", "next"), "relu", "newton")
        overwrite = clear(replace(MLPBuilder(layout, f"{label}/overwrite"), "next", "v"), "norm_sq")
        return [MultiHeadAttention([norm], label=f"{label}/norm"), MultiHeadAttention([step], label=f"{label}/step"), overwrite.build()]

    def _finish(self, j: int, label: str) -> list[Sublayer]:
        """$\\lambda_j = \\langle v, u\\rangle$ and $\\lambda_j v$ (heads $\\pm\\langle v, u\\rangle$), then
        ``component{j}`` $\\leftarrow v$ and $v \\leftarrow$ ``seed{j+1}``."""
        eigen = signed_pair(
            self.layout,
            lambda q, s: q.add("v", "u", s),
            lambda o, s: o.add("one", f"eigenvalue{j}", s).add("v", f"weighted{j}", s),
            "eigen",
        )
        store = self._clear_scratch(copy(MLPBuilder(self.layout, f"{label}/store"), "v", f"component{j}"))
        clear(store, "u")
        if j + 1 < self.components:
            copy(clear(store, "v"), f"seed{j + 1}", "v")
        return self._contract(j, label) + [MultiHeadAttention(eigen, label=f"{label}/eigen"), store.build()]

    # --- input and output ---------------------------------------------------------------------------------
    def embed(self, seeds: torch.Tensor | np.ndarray, values: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        """The input stream: the contraction's ``values`` plus ``one``, ``v`` = seed 0 and ``seed{j}``.

        ``seeds`` is $(R, k)$ or $(b, R, k)$, unit rows (the domain of the normaliser assumes $\\lVert v\\rVert = 1$).
        """
        seeds = as_batch("seeds", seeds, 3)
        if seeds.shape[1:] != (self.components, self.dim):
            raise ValueError(f"seeds must have shape (R, k) = ({self.components}, {self.dim}), got {tuple(seeds.shape[1:])}")
        norms = seeds.norm(dim=-1)
        if not bool(((norms - 1).abs() <= SEED_NORM_TOLERANCE).all()):
            raise ValueError(f"seeds must be unit vectors (|norm - 1| <= {SEED_NORM_TOLERANCE:g}), got norms {norms.tolist()}")
        seeds = seeds.expand(batch, -1, -1)
        broadcast = {"one": torch.ones(batch, 1, 1), "v": seeds[:, None, 0]}
        broadcast.update({f"seed{j}": seeds[:, None, j] for j in range(1, self.components)})
        return self.layout.embed(batch, self.contraction.tokens, {**values, **broadcast})

    def readout(self, stream: torch.Tensor) -> PowerReadout:
        """$(\\lambda_j, v_j)$ from token 0 of the final stream."""
        token = stream[:, 0]
        eigenvalues = torch.stack([token[:, self.layout[f"eigenvalue{j}"].slice][:, 0] for j in range(self.components)], dim=1)
        vectors = torch.stack([token[:, self.layout[f"component{j}"].slice] for j in range(self.components)], dim=1)
        return PowerReadout(eigenvalues, vectors)

    def iterates(self, trace: Trace) -> torch.Tensor:
        """$v^{(t)}$ for every component and $t = 0..J$ (token 0): shape $(b, R, J+1, k)$."""
        return torch.stack(
            [torch.stack([self.layout.read(trace.streams[i][:, 0], "v") for i in row], dim=1) for row in self.iterate_layers],
            dim=1,
        )

    def normaliser_inputs(self, trace: Trace) -> torch.Tensor:
        """$r = \\lVert T_j(I, v^{(t)}, v^{(t)})\\rVert^2$ as the ``inv_sqrt`` MLP saw it: shape $(b, R, J)$."""
        return torch.stack(
            [torch.stack([self.layout.read(trace.streams[i][:, 0], "norm_sq")[:, 0] for i in row], dim=1) for row in self.norm_layers],
            dim=1,
        )


def slice_selector(dim: int, m: int) -> torch.Tensor:
    """The $(k^2, k)$ matrix reading $T_{:, j, m}$ out of the ``tensor`` block, which stores $T_{a j m}$ at
    coordinate $a k + m$ of token $j$."""
    selector = torch.zeros(dim, dim, dim, dtype=torch.float64)
    selector[:, m, :] = torch.eye(dim, dtype=torch.float64)
    return selector.reshape(dim * dim, dim)


class TensorInTokens:
    """A tensor $T \\in \\mathbb R^{k\\times k\\times k}$ in $k$ tokens: token $j$ holds the slice $T_{:, j, :}$.

    Subspaces: ``tensor`` ($k^2$, $T_{a j m}$ at $a k + m$), ``index`` ($k$, one-hot $e_j$), ``own`` (1, scratch $v_j$).

    * **contract1**: heads $\\pm\\langle e_i, v\\rangle$ with value $\\pm 1 \\to$ ``own``: token $j$ gets $v_j$.
    * **contract2** (``heads="shifted"``, $k + 1$ heads): head $m$ scores $v_m v_j + c$ (query ``v[m]``, key ``own``,
      plus $c\\langle 1, 1\\rangle$) with value $N\\,T_{:, j, m}$; one shift head scores $c$ with value
      $-N \\sum_m T_{:, j, m}$. With $c = 2 \\ge \\max |v_m v_j|$ (true for $\\lVert v\\rVert \\le 2$) every score is
      $\\ge 0$ and the sum is $\\sum_{j,m} v_j v_m T_{:, j, m} = T(I, v, v)$ exactly. ``heads="signed"`` uses
      $2k$ heads $\\pm v_m v_j$ instead (no shift, no cancellation against $c$).
    """

    SHIFT = 2.0

    def __init__(self, dim: int, heads: Literal["shifted", "signed"] = "shifted"):
        self.dim = integer_in("dim", dim, 1)
        if heads not in ("shifted", "signed"):
            raise ValueError(f"heads must be 'shifted' or 'signed', got {heads!r}")
        self.heads = heads
        self.tokens = self.dim
        self.scratch = ("own",)

    def blocks(self, components: int) -> list[tuple[str, int]]:
        return [("tensor", self.dim**2), ("index", self.dim), ("own", 1)]

    def first_heads(self, layout: ResidualLayout) -> list[AttentionHead]:
        return signed_pair(layout, lambda q, s: q.add("index", "v", s), lambda o, s: o.add("one", "own", s), "own")

    def second_heads(self, layout: ResidualLayout) -> list[AttentionHead]:
        n, k = float(self.tokens), self.dim
        if self.heads == "signed":
            return [
                head
                for m in range(k)
                for head in signed_pair(
                    layout,
                    lambda q, s, m=m: q.add("v", "own", s, query_index=m),
                    lambda o, s, m=m: o.add("tensor", "u", s * n, matrix=slice_selector(k, m)),
                    f"slice{m}",
                )
            ]
        heads = [
            AttentionHead(
                Bilinear(layout).add("v", "own", 1.0, query_index=m).add("one", "one", self.SHIFT),
                LinearMap(layout).add("tensor", "u", n, matrix=slice_selector(k, m)),
                "relu",
                f"slice{m}",
            )
            for m in range(k)
        ]
        everything = sum(slice_selector(k, m) for m in range(k))
        heads.append(
            AttentionHead(
                Bilinear(layout).add("one", "one", self.SHIFT),
                LinearMap(layout).add("tensor", "u", -n, matrix=everything),
                "relu",
                "shift",
            )
        )
        return heads

    def final_layers(self, layout: ResidualLayout, components: int) -> list[Sublayer]:
        return []

    def values(self, tensor: torch.Tensor | np.ndarray) -> tuple[dict[str, torch.Tensor], int]:
        """The token blocks for $T$ (``(k, k, k)`` or ``(b, k, k, k)``), and the batch size."""
        tensor = as_batch("tensor", tensor, 4)
        k = self.dim
        if tensor.shape[1:] != (k, k, k):
            raise ValueError(f"tensor must have shape (k, k, k) = ({k}, {k}, {k}), got {tuple(tensor.shape[1:])}")
        batch = tensor.shape[0]
        slices = tensor.permute(0, 2, 1, 3).reshape(batch, k, k * k)
        return {"tensor": slices, "index": torch.eye(k, dtype=torch.float64).expand(batch, k, k)}, batch


class OdecoPowerIteration:
    """Tensor power iteration on a tensor given in tokens: the (d+1)-head construction of paper_tgmm §4.4(a).

    ``OdecoPowerIteration(k, R, J, M, domain)`` builds ``.model``; ``embed(tensor, seeds)`` the input;
    ``readout(stream)`` gives $(\\lambda_j, v_j)$. See :class:`TensorPowerIteration` for the layers.
    """

    def __init__(
        self,
        dim: int,
        components: int,
        iterations: int,
        width: int,
        domain: NormalisationDomain,
        newton_steps: int = 0,
        heads: Literal["shifted", "signed"] = "shifted",
    ):
        self.contraction = TensorInTokens(dim, heads)
        self.engine = TensorPowerIteration(self.contraction, components, iterations, width, domain, newton_steps)
        self.model = self.engine.model
        self.layout = self.engine.layout

    def embed(self, tensor: torch.Tensor | np.ndarray, seeds: torch.Tensor | np.ndarray) -> torch.Tensor:
        values, batch = self.contraction.values(tensor)
        return self.engine.embed(seeds, values, batch)

    def readout(self, stream: torch.Tensor) -> PowerReadout:
        return self.engine.readout(stream)


def default_seeds(dim: int, components: int, seed: int = 0) -> np.ndarray:
    """The fixed initialisation shared by the construction and the reference: the first ``components`` rows of
    a Haar-random orthogonal $k\\times k$ matrix (unit and generic). The generator is
    ``SeedSequence(seed, spawn_key=(SEED_STREAM,))``, a stream of its own, so the seeds never coincide with an
    instance built from ``default_rng(seed)`` (with equal weights such a coincidence can put a seed exactly
    between two components, an unstable fixed point of the power method)."""
    generator = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SEED_STREAM,)))
    q, r = np.linalg.qr(generator.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).T[:components]


def tutorial_example() -> TutorialExample:
    """Both components of a $2\\times2\\times2$ odeco tensor: 2 iterations each, $M = 16$, one Newton step."""
    weights, angle = np.array([2.0, 1.0]), 0.6
    basis = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    tensor = np.einsum("k,ka,kb,kc->abc", weights, basis, basis, basis)
    construction = OdecoPowerIteration(2, 2, 2, 16, NormalisationDomain.for_weights(1.0, 2.0, floor=1e-2), newton_steps=1)
    stream = construction.embed(tensor, default_seeds(2, 2))
    notes = f"""
The tensor $T = 2\\,v_0^{{\\otimes 3}} + v_1^{{\\otimes 3}}$ with orthonormal $v_0, v_1$ (a rotation by 0.6 rad) sits in
$k = 2$ tokens: token $j$ holds the slice $T_{{:, j, :}}$ in `tensor` ($T_{{a j m}}$ at coordinate $a k + m$) and
$e_j$ in `index`. Every other subspace is the same in both tokens: `one` = 1, `v` = the iterate (starts at a fixed
unit seed), `seed1` = the second seed; `u`, `norm_sq`, `inv_norm`, `next`, `own`, `overlap` are scratch and are
zero between iterations; `component{{j}}`, `weighted{{j}}` ($=\\lambda_j v_j$), `eigenvalue{{j}}` hold the results.

**One iteration** (the same 6 sublayers each time):

1. `contract1`: heads with score $\\pm\\langle e_i, v\\rangle$ and value $\\pm 1$ write $v_j$ into `own` of token $j$.
   From the second component on, heads $\\pm\\langle v, v_p\\rangle$ also write $c_p = v_p\\cdot v$ into `overlap`.
2. `contract2`: head $m$ scores $v_m v_j + 2$ (query `v[m]`, key `own`, plus $2\\langle 1, 1\\rangle$) and carries
   $N\\,T_{{:, j, m}}$; a shift head (score 2) carries $-N\\sum_m T_{{:, j, m}}$. The ReLU never clips (all scores
   $\\ge 0$ while $\\lVert v\\rVert \\le 2$), so `u` $= \\sum_{{j,m}} v_j v_m T_{{:, j, m}} = T(I, v, v)$ exactly. Deflation heads with
   score $\\langle c_p, c_p\\rangle = c_p^2$ and value $-\\lambda_p v_p$ subtract the finished components.
3. `norm`: score $\\langle u, u\\rangle$, value `one` $\\to$ `norm_sq`: $r = \\lVert u\\rVert^2$.
4. MLP `inv_sqrt`: {construction.engine.width + 2} units $f_M + \\sum_m w_m\\,\\sigma(t_m - r) \\approx r^{{-1/2}}$ (right-anchored
   hinges: every term active on the knot range is $\\ge 0$, so nothing cancels);
   it also clears `own` and `overlap`.
5. `rescale`: score $f\\cdot 1 > 0$, value `u` $\\to$ `next`: `next` $= f\\,u$, parallel to $u$ whatever the error in $f$.
6. MLP `overwrite`: `v` $\\leftarrow$ `next`; `u`, `norm_sq`, `inv_norm` $\\leftarrow 0$ (exact ReLU pairs).

**Newton** (3 sublayers): $r = \\lVert v\\rVert^2$, then a head with score $\\tfrac32 - \\tfrac12 r$ writes
$(\\tfrac32 - \\tfrac12\\lVert v\\rVert^2)\\,v$, which the MLP moves into `v`: the norm error $e$ becomes $-e^2(3+e)/2$.

**Finishing component $j$**: `contract1`/`contract2` once more, then `eigen` heads $\\pm\\langle v, u\\rangle$ write
$\\lambda_j = T_j(v, v, v)$ and $\\lambda_j v$; an MLP copies `v` into `component{{j}}` and loads `seed{{j+1}}`.

**Reading the result**: `eigenvalue0`, `eigenvalue1` $\\approx 2, 1$ and `component0`, `component1` $\\approx v_0, v_1$ in
either token; their directions are those of the exact power method, their norms within $\\delta$ of 1.
"""
    return TutorialExample("Cubic tensor power iteration (tensor in tokens)", construction.model, stream, notes)
