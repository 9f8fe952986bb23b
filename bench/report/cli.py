"""``bench-report``: rebuild an experiment's tables from local run records.

    bench-report NAME [--scale quick|paper] [--runs DIR] [--results DIR]
    bench-report --list

Prints the report's Markdown to stdout. Exits 2 with a one-line message for an unknown
experiment (listing the valid ones) and 1 when there are no runs to report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import bench
from bench.report.api import ReportError, build_report
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
    return name in experiments(conf_dir) or name in TABLES or (Path(runs_root) / name).is_dir()


def parser() -> argparse.ArgumentParser:
    """The ``bench-report`` argument parser."""
    p = argparse.ArgumentParser(prog="bench-report", description="Rebuild an experiment's tables and figures from run records.")
    p.add_argument("name", nargs="?", help="experiment name (conf/experiment/<name>.yaml)")
    p.add_argument("--scale", help="scale to report (quick|paper); default: the only one with runs")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="runs root (default: runs)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
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
    if not args.name:
        return _fail("name an experiment (see bench-report --list)", 2)
    if not known(args.name, args.conf, args.runs):
        valid = sorted(set(experiments(args.conf)) | set(TABLES))
        return _fail(f"unknown experiment '{args.name}'; valid: {', '.join(valid)}", 2)
    command = " ".join(["bench-report", *(argv if argv is not None else sys.argv[1:])])
    try:
        result = build_report(args.name, args.scale, args.runs, args.results, command)
    except ReportError as exc:
        return _fail(str(exc), 1)
    print(result.markdown, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
