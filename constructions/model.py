r"""A transformer as a series of residual sublayers over one named layout, with named hook points.

$H \leftarrow H + \mathrm{layer}(H)$ for each sublayer in order; a sublayer is a
:class:`~tfconstruct.constructions.attention.MultiHeadAttention` or an
:class:`~tfconstruct.constructions.mlp.MLP`. There is no LayerNorm (as in Tracr's compiled models).

Every sublayer position has a **hook name**, unique in the model and hierarchical like
TransformerLens's hook names: ``component1.iter3.norm`` is the ``norm`` sublayer of the fourth
iteration of the second component. Stacks compose like optax transformations and keep names
unique: ``a + b`` runs ``a`` then ``b``; ``block * L`` repeats a block $L$ times as
``iter0.*, ..., iter{L-1}.*``; ``block.scoped("component1")`` prefixes every name. A
:class:`Trace` is read by these names (``trace["component1.iter3.norm"]``, or a whole scope:
``trace.after("component1.iter3")``), never by position.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Literal, Union

import torch

from .attention import MultiHeadAttention, check_query_chunk
from .domains import DomainError, DomainViolation
from .factored import add_into, shared
from .mlp import MLP
from .residual import DEFAULT_DTYPE, ResidualLayout

Sublayer = Union[MultiHeadAttention, MLP]

INPUT = "input"
_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


@dataclass
class Trace:
    """The residual streams of a forward pass, by hook name.

    ``names[0]`` is ``"input"``, then one name per sublayer; ``streams[i]`` follows the sublayer called
    ``names[i]`` (``streams[0]`` is the input). A trace recorded for some hooks only holds ``None`` for the
    others, and reading one of those raises a ``KeyError`` that says so.
    """

    names: list[str]
    streams: list[torch.Tensor | None]
    violations: list[DomainViolation] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.names)}

    @property
    def output(self) -> torch.Tensor:
        return self._stream(len(self.names) - 1)

    def __getitem__(self, name: str) -> torch.Tensor:
        """The stream after the sublayer ``name`` (``"input"``: the input), or after the last sublayer of scope ``name``."""
        return self._stream(_positions(self.names, self._index, name)[-1])

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a hook name or a scope of the traced model (recorded or not)."""
        return isinstance(name, str) and (name in self._index or any(n.startswith(name + ".") for n in self.names))

    def __len__(self) -> int:
        """The number of streams: the input and one per sublayer."""
        return len(self.names)

    def after(self, scope: str) -> torch.Tensor:
        """The stream after the last sublayer whose name is ``scope`` or starts with ``scope + "."``."""
        return self[scope]

    def before(self, scope: str) -> torch.Tensor:
        """The stream entering the first sublayer of ``scope`` (the input of that part of the model)."""
        return self._stream(_positions(self.names, self._index, scope)[0] - 1)

    def _stream(self, position: int) -> torch.Tensor:
        stream = self.streams[position]
        if stream is None:
            raise KeyError(f"the stream after {self.names[position]!r} was not recorded; pass it in trace=[...]")
        return stream


class Transformer:
    """An inspectable stack of sublayers sharing one :class:`ResidualLayout`, each under a unique hook name.

    Args:
        layout: the residual layout every sublayer was built for.
        layers: the sublayers, in order.
        names: one hook name per sublayer (dot-separated identifiers, unique); default: each layer's label.

    Raises:
        ValueError: on a sublayer built for another layout, a missing, malformed or repeated name.
    """

    def __init__(self, layout: ResidualLayout, layers: list[Sublayer], names: list[str] | None = None):
        for layer in layers:
            if layer.layout is not layout:
                raise ValueError(f"sublayer {layer.label!r} was built for another residual layout")
        names = [layer.label for layer in layers] if names is None else list(names)
        if len(names) != len(layers):
            raise ValueError(f"got {len(names)} hook names for {len(layers)} sublayers")
        for name in names:
            if not isinstance(name, str) or not _NAME.match(name) or name == INPUT:
                raise ValueError(
                    f"hook name {name!r} must be dot-separated identifiers ([A-Za-z0-9_]+) and not {INPUT!r}"
                )
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        if repeated:
            raise ValueError(f"hook names must be unique; repeated: {repeated}")
        self.layout = layout
        self.layers = list(layers)
        self.names = names
        self._index = {name: i for i, name in enumerate(names)}

    def __add__(self, other: "Transformer") -> "Transformer":
        if other.layout is not self.layout:
            raise ValueError("cannot compose transformers over different residual layouts")
        return Transformer(self.layout, self.layers + other.layers, self.names + other.names)

    def __mul__(self, repeats: int) -> "Transformer":
        """``repeats`` copies (sharing the same sublayer objects) named ``iter{t}.<name>``."""
        return self.repeat(repeats)

    def repeat(self, times: int, scope: str = "iter") -> "Transformer":
        """``times`` copies (sharing the same sublayer objects) named ``{scope}{t}.<name>``, $t = 0..$ ``times - 1``."""
        if isinstance(times, bool) or int(times) != times or times < 0:
            raise ValueError(f"repeat count must be an integer >= 0, got {times}")
        names = [f"{scope}{t}.{name}" for t in range(int(times)) for name in self.names]
        return Transformer(self.layout, self.layers * int(times), names)

    def scoped(self, scope: str) -> "Transformer":
        """The same sublayers with every hook name prefixed by ``scope.``."""
        return Transformer(self.layout, self.layers, [f"{scope}.{name}" for name in self.names])

    def part(self, scope: str) -> "Transformer":
        """The sublayers of ``scope`` (a hook name, or a prefix of dot-separated names), names kept."""
        positions = _positions(self.names, self._index, scope)
        return Transformer(self.layout, [self.layers[i] for i in positions], [self.names[i] for i in positions])

    def upto(self, hook: str) -> "Transformer":
        """The prefix of the model that ends with the sublayer (or the scope) ``hook``, names kept."""
        end = self._position(self.hook_after(hook))
        return Transformer(self.layout, self.layers[:end], self.names[:end])

    def suffix(self, hook: str) -> "Transformer":
        """The suffix of the model that starts right after the sublayer (or the scope) ``hook``, names kept
        (``model.upto(hook)`` followed by ``model.suffix(hook)`` is the model)."""
        start = self._position(self.hook_after(hook)) if hook != INPUT else 0
        return Transformer(self.layout, self.layers[start:], self.names[start:])

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Sublayer:
        """The sublayer with hook name ``name``."""
        if name not in self._index:
            raise KeyError(f"no sublayer named {name!r}; names: {_summary(self.names)}")
        return self.layers[self._index[name]]

    @property
    def depth(self) -> int:
        """Number of attention sublayers (the usual 'layers' count; each may be followed by an MLP)."""
        return sum(1 for layer in self.layers if layer.kind == "attention")

    @property
    def max_heads(self) -> int:
        return max((len(layer.heads) for layer in self.layers if layer.kind == "attention"), default=0)

    @property
    def max_mlp_width(self) -> int:
        return max((layer.width for layer in self.layers if layer.kind == "mlp"), default=0)

    def forward(
        self,
        stream: torch.Tensor,
        *,
        trace: bool | Iterable[str] = False,
        dense: bool = False,
        query_chunk: int | None = None,
        outside: Literal["raise", "record"] = "raise",
    ) -> torch.Tensor | Trace:
        r"""Run every sublayer; return the final stream, or a :class:`Trace`.

        ``trace=True`` records every stream; a collection of hook names records only those (and the input and
        the output), which keeps the memory of long models small. Sublayers compute in their factors (the
        coordinates they read and write; attention scores ``query_chunk`` queries at a time, automatic by
        default); ``dense=True`` uses the full $D \times D$ matrices instead, the reference implementation.

        Every approximating MLP's input is checked against its domain
        (:mod:`~tfconstruct.constructions.domains`): ``outside="raise"`` raises a
        :class:`~tfconstruct.constructions.domains.DomainError` at the first value outside, ``"record"`` lists each
        violation in the returned trace's ``violations`` (a :class:`Trace` is returned even without ``trace``, then
        holding the input and the output only).
        """
        _check_stream(stream, self.layout)
        check_query_chunk(query_chunk)
        if outside not in ("raise", "record"):
            raise ValueError(f"outside must be 'raise' or 'record', got {outside!r}")
        names = [trace] if isinstance(trace, str) else trace
        keep = None if names is True or names is False else {self._position(name) for name in names}
        streams: list[torch.Tensor | None] = [stream]
        last = len(self.layers)
        # the pass works on a copy stored coordinate by coordinate (each coordinate's N values contiguous): a
        # sublayer reads and writes a few named subspaces, and so touches only their memory, not every token's row
        work = stream if dense else stream.transpose(1, 2).contiguous().transpose(1, 2)
        # the coordinates that hold the same value in every token: a sublayer reading only those computes one row
        known = None if dense else (work == work[:, :1]).all(dim=1).all(dim=0)
        violations: list[DomainViolation] = []
        for position, layer in enumerate(self.layers, start=1):
            for domain in getattr(layer, "domains", ()):
                used = None if domain.tokens is None else self.layout.flagged(work, domain.tokens)
                for instance, value in domain.outside(self.layout.read(work, domain.subspace), used):
                    found = DomainViolation(self.names[position - 1], instance, domain.subspace, value, domain)
                    if outside == "raise":
                        raise DomainError(found)
                    violations.append(found)
            # without a trace, the working copy is this pass's own and is updated in place
            work = _apply(layer, work, dense, query_chunk, known, in_place=trace is False and not dense)
            if trace is not False:
                streams.append(work if keep is None or position in keep or position == last else None)
        if trace is False and outside == "raise":
            return work
        if trace is False:
            streams = [stream] + [None] * (last - 1) + [work]
        return Trace([INPUT, *self.names], streams, violations)

    __call__ = forward

    def hook_after(self, scope: str) -> str:
        """The name of the last sublayer of ``scope`` (a hook name, or a prefix of dot-separated names)."""
        return self.names[_positions(self.names, self._index, scope)[-1]]

    def hook_before(self, scope: str) -> str:
        """The name of the sublayer just before ``scope`` starts (``"input"`` if it starts the model)."""
        first = _positions(self.names, self._index, scope)[0]
        return self.names[first - 1] if first else INPUT

    def _position(self, name: str) -> int:
        """1-based position of the sublayer ``name`` in a trace (0 for ``"input"``)."""
        if name == INPUT:
            return 0
        self[name]  # a KeyError naming the model's hooks if there is no such sublayer
        return self._index[name] + 1

    def to(self, device: torch.device | str, dtype: torch.dtype = DEFAULT_DTYPE) -> "Transformer":
        """Move every weight matrix once (in place) so forward passes do no transfers."""
        for layer in self.layers:
            if layer.kind == "attention":
                for head in layer.heads:
                    head.qk.matrix = head.qk.matrix.to(device=device, dtype=dtype)
                    head.ov.matrix = head.ov.matrix.to(device=device, dtype=dtype)
            else:
                layer.w_in = layer.w_in.to(device=device, dtype=dtype)
                layer.w_out = layer.w_out.to(device=device, dtype=dtype)
        return self

    def named_weights(self) -> dict[str, torch.Tensor]:
        """All weight matrices, keyed ``"{hook name}.{matrix}"``."""
        return {
            f"{name}.{matrix}": value
            for name, layer in zip(self.names, self.layers)
            for matrix, value in layer.named_weights().items()
        }

    def describe(self) -> str:
        head = (
            f"{self.layout!r}\n{len(self.layers)} sublayers, {self.depth} attention, "
            f"max {self.max_heads} heads, max MLP width {self.max_mlp_width}"
        )
        return "\n".join([head] + [f"[{name}] {layer.describe()}" for name, layer in zip(self.names, self.layers)])


def _apply(
    layer: Sublayer,
    stream: torch.Tensor,
    dense: bool,
    chunk: int | None,
    known: torch.Tensor | None,
    *,
    in_place: bool,
) -> torch.Tensor:
    """The stream after ``layer``: ``stream + output``, written only where the sublayer writes (into ``stream``
    itself when ``in_place``: every update is computed before the first is written). ``known`` (the coordinates
    that are the same in every token) is updated: a coordinate stays so only if every update to it is one row
    written to all tokens (the same sum in every token)."""
    if dense:
        return stream + layer.dense_output(stream)
    updates = layer.updates(stream, chunk, known)
    out = stream if in_place else stream.clone()
    for cols, values in updates:
        add_into(out, cols, values)
        if known is not None and not shared(values):
            known[cols] = False
    return out


def _positions(names: list[str], index: dict[str, int], scope: str) -> list[int]:
    """Positions (in ``names``) of the hook ``scope``, or of every name in the scope ``scope``."""
    if not isinstance(scope, str):
        raise TypeError(f"streams are addressed by hook name (a str such as {names[-1]!r}), got {scope!r}")
    if scope in index:
        return [index[scope]]
    prefix = scope + "."
    positions = [i for i, name in enumerate(names) if name.startswith(prefix)]
    if not positions:
        raise KeyError(f"no hook named {scope!r} and no scope with that prefix; hooks: {_summary(names)}")
    return positions


def _summary(names: list[str], shown: int = 8) -> str:
    """The first few names (a model may have thousands)."""
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _check_stream(stream: torch.Tensor, layout: ResidualLayout) -> None:
    if not isinstance(stream, torch.Tensor):
        raise TypeError(
            f"stream must be a torch.Tensor of shape (batch, tokens, {layout.dim}) (a construction's embed(...) "
            f"makes one), got {type(stream).__name__}"
        )
    if stream.ndim != 3 or stream.shape[-1] != layout.dim:
        shape = tuple(stream.shape) if isinstance(stream, torch.Tensor) else type(stream).__name__
        raise ValueError(f"stream must have shape (batch, tokens, {layout.dim}), got {shape}")
    if stream.dtype not in (DEFAULT_DTYPE, torch.float32):
        raise ValueError(f"stream dtype must be float64 or float32, got {stream.dtype}")
    if not bool(torch.isfinite(stream).all()):
        bad = torch.nonzero(~torch.isfinite(stream))[0].tolist()
        raise ValueError(
            f"stream contains non-finite values (NaN or inf), first at (batch, token, coordinate) = {tuple(bad)} "
            f"({layout.labels()[bad[2]]})"
        )
