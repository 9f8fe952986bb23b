"""End-to-end: the fixture experiment's report equals the checked-in golden Markdown.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/bench/report``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.report import NoRunsError, ReportError, build_report

from report_fixtures import EXPERIMENT, SCALE, fixture_grid

GOLDEN = Path(__file__).parent / "golden"


def _build(runs_root, tmp_path, published_root, scale=SCALE, **kw):
    kw.setdefault("expected", fixture_grid())
    return build_report(EXPERIMENT, scale, runs_root, tmp_path / "results", command="bench-report fixture --scale quick",
                        report_date="2026-01-02", published_root=published_root, **kw)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_report_matches_golden(runs_root, tmp_path, published_root, fixture_tables):
    result = _build(runs_root, tmp_path, published_root)
    _check_golden("fixture_report.md", result.markdown)
    _check_golden("fixture_final.md", (runs_root / EXPERIMENT / SCALE / "report" / "final.md").read_text())


def test_report_files_and_exclusions(runs_root, tmp_path, published_root, fixture_tables):
    result = _build(runs_root, tmp_path, published_root)
    out = runs_root / EXPERIMENT / SCALE / "report"
    assert result.out_dir == out and not (tmp_path / "results").exists()
    names = sorted(p.name for p in result.paths)
    # one curves figure for the three tables of train/error; a performance profile for the spread table
    assert names == ["curves_train_error.png", "final.csv", "final.md", "final_iqm.csv", "final_iqm.md",
                     "profile_train_error.png", "report.md", "steps.csv", "steps.md"]
    assert all((out / n).stat().st_size > 0 for n in names)
    assert (out / "curves_train_error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = result.markdown
    assert "Runs not included (5):" in md
    for reason in ("failed: RuntimeError: boom", "unreadable summary.json", "no summary.json",
                   "incomplete (status running", "nan: non-finite value at step 2"):
        assert reason in md
    assert "NaN (1/3 seeds)" in md
    assert "-old" not in md  # the superseded duplicate is neither used nor listed
    assert "6 of 10 expected included, 5 records not included, 1 superseded" in md
    assert "- missing: 4 of 10 runs: ppo-bandit env.vocab=2, ppo-bandit env.vocab=4, grpo-bandit env.vocab=2," in md
    assert "not a grid point of fixture/quick (algorithm.name=dg, env.vocab=8); failed: RuntimeError: boom" in md


def test_scale_is_inferred_when_unique(runs_root, tmp_path, published_root, fixture_tables):
    assert _build(runs_root, tmp_path, published_root, scale=None).scale == SCALE
    (runs_root / EXPERIMENT / "paper" / "x").mkdir(parents=True)
    (runs_root / EXPERIMENT / "paper" / "x" / "config.yaml").write_text("experiment: fixture\nscale: paper\n")
    with pytest.raises(ReportError, match="several scales"):
        _build(runs_root, tmp_path, published_root, scale=None)


def test_no_runs_error_names_directory_and_command(tmp_path):
    with pytest.raises(NoRunsError) as err:
        build_report("table1_vocab", "quick", tmp_path / "runs", tmp_path / "results")
    message = str(err.value)
    assert str(tmp_path / "runs" / "table1_vocab" / "quick") in message
    assert "bench experiment=table1_vocab" in message
