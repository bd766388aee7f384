"""The package's shape: the import graph respects the layering, the distribution installs only ``tfconstruct.*``,
and every module imports cleanly with warnings as errors (no invalid escape sequences in LaTeX docstrings).

Layering: ``theory/`` is a sympy-only leaf; ``constructions/`` is torch/numpy and imports neither ``theory/`` nor
``verify/``; ``verify/`` imports both. Nothing imports the folders by their top-level names.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("constructions", "theory", "verify")
#: third-party (non-stdlib) top-level modules each layer may import; its own package is always allowed
ALLOWED_THIRD_PARTY = {
    "theory": {"sympy"},
    "constructions": {"numpy", "torch"},
    "verify": {
        "numpy",
        "torch",
        "sympy",
        "matplotlib",
        "hypothesis",
        "sklearn",
        "scipy",
        "tensorly",
        "distributed",
        "cloudpickle",
        "safetensors",
        "transformer_lens",
        "pandas",
        "plotly",
        "selenium",
    },
}
#: modules of an optional extra, imported only where the extra is installed (its own CI step)
OPTIONAL = {"tfconstruct.verify.lens": "transformer_lens"}
#: the layers each layer may import (besides itself)
ALLOWED_LAYERS = {"theory": set(), "constructions": set(), "verify": {"theory", "constructions"}}


def modules() -> list[tuple[str, Path]]:
    """``(dotted name under tfconstruct, path)`` of every module in the three folders."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((f"tfconstruct.{name}", path))
    return found


def imported(name: str, path: Path) -> list[tuple[int, str]]:
    """Absolute names of every module ``path`` imports (relative imports resolved), with their line."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                names.append((node.lineno, node.module))
    return names


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tfconstruct" and len(parts) > 1 else None


def test_import_graph_respects_the_layering():
    violations = []
    for name, path in modules():
        layer = layer_of(name)
        for line, target in imported(name, path):
            top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if top in PACKAGES:
                violations.append(f"{where} (use tfconstruct.{target})")
            elif top == "tfconstruct":
                other = layer_of(target)
                if other != layer and other not in ALLOWED_LAYERS[layer]:
                    violations.append(f"{where} ({layer}/ may not import {other}/)")
            elif top not in sys.stdlib_module_names and top != "__future__" and top not in ALLOWED_THIRD_PARTY[layer]:
                violations.append(f"{where} ({layer}/ may use only {sorted(ALLOWED_THIRD_PARTY[layer])})")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmarks_import_tfconstruct_never_the_bare_folders(folder):
    bare = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in sorted((ROOT / folder).glob("*.py"))
        for line, target in imported(path.stem, path)
        if target.split(".")[0] in PACKAGES
    ]
    assert not bare, "\n".join(bare)


def test_every_subpackage_is_in_the_distribution_and_nothing_else():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        "tfconstruct." + ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert set(config["packages"]) == folders
    assert config["package-dir"] == {f"tfconstruct.{package}": package for package in PACKAGES}


def test_the_installed_distribution_has_no_top_level_constructions_theory_or_verify(tmp_path):
    """From a folder outside the repository the bare names do not import; the namespaced ones do."""
    code = (
        "import importlib.util as u\n"
        "print([u.find_spec(n) is None for n in ('constructions', 'theory', 'verify')])\n"
        "import tfconstruct.constructions, tfconstruct.theory, tfconstruct.verify\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, True]"


def test_every_module_imports_with_warnings_as_errors(tmp_path):
    """``python -W error``: an invalid escape (``"\\rho"`` in a non-raw docstring) is a SyntaxWarning, so it fails."""
    missing = {name for name, package in OPTIONAL.items() if importlib.util.find_spec(package) is None}
    names = [name for name, _ in modules() if name not in missing]
    code = "import importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in names)
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout and not result.stderr, result.stderr[-2000:]
