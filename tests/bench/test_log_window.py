"""bench.loop.LogWindow: time/step_s is the mean wall time per step of the window, minus excluded spans."""
from __future__ import annotations

import torch

from bench import loop
from bench import metrics as M


def test_step_time_excludes_evaluation_time(monkeypatch):
    clock = iter([0.0, 30.0])   # window start; the window (steps 0 and 1) ends at 30 s
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(clock))
    window = loop.LogWindow(n_seeds=2, steps=2, log_every=2)
    logs = []
    window.end_step(0, {}, lambda s, m: logs.append((s, m)))
    window.exclude(6.0)               # an evaluation of 6 s inside the window
    window.end_step(1, {}, lambda s, m: logs.append((s, m)))
    (step, metrics), = logs
    assert step == 1
    torch.testing.assert_close(metrics[M.STEP_TIME], torch.full((2,), (30.0 - 6.0) / 2))
