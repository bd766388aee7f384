"""Command-line interface: ``tfconstruct report`` runs the main job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import ReportContext, run_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfconstruct", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="build every construction, verify it, write plots and a report")
    report.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: ./report)")
    report.add_argument("--quick", action="store_true", help="smaller sweeps (for smoke tests)")
    report.add_argument("--device", default="cpu", help="torch device for the constructions (cpu or cuda)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--only", nargs="*", help="run only these sections (module names)")
    args = parser.parse_args(argv)
    if args.command == "report":
        ok = run_report(ReportContext(args.out, quick=args.quick, device=args.device, seed=args.seed), args.only)
        print(f"report written to {args.out / 'report.md'}; {'all checks pass' if ok else 'SOME CHECKS FAILED'}")
        return 0 if ok else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
