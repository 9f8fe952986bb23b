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


def test_unlogged_steps_skip_metrics_without_changing_the_run():
    """A task that logs on the loop's cadence skips diagnostics on the other steps: the logged rows and the final
    parameters equal those of a run that measures every step."""
    from bench.build import build
    from bench.cli import compose
    from bench.schema import to_settings

    rows, tables = {}, {}
    for every in (1, 4):
        s = to_settings(compose(["experiment=tabular_multi", "algorithm=tpo", "run.seeds=2", "logger=none"]))
        b = build(s)
        assert b.task.logs_on_cadence
        got = {}
        loop.train(b.task, b.loss, b.optimizer, steps=10, epochs=b.epochs, log_every=every,
                   on_log=lambda step, m: got.__setitem__(step, {k: v.clone() for k, v in m.items()}))
        rows[every], tables[every] = got, b.task.z.detach().clone()
    assert sorted(rows[4]) == [3, 7, 9]
    assert torch.equal(tables[1], tables[4])
    for step, m in rows[4].items():
        assert M.diag("q_success") in m and M.GRAD_NORM in m and M.MISALIGNMENT in m
        assert set(m) == set(rows[1][step])
        for k, v in m.items():
            if k != M.STEP_TIME:
                assert torch.equal(v, rows[1][step][k]), k
