"""The W&B mirror: offline by default, naming contract, failures never kill a run."""
from __future__ import annotations

import pytest

from bench.cli import compose
from bench.run import execute


def run(tmp_path, *extra):
    return execute(compose(["experiment=tabular_single", "algorithm=tpo", "run.seeds=3", "run.steps=4",
                            f"run.root={tmp_path}", f"logger.dir={tmp_path}/wb", *extra]))


def test_offline_runs_follow_the_naming_contract(tmp_path):
    pytest.importorskip("wandb")
    summary = run(tmp_path, "logger.max_seed_runs=2", "logger.project=proj")
    assert summary["status"] == "completed"
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, "one W&B run per seed, capped by max_seed_runs"
    for d in runs:
        assert list(d.glob("*.wandb")), f"no offline run file in {d}"


def test_wandb_failure_warns_and_the_run_completes(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")

    def broken_init(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(RuntimeWarning, match="W&B mirror disabled"):
        summary = run(tmp_path)
    assert summary["status"] == "completed"


def test_wandb_init_arguments(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    calls = []

    class FakeRun:
        def __init__(self):
            self.summary = {}
            self.logged = []

        def log(self, data, step):
            self.logged.append((step, data))

        def finish(self, exit_code=0):
            self.exit_code = exit_code

    def fake_init(**kwargs):
        calls.append(kwargs)
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    run(tmp_path, "logger.project=my-proj", "logger.max_seed_runs=-1")
    assert [c["name"] for c in calls] == ["tpo-tabular_single-s0", "tpo-tabular_single-s1", "tpo-tabular_single-s2"]
    assert {c["group"] for c in calls} == {"tabular_single"} and {c["job_type"] for c in calls} == {"tpo"}
    assert {c["project"] for c in calls} == {"my-proj"}
    assert calls[0]["config"]["algorithm"]["eta"] == 1.0 and calls[1]["config"]["seed"] == 1
    assert calls[0]["mode"] == "offline"
    assert {c["dir"] for c in calls} == {f"{tmp_path}/wb"}


def test_wandb_files_go_beside_the_records_of_run_root(tmp_path, monkeypatch):
    """Without logger.dir, W&B writes under <run.root>/wandb, not under the working directory's runs/."""
    wandb = pytest.importorskip("wandb")
    calls = []
    def init(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("stop after init")

    monkeypatch.setattr(wandb, "init", init)
    with pytest.warns(RuntimeWarning, match="W&B mirror disabled"):
        execute(compose(["experiment=tabular_single", "algorithm=tpo", "run.seeds=1", "run.steps=2",
                         f"run.root={tmp_path}/elsewhere"]))
    assert calls and calls[0]["dir"] == f"{tmp_path}/elsewhere/wandb"


def test_a_run_in_seed_chunks_logs_every_seed_without_warning(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    runs = {}

    class FakeRun:
        def __init__(self, name):
            self.summary, self.logged, runs[name] = {}, [], self

        def log(self, data, step):
            self.logged.append(step)

        def finish(self, exit_code=0):
            pass

    monkeypatch.setattr(wandb, "init", lambda **kw: FakeRun(kw["name"]))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        summary = run(tmp_path, "logger.max_seed_runs=-1", "run.seeds_per_batch=1")
    assert summary["status"] == "completed"
    assert sorted(runs) == [f"tpo-tabular_single-s{s}" for s in range(3)]
    assert all(r.logged and r.logged[-1] == 3 for r in runs.values())   # every seed reached the last step
