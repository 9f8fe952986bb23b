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


def test_table3_projection_sums_every_cell_linear_in_horizon():
    cells = [w.name for w in perf.WORKLOADS if w.name.startswith("table3 ")]
    assert len(cells) == len(perf.TABLE3_ALGORITHMS) * len(perf.TABLE3_MATCHING) * 2
    # s/step = 1 at H=7 and 4 at H=10 for every cell: 1 + 2 + 3 + 4 = 10 step-seconds per 2,000-step cell
    results = [perf.Result(n, "s/step", median_s=1.0 if "H=7" in n else 4.0) for n in cells]
    text = perf.table3_projection(results)
    minutes = len(cells) / 2 * 10 * perf.TABLE3_STEPS / 60
    assert f"**{minutes:.1f} min**" in text
    assert perf.table3_projection(results[1:]) is None          # one cell missing: no projection
    assert perf.table3_projection([]) is None


def test_profile_writes_operator_counts_per_step(tmp_path):
    assert perf.main(["--profile", "--only", "terminal H=7 dg (1 seed)", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("profile-cpu-*.txt")
    text = path.read_text()
    assert text.startswith("# terminal H=7 dg (1 seed) (cpu)") and "aten operator calls per step" in text
    assert "aten::" in text


def test_only_matching_nothing_is_one_clear_line(tmp_path, capsys):
    assert perf.main(["--only", "nosuchworkload", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no workload matches" in err[0] and not list(tmp_path.iterdir())
