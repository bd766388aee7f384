r"""Softmax heads as universal approximators of per-token maps (the shape of He et al., arXiv 2502.06007).

**A softmax over two keys is a sigmoid.** Two *anchor* tokens are appended to the stream: the "on" anchor (flag
``on`` $= 1$) and the "off" anchor (flag ``on`` $= 0$); both carry the key flag ``keys`` $= 1$, and a head whose keys
are masked to them sees exactly these two keys. With score $\gamma(u_i - \tau)$ against the on anchor and $0$
against the off anchor, the on anchor's weight is

.. math::  \frac{e^{\gamma(u_i-\tau)}}{e^{\gamma(u_i-\tau)} + e^0} = \sigma\big(\gamma(u_i - \tau)\big),

and with value $\Delta$ on the on anchor and $0$ on the off anchor the head adds $\Delta\,\sigma(\gamma(u_i-\tau))$ to
token $i$. (The recipe with one anchor against $n$ data keys of a constant key needs the offset $\log n$ in the
score; the off anchor is that constant key with $n = 1$, so nothing depends on the number of tokens.)

**Staircase** (:class:`SigmoidStaircase`, :func:`staircase_heads`). $M$ such heads and one constant head give a
one-hidden-layer sigmoid network of the scalar $u$: with knots $t_m = a + m h$, $h = (b - a)/M$, midpoints
$\tau_m = (t_{m-1} + t_m)/2$, steps $\Delta_m = g(t_m) - g(t_{m-1})$ and $\gamma = c/h$,

.. math::  \hat g_M(u) = g(a) + \sum_{m=1}^{M} \Delta_m\,\sigma\big(\gamma(u - \tau_m)\big),
           \qquad \sup_{[a,b]}|\hat g_M - g| \le L_g h\Big(1 + \frac{2e^{-c/2}}{1 - e^{-c}}\Big)

for an $L_g$-Lipschitz $g$ (:data:`tfconstruct.theory.approximation.SIGMOID_STAIRCASE_SCALED`): first order in
$1/M$. The constant $g(a)$ is a head whose keys are the on anchor alone (weight exactly 1).

**Grid** (:class:`SoftGrid`, :func:`grid_head`). For $z \in [a, b]^q$ a grid of $M = P^q$ *grid tokens* at the cell
centres $g_m$ of $P$ equal cells per axis ($h = (b - a)/P$), each carrying $g_m$, $\lVert g_m\rVert^2$ and
$f(g_m)$. One softmax head with keys the grid tokens and score
$\gamma(2\langle z_i, g_m\rangle - \lVert g_m\rVert^2) = -\gamma\lVert z_i - g_m\rVert^2 + \gamma\lVert z_i\rVert^2$
(the last term is the same for every key and cancels) outputs the soft nearest grid point's value

.. math::  \hat f(z) = \sum_m f(g_m)\,\operatorname{softmax}_m\big(-\gamma\lVert z - g_m\rVert^2\big),
           \qquad |\hat f(z) - f(z)| \le L_f h \sqrt{q}\,\kappa(c),\quad \kappa(c) \to \tfrac12\ (c = \gamma h^2 \to \infty)

(:data:`tfconstruct.theory.softmax_heads.SOFTMAX_GRID_SCALED`): $h \propto M^{-1/q}$, so a fixed error needs
$M \sim (L_f (b - a)\sqrt q/\epsilon)^q$ grid tokens, exponential in $q$. The $M$ softmax units are the keys of one
head (a softmax normalises over the keys of one head, not across heads).

**Domains.** Each gadget records the input range it was built for
(:class:`~tfconstruct.constructions.domains.InputDomain`: $[a, b]$ for the staircase, the box $[a, b]^q$ for the
grid), so the forward pass raises a :class:`~tfconstruct.constructions.domains.DomainError` when a used token's
input leaves it (outside, $\hat g$ flattens to $g(a)$ or $g(b)$: a plausible wrong number). The anchors' and the
grid tokens' own outputs are don't-care; pass ``tokens=`` (a 0/1 flag) to check only the tokens whose result is used.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .attention import AttentionHead, MultiHeadAttention
from .checks import integer_in, positive
from .domains import InputDomain
from .residual import DEFAULT_DTYPE, ResidualLayout
from .weights import Bilinear, LinearMap

STAIRCASE_SHARPNESS = 8.0  # c = gamma h: each sigmoid rises over about 1/8 of its cell
GRID_SHARPNESS = 16.0  # c = gamma h^2: the soft nearest grid point is within a few % of the hard one
MAX_HEADS = 100_000
MAX_GRID_POINTS = 1_000_000
BIAS = "one"


def _interval(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` as floats, a ``ValueError`` naming them unless both are finite with low < high."""
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if not low < high:
        raise ValueError(f"the domain must satisfy low < high, got low={low!r}, high={high!r}")
    return float(low), float(high)


def _largest_root(total: int, dim: int) -> int:
    r"""The largest integer $P$ with $P^q \le$ ``total`` ($q$ = ``dim``)."""
    root = int(round(total ** (1.0 / dim)))
    while root**dim > total:
        root -= 1
    return root


def _finite_values(name: str, values: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite on the domain; it returned a NaN or inf at a knot or grid point")
    return values


def _scalar_slot(layout: ResidualLayout, name: str, index: int | None, what: str) -> None:
    """A ``ValueError`` unless ``name`` (or coordinate ``index`` of it) is one scalar slot."""
    size = layout.size(name)
    if index is None and size != 1:
        raise ValueError(f"{what} {name!r} has size {size}; pass {what}_index in [0, {size - 1}] to use one coordinate")
    if index is not None:
        integer_in(f"{what}_index", index, 0, size - 1)


@dataclass(frozen=True)
class Anchors:
    r"""The names of the two anchor tokens' flags: ``keys`` is 1 on both, ``on`` is 1 on the on anchor only."""

    keys: str = "is_anchor"
    on: str = "anchor_on"

    def blocks(self) -> list[tuple[str, int]]:
        """The layout entries the anchors need (add them to the construction's layout)."""
        return [(self.keys, 1), (self.on, 1)]

    def embed(
        self,
        layout: ResidualLayout,
        batch: int,
        *,
        dtype: torch.dtype = DEFAULT_DTYPE,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The two anchor tokens, ``(batch, 2, D)``: the on anchor, then the off anchor (append them to the stream;
        ``one`` is 1 in both when the layout has it, every other slot 0)."""
        values = {self.keys: 1.0, self.on: torch.tensor([[1.0], [0.0]])}
        if BIAS in layout:
            values[BIAS] = 1.0
        return layout.embed(batch, 2, values, dtype=dtype, device=device)


@dataclass(frozen=True, eq=False)  # compared by identity: it holds arrays
class SigmoidStaircase:
    r"""$\hat g_M(u) = g(a) + \sum_{m=1}^M \Delta_m\,\sigma(\gamma(u - \tau_m))$ on $[a, b]$ = [``low``, ``high``]
    (module docstring): ``heads`` $= M$ uniform cells, sharpness ``sharpness`` $= c = \gamma h$.

    Raises:
        ValueError: naming ``heads`` (an integer in [1, 100000]), ``sharpness`` (> 0), ``low``/``high`` (finite,
            low < high) or the function (finite at every knot).
    """

    function: Callable[[np.ndarray], np.ndarray]
    low: float
    high: float
    heads: int
    sharpness: float = STAIRCASE_SHARPNESS
    knots: np.ndarray = field(init=False, repr=False)
    values: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        low, high = _interval(self.low, self.high)
        integer_in("heads", self.heads, 1, MAX_HEADS)
        positive("sharpness", self.sharpness)
        knots = np.linspace(low, high, int(self.heads) + 1)
        with np.errstate(all="ignore"):  # a function undefined somewhere on the domain is refused below, by name
            values = np.asarray(self.function(knots), dtype=np.float64).reshape(knots.shape)
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "values", _finite_values("function", values))

    @property
    def cell(self) -> float:
        r"""$h = (b - a)/M$."""
        return (self.knots[-1] - self.knots[0]) / (self.knots.size - 1)

    @property
    def gamma(self) -> float:
        r"""$\gamma = c/h$."""
        return float(self.sharpness) / self.cell

    @property
    def midpoints(self) -> np.ndarray:
        r"""$\tau_1, \dots, \tau_M$."""
        return (self.knots[:-1] + self.knots[1:]) / 2.0

    @property
    def steps(self) -> np.ndarray:
        r"""$\Delta_1, \dots, \Delta_M$."""
        return np.diff(self.values)


def staircase_heads(
    layout: ResidualLayout,
    src: str,
    dst: str,
    staircase: SigmoidStaircase,
    anchors: Anchors = Anchors(),
    *,
    src_index: int | None = None,
    dst_index: int | None = None,
    tokens: str | None = None,
    parameter: str = "domain=(low, high)",
    label: str = "staircase",
) -> MultiHeadAttention:
    r"""``dst`` $\mathrel{+}= \hat g_M($``src``$)$ per token: $M$ sigmoid heads and one constant head, softmax over
    the two anchor tokens.

    Head $m$ scores $\gamma\,u_i\,\mathrm{on}_j - \gamma\tau_m\,\mathrm{one}_i\,\mathrm{on}_j$ (``src``-``on`` and
    ``one``-``on``), so the on anchor scores $\gamma(u_i - \tau_m)$ and the off anchor $0$; its value is
    $\Delta_m\,\mathrm{on}_j$ into ``dst``: it adds exactly $\Delta_m\,\sigma(\gamma(u_i - \tau_m))$. The constant
    head's keys are the on anchor alone (weight 1) and its value $g(a)\,\mathrm{on}_j$.

    ``src_index`` / ``dst_index`` pick one coordinate of a larger block (otherwise the block must be a scalar). The
    layer records the domain $[a, b]$ of ``src`` (the whole block, on the tokens whose flag ``tokens`` is 1, all
    tokens when None), which the forward pass checks; ``parameter`` names what sets it in the error message.

    Raises:
        ValueError: a ``src`` or ``dst`` that is not one scalar slot, an index outside its block.
        KeyError: a layout without ``one`` or the anchors' flags.
    """
    _scalar_slot(layout, src, src_index, "src")
    _scalar_slot(layout, dst, dst_index, "dst")
    gamma = staircase.gamma
    heads = [
        AttentionHead(
            Bilinear(layout)
            .add(src, anchors.on, gamma, query_index=src_index)
            .add(BIAS, anchors.on, -gamma * float(tau)),
            LinearMap(layout).add(anchors.on, dst, float(step), dst_index=dst_index),
            "softmax",
            f"sigmoid{m} {src} -> {dst}",
            keys=anchors.keys,
        )
        for m, (tau, step) in enumerate(zip(staircase.midpoints, staircase.steps))
    ]
    heads.append(
        AttentionHead(
            Bilinear(layout),
            LinearMap(layout).add(anchors.on, dst, float(staircase.values[0]), dst_index=dst_index),
            "softmax",
            f"const -> {dst}",
            keys=anchors.on,
        )
    )
    domain = InputDomain(src, float(staircase.knots[0]), float(staircase.knots[-1]), parameter, tokens=tokens)
    return MultiHeadAttention(heads, label=label, domains=(domain,))


@dataclass(frozen=True)
class GridTokens:
    r"""The names of the grid tokens' slots: ``point`` ($g_m$, size $q$), ``sq_norm`` ($\lVert g_m\rVert^2$),
    ``value`` ($f(g_m)$, the size of the output) and the key flag ``keys`` (1 on grid tokens only)."""

    point: str = "grid_point"
    sq_norm: str = "grid_sq_norm"
    value: str = "grid_value"
    keys: str = "is_grid"

    def blocks(self, dim: int, outputs: int = 1) -> list[tuple[str, int]]:
        r"""The layout entries a grid for $z \in \mathbb{R}^q$ ($q$ = ``dim``) with ``outputs`` outputs needs."""
        return [(self.point, dim), (self.sq_norm, 1), (self.value, outputs), (self.keys, 1)]


@dataclass(frozen=True, eq=False)  # compared by identity: it holds arrays
class SoftGrid:
    r"""$f$ on the box $[a, b]^q$ (``low``, ``high``, $q$ = ``dim``) through the soft nearest of $M = P^q$ cell
    centres (``per_axis`` $= P$ cells per axis, $h = (b-a)/P$), sharpness ``sharpness`` $= c = \gamma h^2$.

    ``function`` maps points ``(M, q)`` to values ``(M,)`` (one output) or ``(M, k)``.

    Raises:
        ValueError: naming ``dim`` (>= 1), ``per_axis`` (>= 1, with $P^q \le 10^6$), ``sharpness`` (> 0),
            ``low``/``high`` or the function (finite at every grid point, one value or a row per point).
    """

    function: Callable[[np.ndarray], np.ndarray]
    dim: int
    low: float
    high: float
    per_axis: int
    sharpness: float = GRID_SHARPNESS
    points: np.ndarray = field(init=False, repr=False)
    values: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        low, high = _interval(self.low, self.high)
        dim, per_axis = integer_in("dim", self.dim, 1), integer_in("per_axis", self.per_axis, 1)
        if per_axis**dim > MAX_GRID_POINTS:
            raise ValueError(
                f"per_axis**dim grid tokens must be at most {MAX_GRID_POINTS}, got per_axis={per_axis} with dim={dim}; "
                f"per_axis must be in [1, {_largest_root(MAX_GRID_POINTS, dim)}]"
            )
        positive("sharpness", self.sharpness)
        centres = low + (np.arange(per_axis) + 0.5) * (high - low) / per_axis
        points = np.stack(np.meshgrid(*[centres] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
        with np.errstate(all="ignore"):  # a function undefined somewhere on the box is refused below, by name
            values = np.asarray(self.function(points), dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim != 2 or values.shape[0] != points.shape[0]:
            raise ValueError(
                f"function must map points of shape ({points.shape[0]}, {self.dim}) to values of shape "
                f"({points.shape[0]},) or ({points.shape[0]}, k), got {tuple(values.shape)}"
            )
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "values", _finite_values("function", values))

    @property
    def size(self) -> int:
        """$M = P^q$, the number of grid tokens."""
        return int(self.points.shape[0])

    @property
    def outputs(self) -> int:
        return int(self.values.shape[1])

    @property
    def cell(self) -> float:
        r"""$h = (b - a)/P$."""
        return (float(self.high) - float(self.low)) / int(self.per_axis)

    @property
    def gamma(self) -> float:
        r"""$\gamma = c/h^2$."""
        return float(self.sharpness) / self.cell**2

    def embed(
        self,
        layout: ResidualLayout,
        batch: int,
        names: GridTokens = GridTokens(),
        *,
        dtype: torch.dtype = DEFAULT_DTYPE,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        r"""The $M$ grid tokens, ``(batch, M, D)``: $g_m$, $\lVert g_m\rVert^2$, $f(g_m)$, the key flag, and ``one``
        $= 1$ when the layout has it (append them to the stream)."""
        points = torch.as_tensor(self.points)
        values = {
            names.point: points,
            names.sq_norm: (points**2).sum(-1, keepdim=True),
            names.value: torch.as_tensor(self.values),
            names.keys: 1.0,
        }
        if BIAS in layout:
            values[BIAS] = 1.0
        return layout.embed(batch, self.size, values, dtype=dtype, device=device)


def grid_head(
    layout: ResidualLayout,
    src: str,
    dst: str,
    grid: SoftGrid,
    names: GridTokens = GridTokens(),
    *,
    tokens: str | None = None,
    parameter: str = "domain=(low, high)",
    label: str = "grid",
) -> MultiHeadAttention:
    r"""``dst`` $\mathrel{+}= \hat f($``src``$)$ per token: one softmax head over the grid tokens with score
    $2\gamma\langle z_i, g_m\rangle - \gamma\lVert g_m\rVert^2$ (``src``-``point`` and ``one``-``sq_norm``) and value
    $f(g_m)$ (``value`` $\to$ ``dst``).

    The layer records the box $[a, b]$ for every coordinate of ``src`` (on the tokens whose flag ``tokens`` is 1,
    all tokens when None); ``parameter`` names what sets it.

    Raises:
        ValueError: ``src`` not of size $q$, ``dst`` not of the grid's output size, or grid slots of other sizes.
        KeyError: a layout without ``one`` or the grid tokens' slots.
    """
    for name, size in ((src, grid.dim), (dst, grid.outputs), *names.blocks(grid.dim, grid.outputs)):
        if layout.size(name) != size:
            raise ValueError(f"the grid needs subspace {name!r} of size {size}, the layout's has {layout.size(name)}")
    gamma = grid.gamma
    head = AttentionHead(
        Bilinear(layout).add(src, names.point, 2.0 * gamma).add(BIAS, names.sq_norm, -gamma),
        LinearMap(layout).add(names.value, dst),
        "softmax",
        f"soft nearest grid point {src} -> {dst}",
        keys=names.keys,
    )
    domain = InputDomain(src, float(grid.low), float(grid.high), parameter, tokens=tokens)
    return MultiHeadAttention([head], label=label, domains=(domain,))
