"""Records -> tidy frame: damaged runs never break collection and are reported, duplicates dedupe."""
from __future__ import annotations

import pandas as pd

from bench import metrics as M
from bench.report.collect import collect, flatten

from report_fixtures import EXPERIMENT, SCALE, error_value


def _run(runs: pd.DataFrame, algo: str, vocab: int, **extra) -> pd.DataFrame:
    sel = runs[(runs["algorithm.name"] == algo) & (runs["env.vocab"] == vocab)]
    for k, v in extra.items():
        sel = sel[sel[k] == v]
    return sel


def test_statuses_and_reasons(runs_root):
    runs = collect(runs_root, EXPERIMENT, SCALE).runs
    assert len(runs) == 12
    assert _run(runs, "ppo", 2)["status"].item() == "nan"
    assert _run(runs, "ppo", 2)["nan_seeds"].item() == 1
    assert _run(runs, "dg", 8)["reason"].item() == "failed: RuntimeError: boom"
    assert _run(runs, "grpo", 2)["reason"].item().startswith("incomplete (status running, 1 steps done")
    assert _run(runs, "grpo", 4)["reason"].item().startswith("no summary.json")
    assert _run(runs, "pg", 8)["reason"].item() == "unreadable summary.json"
    assert runs["included"].sum() == 6


def test_duplicate_config_keeps_most_recent_completed(runs_root):
    data = collect(runs_root, EXPERIMENT, SCALE)
    tpo2 = _run(data.runs, "tpo", 2)
    assert len(tpo2) == 2 and tpo2["config_hash"].nunique() == 1
    kept = tpo2[~tpo2["superseded"]]
    assert not kept["run_id"].item().endswith("-old")
    assert not any(str(r).endswith("-old") for r in data.tidy["run_id"].unique())
    final = data.tidy[(data.tidy["run_id"] == kept["run_id"].item()) & (data.tidy["step"] == 3)
                      & (data.tidy["metric"] == M.ERROR) & (data.tidy["seed"] == 0)]
    assert final["value"].item() == error_value("tpo", 2, 3, 0)


def test_completed_duplicate_beats_newer_failure(runs_root):
    from report_fixtures import make_config, pinned_provenance, run_dir
    from bench.records import RunWriter
    import pytest
    config = make_config("dg", 2)
    path = run_dir(runs_root, config, "-rerun")
    with pytest.raises(ValueError):
        with RunWriter(path, config, [0], extra_provenance=pinned_provenance("2027-01-01T00:00:00+0000")):
            raise ValueError("later crash")
    runs = collect(runs_root, EXPERIMENT, SCALE).runs
    dg2 = _run(runs, "dg", 2)
    assert dg2.loc[~dg2["superseded"], "status"].item() == "completed"


def test_tidy_layout_and_torn_line(runs_root):
    tidy = collect(runs_root, EXPERIMENT, SCALE).tidy
    for col in ["run_id", "experiment", "scale", "status", "seed", "step", "metric", "value",
                "algorithm.name", "env.vocab", "optim.lr", "run.seeds", "model.dims"]:
        assert col in tidy.columns
    killed = tidy[(tidy["algorithm.name"] == "grpo") & (tidy["env.vocab"] == 2)]
    assert killed["step"].tolist() == [0]  # the torn second line is skipped
    assert set(tidy["metric"].unique()) == {M.ERROR, M.REWARD}
    nan_rows = tidy[(tidy["status"] == "nan") & tidy["value"].isna()]
    assert nan_rows[["seed", "step"]].values.tolist() == [[1, 2]]


def test_metric_filter(runs_root):
    tidy = collect(runs_root, EXPERIMENT, SCALE, metrics=[M.REWARD]).tidy
    assert set(tidy["metric"].unique()) == {M.REWARD}


def test_empty_root(tmp_path):
    data = collect(tmp_path / "nothing", "x", "quick")
    assert data.runs.empty and data.tidy.empty


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": "[1, 2]", "e": None}
