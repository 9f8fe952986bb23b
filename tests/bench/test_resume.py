"""A sweep killed with SIGKILL mid-run and rerun: nothing lost, nothing duplicated,
completed runs not recomputed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.records import read_metrics, read_run

BIN = Path(sys.executable).parent
SWEEP = ["experiment=tabular_multi", "algorithm=ce,tpo,pg", "run.seeds=4", "run.steps=3000", "run.log_every=50",
         "logger=none"]


def _bench(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(BIN / "bench"), "-m", *args, f"run.root={tmp_path}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _records(tmp_path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for d in sorted((tmp_path / "tabular_multi" / "quick").glob("*")):
        rec = read_run(d)
        if rec is not None:
            out.setdefault(rec.config["algorithm"]["name"], []).append(rec)
    return out


def test_sigkill_mid_sweep_then_rerun(tmp_path):
    proc = _bench(tmp_path, *SWEEP)
    deadline = time.time() + 240
    # wait until the first run has completed and the second is in flight, then SIGKILL the whole sweep
    while time.time() < deadline:
        recs = _records(tmp_path)
        done = [r for rs in recs.values() for r in rs if r.status == "completed"]
        running = [r for rs in recs.values() for r in rs if r.status == "running" and read_metrics(r.path)]
        if done and running:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _records(tmp_path)
    statuses = sorted(r.status for rs in before.values() for r in rs)
    assert "completed" in statuses and "running" in statuses, statuses
    finished = {name: (rs[0].path / "metrics.jsonl").stat().st_mtime_ns
                for name, rs in before.items() if rs[0].status == "completed"}

    assert _bench(tmp_path, *SWEEP).wait(timeout=600) == 0
    after = _records(tmp_path)
    assert sorted(after) == ["ce", "pg", "tpo"]
    for name, rs in after.items():
        assert len(rs) == 1, f"{name}: duplicated record"
        assert rs[0].status == "completed"
        if name in finished:  # a completed run is skipped, not recomputed
            assert (rs[0].path / "metrics.jsonl").stat().st_mtime_ns == finished[name]
