"""``bench-report``: rebuild an experiment's tables from local run records.

    bench-report NAME [--scale quick|paper] [--runs DIR] [--results DIR] [--out DIR]
                      [--publish [--force]] [--compare] [--set KEY=VALUE ...]
    bench-report adhoc [--sweep DIR]
    bench-report --fidelity [--scale quick|paper] [--runs DIR] [--results DIR] [--out DIR] [--publish]
    bench-report --list

Prints the report's Markdown to stdout and writes it, with its CSVs and figures, to ``--out``
(default ``<runs>/<NAME>/<scale>/report/``, ignored by git). ``--publish`` also writes the
committed tables under ``<results>/<NAME>/<scale>/``, refusing (exit 1) when expected runs are
missing and a committed table is there, unless ``--force``. ``--compare`` prints only the
cell-by-cell comparison with the committed tables (exit 0 when every cell agrees, 1 otherwise);
without it the comparison is appended to the report whenever a committed table exists.
Exits 2 with a one-line message for an unknown experiment (listing the valid ones) and 1 when
there are no runs to report.

``--fidelity`` builds every experiment's report at one scale (no figures) and writes ONE table of
the paper's claims and published numbers beside ours (:mod:`bench.report.fidelity`) to
``<runs>/fidelity/<scale>/`` (``--out`` elsewhere), with ``--publish`` also to
``<results>/fidelity/<scale>/``; experiments without records are listed as "no runs". Exits 0
whenever the table is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import bench
from bench.report.api import ADHOC, ReportError, build_report
from bench.report.compare import agrees, render_comparison
from bench.report.tables import TABLES

CONF_DIR = Path(bench.__file__).resolve().parent.parent / "conf"
"""Where ``conf/experiment/*.yaml`` live."""


def describe(path: Path) -> str:
    """First comment line of a YAML file, without the ``#`` (``""`` if none).

    Hydra directives (``# @package _global_``) are not descriptions and are skipped.
    """
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip().lstrip("#").strip()
            if line.strip().startswith("#") and text and not text.startswith("@"):
                return text
    except OSError:
        pass
    return ""


def experiments(conf_dir: Path) -> dict[str, str]:
    """Experiment name -> description, from ``<conf_dir>/experiment/*.yaml``."""
    return {p.stem: describe(p) for p in sorted((Path(conf_dir) / "experiment").glob("*.yaml"))}


def known(name: str, conf_dir: Path, runs_root: Path) -> bool:
    """An experiment is known if it has a config file, registered tables, or runs on disk."""
    return name in experiments(conf_dir) or name in TABLES or name == ADHOC or (Path(runs_root) / name).is_dir()


def parser() -> argparse.ArgumentParser:
    """The ``bench-report`` argument parser."""
    p = argparse.ArgumentParser(prog="bench-report", description="Rebuild an experiment's tables and figures from run records.")
    p.add_argument("name", nargs="?", help="experiment name (conf/experiment/<name>.yaml)")
    p.add_argument("--scale", help="scale to report (quick|paper); default: the only one with runs")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="runs root (default: runs)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    p.add_argument("--out", type=Path, help="output directory (default: <runs>/<name>/<scale>/report)")
    p.add_argument("--publish", action="store_true",
                   help="also write the tables to <results>/<name>/<scale>/ (the committed tables)")
    p.add_argument("--force", action="store_true",
                   help="with --publish: replace committed tables even when expected runs are missing")
    p.add_argument("--compare", action="store_true",
                   help="print only the cell-by-cell comparison with the committed tables; exit 1 unless all agree")
    p.add_argument("--sweep", type=Path, help="adhoc only: report the runs of this Hydra sweep directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override the runs were made with (e.g. run.seeds=30), for the expected grid")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="skip the PNG figures")
    p.add_argument("--fidelity", action="store_true",
                   help="one table of every experiment's paper claims and published numbers beside ours "
                        "(<runs>/fidelity/<scale>/; with --publish also <results>/fidelity/<scale>/)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--conf", type=Path, default=CONF_DIR, help=argparse.SUPPRESS)
    return p


def _fail(message: str, code: int) -> int:
    print(f"bench-report: {message}", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns the exit status."""
    args = parser().parse_args(argv)
    if args.list:
        for name, text in experiments(args.conf).items():
            print(f"{name:24s} {text}".rstrip())
        return 0
    if args.fidelity:
        return _fidelity(args, argv)
    if not args.name:
        return _fail("name an experiment (see bench-report --list, or --fidelity for all)", 2)
    if not known(args.name, args.conf, args.runs):
        valid = sorted(set(experiments(args.conf)) | set(TABLES))
        return _fail(f"unknown experiment '{args.name}'; valid: {', '.join(valid)}", 2)
    if args.force and not args.publish:
        return _fail("--force only applies with --publish", 2)
    if args.sweep is not None and args.name != ADHOC:
        return _fail(f"--sweep applies to '{ADHOC}' reports only, not '{args.name}'", 2)
    if args.publish and args.name == ADHOC:
        return _fail(f"--publish: '{ADHOC}' runs have no committed tables; results/ holds experiments only", 2)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        return _fail(f"--set {bad[0]!r}: expected KEY=VALUE", 2)
    command = " ".join(["bench-report", *(argv if argv is not None else sys.argv[1:])])
    try:
        result = build_report(args.name, args.scale, args.runs, args.results, command, out_dir=args.out,
                              publish=args.publish, force=args.force, overrides=args.overrides, sweep=args.sweep,
                              figures=args.figures and not args.compare)
    except ReportError as exc:
        return _fail(str(exc), 1)
    if args.compare:
        return _print_comparison(result, args.results)
    print(result.markdown, end="")
    print(f"bench-report: written to {result.out_dir}/", file=sys.stderr)
    if args.publish:
        print(f"bench-report: {result.publish_note}", file=sys.stderr)
        return 0 if result.published else 1
    return 0


def _fidelity(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> int:
    """``--fidelity``: build the fidelity table (see :mod:`bench.report.fidelity`)."""
    from bench.report.fidelity import build_fidelity

    clash = [flag for flag, on in (("an experiment name", bool(args.name)), ("--compare", args.compare),
                                   ("--force", args.force), ("--sweep", args.sweep is not None),
                                   ("--set", bool(args.overrides))) if on]
    if clash:
        return _fail(f"--fidelity covers every experiment; drop {clash[0]}", 2)
    command = " ".join(["bench-report", *(argv if argv is not None else sys.argv[1:])])
    try:
        result = build_fidelity(args.scale, args.runs, args.results, command=command, out_dir=args.out,
                                publish=args.publish, conf_dir=args.conf)
    except ReportError as exc:
        return _fail(str(exc), 1)
    print(result.markdown, end="")
    print(f"bench-report: fidelity table written to {result.out_dir}/", file=sys.stderr)
    if result.published_dir is not None:
        print(f"bench-report: published to {result.published_dir}/", file=sys.stderr)
    return 0


def _print_comparison(result, results_root: Path) -> int:
    committed = Path(results_root) / result.experiment / result.scale
    if not result.comparisons:
        return _fail(f"no committed tables to compare with in {committed}/", 1)
    print("\n".join(render_comparison(result.tables, result.comparisons, f"{committed}/")).rstrip("\n"))
    if result.missing:
        print(f"\n(missing here: {len(result.missing)} expected runs: {', '.join(result.missing)})")
    if result.differences:
        print(f"\n(not the experiment's settings: {len(result.differences)} runs differ from the experiment file, "
              f"so their cells need not match: {'; '.join(result.differences)})")
    return 0 if agrees(result.comparisons) and not result.missing and not result.differences else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
