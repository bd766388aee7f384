"""The bound registry, its printing, and the bounds of theory/approximation.py and theory/propagation.py."""

import sys

import pytest

from theory.interpolation import INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE
from theory.latex import escape_text, format_latex, format_markdown, format_text
from theory.registry import all_bounds, get
from verify.cli import main

# ------------------------------------------------------------------------------------ registry


def test_registry_collects_every_theory_module():
    names = [b.name for b in all_bounds()]
    for bound in (INV_SQRT_RELATIVE, LOG_ABSOLUTE, SQUARE_ABSOLUTE):
        assert bound.name in names
    assert len(names) == len(set(names))
    assert get("square_uniform") is SQUARE_ABSOLUTE


def test_unknown_name_lists_the_registered_bounds():
    with pytest.raises(KeyError, match="registered bounds: .*square_uniform"):
        get("no_such_bound")


def test_a_new_module_is_discovered_and_duplicate_names_are_refused(tmp_path, monkeypatch):
    import theory

    (tmp_path / "zz_extra.py").write_text(
        "import sympy as sp\nfrom theory.bound import Bound\n"
        "BOUNDS = [Bound('zz_extra', 'e', sp.Symbol('M') ** -1, 'M >= 1')]\n"
    )
    monkeypatch.setattr(theory, "__path__", [*theory.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "theory.zz_extra", raising=False)
    assert get("zz_extra").name == "zz_extra"
    (tmp_path / "zz_duplicate.py").write_text("from theory.interpolation import SQUARE_ABSOLUTE\nBOUNDS = [SQUARE_ABSOLUTE]\n")
    with pytest.raises(ValueError, match="'square_uniform' is defined in both"):
        all_bounds()
    for name in ("theory.zz_extra", "theory.zz_duplicate"):
        sys.modules.pop(name, None)


# ------------------------------------------------------------------------------------ printing


def test_latex_fragment_has_one_labelled_equation_per_bound():
    bounds = all_bounds()
    fragment = format_latex(bounds)
    assert fragment.count(r"\begin{equation}") == len(bounds) == fragment.count(r"\end{equation}")
    assert r"\texttt{square\_uniform}" in fragment
    assert r"\le \frac{R^{2}}{M^{2}}" in fragment
    assert r"\label{eq:inv-sqrt-geometric}" in fragment


def test_markdown_table_cells_contain_no_bare_pipes():
    table = format_markdown(all_bounds())
    rows = table.splitlines()
    assert all(row.count("|") == 5 for row in rows if not row.startswith("|---")), rows


def test_escape_text_keeps_math_spans():
    assert escape_text("x_1 & $a_1 < b$ 50%") == r"x\_1 \& $a_1 < b$ 50\%"


def test_bounds_command_prints_text_and_latex(capsys):
    assert main(["bounds"]) == 0
    text = capsys.readouterr().out
    assert text == format_text(all_bounds()) + "\n"
    assert "leading order: R**2/M**2" in text
    assert main(["bounds", "--latex", "--name", "log_geometric"]) == 0
    assert capsys.readouterr().out == format_latex([LOG_ABSOLUTE]) + "\n"
    assert main(["bounds", "--name", "nope"]) == 2
    assert "registered bounds" in capsys.readouterr().err
