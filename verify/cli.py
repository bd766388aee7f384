"""Command-line interface: ``tfconstruct report`` runs the main job; ``bounds`` prints the theory;
``docs`` regenerates the tutorials; ``sweep`` runs a resumable study (:mod:`tfconstruct.verify.study`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfconstruct.theory.latex import format_latex, format_text
from tfconstruct.theory.registry import all_bounds, get

from .families import FAMILIES, sweep_commands, tutorials
from .report import run_report, select_families
from .results import ReportContext
from .study import add_arguments as add_sweep_arguments, run as run_sweep
from .sweep import package_version
from .tutorial import generate_tutorials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfconstruct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="build every construction, verify it, write plots and a report")
    report.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: ./report)")
    report.add_argument("--quick", action="store_true", help="smaller sweeps (for smoke tests)")
    report.add_argument("--device", default="cpu", help="torch device for the constructions (cpu or cuda)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--only",
        nargs="+",
        metavar="FAMILY",
        help=f"run only these families' sections ({', '.join(f.name for f in FAMILIES)})",
    )
    bounds = commands.add_parser("bounds", help="print every registered error bound (plain text or LaTeX)")
    bounds.add_argument("--latex", action="store_true", help="print a LaTeX fragment instead of plain text")
    bounds.add_argument("--name", action="append", help="print only this bound (repeatable)")
    docs = commands.add_parser("docs", help="regenerate the tutorials (one per construction) from the code")
    docs.add_argument("--out", type=Path, default=Path("docs"), help="output folder (default: ./docs)")
    sweep = commands.add_parser("sweep", help="run a resumable sweep (tidy CSV/JSON + plots)")
    studies = sweep_commands()
    add_sweep_arguments(sweep, studies)
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return run_sweep(args, sweep, studies)
    if args.command == "docs":
        for path in generate_tutorials(args.out, tutorials()):
            print(f"wrote {path}")
        return 0
    if args.command == "bounds":
        return _print_bounds(args.name, args.latex)
    if args.command == "report":
        try:
            select_families(args.only)
        except ValueError as err:
            report.error(str(err))
        ok = run_report(ReportContext(args.out, quick=args.quick, device=args.device, seed=args.seed), args.only)
        print(f"report written to {args.out / 'report.md'}; {'all checks pass' if ok else 'SOME CHECKS FAILED'}")
        return 0 if ok else 1
    return 2


def _print_bounds(names: list[str] | None, latex: bool) -> int:
    try:
        selected = [get(name) for name in names] if names else all_bounds()
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    print(format_latex(selected) if latex else format_text(selected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
