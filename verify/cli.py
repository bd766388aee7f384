"""Command-line interface: ``report`` runs the main job; ``bounds`` prints the theory; ``docs`` regenerates the
tutorials; ``explore`` writes their interactive pages; ``sweep`` runs a resumable study; ``plot`` re-plots a sweep folder; ``benchmark`` times the forward passes; ``resources`` prints every
variant's shape against the papers' claims; ``train`` meta-trains a construction's architecture (``train compare``:
the regimes against the hand-built weights). Every command sees the
registered families: the installed ones (entry-point group ``tfconstruct.families``) and any ``--plugin``.

Exit status: 0 every check passed; 1 a check or bound failed; 2 a usage or input error (one line, no traceback);
3 a runtime failure (one line and a hint; ``--debug`` shows the traceback); 130 interrupted."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence, TextIO

import torch

from tfconstruct.theory.bound import Bound
from tfconstruct.theory.latex import format_latex, format_text
from tfconstruct.theory.registry import all_bounds

from . import resources
from .approximation.study import STUDY as APPROXIMATION
from .benchmark import run_benchmark
from .explore.browser import find_browser
from .explore.check import check_page
from .explore.page import write_pages
from .families import PluginError, registered, tutorials
from .family import Family
from .replot import FORMATS, ReplotError, replot
from .report import Outcome, run_report, select_sections
from .results import ReportContext, counted
from .study import SweepCommand, add_arguments as add_sweep_arguments, folder, run as run_sweep
from .sweep import package_version
from .train import REGIMES, TrainConfig, TrainError, TrainInterrupted, train
from .train_compare import LONG, QUICK, write_comparison
from .train_tasks import TASKS
from .tutorial import generate_tutorials


class _ReaderMayLeave:
    """A text stream whose reader may go away (``tfconstruct ... | head``): the rest of the output is dropped and
    the command runs on to its own exit status, instead of failing with ``BrokenPipeError``."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        """Point the stream's descriptor at the null device, so buffered and later output goes nowhere."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    early.add_argument("--debug", action="store_true")
    known = early.parse_known_args(argv)[0]
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ReaderMayLeave(sys.stdout), _ReaderMayLeave(sys.stderr)
    try:
        return _run(argv, known.plugin)
    except KeyboardInterrupt:
        print("\ntfconstruct: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # anything not already reported: a runtime failure, one line unless --debug
        if known.debug:
            raise
        print(
            f"tfconstruct: error: {type(err).__name__}: {err}\n(a runtime failure; run again with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 3
    finally:
        sys.stdout, sys.stderr = streams


def _run(argv: list[str], plugin_specs: list[str]) -> int:
    try:
        families = registered(plugin_specs)
        studies = sweep_commands(families)
    except PluginError as err:
        print(f"tfconstruct: error: {err}", file=sys.stderr)
        return 2
    parser, commands, sweep = build_parser(families, studies)
    args = parser.parse_args(argv)
    command = commands.choices[args.command]
    for problem in _output_problems(args) + _device_problems(args):
        command.error(problem)
    if args.command == "sweep":
        return run_sweep(args, sweep, studies)
    if args.command == "train":
        return _train(args, command)
    if args.command == "plot":
        try:
            written = replot(
                args.folder, studies, formats=args.format, style=args.style, at=args.at or (), metrics=args.metric,
                out=args.out,
            )  # fmt: skip
        except ReplotError as err:
            command.error(str(err))
        for path in written:
            print(f"wrote {path}")
        return 0
    if args.command == "docs":
        chosen = [family for family in families if not args.family or family.name in args.family]
        for path in generate_tutorials(args.out, tutorials(chosen)):
            print(f"wrote {path}")
        return 0
    if args.command == "explore":
        return _explore(args, command, families)
    if args.command == "bounds":
        return _print_bounds(families, args.name, args.latex, args.equations)
    if args.command == "resources":
        return _print_resources([family for family in families if not args.family or family.name in args.family])
    if args.command == "benchmark":
        for flag in ("tokens", "batch", "repeats"):
            values = getattr(args, flag)
            if min(values if isinstance(values, list) else [values]) < 1:
                kind = "integers" if isinstance(values, list) else "an integer"
                command.error(f"--{flag} must be {kind} >= 1, got {values}")
        chosen = [family for family in families if not args.family or family.name in args.family]
        run_benchmark(chosen, args.tokens, args.batch, args.repeats, dense_max_tokens=args.dense_max_tokens)
        return 0
    try:
        select_sections(families, args.only)
    except (ValueError, PluginError) as err:
        command.error(str(err))
    outcome = run_report(
        ReportContext(args.out, quick=args.quick, device=args.device, seed=args.seed), families, args.only
    )
    print(f"report written to {args.out / 'report.md'}; {OUTCOMES[outcome]}")
    return int(outcome)


OUTCOMES = {
    Outcome.PASSED: "all checks pass",
    Outcome.CHECK_FAILED: "SOME CHECKS FAILED",
    Outcome.SECTION_CRASHED: "A SECTION STOPPED WITH AN ERROR (see errors.log)",
}


def _output_problems(args: argparse.Namespace) -> list[str]:
    """An output folder that is a file, or that cannot be created."""
    out = getattr(args, "out", None)
    if out is None:
        return []
    if out.exists() and not out.is_dir():
        return [f"--out must be a folder, but {out} is a file"]
    existing = next(folder for folder in [out, *out.absolute().parents] if folder.exists())
    if not existing.is_dir():
        return [f"--out {out} cannot be created: {existing} is a file"]
    if not os.access(existing, os.W_OK):
        return [f"--out {out} cannot be written: {existing} is not writable"]
    missing = [folder for folder in [out, *out.absolute().parents] if not folder.exists()]
    try:  # a folder the permissions allow may still be refused (a read-only or virtual file system): try, then undo
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return [f"--out {out} cannot be created: {err.strerror or err}"]
    finally:
        for folder in missing:  # deepest first; nothing is left behind before the command itself runs
            if folder.is_dir():
                folder.rmdir()
    return []


def _device_problems(args: argparse.Namespace) -> list[str]:
    """A ``--device`` that torch does not know or that this machine does not have."""
    device = getattr(args, "device", None)
    if device is None:
        return []
    try:
        kind = torch.device(device).type
    except RuntimeError:
        return [f"--device must be cpu, cuda or cuda:N, got {device!r}"]
    if kind not in ("cpu", "cuda"):
        return [f"--device must be cpu, cuda or cuda:N, got {device!r}"]
    if kind == "cuda" and not torch.cuda.is_available():
        return [
            f"--device {device}: this torch build or machine has no CUDA device (torch.cuda.is_available() is False)"
        ]
    return []


def sweep_commands(families: Sequence[Family]) -> dict[str, SweepCommand]:
    """``tfconstruct sweep <name>`` for every study of every family, and the approximating parts' study.

    Raises:
        PluginError: if two studies share a name.
    """
    commands: dict[str, SweepCommand] = {}
    for study in [*(study for family in families for study in family.studies), APPROXIMATION]:
        if study.name in commands:
            raise PluginError(f"two sweep studies are named {study.name!r}; study names must be unique")
        commands[study.name] = study
    return commands


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line on stderr (``prog: error: message; see prog --help``) and exit status 2; sub-command
    parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(
    families: Sequence[Family], studies: dict[str, SweepCommand]
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction, argparse._SubParsersAction]:
    """The full parser (for the registered families and studies), its command sub-parsers (whose errors name the
    command) and the sweep's study sub-parsers."""
    parser = OneLineParser(prog="tfconstruct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
        help="register the family (FAMILY or FAMILIES) of a module or a .py file; repeatable; before the command",
    )  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the traceback of a runtime failure")
    commands = parser.add_subparsers(dest="command", required=True)
    names = [family.name for family in families]
    report = commands.add_parser("report", help="build every construction, verify it, write plots and a report")
    report.add_argument("--out", type=folder, default=Path("report"), help="output folder (default: ./report)")
    report.add_argument("--quick", action="store_true", help="smaller sweeps (for smoke tests)")
    report.add_argument("--device", default="cpu", help="torch device for the constructions (cpu or cuda)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--only",
        nargs="+",
        metavar="SECTION",
        help=f"run only these sections ({', '.join([*names, 'theory', 'float32', 'resources', 'training'])})",
    )
    learn = commands.add_parser(
        "train", help="meta-train a construction's architecture on its task (random, construction or trace regime)"
    )
    learn.add_argument("task", choices=[*sorted(TASKS), "compare"], help="the task, or compare: every regime")
    learn.add_argument("--regime", choices=REGIMES, default=None, help="initialisation and loss (default construction)")
    learn.add_argument(
        "--depth", type=int, default=None, help=f"algorithm steps L in [1, {MAX_TRAIN_DEPTH}] (default 2)"
    )
    learn.add_argument(
        "--width", type=int, default=None, help=f"the construction's width M in [1, {MAX_TRAIN_WIDTH}] (default 8)"
    )
    learn.add_argument(
        "--steps", type=int, default=None, help="training steps (default 200, 10 with --quick; more extends a run)"
    )
    learn.add_argument("--out", type=folder, required=True, help="run folder (resumed if it holds this run)")
    learn.add_argument("--quick", action="store_true", help="tiny instances and, unless --steps, 10 steps (seconds)")
    learn.add_argument("--seed", type=int, default=0)
    learn.add_argument("--device", default="cpu", help="torch device (cpu or cuda)")
    bounds = commands.add_parser("bounds", help="print every registered error bound (plain text or LaTeX)")
    bounds.add_argument(
        "--latex", action="store_true", help="print a complete LaTeX document (article) instead of plain text"
    )
    bounds.add_argument(
        "--equations",
        action="store_true",
        help="with --latex: print only the labelled equation environments (no preamble, no assumptions)",
    )
    bounds.add_argument("--name", action="append", help="print only this bound (repeatable)")
    table = commands.add_parser(
        "resources", help="every variant's layers, heads and width counted from its model, against the papers' claims"
    )
    table.add_argument("--family", nargs="+", choices=names, help="only these families' variants")
    explore = commands.add_parser(
        "explore",
        help="write one self-contained interactive HTML page per tutorial example of the families named",
        description="Write explorer pages: step through each tutorial example's forward pass in a browser (no server, "
        "no network), with the stream, attention patterns, MLPs as functions and the reference algorithm beside it.",
    )
    pages = "; ".join(f"{f.name}: {', '.join(f'{key}.html' for key in f.tutorials)}" for f in families)
    explore.add_argument("family", nargs="+", choices=names, metavar="FAMILY", help=f"one or more of ({pages})")
    explore.add_argument("--out", type=folder, default=Path("explore"), help="output folder (default: ./explore)")
    explore.add_argument(
        "--check", action="store_true",
        help="also step through each page in headless chromium and compare what it shows with the trace "
        "(exit 1 on a difference; exit 2 without selenium, chromium and chromedriver)",
    )  # fmt: skip
    docs = commands.add_parser("docs", help="regenerate the tutorials (one per registered example)")
    docs.add_argument("--out", type=folder, default=Path("docs"), help="output folder (default: ./docs)")
    docs.add_argument("--family", nargs="+", choices=names, help="only these families' tutorials")
    sweep = commands.add_parser("sweep", help="run a resumable sweep (tidy CSV/JSON, plots, fitted rates)")
    study_parsers = add_sweep_arguments(sweep, studies)
    plot = commands.add_parser(
        "plot", help="re-plot a sweep folder from its config.json and results (nothing is measured again)"
    )
    plot.add_argument("folder", type=Path, metavar="DIR", help="a sweep's output folder")
    plot.add_argument("--format", nargs="+", choices=FORMATS, default=["png"], help="file formats (default png)")
    plot.add_argument("--style", metavar="FILE_OR_NAME", help="a .mplstyle file, or a shipped style: paper")
    plot.add_argument(
        "--at", nargs="+", metavar="NAME=VALUE",
        help="fix other grid parameters (default: the other knobs at their largest value)",
    )  # fmt: skip
    plot.add_argument("--metric", nargs="+", metavar="NAME", help="only these metrics (default: every fitted one)")
    plot.add_argument("--out", type=folder, default=None, help="where the figures go (default: DIR)")
    benchmark = commands.add_parser("benchmark", help="time every family's forward pass (ratios to numpy, matmul)")
    benchmark.add_argument(
        "--tokens",
        type=int,
        nargs="+",
        default=[100, 1000, 10000],
        help="tokens N per instance (default 100 1000 10000)",
    )
    benchmark.add_argument("--batch", type=int, default=16, help="instances per forward pass (default 16)")
    benchmark.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    benchmark.add_argument(
        "--dense-max-tokens", type=int, default=1000, help="time the dense reference path up to this N (default 1000)"
    )
    benchmark.add_argument("--family", nargs="+", choices=names, help="only these families")
    return parser, commands, study_parsers


MAX_TRAIN_DEPTH, MAX_TRAIN_WIDTH = 64, 4096  # beyond, one step takes minutes and the checkpoint gigabytes


def _train(args: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    """``tfconstruct train``: one run (held-out error printed at the end) or the comparison."""
    given = [f"--{flag}" for flag in ("regime", "depth", "width", "steps") if getattr(args, flag) is not None]
    if args.task == "compare":
        if given:
            command.error(f"train compare runs its own plan of regimes, depths, widths and steps; drop {given}")
        found = write_comparison(args.out, QUICK if args.quick else LONG, args.seed, args.device)
        print(f"comparison written to {args.out / 'comparison.md'}")
        return 0 if all(check.passed for check in found) else 1
    depth = 2 if args.depth is None else args.depth
    width = 8 if args.width is None else args.width
    for flag, value, top in (("depth", depth, MAX_TRAIN_DEPTH), ("width", width, MAX_TRAIN_WIDTH)):
        if not 1 <= value <= top:
            command.error(f"--{flag} must be an integer in [1, {top}], got {value}")
    steps = args.steps if args.steps is not None else 10 if args.quick else 200
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        command.error(f"--out {args.out} cannot be created: {err.strerror}")
    try:
        config = TrainConfig(args.task, args.regime or "construction", depth, width, args.seed, args.quick)
        result = train(config, steps, args.out, device=args.device)
    except TrainError as err:
        command.error(str(err))
    except TrainInterrupted as stop:
        print(f"\ntfconstruct: interrupted; {stop}; re-run the same command to resume", file=sys.stderr)
        return 130
    if result.step > steps:
        print(f"the run in {args.out} is already at step {result.step} (> --steps {steps}); nothing was trained")
    print(
        f"{args.task} {args.regime} L={args.depth} M={args.width}: step {result.step}, held-out error "
        f"{result.held_out_error:.3e} (construction {result.construction_error:.3e}); saved in {args.out}"
    )
    return 0


def _explore(args: argparse.Namespace, command: argparse.ArgumentParser, families: Sequence[Family]) -> int:
    """``tfconstruct explore``: the pages, their sizes and (``--check``) what the browser check found."""
    found = find_browser()
    if args.check and found.reason:
        command.error(f"--check needs a browser: {found.reason}")
    examples = tutorials([family for family in families if family.name in args.family])
    failed = False
    for key, path in write_pages(args.out, examples).items():
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        if args.check:
            result = check_page(path, examples[key](), found)
            failed |= bool(result.problems)
            print(
                f"  checked in headless chromium: {counted(result.sublayers, 'sublayer')}, {counted(result.cells, 'cell')}, "
                f"{counted(result.reference_rows, 'reference row')}; "
                + ("; ".join(result.problems[:5]) or "all equal the trace")
            )
    return 1 if failed else 0


def _print_resources(families: Sequence[Family]) -> int:
    """The resource table (Markdown); 1 if a fitted rate misses its expected order."""
    table = resources.rows(families)
    print(resources.markdown(table))
    missed = [check.name for check in resources.checks(table) if not check.passed]
    for name in missed:
        print(f"RATE MISSED: {name}", file=sys.stderr)
    return 1 if missed else 0


def _print_bounds(families: Sequence[Family], names: list[str] | None, latex: bool, equations: bool = False) -> int:
    """Every registered bound: the theory package's and the families' (plugins included)."""
    bounds: dict[str, Bound] = {bound.name: bound for bound in all_bounds()}
    for family in families:
        for bound in family.bounds:
            if bounds.setdefault(bound.name, bound) is not bound:
                print(
                    f"tfconstruct: error: family {family.name!r} registers a second bound {bound.name!r}",
                    file=sys.stderr,
                )
                return 2
    unknown = [name for name in names or () if name not in bounds]
    if unknown:
        print(
            f"tfconstruct: error: no bound named {unknown[0]!r}; registered bounds: {sorted(bounds)}", file=sys.stderr
        )
        return 2
    if equations and not latex:
        print("tfconstruct: error: --equations needs --latex", file=sys.stderr)
        return 2
    selected = [bounds[name] for name in names] if names else list(bounds.values())
    if latex:
        print(format_latex(selected, mode="equations" if equations else "document"))
    else:
        print(format_text(selected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
