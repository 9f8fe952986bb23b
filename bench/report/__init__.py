"""Report pipeline: run records -> tidy frame -> reductions -> tables/figures under ``results/``.

Entry points: :func:`build_report` (library) and ``bench-report`` (:func:`bench.report.cli.main`).
Modules: :mod:`~bench.report.collect` (records -> DataFrames), :mod:`~bench.report.reduce`
(named reductions), :mod:`~bench.report.tables` (specs, builder, verdicts, claims),
:mod:`~bench.report.published` (paper numbers), :mod:`~bench.report.render` (Markdown/CSV),
:mod:`~bench.report.figures` (PNG learning curves).
"""
from bench.report.api import NoRunsError, ReportError, ReportResult, build_report

__all__ = ["build_report", "ReportResult", "ReportError", "NoRunsError"]
