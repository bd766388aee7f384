"""LaTeX output of the bounds for papers: equation-only mode, assumptions as maths, upright subscripts,
broken long claims, and a full document that compiles (when a TeX engine is installed)."""

import re
import shutil
import subprocess

import pytest
import sympy as sp

from tfconstruct.theory.bound import Bound
from tfconstruct.theory.latex import (
    LATEX_PACKAGES,
    LONG_EQUATION,
    assumptions_latex,
    break_terms,
    equation_latex,
    format_latex,
    upright_subscripts,
)
from tfconstruct.theory.registry import all_bounds, get
from tfconstruct.verify.cli import main

ENVIRONMENT = re.compile(r"\\begin\{(equation|multline)\}(.*?)\\end\{\1\}", re.S)


def _text_mode(latex: str) -> str:
    """``latex`` with its ``$...$`` maths removed."""
    assert latex.count("$") % 2 == 0, latex
    return re.sub(r"\$[^$]*\$", "", latex)


def _balanced(latex: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", latex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_equation_mode_has_no_preamble_and_one_labelled_environment_per_bound():
    bounds = all_bounds()
    out = format_latex(bounds, mode="equations")
    for marker in (r"\documentclass", r"\usepackage", r"\paragraph", "Assumptions", "%"):
        assert marker not in out
    environments = ENVIRONMENT.findall(out)
    assert len(environments) == len(bounds)
    labels = re.findall(r"\\label\{eq:([^}]*)\}", out)
    assert labels == [re.sub(r"[^A-Za-z0-9:.-]", "-", b.name) for b in bounds]
    assert all(body.count(r"\label") == 1 for _, body in environments)
    assert ENVIRONMENT.sub("", out).strip() == ""


def test_cli_equations_flag(capsys):
    assert main(["bounds", "--latex", "--equations", "--name", "square_uniform", "--name", "em_soft_step"]) == 0
    out = capsys.readouterr().out
    assert out == format_latex([get("square_uniform"), get("em_soft_step")], mode="equations") + "\n"
    assert r"\documentclass" not in out and out.count(r"\label{eq:") == 2
    assert main(["bounds", "--equations"]) == 2
    assert "--equations needs --latex" in capsys.readouterr().err


def test_assumptions_have_no_raw_comparisons_or_bars_in_text_mode():
    for bound in all_bounds():
        latex = assumptions_latex(bound.assumptions)
        text = _text_mode(latex)
        assert not set("<>|^") & set(text), (bound.name, latex)
        assert _balanced(latex), (bound.name, latex)


def test_assumption_patterns_become_maths():
    latex = assumptions_latex("every pi_k^+ >= pi_floor, ||x_i - mu_k|| <= D; as em_soft_step; 2(K-1) < 1")
    assert r"$\pi_{k} ^{+}   \ge   \pi_{\mathrm{floor}}$" in latex
    assert r"$\| x_{i}  -  \mu_{k} \|   \le$ D" in latex
    assert r"\texttt{em\_soft\_step}" in latex
    assert r"$<$ 1" in latex
    assert assumptions_latex("kept $a < b$ & 50%") == r"kept $a < b$ \& 50\%"


def test_multi_letter_subscripts_are_upright():
    assert upright_subscripts(r"\pi_{floor} + \epsilon_{step} + s_{ik} + x_{k}") == (
        r"\pi_{\mathrm{floor}} + \epsilon_{\mathrm{step}} + s_{ik} + x_{k}"
    )
    out = format_latex(all_bounds(), mode="document")
    assert r"\pi_{\mathrm{floor}}" in out and r"\epsilon_{\mathrm{step}}" in out and r"\pi_{\mathrm{min}}" in out
    for sub in re.findall(r"_\{([A-Za-z]+)\}", out):
        assert len(sub) <= 2, sub


def test_long_bound_is_broken_at_outer_terms():
    x = sp.symbols("x_0:40", positive=True)
    long = Bound(name="long_sum", quantity="e", expression=sum(sp.exp(s) / (1 + s) for s in x), assumptions="none")
    assert len(sp.latex(long.expression)) > LONG_EQUATION
    latex = equation_latex(long)
    assert r"\begin{multline}" in latex and r"\begin{equation}" not in latex
    lines = latex.split("\\\\\n")
    assert len(lines) > 2
    assert all(_balanced(line) for line in lines)
    short = equation_latex(get("square_uniform"))
    assert r"\begin{equation}" in short and "multline" not in short
    for bound in all_bounds():
        assert ("multline" in equation_latex(bound)) == (len(sp.latex(bound.expression)) > LONG_EQUATION)


def test_breaks_inside_left_right_groups_stay_balanced():
    D, a = sp.symbols("D a", positive=True)
    expr = D * sum(sp.exp(a * k) / (k + a) for k in range(1, 30))
    lines = break_terms(sp.latex(expr), width=80)
    assert len(lines) > 2
    for line in lines:
        assert line.count(r"\left") == line.count(r"\right"), line
        assert _balanced(line)
    assert lines[0].endswith(r"\right.") and lines[-1].startswith(r"\left.")


def test_document_mode_is_complete_and_lists_packages():
    out = format_latex(all_bounds(), mode="document")
    assert out.startswith(r"\documentclass{article}") and out.rstrip().endswith(r"\end{document}")
    preamble = out[: out.index(r"\begin{document}")]
    used = {
        p.strip() for group in re.findall(r"\\usepackage(?:\[[^]]*\])?\{([^}]*)\}", preamble) for p in group.split(",")
    }
    assert set(LATEX_PACKAGES) <= used
    fragment = format_latex(all_bounds())
    assert fragment.startswith("%") and "Required packages: amsmath, amssymb" in fragment
    assert _balanced(out)
    assert out.count(r"\begin{") == out.count(r"\end{")


ENGINES = ("pdflatex", "lualatex", "xelatex", "tectonic")


def test_full_document_compiles(tmp_path):
    engine = next((e for e in ENGINES if shutil.which(e)), None)
    if engine is None:
        pytest.skip("no TeX engine installed on this machine")
    (tmp_path / "bounds.tex").write_text(format_latex(all_bounds(), mode="document"))
    if engine == "tectonic":
        command = [engine, "bounds.tex"]
    else:
        command = [engine, "-interaction=nonstopmode", "-halt-on-error", "bounds.tex"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert (tmp_path / "bounds.pdf").exists()
