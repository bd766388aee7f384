"""Tutorials generated from the constructions, so they never go stale.

Every tutorial a family registers (a key and a function returning a :class:`TutorialExample`) becomes
``tutorial_<key>.md``: a link to its interactive explorer page, what a head and an MLP compute in this toolkit's
conventions, the residual layout with each subspace's role, the construction's notes, one section per sublayer (its
``describe()`` text, the subspaces it writes on the example, each head's attention pattern on the example and a
heat-map of the weights' non-zero blocks, each on its own colour scale) and the named read-out of the input and final
streams, with stale slots marked. The Markdown is deterministic (no timestamps, rounded numbers), so a test
regenerates it and compares it with the committed ``docs/`` (``tfconstruct docs`` refreshes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Mapping

import torch

from tfconstruct.constructions.attention import AttentionHead, MultiHeadAttention
from tfconstruct.constructions.construction import TutorialExample
from tfconstruct.constructions.lesson import Role
from tfconstruct.constructions.residual import ResidualLayout

from .explore.access import Status, slot_status
from .plots import weight_heatmap
from .results import Check, ReportContext, SectionResult, counted

Heatmaps = Literal["draw", "link", "none"]
MAX_TOKENS_SHOWN = 16
HEATMAP_DPI = 72  # tutorials hold many heat-maps; keep the PNGs small
ZERO = 1e-9  # values below this print as 0, so round-off never changes the text
DOCS_EXPLORE_DIR = "../report/explore"  # from docs/: the explorer pages of `tfconstruct report` run in the repository
REPORT_EXPLORE_DIR = "../explore"  # from report/tutorials/: the same report's report/explore/
STALE = r"*\~{}*"  # a stale slot's value: italic, with a (Markdown-escaped) tilde

CONVENTIONS = r"""
The residual stream is a matrix $H \in \mathbb{R}^{N \times D}$: token $i$ is its row $h_i$, and each subspace is a
named block of the $D$ coordinates (table below). A **sublayer** is one attention block (its heads together) or one
MLP; it adds its output to $H$. Each sublayer has a hook name `step.phase` (`iter0.estep.attn`: step `iter0`, phase
`estep.attn`); a later sublayer with the same weights as an earlier one is not drawn again.

**Attention head.** A head holds a score matrix $W_{QK}$ and an output map $W_{OV}$, both $D \times D$ on residual
coordinates. Token $i$ (the query) scores token $j$ (the key) by $s_{ij} = h_i^\top W_{QK}\, h_j$, with no
$1/\sqrt{d_{head}}$ factor (it is folded into $W_{QK}$; `tfconstruct.constructions.export` splits $W_{QK}$ and
$W_{OV}$ into the usual $W_Q, W_K, W_V, W_O$). The scoring rule turns the scores into the pattern $A_{ij}$:
*softmax* $A_{ij} = \mathrm{softmax}_j(s_{ij})$, *relu* $A_{ij} = \mathrm{ReLU}(s_{ij})/N$, *linear*
$A_{ij} = s_{ij}/N$, with $N$ the number of attended keys (a few ReLU heads leave out the $1/N$; their pattern
tables say so). A key mask ("keys where `flag`=1" in a head's description) lets only the tokens whose flag
subspace is 1 be keys: a masked key gets $A_{ij} = 0$ and is not counted in $N$. The head adds
$\sum_j A_{ij}\, h_j W_{OV}$ to token $i$: $W_{OV}$ is stored (in, out), so a row maps by `h @ W_OV` (in column
form $W_{OV}^\top h_j$). The heads of a sublayer are summed (or averaged, when its description says so). In a
description, `score 2<v_i, x_j>` means $W_{QK}$ holds $2I$ from `v` on the query side to `x` on the key side, and
`u += 1*x` means $W_{OV}$ copies `x` into `u`.

**MLP.** On each token, $h \mathrel{+}= W_{out}^\top\,\mathrm{ReLU}(W_{in}^\top h)$ with $W_{in}$ of shape
$(D, \text{width})$ and $W_{out}$ of shape $(\text{width}, D)$. There is no separate bias: a unit's bias is its weight
on the constant subspace `one`, 1 in every token. Hidden units come in named groups (the description lists them): a
hinge $w\,\mathrm{ReLU}(s - t)$ is one piece of a piecewise-linear function (`hinge s@t`, knot $t$); a move or a
clear is exact through a ReLU pair, $a = \mathrm{ReLU}(a) - \mathrm{ReLU}(-a)$ (groups ending in `+` and `-`):
`v` $\leftarrow$ `next` adds `next` $-$ `v` to `v` and $-$`next` to `next`.

**Pictures and tables.** A heat-map has one panel per non-zero block of a matrix, each on its own colour scale
$\pm\max|w|$ over the block (in the panel's title; small blocks have their values in the cells). For $W_{QK}$ the rows
are the query side $h_i$ and the columns the key side $h_j$, both residual coordinates (not tokens); for $W_{OV}$ the
rows are read from $h_j$ and the columns written to token $i$; an MLP's $W_{in}$ maps residual coordinates (rows) to
hidden units (columns, in runs of units that read and write the same subspaces) and $W_{out}$ maps them back. After the
first occurrence of each attention sublayer, a table gives each head's pattern $A_{ij}$ on the example (rows: query
token $i$, columns: key token $j$, `-`: a masked key). In the stream tables a column's header gives the subspace's
role (*input*: data, *state*: carried from step to step, *scratch*: intermediate, *result*: what the read-out reads),
and *\~value* marks a stale slot: its value is not read again before it is overwritten or cleared.
"""

STALE_LEGEND = (
    r"*\~value*: stale, a leftover that no later sublayer reads before the slot is overwritten or cleared "
    "(and, for scratch, that the read-out ignores)."
)


def generate_tutorials(
    out_dir: str | Path,
    examples: dict[str, Callable[[], TutorialExample]],
    *,
    heatmaps: Heatmaps = "draw",
    explore_dir: str | None = DOCS_EXPLORE_DIR,
) -> list[Path]:
    """Write ``tutorial_<name>.md`` (and heat-maps under ``figures/``) for each example; return the Markdown paths.

    ``heatmaps``: ``"draw"`` writes each heat-map and links it; ``"link"`` writes the same Markdown without drawing
    the PNGs (the staleness test compares it with the committed ``docs/``); ``"none"`` neither draws nor links them
    (a quick report, with no broken image links). ``explore_dir``: the folder of the explorer pages relative to
    ``out_dir`` (each tutorial links ``<explore_dir>/<name>.html``; the default suits ``docs/`` next to the
    ``report/`` that ``tfconstruct report`` writes); None leaves the link out.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, factory in examples.items():
        source = f"{factory.__module__}.{factory.__qualname__}()"
        try:
            example = factory()
        except Exception as err:
            raise RuntimeError(f"tutorial {name!r} ({source}) failed: {err}") from err
        if not isinstance(example, TutorialExample):
            raise TypeError(f"{name}.tutorial_example() returned {type(example).__name__}, expected TutorialExample")
        path = out_dir / f"tutorial_{name}.md"
        link = None if explore_dir is None else f"{explore_dir}/{name}.html"
        path.write_text(render_tutorial(name, example, out_dir, source=source, heatmaps=heatmaps, explore_link=link))
        written.append(path)
    return written


def render_tutorial(
    name: str,
    example: TutorialExample,
    out_dir: Path,
    *,
    source: str,
    heatmaps: Heatmaps = "draw",
    explore_link: str | None = None,
) -> str:
    """The Markdown of one tutorial (generated from ``source``); heat-maps go to
    ``out_dir/figures/tutorial_<name>_<hook name>.png``; ``explore_link`` (None: no link) is the address of the
    example's explorer page."""
    model, layout, stream = example.model, example.model.layout, example.stream
    if stream.ndim != 3 or stream.shape[0] != 1:
        raise ValueError(
            f"tutorial {name!r}: the example stream must be a batch of one, got shape {tuple(stream.shape)}"
        )
    with torch.no_grad():
        trace = model(stream, trace=True)
    statuses = slot_status(model, example.roles)
    lines = [
        f"# Tutorial: {example.title}",
        "",
        f"*Generated by `tfconstruct docs` from `{source}`; do not edit by hand.*",
        "",
    ]
    if explore_link is not None:
        lines += [
            f"Step through it interactively: [explore/{name}.html]({explore_link}) (the explorer pages are written by "
            "`tfconstruct report`, or by `tfconstruct explore <family>` for one family).",
            "",
        ]
    lines += [
        f"{counted(len(model.layers), 'sublayer')} ({model.depth} attention), at most "
        f"{counted(model.max_heads, 'head')} per attention sublayer, MLP width at most {model.max_mlp_width}; "
        f"residual width $D = {layout.dim}$, {counted(stream.shape[1], 'token')}.",
        "",
        "## What a head and an MLP compute here",
        "",
        CONVENTIONS.strip(),
        "",
        "## Residual layout",
        "",
        layout_table(layout, example.roles),
        "",
        "## How it works",
        "",
        example.notes.strip(),
        "",
        "## Input",
        "",
        stream_table(layout, stream[0], example.roles, statuses[0]),
        "",
        "## Sublayers",
        "",
    ]
    figure_dir = out_dir / "figures"
    first_with_weights: dict[tuple, str] = {}
    for index, (hook, layer) in enumerate(zip(model.names, model.layers)):
        before, after = trace.streams[index], trace.streams[index + 1]
        lines += [f"### `{hook}` ({layer.kind})", "", "```text", layer.describe(), "```", ""]
        lines += [f"Writes on this example: {written_subspaces(layout, before[0], after[0])}.", ""]
        key = _weights_key(layer)
        if key in first_with_weights:
            lines += [f"Same weights as `{first_with_weights[key]}`.", ""]
            continue
        first_with_weights[key] = hook
        if isinstance(layer, MultiHeadAttention):
            lines += pattern_tables(layer, before)
        figure = figure_dir / f"tutorial_{name}_{hook}.png"
        if heatmaps == "none":
            continue
        if heatmaps == "draw":
            weight_heatmap(figure, model, hook, dpi=HEATMAP_DPI)
        lines += [f"![weights of {hook}](figures/{figure.name})", ""]
    lines += [
        "## Output: the final stream, read by name",
        "",
        stream_table(layout, trace.output[0], example.roles, statuses[-1]),
        "",
    ]
    return "\n".join(lines)


def layout_table(layout: ResidualLayout, roles: Mapping[str, Role] | None = None) -> str:
    """Subspace, size and coordinate range of each block, and its role when ``roles`` gives any."""
    roles = roles or {}
    role_column = bool(roles)
    lines = ["| subspace | size | coordinates |" + (" role |" if role_column else ""), "|---|---|---|"]
    lines[1] += "---|" if role_column else ""
    for block in layout:
        span = f"{block.start}" if block.size == 1 else f"{block.start}-{block.start + block.size - 1}"
        role = f" {roles.get(block.name, '')} |" if role_column else ""
        lines.append(f"| `{block.name}` | {block.size} | {span} |{role}")
    return "\n".join(lines)


def stream_table(
    layout: ResidualLayout,
    stream: torch.Tensor,
    roles: Mapping[str, Role] | None = None,
    status: Mapping[str, Status] | None = None,
) -> str:
    r"""One row per token (up to ``MAX_TOKENS_SHOWN``), one column per subspace (headed by its role from ``roles``),
    values rounded; a subspace whose ``status`` is ``"stale"`` shows its values as *\~value*, with a legend."""
    roles, status = roles or {}, status or {}
    names = layout.names
    headers = [f"`{n}` ({roles[n]})" if n in roles else f"`{n}`" for n in names]
    lines = ["| token | " + " | ".join(headers) + " |", "|---" * (len(names) + 1) + "|"]
    tokens = stream.shape[0]
    for token in range(min(tokens, MAX_TOKENS_SHOWN)):
        cells = [_vector(layout.read(stream[token], n)) for n in names]
        cells = [STALE.format(c) if status.get(n) == "stale" else c for n, c in zip(names, cells)]
        lines.append(f"| {token} | " + " | ".join(cells) + " |")
    if tokens > MAX_TOKENS_SHOWN:
        lines.append(f"\n({tokens - MAX_TOKENS_SHOWN} more tokens not shown.)")
    if "stale" in status.values():
        lines.append(f"\n{STALE_LEGEND}")
    return "\n".join(lines)


def pattern_tables(layer: MultiHeadAttention, stream: torch.Tensor) -> list[str]:
    r"""Markdown lines with each head's attention pattern $A_{ij}$ on ``stream`` (a batch of one): rows query tokens,
    columns key tokens (both up to ``MAX_TOKENS_SHOWN``), ``-`` for a masked key, one row for all queries when every
    row is the same, and the range of the row sums when they are not 1 (ReLU and linear scoring)."""
    tokens = stream.shape[1]
    shown = min(tokens, MAX_TOKENS_SHOWN)
    lines = []
    for m, head in enumerate(layer.heads):
        with torch.no_grad():
            pattern = head.pattern(stream)[0]
        mask = head.key_mask(stream)
        keys = torch.ones(tokens, dtype=torch.bool) if mask is None else mask[0, 0]
        rows = [
            " | ".join(_number(float(pattern[i, j])) if keys[j] else "-" for j in range(shown)) for i in range(shown)
        ]
        label = head.label or f"head {m}"
        lines += [
            f"Attention pattern $A_{{ij}}$ of head '{label}' on this example ({_rule(head, int(keys.sum()))}):",
            "",
        ]
        lines += ["| query $i$ \\ key $j$ | " + " | ".join(str(j) for j in range(shown)) + " |"]
        lines += ["|---" * (shown + 1) + "|"]
        if tokens > 1 and float((pattern - pattern[:1]).abs().max()) <= ZERO:  # every query attends alike
            lines += [f"| every $i$ | {rows[0]} |"]
        else:
            lines += [f"| {i} | {row} |" for i, row in enumerate(rows)]
        if tokens > MAX_TOKENS_SHOWN:
            lines += ["", f"({tokens - MAX_TOKENS_SHOWN} more query and key tokens not shown.)"]
        sums = pattern[:, keys].sum(dim=-1)
        if float((sums - 1).abs().max()) > ZERO:
            low, high = _number(float(sums.min())), _number(float(sums.max()))
            span = low if low == high else f"between {low} and {high}"
            lines += ["", f"The rows sum to {span}, not 1: {head.scoring} scoring does not normalise them."]
        lines.append("")
    if layer.combine == "average":
        lines += [
            f"The sublayer averages its {len(layer.heads)} heads: each head's output is divided by that number.",
            "",
        ]
    return lines


def _rule(head: AttentionHead, attended: int) -> str:
    """The head's scoring rule in words, with its key mask and the number of attended keys $N$."""
    keys = f"keys: the tokens with `{head.keys}` = 1" if head.keys else "every token is a key"
    if head.scoring == "softmax":
        return f"softmax over the keys; {keys}"
    score = r"\mathrm{ReLU}(s_{ij})" if head.scoring == "relu" else "s_{ij}"
    if not head.normalise:
        return f"${score}$ with no $1/N$; {keys}"
    return f"${score}/N$, $N = {attended}$; {keys}"


def written_subspaces(layout: ResidualLayout, before: torch.Tensor, after: torch.Tensor) -> str:
    """The subspaces a sublayer changed on the example, with the largest change in each."""
    changes = []
    for name in layout.names:
        delta = float((layout.read(after, name) - layout.read(before, name)).abs().max())
        if delta > ZERO:
            changes.append(f"`{name}` (max |change| {_number(delta)})")
    return ", ".join(changes) if changes else "nothing"


def _weights_key(layer) -> tuple:
    """Sublayers with equal weights share a heat-map (labels such as the step number may differ)."""
    matrices = layer.named_weights()
    return (layer.kind, tuple(tuple(v.flatten().tolist()) for v in matrices.values()))


def _vector(values: torch.Tensor) -> str:
    numbers = [_number(float(v)) for v in values.flatten()]
    return numbers[0] if len(numbers) == 1 else "(" + ", ".join(numbers) + ")"


def _number(value: float) -> str:
    if abs(value) < ZERO:
        return "0"
    return f"{value:.4g}"


def tutorial_section(context: ReportContext, examples: dict[str, Callable[[], TutorialExample]]) -> SectionResult:
    """The report's tutorials: each written on its own into ``tutorials/``, so one broken example does not hide the
    others (it is a failed check with its message)."""
    folder = context.out_dir / "tutorials"
    paths, failures = [], []
    for name, factory in examples.items():
        try:
            paths += generate_tutorials(
                folder, {name: factory}, heatmaps="none" if context.quick else "draw", explore_dir=REPORT_EXPLORE_DIR
            )
        except Exception as err:  # reported as a failed check, with the example's message
            failures.append(f"`{name}`: {err}".replace("|", r"\|"))  # inside Markdown tables
    links = [f"- [{p.stem}]({p.relative_to(context.out_dir).as_posix()})" for p in paths]
    note = " (quick mode: heat-maps skipped)" if context.quick else ""
    lines = [
        f"Generated from each family's tutorial examples into `tutorials/`{note}; "
        "the same generator writes `docs/` (`tfconstruct docs`).",
        "",
        *links,
    ]
    lines += [f"- **failed** {f}" for f in failures]
    check = Check(
        "tutorials generated",
        bool(paths) and not failures,
        f"{len(paths)} written" + (f", failed: {'; '.join(failures)}" if failures else ""),
        "every registered tutorial example renders",
    )
    return SectionResult("\n".join(lines), checks=[check], data={"tutorials": [p.name for p in paths]})
