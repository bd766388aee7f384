r"""Weight matrices built by naming the subspaces they read and write.

Two kinds of matrix act on the residual stream $h \in \mathbb{R}^D$:

* :class:`Bilinear` is a score form $s(h_i, h_j) = h_i^\top W_{QK} h_j$
  (Tracr's ``ScalarBilinear``). ``add("x", "mu", beta)`` adds
  $\beta \langle x_i, \mu_j \rangle$: block ``x`` of the query token paired with
  block ``mu`` of the key token.
* :class:`LinearMap` is a map $h \mapsto W h$ from the stream to the stream
  (an attention head's $W_O W_V$, or an MLP's read/write). ``add(src="x", dst="u", scale=c)``
  adds $c\,x$ into block ``u``.

Both accept an explicit ``matrix`` in place of the identity pairing, shaped
``(size of first block, size of second block)``, so nothing outside this module
ever touches raw indices.
"""

from __future__ import annotations

import torch

from .residual import DEFAULT_DTYPE, ResidualLayout

Coefficient = float | torch.Tensor


def _pairing(rows: int, cols: int, scale: Coefficient, matrix: torch.Tensor | None, what: str) -> torch.Tensor:
    """The block matrix for a pairing: ``scale * I`` (sizes equal, or one side scalar) or ``scale * matrix``."""
    if matrix is not None:
        block = torch.as_tensor(matrix, dtype=DEFAULT_DTYPE)
        if tuple(block.shape) != (rows, cols):
            raise ValueError(f"{what}: matrix has shape {tuple(block.shape)}, expected ({rows}, {cols})")
        return scale * block
    if rows == cols:
        return scale * torch.eye(rows, dtype=DEFAULT_DTYPE)
    if rows == 1 or cols == 1:
        return scale * torch.ones(rows, cols, dtype=DEFAULT_DTYPE)
    raise ValueError(f"{what}: blocks of sizes {rows} and {cols} cannot be paired by the identity; pass matrix=")


class _BlockMatrix:
    r"""A $D \times D$ matrix filled block by block from named subspaces (shared by both kinds)."""

    separator = " + "

    def __init__(self, layout: ResidualLayout):
        self.layout = layout
        self.matrix = torch.zeros(layout.dim, layout.dim, dtype=DEFAULT_DTYPE)
        self.terms: list[str] = []

    def _place(
        self,
        row: str,
        col: str,
        scale: Coefficient,
        matrix: torch.Tensor | None,
        row_index: int | None,
        col_index: int | None,
        what: str,
    ) -> None:
        rows = _coordinates(self.layout, row, row_index)
        cols = _coordinates(self.layout, col, col_index)
        self.matrix[rows[:, None], cols[None, :]] += _pairing(len(rows), len(cols), scale, matrix, what)

    def describe(self) -> str:
        return self.separator.join(self.terms) if self.terms else "0"


class Bilinear(_BlockMatrix):
    r"""A score form $h_i^\top W h_j$ assembled from named block pairings.

    Example:
        E-step score $\beta(\langle x_i, \mu_k\rangle - s_k/2)$:

        >>> qk = Bilinear(layout).add("x", "mu", beta).add("one", "s", -beta / 2)
    """

    def add(
        self,
        query: str,
        key: str,
        scale: Coefficient = 1.0,
        *,
        matrix: torch.Tensor | None = None,
        query_index: int | None = None,
        key_index: int | None = None,
    ) -> "Bilinear":
        """Add ``scale * <query block of h_i, key block of h_j>`` (or ``query^T matrix key``).

        ``query_index`` / ``key_index`` restrict a side to one coordinate of its block.
        """
        self._place(query, key, scale, matrix, query_index, key_index, f"score {query}->{key}")
        self.terms.append(f"{_fmt(scale)}<{_name(query, query_index)}_i, {_name(key, key_index)}_j>")
        return self


class LinearMap(_BlockMatrix):
    r"""A linear map of the stream into itself, assembled from named block moves.

    Stored as (in, out), so a row-token stream maps by ``stream @ matrix``.

    Example:
        Write $c\,x$ into block ``u``:

        >>> ov = LinearMap(layout).add("x", "u", c)
    """

    separator = "; "

    def add(
        self,
        src: str,
        dst: str,
        scale: Coefficient = 1.0,
        *,
        matrix: torch.Tensor | None = None,
        src_index: int | None = None,
        dst_index: int | None = None,
    ) -> "LinearMap":
        """Add ``scale * src`` into ``dst``; ``matrix`` (shape ``(src size, dst size)``) maps blocks of different sizes."""
        self._place(src, dst, scale, matrix, src_index, dst_index, f"map {src}->{dst}")
        self.terms.append(f"{_name(dst, dst_index)} += {_fmt(scale)}*{_name(src, src_index)}")
        return self


def _coordinates(layout: ResidualLayout, name: str, index: int | None) -> torch.Tensor:
    block = layout[name]
    if index is None:
        return torch.arange(block.start, block.start + block.size)
    if not 0 <= index < block.size:
        raise IndexError(f"index {index} is outside subspace {name!r} of size {block.size}")
    return torch.tensor([block.start + index])


def _name(name: str, index: int | None) -> str:
    return name if index is None else f"{name}[{index}]"


def _fmt(scale: Coefficient) -> str:
    if isinstance(scale, torch.Tensor):
        return "c" if scale.numel() != 1 else f"{float(scale):.4g}"
    return f"{scale:.4g}"
