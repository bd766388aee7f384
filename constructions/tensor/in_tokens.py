r"""Cubic tensor power iteration on a tensor held in tokens (the $(k+1)$-head construction).

:class:`TensorInTokens` is the order-3 :class:`~tfconstruct.constructions.power.engine.Contraction` of a tensor
$T \in \mathbb R^{k\times k\times k}$ stored in $k$ tokens; :class:`OdecoPowerIteration` runs the deflated power
engine over it: for components $j = 0..R-1$ and $J$ iterations each, $v \leftarrow \hat\phi_M(\lVert u\rVert^2)\,u$
with $u = T_j(I, v, v) = T(I, v, v) - \sum_{p<j}\lambda_p (v_p\cdot v)^2 v_p$, then $\lambda_j = T_j(v, v, v)$.
Everything is exact except the normaliser $\hat\phi_M \approx r^{-1/2}$, so the direction of every iterate of
component 0 is the exact power method's and only the norm is off, by $\delta_M$. Depth:
$R\,(4J + 3 + 2N)$ attention sublayers for $N$ Newton steps per component.
"""

from __future__ import annotations

import math
from typing import Literal, Unpack

import numpy as np
import torch

from ..attention import AttentionHead
from ..checks import as_batch, integer_in
from ..construction import TutorialExample
from ..gadgets import ExactScoring, NormalisationDomain, signed_heads
from ..power.engine import EngineOptions, NamedLayers, PowerConstruction, default_seeds
from ..residual import ResidualLayout
from ..weights import Bilinear, LinearMap

#: The largest norm error $|\lVert v\rVert - 1|$ the shifted and self-selection heads allow ($\lVert v\rVert < 2$).
SHIFT_NORM_TOLERANCE = 0.5


def slice_selector(dim: int, m: int) -> torch.Tensor:
    r"""The $(k^2, k)$ matrix reading $T_{:, j, m}$ out of the ``tensor`` block, which stores $T_{a j m}$ at
    coordinate $a k + m$ of token $j$."""
    selector = torch.zeros(dim, dim, dim, dtype=torch.float64)
    selector[:, m, :] = torch.eye(dim, dtype=torch.float64)
    return selector.reshape(dim * dim, dim)


class TensorInTokens:
    r"""A tensor $T \in \mathbb R^{k\times k\times k}$ in $k$ tokens: token $j$ holds the slice $T_{:, j, :}$.

    Subspaces: ``tensor`` ($k^2$, $T_{a j m}$ at $a k + m$), ``index`` ($k$, one-hot $e_j$), ``own`` (1, scratch $v_j$).

    * **contract1**: heads $\pm\langle e_i, v\rangle$ with value $\pm 1 \to$ ``own``: token $j$ gets $v_j$.
    * **contract2** (``heads="shifted"``, $k + 1$ heads): head $m$ scores $v_m v_j + c$ (query ``v[m]``, key ``own``,
      plus $c\langle 1, 1\rangle$) with value $N\,T_{:, j, m}$; one shift head scores $c$ with value
      $-N \sum_m T_{:, j, m}$. With $c = 2 \ge \max |v_m v_j|$ (true for $\lVert v\rVert \le 2$) every score is
      $\ge 0$ and the sum is $\sum_{j,m} v_j v_m T_{:, j, m} = T(I, v, v)$ exactly. ``heads="signed"`` uses
      $2k$ heads $\pm v_m v_j$ instead (no shift, no cancellation against $c$, any norm).
    """

    order = 3
    scratch = ("own",)
    scorings = ("relu",)
    SHIFT = 2.0

    def __init__(self, dim: int, heads: Literal["shifted", "signed"] = "shifted"):
        self.dim = integer_in("dim", dim, 1)
        if heads not in ("shifted", "signed"):
            raise ValueError(f"heads must be 'shifted' or 'signed', got {heads!r}")
        self.heads = heads
        self.tokens = self.dim
        self.norm_tolerance = SHIFT_NORM_TOLERANCE if heads == "shifted" else math.inf
        self.domain_remedy = "domain=NormalisationDomain.for_weights(lambda_min, lambda_max) for the tensor's weights"

    def blocks(self, components: int) -> list[tuple[str, int]]:
        return [("tensor", self.dim**2), ("index", self.dim), ("own", 1)]

    def contraction_heads(self, layout: ResidualLayout, scoring: ExactScoring) -> list[list[AttentionHead]]:
        own = signed_heads(layout, "own", lambda q, s: q.add("index", "v", s), lambda o, s: o.add("one", "own", s))
        return [own, self._slice_heads(layout)]

    def _slice_heads(self, layout: ResidualLayout) -> list[AttentionHead]:
        n, k = float(self.tokens), self.dim
        if self.heads == "signed":
            return [
                head
                for m in range(k)
                for head in signed_heads(
                    layout,
                    f"slice{m}",
                    lambda q, s, m=m: q.add("v", "own", s, query_index=m),
                    lambda o, s, m=m: o.add("tensor", "u", s * n, matrix=slice_selector(k, m)),
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

    def prefix_layers(self, layout: ResidualLayout, scoring: ExactScoring) -> NamedLayers:
        return []

    def final_layers(self, layout: ResidualLayout, components: int, scoring: ExactScoring) -> NamedLayers:
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


SYMMETRY_TOLERANCE = 1e-12  # relative to the largest entry: round-off of a tensor built by einsum is ~1e-16


class OdecoPowerIteration(PowerConstruction):
    r"""Tensor power iteration with deflation on a tensor given in tokens.

    Args:
        dim: $k$, the tensor's side.
        heads: ``"shifted"`` ($k + 1$ heads in ``contract2``, the default) or ``"signed"`` ($2k$ heads).
        components: $R \le k$ components to extract.
        iterations: $J \ge 1$ power steps per component.
        width: $M$ knot intervals of the $r^{-1/2}$ MLP; with ``heads="shifted"`` its relative error must be
            $\le 1/2$ (so that $\lVert v\rVert < 2$ in the shifted scores), else a ``ValueError`` names the smallest
            valid $M$.
        domain: the range $[a, b]$ of $r = \lVert T_j(I, v, v)\rVert^2$ the knots cover
            (:meth:`~tfconstruct.constructions.gadgets.NormalisationDomain.for_weights`).
        newton_steps: Newton norm refinements before each read-out (default 0).

    ``embed(tensor, seeds)`` builds the input; ``readout(stream)`` gives $(\lambda_j, v_j)$.
    """

    def __init__(self, dim: int, *, heads: Literal["shifted", "signed"] = "shifted", **options: Unpack[EngineOptions]):
        super().__init__(TensorInTokens(dim, heads), **options)

    def embed(
        self,
        tensor: torch.Tensor | np.ndarray,
        seeds: torch.Tensor | np.ndarray | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """The input stream for ``tensor`` (``(k, k, k)`` or batched) and ``seeds`` ``(R, k)`` (normalised).

        Raises:
            ValueError: for a tensor that is not symmetric (the contraction layers compute $T(I, v, v)$ for any
                tensor, but tensor power iteration and its bounds are for symmetric ones).
        """
        _check_symmetric(as_batch("tensor", tensor, 4))
        values, batch = self.contraction.values(tensor)
        return self.engine.embed(values, seeds, batch, self.contraction.tokens, device=device)


def _check_symmetric(tensor: torch.Tensor) -> None:
    scale = float(tensor.abs().max()) if tensor.numel() else 0.0
    for order in ((0, 2, 1, 3), (0, 3, 2, 1), (0, 1, 3, 2)):
        if tensor.shape[1:] != tensor.permute(order).shape[1:]:
            return  # the shape check in the contraction names the problem
        gap = float((tensor - tensor.permute(order)).abs().max())
        if gap > SYMMETRY_TOLERANCE * max(scale, 1e-300):
            raise ValueError(
                f"tensor must be symmetric (T_abc the same under every permutation of a, b, c): entries differ by "
                f"{gap:.3g} under a swap of indices ({scale:.3g} is its largest entry); symmetrise it first"
            )


def tutorial_example() -> TutorialExample:
    r"""Both components of a $2\times2\times2$ odeco tensor: 2 iterations each, $M = 16$, one Newton step; the notes
    give the eigenvalues read out beside the true ones and numpy's power method."""
    weights, angle = np.array([2.0, 1.0]), 0.6
    basis = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    tensor = np.einsum("k,ka,kb,kc->abc", weights, basis, basis, basis)
    domain = NormalisationDomain.for_weights(1.0, 2.0, floor=1e-2)
    construction = OdecoPowerIteration(2, components=2, iterations=2, width=16, domain=domain, newton_steps=1)
    seeds = default_seeds(2, 2)
    stream = construction.embed(tensor, seeds)
    with torch.no_grad():
        out = construction.model(stream)
    layout = construction.layout
    rows = []
    for j, (numpy_value, true_value) in enumerate(zip(_power_method_eigenvalues(tensor, seeds, 2), weights)):
        value = float(layout.read(out, f"eigenvalue{j}")[0, 0, 0])
        norm = float(layout.read(out, f"component{j}")[0, 0].norm())
        rows.append(
            f"| {j} | {value:.6g} | {norm:.6g} | {numpy_value:.6g} | {true_value:g} | "
            f"{abs(value - true_value) / true_value:.4g} |"
        )
    comparison = "\n".join(rows)
    notes = rf"""
The tensor $T = 2\,v_0^{{\otimes 3}} + v_1^{{\otimes 3}}$ with orthonormal $v_0, v_1$ (a rotation by 0.6 rad) sits in
$k = 2$ tokens: token $j$ holds the slice $T_{{:, j, :}}$ in `tensor` ($T_{{a j m}}$ at coordinate $a k + m$) and
$e_j$ in `index`. Every other subspace is the same in both tokens: `one` = 1, `v` = the iterate (starts at a fixed
unit seed), `seed1` = the second seed; `u`, `norm_sq`, `inv_norm`, `next`, `own`, `overlap` are scratch and are
zero between iterations; `component{{j}}`, `weighted{{j}}` ($=\lambda_j v_j$), `eigenvalue{{j}}` hold the results.

**One iteration** (the same 6 sublayers each time):

1. `contract1`: heads with score $\pm\langle e_i, v\rangle$ and value $\pm 1$ write $v_j$ into `own` of token $j$.
   From the second component on, heads $\pm\langle v, v_p\rangle$ also write $c_p = v_p\cdot v$ into `overlap`.
2. `contract2`: head $m$ scores $v_m v_j + 2$ (query `v[m]`, key `own`, plus $2\langle 1, 1\rangle$) and carries
   $N\,T_{{:, j, m}}$; a shift head (score 2) carries $-N\sum_m T_{{:, j, m}}$. The ReLU never clips (all scores
   $\ge 0$ while $\lVert v\rVert \le 2$), so `u` $= \sum_{{j,m}} v_j v_m T_{{:, j, m}} = T(I, v, v)$ exactly. Deflation
   heads with score $\langle c_p, c_p\rangle = c_p^2$ and value $-\lambda_p v_p$ subtract the finished components.
3. `norm`: score $\langle u, u\rangle$, value `one` $\to$ `norm_sq`: $r = \lVert u\rVert^2$.
4. MLP `inv_sqrt`: {construction.engine.width + 2} units $f_M + \sum_m w_m\,\mathrm{{ReLU}}(t_m - r) \approx r^{{-1/2}}$
   (right-anchored hinges: every term active on the knot range is $\ge 0$, so nothing cancels);
   it also clears `own` and `overlap`.
5. `rescale`: score $f\cdot 1 > 0$, value `u` $\to$ `next`: `next` $= f\,u$, parallel to $u$ whatever the error in $f$.
6. MLP `overwrite`: `v` $\leftarrow$ `next`; `u`, `norm_sq`, `inv_norm` $\leftarrow 0$ (exact ReLU pairs).

**Newton** (3 sublayers): $r = \lVert v\rVert^2$, then heads with score $\pm(\tfrac32 - \tfrac12 r)$ write
$(\tfrac32 - \tfrac12\lVert v\rVert^2)\,v$, which the MLP moves into `v`: the norm error $e$ becomes $-e^2(3+e)/2$.

**Finishing component $j$**: `contract1`/`contract2` once more, then `eigen` heads $\pm\langle v, u\rangle$ write
$\lambda_j = T_j(v, v, v)$ and $\lambda_j v$; an MLP copies `v` into `component{{j}}` and loads `seed{{j+1}}`.

**Reading the result**: `eigenvalue0`, `eigenvalue1` $\approx 2, 1$ and `component0`, `component1` $\approx v_0, v_1$ in
either token; their directions are those of the exact power method, their norms within $\delta$ of 1. On this
example (numpy's power method: the same seeds, $J = 2$ steps each, exact normalisation and deflation):

| $j$ | `eigenvalue{{j}}` $\hat\lambda_j$ | $\lVert$`component{{j}}`$\rVert$ | numpy power method | true $\lambda_j$ | relative error of $\hat\lambda_j$ |
|---|---|---|---|---|---|
{comparison}

$\hat\lambda_0$ matches numpy's power method, whose two steps are still short of the true $\lambda_0 = 2$;
$\hat\lambda_1 = \lVert\hat v_1\rVert^3\,T_1(\hat v_1/\lVert\hat v_1\rVert, \dots)$ is low by about
$1 - \lVert\hat v_1\rVert^3$: the norm error `component1` keeps after its Newton step is not divided out.
"""
    return TutorialExample(
        "Cubic tensor power iteration (tensor in tokens)",
        construction.model,
        stream,
        notes,
        roles={"tensor": "input", "index": "input", "own": "scratch", **construction.roles()},
    )


def _power_method_eigenvalues(tensor: np.ndarray, seeds: np.ndarray, iterations: int) -> list[float]:
    r"""$\lambda_j = T_j(v, v, v)$ of the deflated tensor power method in numpy: ``iterations`` steps
    $v \leftarrow T_j(I, v, v) / \lVert T_j(I, v, v)\rVert$ from each seed, then $T_{j+1} = T_j - \lambda_j v^{\otimes 3}$."""
    deflated, values = tensor.copy(), []
    for seed in seeds:
        v = seed / np.linalg.norm(seed)
        for _ in range(iterations):
            u = np.einsum("abc,b,c->a", deflated, v, v)
            v = u / np.linalg.norm(u)
        values.append(float(np.einsum("abc,a,b,c->", deflated, v, v, v)))
        deflated = deflated - values[-1] * np.einsum("a,b,c->abc", v, v, v)
    return values
