r"""The shape every construction family shares: a layout, a model, an embedding and a read-out.

A construction is a hand-built transformer for one algorithm. Whatever the family (power iteration,
EM, tensor power iteration, or a user's own), it exposes

* ``layout``: the :class:`~tfconstruct.constructions.residual.ResidualLayout` of named subspaces;
* ``model``: the :class:`~tfconstruct.constructions.model.Transformer`, whose sublayers carry hook names;
* ``embed(*inputs)``: the input stream for the algorithm's inputs (batched, tokens as rows);
* ``readout(stream)``: the algorithm's outputs, read by name from a stream;

and inherits ``run(*inputs) = readout(model(embed(*inputs)))`` and ``trace(*inputs)`` (every stream, by hook
name). :class:`TutorialExample` is a small worked instance for the generated tutorials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

import torch

from .lesson import ROLES, Checkpoint, Geometry, PseudoLine, Role
from .model import Trace, Transformer
from .residual import ResidualLayout


@runtime_checkable
class Construction(Protocol):
    """A hand-built transformer for one algorithm (subclass it to inherit :meth:`run` and :meth:`trace`)."""

    layout: ResidualLayout
    model: Transformer

    def embed(self, *inputs: Any, **options: Any) -> torch.Tensor:
        """The input stream ``(batch, tokens, D)`` for the algorithm's inputs."""
        ...

    def readout(self, stream: torch.Tensor) -> Any:
        """The algorithm's outputs, read by subspace name from ``stream``."""
        ...

    def run(self, *inputs: Any, **options: Any) -> Any:
        """``readout(model(embed(*inputs, **options)))``."""
        return self.readout(self.model(self.embed(*inputs, **options)))

    def trace(self, *inputs: Any, hooks: Iterable[str] | None = None, **options: Any) -> Trace:
        """The forward pass on ``embed(*inputs, **options)``, every stream (or only ``hooks``) by hook name."""
        return self.model(self.embed(*inputs, **options), trace=True if hooks is None else list(hooks))


@dataclass
class TutorialExample:
    """``model`` run on ``stream`` (a batch of one) illustrates the construction described in ``notes``.

    ``notes`` is Markdown: what each subspace holds, what each layer's weights do (with LaTeX),
    and how to read the result off the final stream. The optional rest (:mod:`~tfconstruct.constructions.lesson`)
    feeds the tutorials and the explorer: the subspaces' ``roles``, the ``pseudocode``, the reference algorithm's
    ``checkpoints``, the 2-D ``geometry`` and ``at_width(M)`` (the example rebuilt at width $M$, for ``widths``;
    ``width`` is the example's own $M$).
    """

    title: str
    model: Transformer
    stream: torch.Tensor
    notes: str
    roles: Mapping[str, Role] = field(default_factory=dict)
    pseudocode: tuple[PseudoLine, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    geometry: Geometry | None = None
    at_width: Callable[[int], "TutorialExample"] | None = None
    widths: tuple[int, ...] = ()
    width: int | None = None

    def __post_init__(self) -> None:
        layout = self.model.layout
        for name, role in self.roles.items():
            layout[name]  # a KeyError naming the layout's subspaces
            if role not in ROLES:
                raise ValueError(f"roles[{name!r}] must be one of {ROLES}, got {role!r}")
        for checkpoint in self.checkpoints:
            self.model[checkpoint.hook]  # a KeyError naming the model's hooks
            if checkpoint.subspace is not None:
                layout[checkpoint.subspace]
        if self.widths and self.at_width is None:
            raise ValueError("widths needs at_width (the example rebuilt at width M)")
        if self.width is not None and self.widths and self.width not in self.widths:
            raise ValueError(f"width {self.width} (the example's own) must be one of widths {self.widths}")
