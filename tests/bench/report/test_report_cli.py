"""``bench-report`` CLI: --list, unknown names, missing runs, a successful report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.report import cli

from report_fixtures import EXPERIMENT

REPO = Path(bench.__file__).resolve().parent.parent


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "conf" / "experiment"
    d.mkdir(parents=True)
    (d / "table1_vocab.yaml").write_text("# @package _global_\n# Table 1: steps to 1% error vs vocabulary\nx: 1\n")
    (d / "zeta.yaml").write_text("x: 1\n")
    return tmp_path / "conf"


def test_list_prints_experiments_with_first_comment(conf, capsys):
    assert cli.main(["--list", "--conf", str(conf)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["table1_vocab", "zeta"]
    assert lines[0].split(None, 1)[1] == "Table 1: steps to 1% error vs vocabulary"  # Hydra directive skipped
    assert cli.describe(conf / "experiment" / "zeta.yaml") == ""


def test_unknown_experiment_exits_2_listing_valid(conf, tmp_path, capsys):
    assert cli.main(["nope", "--runs", str(tmp_path / "runs"), "--conf", str(conf)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown experiment 'nope'" in err and "table1_vocab" in err and "zeta" in err


def test_known_experiment_without_runs_exits_1(conf, tmp_path, capsys):
    assert cli.main(["zeta", "--runs", str(tmp_path / "runs"), "--conf", str(conf)]) == 1
    err = capsys.readouterr().err
    assert "bench experiment=zeta" in err and str(tmp_path / "runs" / "zeta") in err


def test_report_printed(runs_root, tmp_path, conf, fixture_tables, published_root, monkeypatch, capsys):
    monkeypatch.setattr("bench.report.published.PUBLISHED_DIR", published_root)
    rc = cli.main([EXPERIMENT, "--runs", str(runs_root), "--results", str(tmp_path / "res"), "--conf", str(conf)])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("# Report: fixture (quick)")
    assert f"- command: `bench-report {EXPERIMENT} --runs {runs_root}" in out
    assert (runs_root / EXPERIMENT / "quick" / "report" / "report.md").read_text() == out
    assert not (tmp_path / "res").exists()  # the committed tables are only written with --publish
    assert "| 0.50        | ✓" in out  # published comparison present


def test_subprocess_unknown_name(conf, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.report.cli", "nope", "--runs", str(tmp_path),
                           "--conf", str(conf)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench-report: unknown experiment 'nope'")
    assert proc.stdout == ""
