"""``bench-report --fidelity``: one table of every experiment's claims and published numbers at one scale.

Regenerate the golden file after an intended change with ``UPDATE_GOLDEN=1 pytest tests/bench/report``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from bench.report import ReportError, cli
from bench.report import fidelity as F

from report_fixtures import EXPERIMENT, SCALE, fixture_grid

GOLDEN = Path(__file__).parent / "golden"


def _fidelity(runs_root, tmp_path, published_root, **kw):
    kw.setdefault("experiments", [EXPERIMENT, "table1_vocab"])
    kw.setdefault("expected", {EXPERIMENT: fixture_grid()})
    return F.build_fidelity(SCALE, runs_root, tmp_path / "results", command="bench-report --fidelity --scale quick",
                            report_date="2026-01-02", published_root=published_root, **kw)


def test_fidelity_table_matches_golden(runs_root, tmp_path, published_root, fixture_tables):
    result = _fidelity(runs_root, tmp_path, published_root)
    path = GOLDEN / "fixture_fidelity.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(result.markdown, encoding="utf-8")
    assert result.markdown == path.read_text(encoding="utf-8")


def test_fidelity_rows_verdicts_and_files(runs_root, tmp_path, published_root, fixture_tables):
    result = _fidelity(runs_root, tmp_path, published_root)
    frame = result.frame
    claims = frame[frame["kind"] == "claim"]
    assert list(zip(claims["item"], claims["verdict"])) == [
        ("tpo_below_dg_pg", "holds"), ("pg_below_tpo", "fails"), ("tpo_lowest", "missing"),
        ("tpo_first", "holds"), ("v8", "missing")]
    cells = frame[frame["kind"] == "cell"].set_index(["table", "method", "setting"])
    assert cells.loc[("final", "tpo", "V=2"), ["published", "ours", "verdict"]].tolist() == [
        "0.50%", "0.50 ± 0.06 (n=3)", "holds"]
    assert cells.loc[("final", "pg", "V=2"), ["published", "verdict", "detail"]].tolist() == [
        "− never reached (>95%)", "fails", "ours better than the paper"]
    assert cells.loc[("steps", "tpo", "V=2"), ["published", "ours", "verdict"]].tolist() == ["2", "3 (n=3)", "fails"]
    assert cells.loc[("steps", "dg", "V=2"), ["published", "ours", "verdict"]].tolist() == ["− never reached",
                                                                                           "− (n=3)", "holds"]
    # a published setting that is not a point of this scale's grid (the fixture has no V = 16)
    assert cells.loc[("final", "tpo", "V=16"), ["published", "ours", "verdict", "detail"]].tolist() == [
        "0.30%", "", "missing", "not a point of the quick grid"]
    # every row of the fixture names the runs' commit; the experiment without records is one row
    assert set(frame.loc[frame["experiment"] == EXPERIMENT, "commit"]) == {"0123456789ab"}
    no_runs = frame[frame["experiment"] == "table1_vocab"]
    assert no_runs[["kind", "verdict"]].values.tolist() == [["experiment", "no runs"]]
    # claims 2 holds, 1 fails, 2 missing; published cells per table (final, steps, final_iqm): 1 holds, 2 fails,
    # and V = 16 missing in the two final-error tables
    assert result.counts == {"holds": 5, "fails": 7, "not enough seeds": 0, "missing": 4, "no runs": 1,
                             "report failed": 0}
    assert "- verdicts: 5 holds, 7 fails, 4 missing, 1 no runs" in result.markdown
    # written beside the records, never under results/ without publish
    out = runs_root / "fidelity" / SCALE
    assert result.out_dir == out and sorted(p.name for p in result.paths) == ["fidelity.csv", "fidelity.md"]
    assert (out / "fidelity.md").read_text() == result.markdown
    assert (out / "reports" / EXPERIMENT / "report.md").exists()
    assert not (tmp_path / "results").exists()
    back = pd.read_csv(out / "fidelity.csv", keep_default_na=False)
    assert list(back.columns) == list(F.FIDELITY_COLUMNS) and len(back) == len(frame)


@pytest.mark.parametrize("cell, verdict", [
    ({"verdict": "✓", "missing": False}, ("holds", "agrees")),
    ({"verdict": "worse", "missing": False}, ("fails", "ours worse than the paper")),
    ({"verdict": "✓", "missing": False, "n": 1}, ("not enough seeds", "fewer than 2 seeds (one seed reads ✓)")),
    ({"verdict": "n/a", "missing": True}, ("missing", "no completed run")),
])
def test_published_cell_verdicts(cell, verdict):
    from bench.report.api import _cell_verdict
    assert _cell_verdict(pd.Series(cell), cell.get("n", 3)) == verdict


def test_publish_writes_only_the_fidelity_table_under_results(runs_root, tmp_path, published_root, fixture_tables):
    result = _fidelity(runs_root, tmp_path, published_root, publish=True)
    results = tmp_path / "results"
    assert result.published_dir == results / "fidelity" / SCALE
    assert sorted(str(p.relative_to(results)) for p in results.rglob("*") if p.is_file()) == [
        "fidelity/quick/fidelity.csv", "fidelity/quick/fidelity.md"]
    assert (results / "fidelity" / SCALE / "fidelity.md").read_text() == result.markdown


def test_one_failing_report_does_not_hide_the_others(runs_root, tmp_path, published_root, fixture_tables,
                                                      monkeypatch):
    real = F.build_report

    def flaky(name, *args, **kw):
        if name == "second":
            raise KeyError("boom")
        return real(name, *args, **kw)

    (runs_root / "second" / SCALE / "x").mkdir(parents=True)
    (runs_root / "second" / SCALE / "x" / "config.yaml").write_text("experiment: second\nscale: quick\n")
    monkeypatch.setattr(F, "build_report", flaky)
    result = _fidelity(runs_root, tmp_path, published_root, experiments=[EXPERIMENT, "second"])
    failed = result.frame[result.frame["experiment"] == "second"]
    assert failed["verdict"].tolist() == ["report failed"]
    assert failed["detail"].iloc[0].startswith("KeyError: 'boom' (test_fidelity.py:")
    assert (result.frame["experiment"] == EXPERIMENT).sum() > 1


def test_half_written_records_only(tmp_path, published_root, fixture_tables):
    """An experiment whose only records are killed or torn still gets its rows (all missing), no error."""
    from report_fixtures import write_config_only, write_killed
    root = tmp_path / "runs"
    write_killed(root)
    write_config_only(root)
    result = F.build_fidelity(SCALE, root, tmp_path / "results", experiments=[EXPERIMENT],
                              expected={EXPERIMENT: fixture_grid()}, published_root=published_root)
    frame = result.frame
    assert set(frame["verdict"]) == {"missing"} and (frame["kind"] == "claim").sum() == 5


def test_scale_is_the_only_one_with_runs(runs_root, tmp_path):
    assert F.fidelity_scale(runs_root, [EXPERIMENT], None) == SCALE
    assert F.fidelity_scale(tmp_path / "empty", [EXPERIMENT], None) == "quick"
    (runs_root / EXPERIMENT / "paper" / "x").mkdir(parents=True)
    (runs_root / EXPERIMENT / "paper" / "x" / "config.yaml").write_text("experiment: fixture\nscale: paper\n")
    with pytest.raises(ReportError, match=r"several scales \(paper, quick\)"):
        F.fidelity_scale(runs_root, [EXPERIMENT], None)


def test_cli_fidelity(runs_root, tmp_path, published_root, fixture_tables, monkeypatch, capsys):
    monkeypatch.setattr("bench.report.published.PUBLISHED_DIR", published_root)
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / f"{EXPERIMENT}.yaml").write_text("x: 1\n")
    (conf / "experiment" / "zeta.yaml").write_text("x: 1\n")
    results = tmp_path / "res"
    rc = cli.main(["--fidelity", "--runs", str(runs_root), "--results", str(results), "--conf", str(conf)])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("# Fidelity to the paper (quick scale)")
    assert f"- command: `bench-report --fidelity --runs {runs_root}" in out
    assert "| zeta " in out and "no runs" in out
    assert (runs_root / "fidelity" / SCALE / "fidelity.md").read_text() == out and not results.exists()
    assert cli.main(["--fidelity", "--runs", str(runs_root), "--results", str(results), "--conf", str(conf),
                     "--publish"]) == 0
    assert (results / "fidelity" / SCALE / "fidelity.csv").exists()
    assert cli.main(["--fidelity", "tabular_multi", "--runs", str(runs_root)]) == 2
    assert capsys.readouterr().err.strip().endswith("--fidelity covers every experiment; drop an experiment name")


def test_a_published_reading_the_runs_do_not_reach_is_missing_not_off_grid(tmp_path):
    """diagnostics_sparse's error at episode 400 from 60-step records (the quick scale): no value, on the grid."""
    from bench import metrics as M
    from bench.records import RunWriter
    root = tmp_path / "runs"
    for algo in ("tpo", "tpo_1ep"):
        config = {"experiment": "diagnostics_sparse", "scale": "quick", "algorithm": {"name": algo},
                  "env": {"name": "reversal"}, "run": {"seeds": 2, "steps": 60}}
        with RunWriter(root / "diagnostics_sparse" / "quick" / algo, config, [0, 1]) as rec:
            rec.log({"step": step, "seed": s, M.ERROR: 0.5 / (step + 1)} for step in (0, 59) for s in (0, 1))
    result = F.build_fidelity("quick", root, tmp_path / "results", experiments=["diagnostics_sparse"], expected={
        "diagnostics_sparse": []})
    frame = result.frame
    rows = frame[(frame["kind"] == "cell") & (frame["table"] == "error_at_400")].set_index("method")
    assert rows.loc["tpo", ["published", "verdict", "detail"]].tolist() == ["0.20%", "missing", "no value in its runs"]
    assert frame.loc[frame["item"] == "tpo_4ep_ahead_at_400", "verdict"].tolist() == ["missing"]
    # the grid has no GRPO run here: its published plateau is off this (empty) grid
    assert frame.loc[frame["item"] == "final_error: GRPO", "detail"].tolist() == ["not a point of the quick grid"]


def test_a_published_cell_at_another_horizon_is_missing_not_compared(tmp_path):
    """The paper's §4 numbers are at H = 8; records at H = 5 are shown but not judged against them."""
    from bench import metrics as M
    from bench.records import RunWriter
    root = tmp_path / "runs"
    config = {"experiment": "diagnostics_sparse", "scale": "quick", "algorithm": {"name": "grpo"},
              "env": {"name": "reversal", "horizon": 5}, "run": {"seeds": 2, "steps": 60}}
    with RunWriter(root / "diagnostics_sparse" / "quick" / "grpo", config, [0, 1]) as rec:
        rec.log({"step": step, "seed": s, M.ERROR: 0.5 / (step + 1)} for step in (0, 59) for s in (0, 1))
    result = F.build_fidelity("quick", root, tmp_path / "results", experiments=["diagnostics_sparse"], expected={
        "diagnostics_sparse": []})
    frame = result.frame
    row = frame[frame["item"] == "final_error: GRPO"].iloc[0]
    assert row["published"] == "12.70%" and row["verdict"] == "missing"
    assert row["detail"].startswith("not the paper's setting: Paper values at `env.horizon` = 8")
