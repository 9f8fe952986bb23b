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


def _resumed_from_checkpoint(interrupt_and_rerun, base, experiment, task_cls, kill_step):
    """Kill at ``kill_step``: the checkpoint is there and no row is past the kill; the rerun removes it."""
    summary, run, killed, resumed, straight = interrupt_and_rerun(base, experiment, task_cls, kill_step)
    assert max(r["step"] for r in killed) == kill_step - 1
    assert not (run / "checkpoint.pt").exists()
    return summary, (resumed, straight)


def test_checkpoint_resume_is_bitwise_identical(interrupt_and_rerun):
    """A tabular run interrupted at step 13 resumes from its step-9 checkpoint and ends
    with exactly the metrics of an uninterrupted run."""
    from bench.families import tabular

    base = ["experiment=tabular_single", "algorithm=dg", "run.seeds=3", "run.steps=20", "logger=none",
            "run.checkpoint_every=5"]
    summary, (resumed, straight) = _resumed_from_checkpoint(interrupt_and_rerun, base, "tabular_single",
                                                            tabular.TabularSingleTask, 13)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 9
    assert resumed == straight


def test_checkpoint_resume_sequence_family_is_bitwise_identical(interrupt_and_rerun):
    """The generic checkpoint (stacked transformer weights, optimizer, random streams) resumes exactly."""
    from bench.families import sequence

    base = ["experiment=table3_terminal", "algorithm=tpo", "env.horizon=3", "env.batch_size=8", "env.k=4",
            "run.seeds=2", "run.steps=6", "run.log_every=1", "logger=none", "run.checkpoint_every=2",
            "hydra.sweeper.params={}"]
    summary, (resumed, straight) = _resumed_from_checkpoint(interrupt_and_rerun, base, "table3_terminal",
                                                            sequence.SequenceTask, 4)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 3
    assert resumed == straight
