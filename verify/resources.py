r"""The resource table: every construction variant's shape, counted from its built model, next to the papers' claims.

A family lists its variants (:class:`Variant`, the ``variants`` field of :class:`~tfconstruct.verify.family.Family`):
a builder ``build(steps, knob) -> (model, stream)`` and, where the variant approximates, the error it makes at a
knob value against the numpy reference. For each variant the table counts, from the models built with 1 and 2
algorithm steps (the difference is one step, without the layers before and after the loop):

* attention sublayers and MLP sublayers per step, the most heads in a layer, the widest MLP (hidden units), the
  residual width $D$ and the number of tokens $N$;
* the knob (``width``: knots of an MLP interpolant; ``heads``: heads that sum to the approximation) and the
  least-squares slope of $\log e$ against $\log(\text{knob})$ over ``knob_values``, checked against the expected
  order where there is one;
* the paper's :class:`~tfconstruct.theory.claims.Claim` and whether the variant uses fewer, as many or more attention
  layers per step, and heads per layer, than stated.

Heads per layer and MLP width are shown at the first and the last knob value (``10 -> 66``) where the knob changes
them. Variant names are unique across the registered families. ``tfconstruct resources`` prints the table; the
report's ``resources`` section holds it with one check per fitted rate (default tolerance 0.3 on the slope).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch

from tfconstruct.constructions.model import Transformer
from tfconstruct.theory.claims import Claim

from .rates import fit_slope
from .results import Check, ReportContext, SectionResult

if TYPE_CHECKING:
    from .family import Family


@dataclass(frozen=True)
class Variant:
    r"""One construction variant as the resource table sees it.

    Attributes:
        name: unique across families (``"em.tgmm_two_block"``).
        algorithm: what one step is (``"soft EM step"``, ``"power step"``).
        build: ``build(steps, knob) -> (model, stream)``: the model for ``steps`` algorithm steps at the knob value,
            and an embedded input (its shape gives $N$ and $D$).
        sizes: the instance sizes built (``{"d": 4, "K": 3, "n": 100}``), for the claim's formulas.
        knob: ``"width"``, ``"heads"`` or ``"none"`` (an exact construction).
        knob_values: where the error is measured (and the resources counted, at the first value).
        error: ``error(knob) -> float``, the variant's error against the numpy reference (None: exact).
        expected_rate: the order of $e$ in the knob, $e \propto \text{knob}^{p}$ (None: not checked).
        tolerance: allowed $|p_{\text{fit}} - p|$.
        claim: the paper's stated resources for this shape (None: our own design, no paper shape).
        note: one line shown under the table.
    """

    name: str
    algorithm: str
    build: Callable[[int, int], tuple[Transformer, torch.Tensor]]
    sizes: Mapping[str, int]
    knob: str = "none"
    knob_values: tuple[int, ...] = (1,)
    error: Callable[[int], float] | None = None
    expected_rate: float | None = None
    tolerance: float = 0.3
    claim: Claim | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.knob not in ("width", "heads", "none"):
            raise ValueError(f"variant {self.name!r}: knob must be 'width', 'heads' or 'none', got {self.knob!r}")
        if not self.knob_values or any(int(v) != v or v < 1 for v in self.knob_values):
            raise ValueError(f"variant {self.name!r}: knob_values must be integers >= 1, got {self.knob_values!r}")
        if self.error is not None and len(self.knob_values) < 2:
            raise ValueError(f"variant {self.name!r}: fitting a rate needs at least two knob_values")
        if self.error is not None and self.knob == "none":
            raise ValueError(f"variant {self.name!r}: an exact variant (knob 'none') has no error to fit; drop error")


@dataclass(frozen=True)
class Resources:
    """Counted from the built models (see the module docstring)."""

    attention_per_step: int
    mlps_per_step: int
    heads: int
    mlp_width: int
    residual_width: int
    tokens: int
    attention_total: int  # in the one-step model: the loop plus what runs before and after it


class VariantFailed(RuntimeError):
    """A variant's ``build`` or ``error`` raised; the message names the variant and its family."""


@dataclass(frozen=True)
class Row:
    """One variant's line of the table; ``last``: the resources at the last knob value (where the knob varies)."""

    variant: Variant
    family: str
    resources: Resources
    errors: tuple[float, ...] = ()
    rate: float | None = None
    comparison: dict[str, str] = field(default_factory=dict)
    last: Resources | None = None

    @property
    def rate_ok(self) -> bool | None:
        """Whether the fitted rate is within tolerance of the expected one (None: nothing to check)."""
        if self.rate is None or self.variant.expected_rate is None:
            return None
        return abs(self.rate - self.variant.expected_rate) <= self.variant.tolerance


def count(variant: Variant, knob: int) -> Resources:
    """The variant's resources at ``knob``, from its models with 1 and 2 steps."""
    one, stream = variant.build(1, knob)
    two, _ = variant.build(2, knob)
    mlps = [sum(1 for layer in model.layers if layer.kind == "mlp") for model in (one, two)]
    return Resources(
        attention_per_step=two.depth - one.depth,
        mlps_per_step=mlps[1] - mlps[0],
        heads=two.max_heads,
        mlp_width=two.max_mlp_width,
        residual_width=int(stream.shape[-1]),
        tokens=int(stream.shape[-2]),
        attention_total=one.depth,
    )


def compare(resources: Resources, claim: Claim | None, sizes: Mapping[str, int]) -> dict[str, str]:
    """``{"layers": ..., "heads": ...}``: fewer / as stated / more than the claim, where it gives a number."""
    if claim is None:
        return {}
    found = {}
    if claim.layers_per_step is not None:
        found["layers"] = _relation(resources.attention_per_step, claim.layers_per_step)
    if claim.heads_at is not None:
        found["heads"] = _relation(resources.heads, claim.heads_at(sizes))
    return found


def _relation(counted: float, stated: float) -> str:
    if counted < stated:
        return f"fewer ({counted:g} < {stated:g})"
    if counted > stated:
        return f"more ({counted:g} > {stated:g})"
    return f"as stated ({counted:g})"


def measure(variant: Variant, family: str) -> Row:
    """Count the resources (at the first and the last knob value) and, for an approximating variant, measure the
    error at every knob value and fit the rate.

    Raises:
        VariantFailed: naming the variant, when its ``build`` or ``error`` raises or its errors cannot be fitted.
    """
    try:
        resources = count(variant, variant.knob_values[0])
        last = count(variant, variant.knob_values[-1]) if len(variant.knob_values) > 1 else None
        errors: tuple[float, ...] = ()
        rate = None
        if variant.error is not None:
            errors = tuple(float(variant.error(knob)) for knob in variant.knob_values)
            rate = fit_slope(variant.knob_values, errors, "loglog")
    except Exception as err:  # a plugin's variant: say which one failed
        raise VariantFailed(f"variant {variant.name!r} of family {family!r}: {type(err).__name__}: {err}") from err
    return Row(variant, family, resources, errors, rate, compare(resources, variant.claim, variant.sizes), last)


def rows(families: Sequence[Family]) -> list[Row]:
    """Every variant of every family, measured."""
    return [measure(variant, family.name) for family in families for variant in family.variants]


def markdown(table: Sequence[Row]) -> str:
    """The table, and under it each variant's claim source, knob values and errors."""
    lines = [
        "| variant | step | attn/step | MLPs/step | heads/layer | MLP width | D | N | knob | fitted rate (expected) "
        "| paper | vs paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in table:
        v, r = row.variant, row.resources
        rate = "exact" if row.rate is None else f"{row.rate:.2f}"
        if v.expected_rate is not None and row.rate is not None:
            rate += f" ({v.expected_rate:g}{'' if row.rate_ok else ', MISSED'})"
        paper = "ours" if v.claim is None else f"layers/step {_layers(v.claim)}; heads {v.claim.heads}"
        versus = "; ".join(f"{k}: {text}" for k, text in row.comparison.items()) or "-"
        heads, width = _span(r.heads, row.last and row.last.heads), _span(r.mlp_width, row.last and row.last.mlp_width)
        lines.append(
            f"| {v.name} | {v.algorithm} | {r.attention_per_step} | {r.mlps_per_step} | {heads} | {width} | "
            f"{r.residual_width} | {r.tokens} | {v.knob} | {rate} | {paper} | {versus} |"
        )
        sizes = ", ".join(f"{k}={val}" for k, val in v.sizes.items())
        measured = (
            "" if not row.errors else "; error " + ", ".join(f"{k}: {e:.2e}" for k, e in zip(v.knob_values, row.errors))
        )
        source = "" if v.claim is None else f" Paper: {v.claim.source} (error: {v.claim.error})."
        counted = "" if v.knob == "none" else f"; counted at {v.knob} {v.knob_values[0]} and {v.knob_values[-1]}"
        notes.append(f"- **{v.name}** ({sizes}{counted}{measured}).{source} {v.note}".rstrip())
    return "\n".join(lines + [""] + notes)


def _span(first: int, last: int | None) -> str:
    """``first``, or ``first -> last`` where the knob changes it."""
    return f"{first}" if last is None or last == first else f"{first} -> {last}"


def _layers(claim: Claim) -> str:
    return claim.layers if claim.layers_per_step is None else f"{claim.layers_per_step:g}"


def checks(table: Sequence[Row]) -> list[Check]:
    """One check per variant with an expected rate."""
    return [
        Check(
            f"{row.variant.name}: error falls as {row.variant.knob}^{row.variant.expected_rate:g}",
            bool(row.rate_ok),
            f"fitted slope {row.rate:.3f} over {row.variant.knob} {list(row.variant.knob_values)}",
            f"within {row.variant.tolerance:g} of {row.variant.expected_rate:g}",
        )
        for row in table
        if row.rate_ok is not None
    ]


def section(context: ReportContext, families: Sequence[Family]) -> SectionResult:
    """The report section: the table and the rate checks."""
    table = rows(families)
    text = (
        "Counted from the built models (1 and 2 algorithm steps; the difference is one step), never typed in; the "
        "paper columns are the theorems' statements (`tfconstruct.theory.claims`).\n\n" + markdown(table)
    )
    data = {
        "rows": [
            {
                "variant": row.variant.name,
                "family": row.family,
                **row.resources.__dict__,
                "knob": row.variant.knob,
                "knob_values": list(row.variant.knob_values),
                "errors": list(row.errors),
                "rate": row.rate,
                "expected_rate": row.variant.expected_rate,
                "claim": None if row.variant.claim is None else row.variant.claim.source,
                "comparison": row.comparison,
            }
            for row in table
        ]
    }
    return SectionResult(text, data=data, checks=checks(table))
