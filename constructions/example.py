"""A small worked instance of a construction, for tutorials and weight heat-maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import Transformer


@dataclass
class TutorialExample:
    """``model`` run on ``stream`` (a batch of one) illustrates the construction described in ``notes``.

    ``notes`` is Markdown: what each subspace holds, what each layer's weights do (with LaTeX),
    and how to read the result off the final stream.
    """

    title: str
    model: Transformer
    stream: torch.Tensor
    notes: str
