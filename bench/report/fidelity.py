"""``bench-report --fidelity``: every experiment's paper claims and published numbers beside ours, in ONE table.

For one scale, every experiment of ``conf/experiment/`` that has records under
``<runs>/<experiment>/<scale>/`` gets its report built (:func:`bench.report.api.build_report`, no
figures; its files go to ``<out>/reports/<experiment>/``), and its rows are collected with
:func:`bench.report.api.fidelity_rows`: one per paper claim (``results/published/claims.csv``,
checked by :mod:`bench.report.claims`) and one per published number (``results/published/*.csv``).
An experiment without records is one row, "no runs"; one whose report cannot be built (which a
damaged record never causes: those are listed, not fatal) is one row, "report failed", with the
error's first line. Nothing here raises on a half-written record.

Written to ``<runs>/fidelity/<scale>/`` (``fidelity.md``, ``fidelity.csv``; ignored by git) and, with
``publish``, also to ``<results>/fidelity/<scale>/``. The Markdown starts with a provenance header
(command, commit(s), date, hardware, seeds) and a count of the verdicts.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pandas as pd

import bench
from bench.report import render
from bench.report.api import (FIDELITY_COLUMNS, NoRunsError, ReportError, ReportResult, build_report, commit_of,
                              fidelity_rows)
from bench.report.claims import VERDICTS
from bench.report.grid import ExpectedRun

FIDELITY = "fidelity"
"""The directory name under the runs and results roots."""
NO_RUNS, REPORT_FAILED = "no runs", "report failed"
SUMMARY_ORDER = (*VERDICTS, NO_RUNS, REPORT_FAILED)
"""Verdicts counted in the summary line, in this order."""
CONF_DIR = Path(bench.__file__).resolve().parent.parent / "conf"
_SOURCE_PREFIX = "Kaddour 2026, Target Policy Optimization, arXiv 2604.06159, "


@dataclass
class FidelityResult:
    """What :func:`build_fidelity` produced: the ``frame`` (:data:`bench.report.api.FIDELITY_COLUMNS`),
    its ``markdown``, the files written (``paths``), where (``out_dir``; ``published_dir`` with publish),
    the per-experiment ``reports`` and the verdict ``counts``."""

    scale: str
    frame: pd.DataFrame
    markdown: str
    paths: list[Path] = field(default_factory=list)
    out_dir: Optional[Path] = None
    published_dir: Optional[Path] = None
    reports: dict[str, ReportResult] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def conf_experiments(conf_dir: Optional[Path] = None) -> list[str]:
    """Experiment names (``conf/experiment/*.yaml``), sorted."""
    return sorted(p.stem for p in (Path(conf_dir or CONF_DIR) / "experiment").glob("*.yaml"))


def _has_runs(path: Path) -> bool:
    return path.is_dir() and any(path.rglob("config.yaml"))


def fidelity_scale(runs_root: Path, experiments: Sequence[str], scale: Optional[str]) -> str:
    """The given scale; else the only scale with records of any of ``experiments`` (``quick`` when none
    has any). Raises :class:`ReportError` when records exist at several scales."""
    if scale:
        return scale
    found = sorted({p.name for e in experiments for p in (Path(runs_root) / e).glob("*") if _has_runs(p)})
    if len(found) > 1:
        raise ReportError(f"runs exist at several scales ({', '.join(found)}) in {runs_root}; pick one with --scale")
    return found[0] if found else "quick"


def _experiment_row(experiment: str, scale: str, verdict: str, detail: str) -> dict:
    return {"experiment": experiment, "scale": scale, "kind": "experiment", "table": "", "method": "", "setting": "",
            "item": "", "text": verdict, "published": "", "ours": "", "n": None, "verdict": verdict,
            "detail": detail, "commit": "", "source": ""}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def build_fidelity(scale: Optional[str], runs_root: Path, results_root: Path, *,
                   experiments: Optional[Sequence[str]] = None, command: Optional[str] = None,
                   report_date: Optional[str] = None, published_root: Optional[Path] = None,
                   out_dir: Optional[Path] = None, publish: bool = False,
                   expected: Optional[Mapping[str, Sequence[ExpectedRun]]] = None,
                   conf_dir: Optional[Path] = None) -> FidelityResult:
    """Collect every experiment's claims and published comparisons at one scale into one table and write it.

    ``experiments`` default to :func:`conf_experiments`; ``scale`` to :func:`fidelity_scale`.
    ``expected`` maps an experiment to its grid (default: composed from its config, as for a report).
    ``out_dir`` (default ``<runs_root>/fidelity/<scale>``) receives ``fidelity.md`` and ``fidelity.csv``
    (and ``reports/<experiment>/``); ``publish`` also writes the two files to
    ``<results_root>/fidelity/<scale>/``. ``command`` and ``report_date`` go into the header.
    """
    runs_root, results_root = Path(runs_root), Path(results_root)
    names = list(experiments) if experiments is not None else conf_experiments(conf_dir)
    scale = fidelity_scale(runs_root, names, scale)
    command = command or f"bench-report --fidelity --scale {scale}"
    out_dir = Path(out_dir) if out_dir else runs_root / FIDELITY / scale
    rows, reports, notes = [], {}, []
    for name in names:
        if not _has_runs(runs_root / name / scale):
            rows.append(_experiment_row(name, scale, NO_RUNS, f"no records in {name}/{scale}/ of the runs root"))
            continue
        try:
            result = build_report(name, scale, runs_root, results_root, command, report_date=report_date,
                                  published_root=published_root, figures=False, out_dir=out_dir / "reports" / name,
                                  compare=False, expected=(expected or {}).get(name))
        except NoRunsError as exc:   # unreadable records, or only runs off the expected grid
            rows.append(_experiment_row(name, scale, NO_RUNS, _one_line(exc)))
            continue
        except Exception as exc:  # one experiment's failure must not hide the others
            rows.append(_experiment_row(name, scale, REPORT_FAILED, _one_line(exc)))
            continue
        reports[name] = result
        found = fidelity_rows(result)
        if found.empty:
            notes.append(f"{name}: no claims or published numbers registered")
        rows += found.to_dict("records")
    frame = pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))
    frame["n"] = pd.array([None if pd.isna(n) else int(n) for n in frame["n"]], dtype="Int64")
    counts = {v: int((frame["verdict"] == v).sum()) for v in SUMMARY_ORDER}
    markdown = render_fidelity(frame, scale, command, report_date, reports, names, counts, notes)
    result = FidelityResult(scale, frame, markdown, out_dir=out_dir, reports=reports, counts=counts)
    result.paths += _write(frame, markdown, out_dir)
    if publish:
        result.published_dir = results_root / FIDELITY / scale
        result.paths += _write(frame, markdown, result.published_dir)
    return result


def _write(frame: pd.DataFrame, markdown: str, where: Path) -> list[Path]:
    where.mkdir(parents=True, exist_ok=True)
    md, csv = where / "fidelity.md", where / "fidelity.csv"
    md.write_text(markdown, encoding="utf-8")
    frame.to_csv(csv, index=False)
    return [md, csv]


def _included(reports: Mapping[str, ReportResult]) -> pd.DataFrame:
    parts = []
    for result in reports.values():
        runs = result.runs
        if runs is not None and len(runs):
            parts.append(runs[runs["included"] & ~runs["superseded"]])
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["git_sha", "git_dirty", "device", "device_name", "cpu_count", "n_seeds", "seeds"])


def summary_text(counts: Mapping[str, int]) -> str:
    """"3 holds, 1 fails, ..." (zero counts left out; "no rows" when all are zero)."""
    return ", ".join(f"{counts[v]} {v}" for v in SUMMARY_ORDER if counts.get(v)) or "no rows"


def render_fidelity(frame: pd.DataFrame, scale: str, command: str, report_date: Optional[str],
                    reports: Mapping[str, ReportResult], names: Sequence[str], counts: Mapping[str, int],
                    notes: Sequence[str] = ()) -> str:
    """The fidelity table as Markdown: provenance header, verdict counts, rules, then one table."""
    runs = _included(reports)
    seeds = "; ".join(f"{name}: {render.seeds_text(r.runs[r.runs['included'] & ~r.runs['superseded']])}"
                      for name, r in reports.items() if r.runs is not None and len(r.runs)) or "none"
    without = [n for n in names if n not in reports]
    lines = [f"# Fidelity to the paper ({scale} scale)", "",
             f"- command: `{command}`",
             f"- scale: {scale}",
             f"- commit: {render.commit_text(runs) if len(runs) else 'none (no included runs)'}",
             f"- report date: {report_date or _date.today().isoformat()}",
             f"- hardware: {render.hardware_text(runs) if len(runs) else 'unknown'}",
             f"- seeds: {seeds}",
             f"- experiments: {len(reports)} with runs ({', '.join(reports) or 'none'}); "
             f"{len(without)} without ({', '.join(without) or 'none'})",
             f"- verdicts: {summary_text(counts)}",
             *[f"- note: {n}" for n in notes], "",
             "Claims (`results/published/claims.csv`, checked by `bench/report/claims.py`): holds = every comparison "
             "holds beyond the combined s.e.; fails = one is contradicted beyond it (or a tie); not enough seeds = "
             "a cell has < 2 seeds or a difference is within the combined s.e.; missing = a cell has no value at "
             "this scale. Published numbers (`results/published/*.csv`): holds = our seed mean within max(2·s.e., "
             "the table's tolerance) of the paper (step counts: within its relative tolerance); fails = better or "
             "worse than that; not enough seeds = n < 2; missing = no value, or the paper's setting is not a point "
             f"of the {scale} grid. Paper numbers are at the paper's scale.", ""]
    if frame.empty:
        return "\n".join([*lines, "_No experiments._", ""])
    shown = pd.DataFrame({
        "Experiment": frame["experiment"],
        "Claim or cell": [r["text"] if r["kind"] == "claim" else (r["item"] or r["text"]) for _, r in frame.iterrows()],
        "Paper": frame["published"].fillna(""),
        "Ours": frame["ours"].fillna(""),
        "Verdict": frame["verdict"],
        "Detail": frame["detail"].fillna(""),
        "Source": frame["source"].fillna("").map(lambda s: str(s).replace(_SOURCE_PREFIX, "")),
        "Commit": frame["commit"].fillna(""),
    })
    return "\n".join([*lines, render.to_markdown(shown.astype(str)), ""])


__all__ = ["FidelityResult", "build_fidelity", "conf_experiments", "fidelity_scale", "render_fidelity",
           "commit_of", "NO_RUNS", "REPORT_FAILED"]
