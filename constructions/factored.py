r"""Weights in their low-rank factors: the coordinates a matrix reads and writes, and the block between them.

A hand-built $D \times D$ matrix touches a few named subspaces: $W_{QK}$ of a norm head pairs one block with
itself, $W_{OV}$ of a rescale head maps ``u`` to ``v``. With $R$ the rows and $C$ the columns that hold a
non-zero entry, $W = P_R^\top B\,P_C$ with the block $B = W[R, C]$, so

.. math::

    h^\top W = (h_R)^\top B \quad\text{(scattered into } C), \qquad
    h_i^\top W h_j = (h_{i,R})^\top B\, h_{j,C},

and a head costs $O(N^2 \min(|R|, |C|))$ instead of $O(N^2 D + N D^2)$. :func:`factor` finds $R$, $C$ and $B$
once per matrix (cached until the matrix changes, per device and dtype), as slices where the coordinates are
contiguous, so reading them is a view.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

Index = slice | torch.Tensor


@dataclass(frozen=True)
class Factor:
    r"""$W = P_R^\top B\,P_C$: ``rows`` $R$, ``cols`` $C$ (slices or index tensors) and ``block`` $B = W[R, C]$."""

    rows: Index
    cols: Index
    block: torch.Tensor

    @property
    def empty(self) -> bool:
        return self.block.numel() == 0


_CACHE: dict[int, tuple[int, dict[tuple, Factor]]] = {}  # id(matrix) -> (its version, factors by kind)


def factor(matrix: torch.Tensor, like: torch.Tensor, *, rows: bool = True, cols: bool = True) -> Factor:
    """The factor of ``matrix`` on ``like``'s device and dtype (cached until ``matrix`` is modified in place).

    ``rows=False`` (``cols=False``) keeps every row (column): an MLP factors only its residual side.
    """
    key = id(matrix)
    if key not in _CACHE:
        weakref.finalize(matrix, _CACHE.pop, key, None)
    version, by_kind = _CACHE.get(key, (-1, {}))
    if version != matrix._version:
        by_kind = {}
        _CACHE[key] = (matrix._version, by_kind)
    kind = (like.device, like.dtype, rows, cols)
    if kind not in by_kind:
        row_index = _index(torch.nonzero(matrix.abs().sum(1)).flatten()) if rows else slice(0, matrix.shape[0])
        col_index = _index(torch.nonzero(matrix.abs().sum(0)).flatten()) if cols else slice(0, matrix.shape[1])
        block = take(take(matrix, col_index).transpose(0, 1), row_index).transpose(0, 1)
        by_kind[kind] = Factor(_to(row_index, like.device), _to(col_index, like.device), block.contiguous().to(like))
    return by_kind[kind]


def take(stream: torch.Tensor, index: Index) -> torch.Tensor:
    """``stream[..., index]``: a view for a slice, a gather for an index tensor (of whole coordinates when the stream
    is stored coordinate by coordinate, as the forward pass stores it)."""
    if isinstance(index, slice):
        return stream[..., index]
    if stream.ndim >= 2 and stream.stride(-1) != 1:
        return stream.transpose(-1, -2).index_select(-2, index).transpose(-1, -2)
    return stream.index_select(-1, index)


def add_into(stream: torch.Tensor, index: Index, values: torch.Tensor) -> None:
    """``stream[..., index] += values`` in place (``index`` holds distinct coordinates)."""
    if isinstance(index, slice):
        stream[..., index] += values
    else:
        stream.index_add_(-1, index, values)


def _index(positions: torch.Tensor) -> Index:
    """A slice when ``positions`` are consecutive, else the positions."""
    if positions.numel() and int(positions[-1] - positions[0]) + 1 == positions.numel():
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _to(index: Index, device: torch.device) -> Index:
    return index if isinstance(index, slice) else index.to(device)


def same_in_every_token(read: torch.Tensor, index: Index, known: torch.Tensor | None) -> bool:
    """Whether ``read`` (the coordinates ``index`` of a stream, shape ``(batch, tokens, k)``) holds one row repeated
    in every token: true without looking when every coordinate is ``known`` to (a forward pass tracks this), else
    by comparing every token with the first."""
    if read.shape[1] < 2:
        return False
    if known is not None and bool(known[index].all()):
        return True
    return torch.equal(read, read[:, :1].expand_as(read))


def shared(values: torch.Tensor) -> bool:
    """Whether an update is one row written to every token (an expanded view, stride 0 along the tokens)."""
    return values.shape[1] > 1 and values.stride(1) == 0
