"""bench-perf runs a workload through the real code path and writes its table and JSON."""
from __future__ import annotations

import json

from bench import perf


def test_bench_perf_times_a_workload_with_overrides(tmp_path, capsys):
    assert perf.main(["--only", "terminal H=7 dg (1 seed)", "--repeats", "2", "--set", "run.autocast=bf16",
                      "--out", str(tmp_path)]) == 0
    # a subset of the workloads is written under its own name, never over the full table (perf-cpu.md)
    data = json.loads((tmp_path / "perf-cpu-autocast_bf16-only_terminal-H-7-dg--1-seed-.json").read_text())
    (res,) = data["results"]
    assert res["name"] == "terminal H=7 dg (1 seed)" and not res["skipped"], res
    assert res["repeats"] == 2 and 0 < res["min_s"] <= res["median_s"] <= res["max_s"]
    assert data["environment"]["overrides"] == ["run.autocast=bf16"] and data["environment"]["threads"] >= 1
    assert "terminal H=7 dg (1 seed)" in capsys.readouterr().out


def test_unbuildable_workload_is_reported_not_fatal(tmp_path):
    w = perf.Workload("broken", ("experiment=table3_terminal", "algorithm=nope"))
    res = perf.measure(w, repeats=1, device="cpu")
    assert res.skipped and res.median_s is None
