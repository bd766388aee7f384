r"""Deflated power iteration over a contraction: the engine shared by matrix and tensor power iteration.

For components $j = 0, \dots, R-1$ and $J$ iterations each, :class:`DeflatedPowerIteration` runs

.. math::

    v \leftarrow \hat\phi_M\big(\lVert u\rVert^2\big)\, u, \qquad
    u = T_j(I, v, \dots, v) = T(I, v, \dots, v) - \sum_{p<j} \lambda_p\,(v_p\cdot v)^{m-1}\, v_p,

then reads out $\lambda_j = \langle v, T_j(I, v, \dots, v)\rangle$ and $v_j = v$, and restarts from the next
seed. $T$ has order $m$: a matrix ($m = 2$, $T(I, v) = \hat\Sigma v$, PCA) or a cubic tensor ($m = 3$,
$T(I, v, v)$, the method of moments). The part that depends on where $T$ lives is a :class:`Contraction`:
attention layers that add the undeflated $T(I, v, \dots, v)$ into ``u``. Everything is exact except
$\hat\phi_M \approx s^{-1/2}$ (:class:`~tfconstruct.constructions.gadgets.InverseSqrt`). Since
$\hat\phi_M > 0$ and $T(I, \cdot, \dots, \cdot)$ is homogeneous, **the direction of every iterate of
component 0 is exactly the power method's**; only the norm is off, by at most the relative error
$\delta_M$ of $\hat\phi_M$ while every $\lVert u\rVert^2 \in [a, b]$. Later components are deflated with
$\hat\lambda_p \hat v_p^{\otimes m}$, which carries the $O(\delta_M)$ norm error of $\hat v_p$. Optional
Newton steps $v \leftarrow (\tfrac32 - \tfrac12\lVert v\rVert^2) v$ before each read-out shrink the norm error
$e \mapsto -e^2(3+e)/2$.

**Two normalisers, one function.** ``normaliser="mlp"`` (the default) computes $f = \hat\phi_M(r)$ in an MLP
of $M + 2$ hinge units into ``inv_norm``, then one head adds $f\,u$. ``normaliser="heads"`` (the shape of Lemma
B.2 of *Learning Spectral Methods by Transformers*) drops ``inv_norm`` and the MLP: the ``rescale`` layer holds
$M + 2$ ReLU heads, one per hinge $w_m\,\sigma(t_m - r)\,u$ and one constant $\hat\phi_M(b)\,u$
(:func:`~tfconstruct.constructions.gadgets.inverse_sqrt_heads`), so the width is the number of heads. Both add
$\hat\phi_M(r)\,u$; in floating point the MLP rounds one scalar $f$ (which cannot turn $u$), the heads round
each hinge's multiple of $u$ coordinate by coordinate, so their round-off is not parallel to $u$ and the direction
is exact only up to round-off.

**Subspaces owned by the engine** (broadcast: identical in every token):

=================== ====== ==============================================================
``one``             1      constant 1 (biases, constant scores)
``v``               k      the iterate $v$ (holds seed 0 in the input)
``u``               k      scratch: $T_j(I, v, \dots, v)$
``norm_sq``         1      scratch: $r = \lVert u\rVert^2$ (or $\lVert v\rVert^2$ in a Newton step)
``inv_norm``        1      scratch: $\hat\phi_M(r) \approx r^{-1/2}$ (``normaliser="mlp"`` only)
``next``            k      scratch: the new iterate before it overwrites ``v``
``overlap``         R      scratch ($m = 3$ only): $c_p = v_p\cdot v$ for the finished components
``seed{j}``         k      seed of component $j \ge 1$
``component{j}``    k      finished $v_j$
``weighted{j}``     k      $\lambda_j v_j$ (what the deflation heads read)
``eigenvalue{j}``   1      $\lambda_j$
=================== ====== ==============================================================

**Hook names.** Component $j$'s sublayers are ``component{j}.iter{t}.{contract1..,norm,inv_sqrt,rescale,
overwrite}`` (no ``inv_sqrt`` with ``normaliser="heads"``), ``component{j}.newton{t}.{norm,step,overwrite}`` and
``component{j}.finish.{contract1..,eigen,store}``; the contraction's own layers before and after them carry the
names it gives. One iteration is (contraction layers) + 3 attention + 2 MLP sublayers (one MLP fewer with
``normaliser="heads"``); a finish is (contraction layers) + 1 attention + 1 MLP.
Deflation: for $m = 2$ heads $\pm\langle v, v_p\rangle$ with value $\mp\lambda_p v_p$ join the contraction's
last layer; for $m = 3$ heads $\pm\langle v, v_p\rangle \to c_p$ join its first layer and heads
$\langle c_p, c_p\rangle = c_p^2$ with value $-\lambda_p v_p$ its last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, TypedDict, Unpack

import numpy as np
import torch

from ..attention import AttentionHead, MultiHeadAttention
from ..checks import as_batch, integer_in
from ..construction import Construction
from ..domains import DomainViolation
from ..gadgets import (
    ExactScoring,
    InverseSqrt,
    NormalisationDomain,
    check_scoring,
    inverse_sqrt_heads,
    newton_heads,
    rescale_head,
    signed_heads,
    squared_norm_head,
)
from ..lesson import Role
from ..mlp import MLPBuilder
from ..model import Sublayer, Trace, Transformer
from ..moves import clear, copy, replace
from ..residual import ResidualLayout
from ..weights import Bilinear, LinearMap

SEED_STREAM = 0x5EED
ORDERS = (2, 3)
NormaliserForm = Literal["mlp", "heads"]
NORMALISERS: tuple[str, ...] = ("mlp", "heads")

NamedLayers = list[tuple[str, Sublayer]]


class Contraction(Protocol):
    r"""Where the operator $T$ of order $m$ lives and how $T(I, v, \dots, v)$ is computed.

    Attributes:
        order: $m$ = 2 (a matrix) or 3 (a cubic tensor).
        dim: $k$, the size of the iterate $v$.
        scratch: subspaces the contraction writes besides ``u``; the engine clears them.
        scorings: the attention scorings its heads support.
        norm_tolerance: the largest norm error $|\lVert v\rVert - 1|$ its heads are exact for (``math.inf``: any).
        domain_remedy: what sets the normaliser's domain $[a, b]$, named when an input leaves it.
    """

    order: int
    dim: int
    scratch: tuple[str, ...]
    scorings: tuple[str, ...]
    norm_tolerance: float
    domain_remedy: str

    def blocks(self, components: int) -> list[tuple[str, int]]:
        """The subspaces the contraction owns, ``(name, size)``, placed first in the layout."""
        ...

    def contraction_heads(self, layout: ResidualLayout, scoring: ExactScoring) -> list[list[AttentionHead]]:
        r"""One list of heads per attention layer; together they add the undeflated $T(I, v, \dots, v)$ to ``u``."""
        ...

    def prefix_layers(self, layout: ResidualLayout, scoring: ExactScoring) -> NamedLayers:
        """Named sublayers run once before the first component (e.g. centring the data)."""
        ...

    def final_layers(self, layout: ResidualLayout, components: int, scoring: ExactScoring) -> NamedLayers:
        """Named sublayers run once after the last component (e.g. un-whitening)."""
        ...


@dataclass(frozen=True)
class PowerResult:
    """``eigenvalues`` $(b, R)$ and ``vectors`` $(b, R, k)$, read from token 0 of the final stream."""

    eigenvalues: torch.Tensor
    vectors: torch.Tensor
    unresolved: tuple[tuple[int, int], ...] = ()  # (instance, component) pairs, when recorded (outside="record")


@dataclass(frozen=True)
class PowerTrajectory:
    r"""Every power iterate of one forward pass.

    ``iterates[b, j, t]`` is $v^{(t)}$ of component $j$ ($t = 0$ the seed, $t = J$ after the last power
    step, before any Newton step); ``normaliser_inputs[b, j, t]`` is the $r = \lVert u\rVert^2$ the
    normaliser (the ``inv_sqrt`` MLP or the ``rescale`` heads) saw in step $t + 1$; ``stream`` is the final
    stream (identical to ``model(stream)``); ``violations``: the normaliser inputs outside its domain, when
    recorded (``outside="record"``).
    """

    iterates: torch.Tensor
    normaliser_inputs: torch.Tensor
    stream: torch.Tensor
    violations: tuple[DomainViolation, ...] = ()


def default_seeds(dim: int, components: int, seed: int = 0) -> np.ndarray:
    r"""The fixed starting vectors shared by the constructions and the references: the first ``components`` rows
    of a Haar-random orthogonal $k\times k$ matrix (unit, mutually orthogonal, generic: a seed overlaps every
    eigenvector with probability 1). The generator is ``SeedSequence(seed, spawn_key=(SEED_STREAM,))``, a stream
    of its own, so the seeds never coincide with an instance built from ``default_rng(seed)`` (with equal weights
    such a coincidence can put a seed exactly between two components, an unstable fixed point)."""
    dim = integer_in("dim", dim, 1)
    components = integer_in("components", components, 1, dim)
    generator = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SEED_STREAM,)))
    q, r = np.linalg.qr(generator.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).T[:components]


class DeflatedPowerIteration:
    r"""$R$ components x $J$ iterations of deflated power iteration over a :class:`Contraction`.

    Args:
        contraction: where $T$ lives and how $T(I, v, \dots, v)$ is computed.
        components: $R \le k$ components to extract.
        iterations: $J \ge 1$ power steps per component.
        width: $M \ge 1$ knot intervals of the $r^{-1/2}$ interpolant ($M + 2$ MLP units, or $M + 2$ heads with
            ``normaliser="heads"``); its relative error ``norm_error`` must be within the contraction's
            ``norm_tolerance``, else a ``ValueError`` names the smallest valid width.
        domain: the range $[a, b]$ of $r = \lVert u\rVert^2$ that the knots cover.
        newton_steps: $N \ge 0$ Newton norm refinements before each read-out.
        attention: ``"relu"`` (signed head pairs) or ``"linear"`` scoring, if the contraction supports it.
        normaliser: ``"mlp"`` (a hinge MLP computes $\hat\phi_M(r)$, then one head rescales) or ``"heads"`` (the
            rescale layer's $M + 2$ ReLU heads apply $\hat\phi_M(r)$ themselves; module docstring). Kept as
            ``normaliser_form``; ``normaliser`` is the :class:`~tfconstruct.constructions.gadgets.InverseSqrt`.

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(
        self,
        contraction: Contraction,
        *,
        components: int,
        iterations: int,
        width: int,
        domain: NormalisationDomain | tuple[float, float],
        newton_steps: int = 0,
        attention: ExactScoring = "relu",
        normaliser: NormaliserForm = "mlp",
    ):
        if contraction.order not in ORDERS:
            raise ValueError(f"contraction order must be one of {ORDERS}, got {contraction.order!r}")
        self.contraction = contraction
        self.dim = contraction.dim
        self.components = integer_in("components", components, 1, self.dim)
        self.iterations = integer_in("iterations", iterations, 1)
        self.newton_steps = integer_in("newton_steps", newton_steps, 0)
        self.attention = check_scoring(attention)
        if self.attention not in contraction.scorings:
            raise ValueError(
                f"attention={attention!r} is not supported by {type(contraction).__name__}; use one of "
                f"{contraction.scorings}"
            )
        if normaliser not in NORMALISERS:
            raise ValueError(f"normaliser must be one of {NORMALISERS}, got {normaliser!r}")
        self.normaliser_form: NormaliserForm = normaliser
        self.domain = NormalisationDomain.of(domain)
        self.normaliser = InverseSqrt(self.domain, integer_in("width", width, 1))
        self.width = self.normaliser.width
        self.norm_error = self.normaliser.relative_error
        if not self.norm_error <= contraction.norm_tolerance:
            smallest = InverseSqrt.min_width(self.domain, contraction.norm_tolerance)
            raise ValueError(
                f"width M={self.width} is too small for the domain [{self.domain.low:.3g}, {self.domain.high:.3g}]: "
                f"the normaliser's relative error {self.norm_error:.3g} exceeds {contraction.norm_tolerance:g}, the "
                f"largest {type(contraction).__name__} allows; use width >= {smallest}"
            )
        self.layout = ResidualLayout(self._blocks())
        self.model = self._model()

    # --- layout and model ------------------------------------------------------------------------------
    def _blocks(self) -> list[tuple[str, int]]:
        k, r = self.dim, self.components
        blocks = self.contraction.blocks(r) + [
            ("one", 1),
            ("v", k),
            ("u", k),
            ("norm_sq", 1),
            *([("inv_norm", 1)] if self.normaliser_form == "mlp" else []),
            ("next", k),
        ]
        if self.contraction.order == 3:
            blocks.append(("overlap", r))
        blocks += [(f"seed{j}", k) for j in range(1, r)]
        blocks += [
            block for j in range(r) for block in ((f"component{j}", k), (f"weighted{j}", k), (f"eigenvalue{j}", 1))
        ]
        return blocks

    def roles(self) -> dict[str, Role]:
        """What the engine's own blocks are to a reader (:mod:`~tfconstruct.constructions.lesson`): ``one`` and the
        later seeds are input, ``v`` the state, the per-step values scratch, each component's vector, weighted vector
        and eigenvalue results. The contraction's blocks are left to the construction that chose it."""
        contraction = {name for name, _ in self.contraction.blocks(self.components)}
        results = ("component", "weighted", "eigenvalue")
        found: dict[str, Role] = {}
        for name, _ in self._blocks():
            if name in contraction:
                continue
            if name == "one" or name.startswith("seed"):
                found[name] = "input"
            else:
                found[name] = "state" if name == "v" else "result" if name.startswith(results) else "scratch"
        return found

    def _model(self) -> Transformer:
        """Repeated steps reuse the same sublayer objects (as ``block * L`` does): memory grows with $R$, not $RJ$."""
        layout, scoring = self.layout, self.attention
        model = _named(layout, self.contraction.prefix_layers(layout, scoring))
        newton = self._newton()
        for j in range(self.components):
            component = self._iteration(j) * self.iterations
            if self.newton_steps:
                component = component + newton.repeat(self.newton_steps, "newton")
            component = component + self._finish(j).scoped("finish")
            model = model + component.scoped(f"component{j}")
        return model + _named(layout, self.contraction.final_layers(layout, self.components, scoring))

    def _contract(self, j: int) -> NamedLayers:
        r"""``u`` $\mathrel{+}= T(I, v, \dots, v) - \sum_{p<j} \lambda_p c_p^{m-1} v_p$ with $c_p = v_p\cdot v$."""
        layout, scoring = self.layout, self.attention
        layers = self.contraction.contraction_heads(layout, scoring)
        for p in range(j):
            if self.contraction.order == 2:
                layers[-1] += signed_heads(
                    layout,
                    f"deflate{p}",
                    lambda q, s, p=p: q.add("v", f"component{p}", s),
                    lambda o, s, p=p: o.add(f"weighted{p}", "u", -s),
                    scoring,
                )
                continue
            layers[0] += signed_heads(
                layout,
                f"overlap{p}",
                lambda q, s, p=p: q.add("v", f"component{p}", s),
                lambda o, s, p=p: o.add("one", "overlap", s, dst_index=p),
                scoring,
            )
            square = Bilinear(layout).add("overlap", "overlap", 1.0, query_index=p, key_index=p)
            layers[-1].append(
                AttentionHead(square, LinearMap(layout).add(f"weighted{p}", "u", -1.0), scoring, f"deflate{p}")
            )
        return [
            (f"contract{i + 1}", MultiHeadAttention(heads, label=f"contract{i + 1}")) for i, heads in enumerate(layers)
        ]

    def _clear_scratch(self, builder: MLPBuilder) -> MLPBuilder:
        scratch = self.contraction.scratch + (("overlap",) if self.contraction.order == 3 else ())
        for name in scratch:
            clear(builder, name)
        return builder

    def _iteration(self, j: int) -> Transformer:
        layout, scoring = self.layout, self.attention
        norm = ("norm", MultiHeadAttention([squared_norm_head(layout, "u", "norm_sq", scoring)], label="norm"))
        if self.normaliser_form == "heads":
            return self._heads_iteration(j, norm)
        inv_sqrt = self._clear_scratch(
            self.normaliser.add_to(
                MLPBuilder(layout, "inv_sqrt"), "norm_sq", "inv_norm", parameter=self.contraction.domain_remedy
            )
        )
        overwrite = replace(MLPBuilder(layout, "overwrite"), "next", "v")
        for name in ("u", "norm_sq", "inv_norm"):
            clear(overwrite, name)
        return _named(
            layout,
            self._contract(j)
            + [
                norm,
                ("inv_sqrt", inv_sqrt.build()),
                (
                    "rescale",
                    MultiHeadAttention([rescale_head(layout, "inv_norm", "u", "next", scoring)], label="rescale"),
                ),
                ("overwrite", overwrite.build()),
            ],
        )

    def _heads_iteration(self, j: int, norm: tuple[str, Sublayer]) -> Transformer:
        r"""``next`` $= \hat\phi_M(r)\,u$ in the ``rescale`` layer's $M + 2$ heads
        (:func:`~tfconstruct.constructions.gadgets.inverse_sqrt_heads`, which records the domain of ``norm_sq``);
        the ``overwrite`` MLP also clears the contraction's scratch (the ``inv_sqrt`` MLP's job in the MLP form)."""
        layout = self.layout
        rescale = inverse_sqrt_heads(
            layout, "norm_sq", "u", "next", self.normaliser, self.attention, parameter=self.contraction.domain_remedy
        )
        overwrite = self._clear_scratch(replace(MLPBuilder(layout, "overwrite"), "next", "v"))
        for name in ("u", "norm_sq"):
            clear(overwrite, name)
        return _named(layout, self._contract(j) + [norm, ("rescale", rescale), ("overwrite", overwrite.build())])

    def _newton(self) -> Transformer:
        r"""$v \leftarrow (\tfrac32 - \tfrac12\lVert v\rVert^2)\,v$ (:func:`~tfconstruct.constructions.gadgets.newton_heads`)."""
        layout, scoring = self.layout, self.attention
        overwrite = clear(replace(MLPBuilder(layout, "overwrite"), "next", "v"), "norm_sq")
        return _named(
            layout,
            [
                ("norm", MultiHeadAttention([squared_norm_head(layout, "v", "norm_sq", scoring)], label="norm")),
                ("step", MultiHeadAttention(newton_heads(layout, "norm_sq", "v", "next", scoring), label="step")),
                ("overwrite", overwrite.build()),
            ],
        )

    def _finish(self, j: int) -> Transformer:
        r"""$\lambda_j = \langle v, u\rangle$ and $\lambda_j v$ (heads $\pm\langle v, u\rangle$), then ``component{j}``
        $\leftarrow v$ and $v \leftarrow$ ``seed{j+1}``."""
        layout = self.layout
        eigen = signed_heads(
            layout,
            "eigen",
            lambda q, s: q.add("v", "u", s),
            lambda o, s: o.add("one", f"eigenvalue{j}", s).add("v", f"weighted{j}", s),
            self.attention,
        )
        store = self._clear_scratch(copy(MLPBuilder(layout, "store"), "v", f"component{j}"))
        clear(store, "u")
        if j + 1 < self.components:
            copy(clear(store, "v"), f"seed{j + 1}", "v")
        return _named(
            layout,
            self._contract(j)
            + [
                ("eigen", MultiHeadAttention(eigen, label="eigen")),
                ("store", store.build()),
            ],
        )

    # --- input and output ----------------------------------------------------------------------------
    def embed(
        self,
        values: dict[str, torch.Tensor],
        seeds: torch.Tensor | np.ndarray | None,
        batch: int,
        tokens: int,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The input stream: the contraction's ``values`` plus ``one``, ``v`` = seed 0 and ``seed{j}``.

        ``seeds`` is $(R, k)$ or $(b, R, k)$ (default :func:`default_seeds`); each is normalised to unit length.

        Raises:
            ValueError: on a wrong shape, a non-finite entry, or a zero seed.
        """
        seeds = as_batch("seeds", default_seeds(self.dim, self.components) if seeds is None else seeds, 3)
        if seeds.shape[1:] != (self.components, self.dim) or seeds.shape[0] not in (1, batch):
            raise ValueError(
                f"seeds must have shape (R, k) = ({self.components}, {self.dim}) or ({batch}, R, k), "
                f"got {tuple(seeds.shape)}"
            )
        norms = torch.linalg.vector_norm(seeds, dim=-1, keepdim=True)
        if not bool((norms > 0).all()):
            raise ValueError("seeds must be non-zero vectors (a zero seed stays zero under power iteration)")
        seeds = (seeds / norms).expand(batch, -1, -1)
        broadcast = {"one": 1.0, "v": seeds[:, None, 0]}
        broadcast.update({f"seed{j}": seeds[:, None, j] for j in range(1, self.components)})
        return self.layout.embed(batch, tokens, {**values, **broadcast}, device=device)

    @property
    def readout_norm_error(self) -> float:
        r"""The bound on $|\lVert v\rVert - 1|$ at read-out: the normaliser's $\epsilon_M$ through ``newton_steps``
        maps $e \mapsto e^2 (3 + e) / 2$ (each Newton step squares the error; the sympy form is
        ``tfconstruct.theory.power.readout_norm_error``)."""
        error = self.norm_error
        for _ in range(self.newton_steps):
            error = error**2 * (3 + error) / 2
        return error

    def readout(self, stream: torch.Tensor) -> PowerResult:
        r"""$(\lambda_j, v_j)$ from token 0 of the final stream."""
        token = stream[:, 0]
        eigenvalues = torch.cat([self.layout.read(token, f"eigenvalue{j}") for j in range(self.components)], dim=-1)
        vectors = torch.stack([self.layout.read(token, f"component{j}") for j in range(self.components)], dim=1)
        return PowerResult(eigenvalues, vectors)

    def iterate_hooks(self, j: int) -> list[str]:
        r"""Hook names after which ``v`` holds $v^{(0)}, \dots, v^{(J)}$ of component ``j``."""
        scope = f"component{j}"
        return [self.model.hook_before(scope)] + [
            self.model.hook_after(f"{scope}.iter{t}") for t in range(self.iterations)
        ]

    def normaliser_hooks(self, j: int) -> list[str]:
        """Hook names after which ``norm_sq`` holds the normaliser's input of each iteration of component ``j``."""
        return [f"component{j}.iter{t}.norm" for t in range(self.iterations)]

    def trajectory(self, stream: torch.Tensor, *, outside: Literal["raise", "record"] = "raise") -> PowerTrajectory:
        """One forward pass that records only the streams the trajectory needs (not the whole trace); ``outside``:
        what a normaliser input outside the domain does (:meth:`Transformer.forward`)."""
        iterate_hooks = [self.iterate_hooks(j) for j in range(self.components)]
        norm_hooks = [self.normaliser_hooks(j) for j in range(self.components)]
        trace = self.model(stream, trace=[h for hooks in iterate_hooks + norm_hooks for h in hooks], outside=outside)
        return PowerTrajectory(
            self.iterates(trace, iterate_hooks),
            self.normaliser_inputs(trace, norm_hooks),
            trace.output,
            tuple(trace.violations),
        )

    def trajectories(
        self, stream: torch.Tensor, iterations: Sequence[int], *, outside: Literal["raise", "record"] = "raise"
    ) -> dict[int, PowerTrajectory]:
        r"""For each $L$ in ``iterations``: the :class:`PowerTrajectory` the same construction with $J = L$
        iterations would return, all from **one** forward pass of this (deepest) model.

        The model with $J = L$ is this one's sublayers up to ``component0.iter{L-1}`` followed by the same tail
        (Newton steps, eigenvalue, store), so the tail runs on the stream recorded after iteration $L$: the same
        operations on the same inputs, hence the same numbers. One component only (a later component starts
        after the earlier ones' tails).

        Raises:
            ValueError: for several components, or an $L$ outside ``1..iterations``.
        """
        if self.components != 1:
            raise ValueError(f"trajectories at several depths need components = 1, got {self.components}")
        bad = [L for L in iterations if isinstance(L, bool) or int(L) != L or not 1 <= L <= self.iterations]
        if bad:
            raise ValueError(f"iterations must be integers in 1..{self.iterations}, got {bad}")
        hooks, norms = self.iterate_hooks(0), self.normaliser_hooks(0)
        trace = self.model(stream, trace=hooks + norms, outside=outside)
        tail = self.model.suffix(hooks[-1])
        iterates, inputs = self.iterates(trace, [hooks]), self.normaliser_inputs(trace, [norms])
        found = {}
        for L in iterations:
            end = tail(trace[hooks[L]], outside=outside)
            seen = tuple(v for v in trace.violations if _iteration(v.sublayer) < L)
            if outside == "record":
                end, seen = end.output, seen + tuple(end.violations)
            found[L] = PowerTrajectory(iterates[:, :, : L + 1], inputs[:, :, :L], end, seen)
        return found

    def iterates(self, trace: Trace, hooks: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        r"""$v^{(t)}$ for every component and $t = 0..J$ (token 0): shape $(b, R, J+1, k)$."""
        hooks = hooks or [self.iterate_hooks(j) for j in range(self.components)]
        return torch.stack(
            [torch.stack([self.layout.read(trace[h][:, 0], "v") for h in row], dim=1) for row in hooks], dim=1
        )

    def normaliser_inputs(self, trace: Trace, hooks: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        r"""$r = \lVert T_j(I, v^{(t)}, \dots)\rVert^2$ as the normaliser saw it: shape $(b, R, J)$."""
        hooks = hooks or [self.normaliser_hooks(j) for j in range(self.components)]
        return torch.stack(
            [torch.stack([self.layout.read(trace[h][:, 0], "norm_sq")[:, 0] for h in row], dim=1) for row in hooks],
            dim=1,
        )


class EngineOptions(TypedDict, total=False):
    """The engine's parameters, shared by every power construction (see :class:`DeflatedPowerIteration`)."""

    components: int
    iterations: int
    width: int
    domain: NormalisationDomain | tuple[float, float]
    newton_steps: int
    attention: ExactScoring
    normaliser: NormaliserForm


REQUIRED_OPTIONS = {"components", "iterations", "width", "domain"}


class PowerConstruction(Construction):
    """A construction that runs :class:`DeflatedPowerIteration` over one contraction.

    Subclasses build their contraction, pass it with the engine's :class:`EngineOptions`, and add ``embed``
    (the contraction's token values plus :meth:`DeflatedPowerIteration.embed`).
    """

    def __init__(self, contraction: Contraction, **options: Unpack[EngineOptions]):
        unknown = sorted(set(options) - set(EngineOptions.__annotations__))
        missing = sorted(REQUIRED_OPTIONS - set(options))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown parameter(s) {unknown}; "
                f"the power engine's parameters are {list(EngineOptions.__annotations__)}"
            )
        if missing:
            raise TypeError(f"{type(self).__name__} needs the keyword parameter(s) {missing}")
        self.contraction = contraction
        self.engine = DeflatedPowerIteration(contraction, **options)
        self.layout, self.model = self.engine.layout, self.engine.model

    def readout(self, stream: torch.Tensor) -> PowerResult:
        r"""$(\lambda_j, v_j)$ from token 0 of the final stream."""
        return self.engine.readout(stream)

    def roles(self) -> dict[str, Role]:
        """The roles of the engine's blocks (:meth:`DeflatedPowerIteration.roles`)."""
        return self.engine.roles()

    def trajectory(self, stream: torch.Tensor, *, outside: Literal["raise", "record"] = "raise") -> PowerTrajectory:
        """Every iterate and normaliser input of one forward pass (:meth:`DeflatedPowerIteration.trajectory`)."""
        return self.engine.trajectory(stream, outside=outside)

    def trajectories(
        self, stream: torch.Tensor, iterations: Sequence[int], *, outside: Literal["raise", "record"] = "raise"
    ) -> dict[int, PowerTrajectory]:
        """The trajectory at each number of iterations, from one pass (:meth:`DeflatedPowerIteration.trajectories`)."""
        return self.engine.trajectories(stream, iterations, outside=outside)


def _iteration(hook: str) -> int:
    """The power step a hook belongs to (``component0.iter3.norm`` -> 3); later parts (Newton, finish) -> a large number."""
    match = re.search(r"\.iter(\d+)\.", hook)
    return int(match.group(1)) if match else 1 << 30


def _named(layout: ResidualLayout, layers: NamedLayers) -> Transformer:
    return Transformer(layout, [layer for _, layer in layers], [name for name, _ in layers])
