r"""Registered families: the entry-point group ``tfconstruct.families`` and ``--plugin`` modules, one mechanism.

A family registers by exposing a :class:`~tfconstruct.verify.family.Family` (or a sequence of them):

* as an **entry point** of the group ``tfconstruct.families`` in a distribution's metadata, e.g. in pyproject::

      [project.entry-points."tfconstruct.families"]
      my_family = "my_package.family:FAMILY"

  (the shipped families register exactly so, in tfconstruct's own pyproject);
* as a **plugin** given to the CLI, ``tfconstruct --plugin MODULE_OR_FILE.py <command>``: a module name, or the path of
  a ``.py`` file, whose ``FAMILY`` (or ``FAMILIES``) is the registration. A file is imported under its stem as
  module name. A sweep records its study by name, so it resumes whichever way the family was registered.

A plugin that cannot be imported, or whose registration is missing or incomplete, raises :class:`PluginError`, one
message naming the plugin and what is wrong; two families with the same name are refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

from tfconstruct.constructions.construction import TutorialExample

from .family import Family

ENTRY_POINT_GROUP = "tfconstruct.families"


class PluginError(Exception):
    """A plugin or entry point could not be registered; the message names it and what is wrong."""


def load_plugin(spec: str) -> list[Family]:
    """The families registered by the module name or ``.py`` file ``spec`` (its ``FAMILY`` or ``FAMILIES``).

    Raises:
        PluginError: naming ``spec`` when it cannot be imported or registers nothing usable.
    """
    try:
        module = _import(spec)
    except PluginError:
        raise
    except Exception as err:  # any import-time failure of user code is reported as the plugin's
        raise PluginError(f"plugin {spec!r} failed to import: {type(err).__name__}: {err}") from err
    if hasattr(module, "FAMILY"):
        return _families(f"plugin {spec!r}", module.FAMILY)
    if hasattr(module, "FAMILIES"):
        return _families(f"plugin {spec!r}", module.FAMILIES)
    raise PluginError(
        f"plugin {spec!r} registers no family: define FAMILY = tfconstruct.verify.Family(...) (or FAMILIES = [...]) "
        f"at the top level of {module.__name__}"
    )


def entry_point_families() -> list[Family]:
    """The families of every installed entry point of the group ``tfconstruct.families``."""
    families = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"entry point {entry.name} = {entry.value}"
        try:
            loaded = entry.load()
        except Exception as err:  # an installed distribution's broken registration, reported by name
            raise PluginError(f"{label} failed to load: {type(err).__name__}: {err}") from err
        if isinstance(loaded, ModuleType):
            loaded = getattr(loaded, "FAMILY", getattr(loaded, "FAMILIES", None))
        families += _families(label, loaded)
    return families


def registered(plugins: Sequence[str] = ()) -> list[Family]:
    """Every family of the entry points and of ``plugins``, by ``order`` then name.

    Raises:
        PluginError: on a broken plugin, or two families (or two families' variants) with one name.
    """
    sources = [("an installed entry point", family) for family in entry_point_families()]
    unique = list(dict.fromkeys(plugins))  # a plugin named twice is loaded once
    sources += [(f"plugin {spec!r}", family) for spec in unique for family in load_plugin(spec)]
    seen: dict[str, tuple[str, Family]] = {}
    for source, family in sources:
        if family.name in seen and seen[family.name][1] is not family:
            raise PluginError(
                f"two families are named {family.name!r} ({seen[family.name][0]} and {source}); "
                "family names must be unique"
            )
        seen[family.name] = (source, family)
    owners: dict[str, str] = {}
    for source, family in seen.values():
        for variant in family.variants:
            if owners.setdefault(variant.name, family.name) != family.name:
                raise PluginError(
                    f"two families register a variant named {variant.name!r} ({owners[variant.name]!r} and "
                    f"{family.name!r}); variant names must be unique"
                )
    return sorted((family for _, family in seen.values()), key=lambda family: (family.order, family.name))


def tutorials(families: Sequence[Family]) -> dict[str, Callable[[], TutorialExample]]:
    """``docs/tutorial_<key>.md`` -> the example it is generated from, for every family.

    Raises:
        PluginError: if two families register the same tutorial key.
    """
    found: dict[str, Callable[[], TutorialExample]] = {}
    for family in families:
        for key, factory in family.tutorials.items():
            if key in found:
                raise PluginError(f"tutorial {key!r} is registered twice (family {family.name!r} and another)")
            found[key] = factory
    return found


def _import(spec: str) -> ModuleType:
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise PluginError(f"plugin {spec!r}: no such file")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"plugin {spec!r}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(path.stem, None)
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as err:
        raise PluginError(f"plugin {spec!r}: no module named {err.name!r} (give a module name or a .py file)") from err


def _families(label: str, value: Any) -> list[Family]:
    families = [value] if isinstance(value, Family) else list(value) if isinstance(value, (list, tuple)) else None
    if not families or not all(isinstance(f, Family) for f in families):
        raise PluginError(
            f"{label}: FAMILY must be a tfconstruct.verify.Family (or FAMILIES a list of them), got {type(value).__name__}"
        )
    return families
