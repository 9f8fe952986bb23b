"""A sweep killed with SIGKILL mid-run and rerun: nothing lost, nothing duplicated,
completed runs not recomputed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def interrupted_and_straight(tmp_path, monkeypatch, overrides, experiment, task_cls, kill_step):
    """Run ``overrides`` straight through, and again killed (KeyboardInterrupt) at ``kill_step``
    then rerun; return (rerun summary, metric rows of both runs without time/ columns)."""
    from bench.cli import compose
    from bench.records import read_metrics
    from bench.run import execute

    execute(compose([*overrides, f"run.root={tmp_path / 'straight'}"]))
    real = task_cls.rollout

    def dying(self, step):
        if step == kill_step:
            raise KeyboardInterrupt("simulated kill")
        return real(self, step)

    monkeypatch.setattr(task_cls, "rollout", dying)
    with pytest.raises(KeyboardInterrupt):
        execute(compose([*overrides, f"run.root={tmp_path / 'interrupted'}"]))
    (run,) = (tmp_path / "interrupted" / experiment / "quick").iterdir()
    assert (run / "checkpoint.pt").exists() and max(r["step"] for r in read_metrics(run)) == kill_step - 1
    monkeypatch.setattr(task_cls, "rollout", real)
    summary = execute(compose([*overrides, f"run.root={tmp_path / 'interrupted'}"]))
    assert not (run / "checkpoint.pt").exists()
    rows = [[{k: v for k, v in r.items() if not k.startswith("time/")}
             for r in read_metrics(next((tmp_path / name / experiment / "quick").iterdir()))]
            for name in ("interrupted", "straight")]
    return summary, rows


def test_checkpoint_resume_is_bitwise_identical(tmp_path, monkeypatch):
    """A tabular run interrupted at step 13 resumes from its step-9 checkpoint and ends
    with exactly the metrics of an uninterrupted run."""
    from bench.families import tabular

    base = ["experiment=tabular_single", "algorithm=dg", "run.seeds=3", "run.steps=20", "logger=none",
            "run.checkpoint_every=5"]
    summary, (resumed, straight) = interrupted_and_straight(tmp_path, monkeypatch, base, "tabular_single",
                                                            tabular.TabularSingleTask, 13)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 9
    assert resumed == straight


def test_checkpoint_resume_sequence_family_is_bitwise_identical(tmp_path, monkeypatch):
    """The generic checkpoint (stacked transformer weights, optimizer, random streams) resumes exactly."""
    from bench.families import sequence

    base = ["experiment=table3_terminal", "algorithm=tpo", "env.horizon=3", "env.batch_size=8", "env.k=4",
            "run.seeds=2", "run.steps=6", "run.log_every=1", "logger=none", "run.checkpoint_every=2",
            "hydra.sweeper.params={}"]
    summary, (resumed, straight) = interrupted_and_straight(tmp_path, monkeypatch, base, "table3_terminal",
                                                            sequence.SequenceTask, 4)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 3
    assert resumed == straight
