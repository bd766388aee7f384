"""The resource table: counts from built models against the documented designs, fitted rates, the papers' claims,
the command, and a plugin's variant."""

from __future__ import annotations

import dataclasses

import pytest

from tfconstruct.theory import Claim
from tfconstruct.theory.gd import VON_OSWALD_GD
from tfconstruct.verify import Variant, check_family
from tfconstruct.verify.cli import main
from tfconstruct.verify.conformance import FamilyCheckFailed
from tfconstruct.verify.families import PluginError, registered
from tfconstruct.verify.gd.family import FAMILY as GD
from tfconstruct.verify.gd.variants import build as gd_build
from tfconstruct.verify.resources import compare, count, rows


@pytest.fixture(scope="module")
def table():
    return {row.variant.name: row for row in rows(registered())}


def test_counts_are_the_documented_designs(table):
    """Each count read off the models equals the shape the construction's docstring states."""
    power, em, gd = table["power.mlp"].resources, table["em.ours"].resources, table["gd.linear"].resources
    # power step: contraction, squared norm, rescale heads + the 1/sqrt and overwrite MLPs; ReLU heads in +- pairs
    assert (power.attention_per_step, power.mlps_per_step, power.heads, power.tokens) == (3, 2, 2, 32)
    assert power.mlp_width == 6 * 4 + 4  # the overwrite MLP, wider than the M + 2 = 10 normaliser units
    # EM: E-step, M-step, norm refresh; 3 MLPs; at most 2 heads
    assert (em.attention_per_step, em.mlps_per_step, em.heads) == (3, 3, 2)
    assert em.tokens == 120 + 3  # n data tokens and K centroid tokens
    # GD: one linear head per step, no MLP; x, y, is_data, prediction: D = d + 3, n data tokens and one query
    assert (gd.attention_per_step, gd.mlps_per_step, gd.heads, gd.residual_width, gd.tokens) == (1, 0, 1, 7, 33)
    # Lemma B.2's shape: the inverse norm as M + 2 = 10 heads in the rescale layer, one MLP fewer per step
    heads = table["power.heads"].resources
    assert (heads.attention_per_step, heads.mlps_per_step, heads.heads) == (3, 1, 8 + 2)
    # TGMM Theorem 1's shape: an E block and an M block per step, at most 2 heads; D = 3d + 3K + 6
    two_block = table["em.tgmm_two_block"].resources
    assert (two_block.attention_per_step, two_block.mlps_per_step, two_block.heads) == (2, 2, 2)
    assert two_block.residual_width == 3 * 3 + 3 * 3 + 6
    # variance updates: E block, M block, norm and variance block, key block; at most 2 heads
    spherical = table["em.spherical"].resources
    assert (spherical.attention_per_step, spherical.mlps_per_step, spherical.heads) == (4, 3, 2)
    # He et al.'s shape: K = 3 log layers of M + 1 = 17 anchor-softmax heads, plus norm refresh, E-step and M-step
    he = table["em.he_softmax_heads"].resources
    assert (he.attention_per_step, he.heads) == (3 + 3, 16 + 1)
    # tensor in tokens: a pair of signed heads per index, or one head per index plus the shift head
    assert table["tensor.in_tokens_signed"].resources.heads == 2 * 4
    assert table["tensor.in_tokens_shifted"].resources.heads == 4 + 1


def test_every_fitted_rate_is_the_expected_order(table):
    for row in table.values():
        if row.variant.expected_rate is not None:
            assert row.rate_ok, (row.variant.name, row.rate, row.errors)
            assert all(later < earlier for earlier, later in zip(row.errors, row.errors[1:]))


def test_the_comparison_reads_the_claims_numbers(table):
    assert table["gd.linear"].comparison == {"layers": "as stated (1)", "heads": "as stated (1)"}
    assert table["tensor.in_tokens_shifted"].comparison == {"heads": "more (5 > 4)"}
    assert table["em.ours"].comparison == {"layers": "more (3 > 2)"}
    assert table["em.tgmm_two_block"].comparison == {"layers": "as stated (2)"}
    resources = count(GD.variants[0], 1)
    fewer = Claim("a claim of 3 layers", 3, "2 heads", heads_at=lambda sizes: 2 * sizes["d"])
    assert compare(resources, fewer, {"d": 4}) == {"layers": "fewer (1 < 3)", "heads": "fewer (1 < 8)"}
    assert compare(resources, None, {}) == {}


def test_a_variant_is_checked_when_declared():
    with pytest.raises(ValueError, match="knob must be 'width', 'heads' or 'none'"):
        Variant("x", "step", gd_build, {}, knob="depth")
    with pytest.raises(ValueError, match="knob_values must be integers >= 1"):
        Variant("x", "step", gd_build, {}, knob="width", knob_values=(0, 2))
    with pytest.raises(ValueError, match="needs at least two knob_values"):
        Variant("x", "step", gd_build, {}, knob="width", knob_values=(4,), error=lambda m: 1.0)
    with pytest.raises(ValueError, match="variants must be a tuple of tfconstruct.verify.Variant"):
        dataclasses.replace(GD, variants=("gd.linear",))


def test_a_plugins_variant_enters_the_table_and_a_missed_rate_fails(capsys, monkeypatch):
    """A family outside the shipped ones, with a variant whose error falls as 1/M where M^-2 is claimed."""
    slow = Variant(
        "mine.slow", "step", gd_build, {"d": 4}, knob="heads", knob_values=(4, 8, 16), error=lambda m: 1.0 / m,
        expected_rate=-2.0, claim=VON_OSWALD_GD,
    )  # fmt: skip
    mine = dataclasses.replace(GD, name="mine", title="A plugin", variants=(slow,))
    with pytest.raises(FamilyCheckFailed, match=r"variant 'mine.slow': ValueError: fitted rate -1.000, expected -2"):
        check_family(mine)
    monkeypatch.setattr("tfconstruct.verify.cli.registered", lambda plugins: [mine])
    assert main(["resources"]) == 1
    captured = capsys.readouterr()
    assert "| mine.slow | step | 1 | 0 | 1 |" in captured.out and "-1.00 (-2, MISSED)" in captured.out
    assert "RATE MISSED: mine.slow" in captured.err


def test_the_command_lists_the_chosen_families_and_refuses_unknown_ones(capsys):
    assert main(["resources", "--family", "gd"]) == 0
    out = capsys.readouterr().out
    assert "gd.linear" in out and "power.mlp" not in out
    with pytest.raises(SystemExit) as stop:
        main(["resources", "--family", "bogus"])
    assert stop.value.code == 2


def test_a_broken_variant_is_named_and_variant_names_are_unique(capsys, monkeypatch):
    broken = Variant("mine.broken", "step", lambda steps, knob: gd_build(steps, knob)[0], {"d": 4})
    mine = dataclasses.replace(GD, name="mine", title="A plugin", variants=(broken,))
    monkeypatch.setattr("tfconstruct.verify.cli.registered", lambda plugins: [mine])
    assert main(["resources"]) == 3
    assert "variant 'mine.broken' of family 'mine'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="an exact variant \\(knob 'none'\\) has no error to fit"):
        Variant("x", "step", gd_build, {}, knob_values=(1, 2), error=lambda k: 1.0)
    monkeypatch.undo()
    twin = dataclasses.replace(GD, name="twin", title="A twin", variants=GD.variants)
    monkeypatch.setattr("tfconstruct.verify.families.entry_point_families", lambda: [GD, twin])
    with pytest.raises(PluginError, match="two families register a variant named 'gd.linear' \\('gd' and 'twin'\\)"):
        registered()


def test_a_knob_that_changes_heads_or_width_shows_both_ends(table):
    from tfconstruct.verify.resources import markdown

    text = markdown([table["power.heads"], table["power.mlp"]])
    assert "| 10 -> 66 | 26 |" in text and "| 2 | 28 -> 66 |" in text
