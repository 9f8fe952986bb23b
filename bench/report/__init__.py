"""Report pipeline: run records -> tidy frame -> reductions -> tables/figures.

Reports go to ``runs/<experiment>/<scale>/report/`` (ignored by git); the committed tables under
``results/`` are written only on publish (see :mod:`bench.report.api`).

Entry points: :func:`build_report` (library) and ``bench-report`` (:func:`bench.report.cli.main`).
Modules: :mod:`~bench.report.collect` (records -> DataFrames), :mod:`~bench.report.grid` (an
experiment's expected runs), :mod:`~bench.report.reduce` (named reductions),
:mod:`~bench.report.robust` (rliable: IQM, optimality gap, bootstrap CIs, performance profiles),
:mod:`~bench.report.tables` (specs, builder, verdicts), :mod:`~bench.report.published`
(paper numbers), :mod:`~bench.report.claims` (the paper's claims as data, and their checks),
:mod:`~bench.report.render` (Markdown/CSV), :mod:`~bench.report.compare` (regenerated vs committed
tables), :mod:`~bench.report.figures` (PNG curves and profiles), :mod:`~bench.report.fidelity`
(one table of every experiment's claims and published numbers: ``bench-report --fidelity``).
"""
from bench.report.api import NoRunsError, ReportError, ReportResult, build_report, fidelity_rows
from bench.report.fidelity import FidelityResult, build_fidelity

__all__ = ["build_report", "build_fidelity", "fidelity_rows", "ReportResult", "FidelityResult", "ReportError",
           "NoRunsError"]
