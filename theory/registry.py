"""Every registered bound: the ``BOUNDS`` lists of all modules in the :mod:`tfconstruct.theory` package.

Modules are discovered with :mod:`pkgutil`, so a new ``theory/<construction>.py`` that
defines ``BOUNDS = [...]`` is picked up by ``tfconstruct bounds``, the report's theory
section and the bound checker without being listed anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil

from .bound import Bound


def all_bounds() -> list[Bound]:
    """The bounds of every ``theory`` module, by module name, then in each ``BOUNDS`` order.

    Raises:
        ValueError: if two bounds share a name, or a ``BOUNDS`` entry is not a :class:`Bound`.
    """
    package = importlib.import_module(__package__)
    bounds: list[Bound] = []
    owner: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for entry in getattr(module, "BOUNDS", []):
            if not isinstance(entry, Bound):
                raise ValueError(f"{module.__name__}.BOUNDS holds {entry!r}, which is not a theory.bound.Bound")
            if entry.name in owner:
                raise ValueError(
                    f"bound name {entry.name!r} is defined in both {owner[entry.name]} and {module.__name__}"
                )
            owner[entry.name] = module.__name__
            bounds.append(entry)
    return bounds


def get(name: str) -> Bound:
    """The registered bound called ``name``.

    Raises:
        KeyError: naming the registered bounds when ``name`` is not one of them.
    """
    bounds = {b.name: b for b in all_bounds()}
    try:
        return bounds[name]
    except KeyError:
        raise KeyError(f"no bound named {name!r}; registered bounds: {sorted(bounds)}") from None
