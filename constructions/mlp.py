r"""ReLU MLP layers whose hidden units are declared by the subspaces they read and write.

An MLP adds $W_2\,\sigma(W_1 h)$ to every token, with biases read from the constant
subspace ``one`` (the bias trick: every token carries 1 there).

Hidden units come in *groups*. A group of size $k$ reads blocks of size $k$
coordinate by coordinate (blocks of size 1 broadcast to all $k$ units), so

.. math::

    \text{unit}_a = \sigma\Big(\sum_{b} c_b\, h[b]_a + \beta\Big), \qquad
    h[w]_a \mathrel{+}= \gamma_w\, \text{unit}_a .

``MLPBuilder.group(read={"s": 1.0}, bias=-t, write={"f": w})`` is one hinge
$w\,\sigma(s - t)$ of a piecewise-linear function; ``read={"vn": 1.0},
write={"v": 1.0, "vn": -1.0}`` together with its negative twin moves ``vn`` into ``v``
exactly (since $t = \sigma(t) - \sigma(-t)$). Exact moves of that kind live in
:mod:`tfconstruct.constructions.moves`.

The forward pass reads only the coordinates $W_{in}$ reads and writes only those $W_{out}$ writes
(:mod:`~tfconstruct.constructions.factored`); :meth:`MLP.dense_output` is the full-matrix reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .domains import InputDomain
from .factored import Index, factor, same_in_every_token, take
from .residual import DEFAULT_DTYPE, ResidualLayout
from .weights import Coefficient

BIAS = "one"


@dataclass
class UnitGroup:
    """A named group of hidden units (for inspection and width accounting)."""

    label: str
    start: int
    size: int


class MLPBuilder:
    """Collects hidden-unit groups, then builds an :class:`MLP`."""

    def __init__(self, layout: ResidualLayout, label: str = ""):
        self.layout = layout
        self.label = label
        self._read: list[torch.Tensor] = []
        self._write: list[torch.Tensor] = []
        self.groups: list[UnitGroup] = []
        self.domains: list[InputDomain] = []
        self._width = 0

    def check_domain(self, domain: InputDomain) -> "MLPBuilder":
        """Record that the MLP is accurate only while ``domain.subspace`` stays in the domain (the forward pass checks
        it; :mod:`~tfconstruct.constructions.domains`)."""
        for name in (domain.subspace, domain.tokens or domain.subspace):
            self.layout[name]  # a KeyError naming the layout's subspaces
        self.domains.append(domain)
        return self

    def group(
        self,
        read: dict[str, Coefficient],
        write: dict[str, Coefficient],
        *,
        bias: Coefficient = 0.0,
        label: str = "",
    ) -> "MLPBuilder":
        r"""Add $k$ units $\sigma(\sum_b c_b h[b] + \beta)$ writing $\gamma_w\,\text{unit}$ into each ``w``.

        $k$ is the common size of the blocks of size > 1 named in ``read`` and ``write``;
        coefficients may be scalars or length-$k$ tensors (one per unit).
        """
        sizes = {self.layout.size(n) for n in [*read, *write]} - {1}
        if len(sizes) > 1:
            raise ValueError(f"MLP group {label!r}: blocks {[*read, *write]} have different sizes {sorted(sizes)}")
        k = sizes.pop() if sizes else 1
        w_in = torch.zeros(self.layout.dim, k, dtype=DEFAULT_DTYPE)
        w_out = torch.zeros(k, self.layout.dim, dtype=DEFAULT_DTYPE)
        units = torch.arange(k)
        reads = dict(read)
        if bool(torch.as_tensor(bias).ne(0).any()):
            if BIAS not in self.layout:
                raise ValueError(
                    f"MLP group {label!r} has a bias, which is read from a constant subspace {BIAS!r} (1 in every "
                    f"token); the layout has {self.layout.names}"
                )
            reads[BIAS] = reads.get(BIAS, 0.0) + torch.as_tensor(bias, dtype=DEFAULT_DTYPE)
        for name, coeff in reads.items():
            block = self.layout[name]
            rows = block.start + (units if block.size == k else torch.zeros(k, dtype=torch.long))
            w_in[rows, units] += _per_unit(coeff, k, f"read {name}")
        for name, coeff in write.items():
            block = self.layout[name]
            cols = block.start + (units if block.size == k else torch.zeros(k, dtype=torch.long))
            w_out[units, cols] += _per_unit(coeff, k, f"write {name}")
        self._read.append(w_in)
        self._write.append(w_out)
        self.groups.append(UnitGroup(label or f"group{len(self.groups)}", self._width, k))
        self._width += k
        return self

    def build(self) -> "MLP":
        if not self.groups:
            raise ValueError(f"MLP {self.label!r} has no hidden units")
        return MLP(
            layout=self.layout,
            w_in=torch.cat(self._read, dim=1),
            w_out=torch.cat(self._write, dim=0),
            groups=list(self.groups),
            label=self.label,
            domains=tuple(self.domains),
        )


@dataclass
class MLP:
    r"""$h \mathrel{+}= W_{out}^\top\,\sigma(W_{in}^\top h)$; ``w_in`` is ``(D, width)``, ``w_out`` is ``(width, D)``."""

    layout: ResidualLayout
    w_in: torch.Tensor
    w_out: torch.Tensor
    groups: list[UnitGroup]
    label: str = ""
    domains: tuple[InputDomain, ...] = ()
    kind: str = field(default="mlp", init=False)

    @property
    def width(self) -> int:
        return self.w_in.shape[1]

    def hidden(self, stream: torch.Tensor) -> torch.Tensor:
        r"""The hidden units $\sigma(W_{in}^\top h)$, shape ``(batch, tokens, width)``."""
        read = factor(self.w_in, stream, cols=False)
        return torch.relu(take(stream, read.rows) @ read.block)

    def updates(
        self, stream: torch.Tensor, chunk: int | None = None, known: torch.Tensor | None = None
    ) -> list[tuple[Index, torch.Tensor]]:
        """The coordinates $W_{out}$ writes and the values added there (``chunk`` is for attention; unused;
        ``known``: the coordinates known to be the same in every token).

        An MLP acts on each token alone, so when every token holds the same values in the coordinates it reads (it
        reads only broadcast blocks), it is computed on the first token and the result written to all.
        """
        read, write = factor(self.w_in, stream, cols=False), factor(self.w_out, stream, rows=False)
        inputs = take(stream, read.rows)
        tokens = stream.shape[1]
        if same_in_every_token(inputs, read.rows, known):
            return [(write.cols, (torch.relu(inputs[:, :1] @ read.block) @ write.block).expand(-1, tokens, -1))]
        return [(write.cols, torch.relu(inputs @ read.block) @ write.block)]

    def dense_output(self, stream: torch.Tensor) -> torch.Tensor:
        """The output with the full matrices (the reference for :meth:`updates`)."""
        return torch.relu(stream @ self.w_in.to(stream)) @ self.w_out.to(stream)

    def __call__(self, stream: torch.Tensor) -> torch.Tensor:
        """The output, to be added to the residual stream (computed on the coordinates read and written)."""
        ((cols, values),) = self.updates(stream)
        out = torch.zeros_like(stream)
        out[..., cols] = values
        return out

    def named_weights(self) -> dict[str, torch.Tensor]:
        return {"w_in": self.w_in, "w_out": self.w_out}

    def describe(self) -> str:
        groups = ", ".join(f"{g.label}[{g.size}]" for g in self.groups)
        return f"mlp {self.label!r} (width {self.width}): {groups}"


def _per_unit(coeff: Coefficient, k: int, what: str) -> torch.Tensor:
    value = torch.as_tensor(coeff, dtype=DEFAULT_DTYPE)
    if value.numel() not in (1, k):
        raise ValueError(f"MLP {what}: coefficient has {value.numel()} entries, expected 1 or {k}")
    return value.reshape(-1).expand(k) if value.numel() == 1 else value.reshape(k)
