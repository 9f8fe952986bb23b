"""``build_report``: records of one experiment -> tables, figures and a Markdown report.

Writes, under ``<results_root>/<experiment>/<scale>/``::

    <table>.md    one table with its provenance header, notes, claims, runs not included
    <table>.csv   the table's numeric cells (machine readable)
    <table>.png   learning curves (seed mean ± s.e.) of the table's metric
    report.md     every table of the experiment with one provenance header (returned text)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from bench.report import render
from bench.report.collect import collect
from bench.report.figures import plot_curves
from bench.report.tables import TABLES, Table, build_table, check_claims, specs_for


class ReportError(RuntimeError):
    """A report cannot be built (no runs, ambiguous scale); the message says what to do."""


class NoRunsError(ReportError, FileNotFoundError):
    """No run directories where the report looked."""


@dataclass
class ReportResult:
    """What :func:`build_report` produced."""

    experiment: str
    scale: str
    markdown: str
    paths: list[Path] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    runs: Optional[pd.DataFrame] = None


def _no_runs(where: Path, experiment: str) -> NoRunsError:
    return NoRunsError(f"no runs of experiment '{experiment}' in {where}; produce them with: bench experiment={experiment}")


def resolve_scale(runs_root: Path, experiment: str, scale: Optional[str]) -> str:
    """The scale to report: the given one, else the only scale directory holding runs."""
    exp_dir = Path(runs_root) / experiment
    if scale:
        return scale
    scales = sorted(p.name for p in exp_dir.iterdir() if p.is_dir() and any(p.rglob("config.yaml"))) \
        if exp_dir.is_dir() else []
    if not scales:
        raise _no_runs(exp_dir, experiment)
    if len(scales) > 1:
        raise ReportError(f"runs of '{experiment}' exist at several scales ({', '.join(scales)}) in {exp_dir}; "
                          "pick one with --scale")
    return scales[0]


def _needed_metrics(experiment: str) -> Optional[set[str]]:
    specs = TABLES.get(experiment)
    return {s.metric for s in specs} if specs else None


def build_report(experiment: str, scale: Optional[str], runs_root: Path, results_root: Path,
                 command: Optional[str] = None, *, report_date: Optional[str] = None,
                 published_root: Optional[Path] = None, figures: bool = True) -> ReportResult:
    """Build every table of ``experiment`` from ``runs_root/<experiment>/<scale>`` and write them.

    ``command`` and ``report_date`` (ISO date) go into the provenance header (defaults: the
    equivalent ``bench-report`` command line, today). ``published_root`` overrides where the
    published CSVs are read from. Raises :class:`NoRunsError` when there are no runs.
    """
    runs_root, results_root = Path(runs_root), Path(results_root)
    scale = resolve_scale(runs_root, experiment, scale)
    data = collect(runs_root, experiment, scale, metrics=_needed_metrics(experiment))
    if data.runs.empty:
        raise _no_runs(runs_root / experiment / scale, experiment)
    command = command or f"bench-report {experiment} --scale {scale}"
    tables = {s.name: build_table(data.tidy, s, data.runs, published_root) for s in specs_for(experiment, data.tidy, data.runs)}
    claims = check_claims(experiment, tables)
    provenance = render.provenance_lines(data.runs, experiment, scale, command, report_date)
    excluded = render.excluded_lines(data.runs)
    out_dir = results_root / experiment / scale
    paths = _write_tables(tables, data.tidy, out_dir, provenance, excluded, claims, figures)
    markdown = _combined(experiment, scale, tables, provenance, excluded, claims)
    report = out_dir / "report.md"
    report.write_text(markdown, encoding="utf-8")
    return ReportResult(experiment, scale, markdown, [*paths, report], tables, claims, data.runs)


def _write_tables(tables: dict[str, Table], tidy: pd.DataFrame, out_dir: Path, provenance: list[str],
                  excluded: list[str], claims: list[str], figures: bool) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and (if there is data) ``<name>.png`` per table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, table in tables.items():
        md = out_dir / f"{name}.md"
        md.write_text(render.render_markdown(table, provenance, excluded, claims), encoding="utf-8")
        paths += [md, render.write_csv(table, out_dir / f"{name}.csv")]
        png = plot_curves(tidy, table.spec, out_dir / f"{name}.png") if figures else None
        paths += [png] if png else []
    return paths


def _combined(experiment: str, scale: str, tables: dict[str, Table], provenance: list[str],
              excluded: list[str], claims: list[str]) -> str:
    """All tables under one provenance header, then the claims and the runs not included."""
    parts = [f"# Report: {experiment} ({scale})", "", *provenance, ""]
    parts += [render.render_markdown(t, (), ()) for t in tables.values()]
    if claims:
        parts += ["## Paper claims", "", *[f"- {c}" for c in claims], ""]
    if excluded:
        parts += [*excluded, ""]
    return "\n".join(parts).rstrip("\n") + "\n"
