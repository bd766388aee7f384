r"""The residual stream as a direct sum of named subspaces.

Every token carries a vector $h \in \mathbb{R}^D$ that is the concatenation of
named blocks, e.g. $h = [x;\ \mathrm{one};\ v;\ u]$. Weights are always
built by naming the blocks they read and write (see :mod:`tfconstruct.constructions.weights`),
never by raw index, in the spirit of Tracr's ``VectorSpaceWithBasis``.

Tokens are rows: a batch of residual streams has shape ``(batch, tokens, D)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

DEFAULT_DTYPE = torch.float64


@dataclass(frozen=True)
class Subspace:
    """A named block of coordinates ``[start, start + size)`` of the residual stream."""

    name: str
    start: int
    size: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)

    def labels(self) -> list[str]:
        """Per-coordinate labels, ``name`` for a scalar block and ``name:i`` otherwise."""
        if self.size == 1:
            return [self.name]
        return [f"{self.name}:{i}" for i in range(self.size)]


class ResidualLayout:
    """An ordered direct sum of named subspaces.

    Args:
        blocks: ``(name, size)`` pairs in the order they sit in the stream.

    Raises:
        ValueError: on a repeated name or a size below 1.

    Example:
        >>> layout = ResidualLayout([("x", 3), ("one", 1), ("v", 3)])
        >>> layout.dim, layout["v"].slice
        (7, slice(4, 7, None))
    """

    def __init__(self, blocks: Iterable[tuple[str, int]]):
        subspaces: dict[str, Subspace] = {}
        start = 0
        for name, size in blocks:
            if name in subspaces:
                raise ValueError(f"residual layout: subspace name {name!r} is used twice")
            if int(size) < 1:
                raise ValueError(f"residual layout: subspace {name!r} has size {size}; sizes must be >= 1")
            subspaces[name] = Subspace(name, start, int(size))
            start += int(size)
        self._subspaces = subspaces
        self.dim = start

    def __getitem__(self, name: str) -> Subspace:
        try:
            return self._subspaces[name]
        except KeyError:
            raise KeyError(f"no subspace named {name!r}; the layout has {list(self._subspaces)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._subspaces

    def __iter__(self):
        return iter(self._subspaces.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{s.name}[{s.size}]" for s in self)
        return f"ResidualLayout({inner}; D={self.dim})"

    @property
    def names(self) -> list[str]:
        return list(self._subspaces)

    def labels(self) -> list[str]:
        """One label per coordinate, in stream order (for heat-map axes)."""
        return [label for s in self for label in s.labels()]

    def size(self, name: str) -> int:
        return self[name].size

    def read(self, stream: torch.Tensor, name: str) -> torch.Tensor:
        """The block ``name`` of every token: shape ``(..., tokens, size)``."""
        return stream[..., self[name].slice]

    def flagged(self, stream: torch.Tensor, name: str) -> torch.Tensor:
        """The tokens whose flag subspace ``name`` (size 1, 0 or 1 per token) is set: a boolean ``(..., tokens)``."""
        return self.read(stream, name)[..., 0] > 0.5

    def touched(self, weights: torch.Tensor) -> list[str]:
        """The subspaces, in stream order, in which ``weights`` (one entry per coordinate, shape ``(D,)``) is not
        zero: what a row or column of a weight matrix reads or writes."""
        return [block.name for block in self if bool(weights[block.slice].ne(0).any())]

    def embed(
        self,
        batch: int,
        tokens: int,
        values: Mapping[str, torch.Tensor],
        *,
        dtype: torch.dtype = DEFAULT_DTYPE,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Build a residual stream of zeros and write the given blocks.

        Each value broadcasts to ``(batch, tokens, size)`` over the batch and token dimensions; its last dimension
        must be the subspace's size, except for a scalar (a number, or a tensor of shape ``()``), which fills the
        block. Blocks not named are zero.

        Raises:
            ValueError: naming the subspace, for a value whose last dimension is not the block's size (a silent
                broadcast of one number across a block would be a wrong stream) or that is not finite.
        """
        stream = torch.zeros(batch, tokens, self.dim, dtype=dtype, device=device)
        for name, value in values.items():
            block = self[name]
            value = torch.as_tensor(value, dtype=dtype, device=stream.device)
            if value.ndim and value.shape[-1] != block.size:
                raise ValueError(
                    f"value for subspace {name!r} has shape {tuple(value.shape)}: its last dimension must be the "
                    f"subspace's size {block.size} (or pass a scalar to fill the block)"
                )
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"value for subspace {name!r} contains non-finite entries (NaN or inf)")
            try:
                stream[..., block.slice] = value.expand(batch, tokens, block.size)
            except RuntimeError as err:
                raise ValueError(
                    f"value for subspace {name!r} has shape {tuple(value.shape)}; "
                    f"it must broadcast to (batch, tokens, {block.size}) = ({batch}, {tokens}, {block.size})"
                ) from err
        return stream
