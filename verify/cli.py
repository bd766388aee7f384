"""Command-line interface: ``tfconstruct report`` runs the main job; ``bounds`` prints the theory;
``docs`` regenerates the tutorials."""

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
    bounds = commands.add_parser("bounds", help="print every registered error bound (plain text or LaTeX)")
    bounds.add_argument("--latex", action="store_true", help="print a LaTeX fragment instead of plain text")
    bounds.add_argument("--name", action="append", help="print only this bound (repeatable)")
    docs = commands.add_parser("docs", help="regenerate the tutorials (one per construction) from the code")
    docs.add_argument("--out", type=Path, default=Path("docs"), help="output folder (default: ./docs)")
    sweep = commands.add_parser("sweep", help="run a resumable sweep (tidy CSV/JSON + plots)")
    sweep.add_argument("study", choices=["approximation"], help="approximation: error vs width of every approximating part")
    sweep.add_argument("--out", type=Path, required=True, help="output folder (re-running resumes it)")
    sweep.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    sweep.add_argument("--replicates", type=int, default=8, help="random instances per grid point")
    sweep.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _approximation_sweep(args.out, args.widths, args.replicates, args.seed)
    if args.command == "docs":
        from .tutorial import generate_tutorials

        for path in generate_tutorials(args.out):
            print(f"wrote {path}")
        return 0
    if args.command == "bounds":
        return _print_bounds(args.name, args.latex)
    if args.command == "report":
        ok = run_report(ReportContext(args.out, quick=args.quick, device=args.device, seed=args.seed), args.only)
        print(f"report written to {args.out / 'report.md'}; {'all checks pass' if ok else 'SOME CHECKS FAILED'}")
        return 0 if ok else 1
    return 2


def _print_bounds(names: list[str] | None, latex: bool) -> int:
    from theory.latex import format_latex, format_text
    from theory.registry import all_bounds, get

    try:
        selected = [get(name) for name in names] if names else all_bounds()
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    print(format_latex(selected) if latex else format_text(selected))
    return 0


def _approximation_sweep(out: Path, widths: list[int], replicates: int, seed: int) -> int:
    import numpy as np

    from .approximation_study import PARTS, approximation_sweep
    from .plots import plot_error_vs_width
    from .sweep import pivot

    rows = approximation_sweep(out, list(PARTS), widths, replicates, base_seed=seed).run()
    print(f"{len(rows)} rows in {out / 'results.csv'}")
    failed = False
    for name, part in PARTS.items():
        xs, errors = pivot(rows, "width", "error", where={"part": name})
        _, bounds = pivot(rows, "width", "bound", where={"part": name})
        mine = [r for r in rows if r["part"] == name]
        violations = [r for r in mine if r["error"] > r["bound"] + r["round_off"]]
        failed |= bool(violations)
        slope = plot_error_vs_width(out / f"{name}.png", xs, {name: errors["error"]},
                                    bounds={name: np.median(bounds["bound"], axis=0)},
                                    expected_slope=part.expected_slope, title=part.description, ylabel="sup error")[name]
        print(f"{name:10s} slope {slope:6.3f} (theory {part.expected_slope:g}), "
              f"min slack {min(r['slack'] for r in mine):.4g}, violations {len(violations)}  -> {out / (name + '.png')}")
        for row in violations:
            print(f"  BOUND VIOLATED: {row}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
