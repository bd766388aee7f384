r"""Save and load a :class:`~tfconstruct.constructions.trainable.StandardTransformer` as a self-describing safetensors
file.

The tensors are the module's parameters under their TransformerLens-style names (``blocks.{b}.attn.W_Q`` ...), in the
module's dtype. The safetensors metadata header (string to string) holds everything needed to rebuild the module:

=============  ======================================================================================================
``format``     :data:`FORMAT`, the tag that marks the file as ours
``version``    :data:`VERSION`
``config``     JSON of :meth:`~tfconstruct.constructions.trainable.StandardTransformer.config`: ``d_model``, the
               residual layout's subspace names and sizes, and per block ``n_heads``, ``d_head``, ``d_mlp``,
               ``combine``, the source construction's hook names and per head the scoring rule, ``normalise``, the
               key mask's residual coordinate (and its subspace name) and the hand-built head's label
=============  ======================================================================================================

:func:`load` refuses, with a :class:`CheckpointError` saying why, a file that is not safetensors, lacks the tag, has
another version, or whose tensors do not match the header (a missing, extra or misshapen tensor, a non-float or mixed
dtype, a non-finite value): a file is never read into a silently wrong model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tfconstruct.constructions.trainable import StandardTransformer

FORMAT = "tfconstruct.standard_transformer"
VERSION = "1"
DTYPES = (torch.float64, torch.float32)


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this format, or whose header and tensors disagree; the message says which."""


def save(module: StandardTransformer, path: str | os.PathLike[str]) -> None:
    """Write ``module``'s parameters and the header that rebuilds it to ``path`` (safetensors).

    Raises:
        ValueError: naming ``module`` if it is not a StandardTransformer, or its parameters mix dtypes.
    """
    if not isinstance(module, StandardTransformer):
        raise ValueError(f"module must be a StandardTransformer, got {type(module).__name__}")
    tensors = {name: value.detach().cpu().contiguous() for name, value in module.state_dict().items()}
    dtypes = {value.dtype for value in tensors.values()}
    if len(dtypes) > 1:
        raise ValueError(
            f"module's parameters mix dtypes {sorted(map(str, dtypes))}; convert it with .double()/.float()"
        )
    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(module.config())}
    save_file(tensors, os.fspath(path), metadata=metadata)


def load(path: str | os.PathLike[str]) -> StandardTransformer:
    """The module saved at ``path``, in the dtype it was saved in (bit for bit).

    Raises:
        CheckpointError: naming ``path`` and what is wrong with the file.
        FileNotFoundError: if there is no file at ``path``.
    """
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f"no checkpoint file at {where!r}")
    try:
        with safe_open(where, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{where!r} is not a readable safetensors file: {err}") from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{where!r} is not a {FORMAT} checkpoint (its header's format tag is {metadata.get('format')!r})"
        )
    if metadata.get("version") != VERSION:
        raise CheckpointError(
            f"{where!r} has format version {metadata.get('version')!r}; this reader knows {VERSION!r}"
        )
    config = _config(where, metadata.get("config"))
    dtypes = {value.dtype for value in tensors.values()}
    if len(dtypes) > 1 or not dtypes <= set(DTYPES):
        raise CheckpointError(
            f"{where!r}: tensors must all be float64 or all float32, found {sorted(map(str, dtypes))}"
        )
    try:
        module = StandardTransformer.from_config(config, dtypes.pop() if dtypes else torch.float64)
    except ValueError as err:
        raise CheckpointError(f"{where!r}: the header's config is inconsistent: {err}") from err
    expected = module.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{where!r}: tensors do not match the header; missing {missing}, unexpected {extra}")
    for name, value in expected.items():
        if tensors[name].shape != value.shape:
            raise CheckpointError(
                f"{where!r}: tensor {name!r} has shape {tuple(tensors[name].shape)}, the header says {tuple(value.shape)}"
            )
        if not bool(torch.isfinite(tensors[name]).all()):
            raise CheckpointError(f"{where!r}: tensor {name!r} holds non-finite values (NaN or inf)")
    module.load_state_dict(tensors)
    return module


def _config(where: str, text: str | None) -> dict[str, Any]:
    if text is None:
        raise CheckpointError(f"{where!r}: the header has no 'config' entry")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{where!r}: the header's config is not JSON: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{where!r}: the header's config must be a JSON object, got {type(config).__name__}")
    return config
