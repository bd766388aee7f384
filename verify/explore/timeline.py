r"""The algorithm timeline: sublayers grouped by algorithm step and phase, read off the hook names.

A hook name's **step** is everything up to its last numbered segment (the last segment, the sublayer's own name,
not counted) and its **phase** the rest:
``component0.iter3.inv_sqrt`` is step ``component0.iter3``, phase ``inv_sqrt``; ``iter2.estep.attn`` is step
``iter2``, phase ``estep.attn``; ``component0.finish.eigen`` is step ``component0``, phase ``finish.eigen``; a name
with no numbered segment before its last is split before the last (``readout`` is its own step). Consecutive
sublayers with the same step form one :class:`Step`, so "step 3: matvec / norm / inverse sqrt / rescale /
overwrite" or "iteration 2: refresh / E / M" come from the names every construction already has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tfconstruct.constructions.lesson import PseudoLine

_NUMBERED = re.compile(r"^[A-Za-z_]*\d+$")


def split_hook(hook: str) -> tuple[str, str]:
    """``(step, phase)`` of a hook name (see the module docstring)."""
    parts = hook.split(".")
    if len(parts) == 1:
        return hook, hook
    numbered = [i for i, part in enumerate(parts[:-1]) if _NUMBERED.match(part)]
    cut = numbered[-1] + 1 if numbered else len(parts) - 1
    return ".".join(parts[:cut]), ".".join(parts[cut:])


@dataclass(frozen=True)
class Step:
    """Sublayers ``first`` to ``last`` (positions in the model, inclusive) share the step name ``name``."""

    name: str
    first: int
    last: int


def steps(hooks: list[str]) -> list[Step]:
    """Consecutive hooks with the same step, in order."""
    found: list[Step] = []
    for position, hook in enumerate(hooks):
        name = split_hook(hook)[0]
        if found and found[-1].name == name:
            found[-1] = Step(name, found[-1].first, position)
        else:
            found.append(Step(name, position, position))
    return found


def count_numbered(hooks: list[str], prefix: str) -> int:
    """How many distinct scopes ``<prefix><N>`` the hooks have: ``count_numbered(names, "component0.iter")`` is the
    number of power steps of component 0, ``count_numbered(names, "iter")`` the iterations of EM."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)(\.|$)")
    return len({found.group(1) for hook in hooks if (found := pattern.match(hook))})


def pseudocode_line(lines: tuple[PseudoLine, ...], hook: str) -> int | None:
    """The index of the line covering sublayer ``hook`` (a line's phase matches itself and its sub-phases).

    The phase qualified by its step's kind (``newton.norm`` for ``component0.newton0.norm``: the step's last segment
    without its number) is tried first, so a line for the Newton steps wins over the power step's ``norm`` line."""
    step, phase = split_hook(hook)
    kind = re.sub(r"\d+$", "", step.split(".")[-1])
    for candidate in (f"{kind}.{phase}", phase):
        for index, line in enumerate(lines):
            if any(candidate == p or candidate.startswith(p + ".") for p in line.phases):
                return index
    return None
