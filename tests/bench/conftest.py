"""Test settings: one torch thread (small CPU machines; deterministic timings); the shared
interrupt-and-rerun helper of the resume tests."""
import pytest
import torch

torch.set_num_threads(1)


def _rows(run_dir):
    """Metric rows of a run without the ``time/`` columns (wall-clock, never reproducible)."""
    from bench.records import read_metrics

    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(run_dir)]


@pytest.fixture
def interrupt_and_rerun(tmp_path, monkeypatch):
    """``run(overrides, experiment, task_cls, kill_step, occurrence=1, method="rollout")``: run ``overrides``
    straight through; again, killed (KeyboardInterrupt) the ``occurrence``-th time ``task_cls.<method>`` (the
    step's rollout, or ``sample`` in the offline family) reaches ``kill_step`` (a checkpoint must then exist); then rerun. Returns (rerun summary, interrupted run dir, rows of that
    run right after the kill, rows of the rerun, rows of the straight run)."""
    from bench.cli import compose
    from bench.run import execute

    def run(overrides, experiment, task_cls, kill_step, occurrence=1, method="rollout"):
        execute(compose([*overrides, f"run.root={tmp_path / 'straight'}"]))
        real, seen = getattr(task_cls, method), {"n": 0}

        def dying(self, step):
            if step == kill_step:
                seen["n"] += 1
                if seen["n"] == occurrence:
                    raise KeyboardInterrupt("simulated kill")
            return real(self, step)

        monkeypatch.setattr(task_cls, method, dying)
        with pytest.raises(KeyboardInterrupt):
            execute(compose([*overrides, f"run.root={tmp_path / 'interrupted'}"]))
        (run_dir,) = (tmp_path / "interrupted" / experiment / "quick").iterdir()
        assert (run_dir / "checkpoint.pt").exists(), "the kill left no checkpoint to resume from"
        killed = _rows(run_dir)
        monkeypatch.setattr(task_cls, method, real)
        summary = execute(compose([*overrides, f"run.root={tmp_path / 'interrupted'}"]))
        (straight,) = (tmp_path / "straight" / experiment / "quick").iterdir()
        return summary, run_dir, killed, _rows(run_dir), _rows(straight)

    return run
