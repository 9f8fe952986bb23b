"""Report pipeline: run records -> tidy frame -> reductions -> tables/figures.

Reports go to ``runs/<experiment>/<scale>/report/`` (ignored by git); the committed tables under
``results/`` are written only on publish (see :mod:`bench.report.api`).

Entry points: :func:`build_report` (library) and ``bench-report`` (:func:`bench.report.cli.main`).
Modules: :mod:`~bench.report.collect` (records -> DataFrames), :mod:`~bench.report.grid` (an
experiment's expected runs), :mod:`~bench.report.reduce` (named reductions),
:mod:`~bench.report.robust` (rliable: IQM, optimality gap, bootstrap CIs, performance profiles),
:mod:`~bench.report.tables` (specs, builder, verdicts, claims), :mod:`~bench.report.published`
(paper numbers), :mod:`~bench.report.render` (Markdown/CSV), :mod:`~bench.report.compare`
(regenerated vs committed tables), :mod:`~bench.report.figures` (PNG curves and profiles).
"""
from bench.report.api import NoRunsError, ReportError, ReportResult, build_report, fidelity_rows

__all__ = ["build_report", "fidelity_rows", "ReportResult", "ReportError", "NoRunsError"]
