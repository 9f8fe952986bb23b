"""Run records round-trip, and every way a run can end leaves a readable record."""
from __future__ import annotations

import json

import pytest

from bench.records import (CONFIG, METRICS, SUMMARY, RunWriter, config_hash, find_runs, read_metrics, read_run)

CFG = {"algorithm": {"name": "tpo", "eta": 1.0}, "env": {"name": "tabular_single"}, "run": {"seeds": 2}}


def test_round_trip(tmp_path):
    with RunWriter(tmp_path / "r", CFG, seeds=[0, 1]) as rec:
        assert read_run(tmp_path / "r").status == "running"
        rec.log([{"step": 0, "seed": 0, "train/error": 0.5}, {"step": 0, "seed": 1, "train/error": 0.25}])
        rec.progress(1, {"train/error": 0.375})
    r = read_run(tmp_path / "r")
    assert r.config == CFG and r.status == "completed"
    assert r.summary["final"] == {"train/error": 0.375} and r.summary["seeds"] == [0, 1]
    assert r.summary["config_hash"] == config_hash(CFG)
    assert [m["train/error"] for m in read_metrics(tmp_path / "r")] == [0.5, 0.25]
    assert {"git_sha", "git_dirty", "versions", "device", "host"} <= set(r.provenance)


def test_exception_marks_failed_with_message(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path / "r", CFG, seeds=[0]):
            raise RuntimeError("boom")
    r = read_run(tmp_path / "r")
    assert r.status == "failed" and "boom" in r.summary["error"]


def test_nan_values_and_nan_status(tmp_path):
    with RunWriter(tmp_path / "r", CFG, seeds=[0]) as rec:
        rec.log([{"step": 0, "seed": 0, "loss/total": float("nan")}])
        rec.mark_nan(0, "loss/total")
    r = read_run(tmp_path / "r")
    assert r.status == "nan" and "step 0" in r.summary["error"]
    assert read_metrics(tmp_path / "r")[0]["loss/total"] is None  # valid JSON, not NaN


def test_killed_run_is_recognisably_incomplete(tmp_path):
    d = tmp_path / "r"
    rec = RunWriter(d, CFG, seeds=[0]).__enter__()
    rec.log([{"step": 0, "seed": 0, "train/error": 0.5}])
    with open(d / METRICS, "a") as fh:  # torn line as left by SIGKILL mid-write
        fh.write('{"step": 1, "seed": 0, "train/err')
    r = read_run(d)
    assert r.status == "running"
    assert len(read_metrics(d)) == 1


@pytest.mark.parametrize("damage", ["no_summary", "corrupt_summary", "bad_status", "no_config", "corrupt_config"])
def test_damaged_records_never_raise(tmp_path, damage):
    d = tmp_path / "r"
    with RunWriter(d, CFG, seeds=[0]) as rec:
        rec.log([{"step": 0, "seed": 0, "x": 1.0}])
    if damage == "no_summary":
        (d / SUMMARY).unlink()
    elif damage == "corrupt_summary":
        (d / SUMMARY).write_text('{"status": "compl')
    elif damage == "bad_status":
        (d / SUMMARY).write_text(json.dumps({"status": "weird"}))
    elif damage == "no_config":
        (d / CONFIG).unlink()
    else:
        (d / CONFIG).write_text("algorithm: [unclosed")
    r = read_run(d)
    if damage in ("no_config", "corrupt_config"):
        assert r is None
    else:
        assert r.status == "running"


def test_rerun_replaces_incomplete_metrics(tmp_path):
    d = tmp_path / "r"
    with RunWriter(d, CFG, seeds=[0]) as rec:
        rec.log([{"step": 0, "seed": 0, "x": 1.0}])
    with RunWriter(d, CFG, seeds=[0]) as rec:
        rec.log([{"step": 0, "seed": 0, "x": 2.0}])
    assert [m["x"] for m in read_metrics(d)] == [2.0]


def test_find_runs_skips_hidden_dirs(tmp_path):
    for name in ("a", "b", ".hidden/c"):
        with RunWriter(tmp_path / name, CFG, seeds=[0]):
            pass
    assert [p.name for p in find_runs(tmp_path)] == ["a", "b"]


def test_config_hash_is_order_independent():
    assert config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == config_hash({"b": {"d": 3, "c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({})) == 12 and config_hash({}) == config_hash({})
