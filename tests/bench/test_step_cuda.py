"""One training step of each family on CUDA makes no host↔device sync (needs a GPU).

The loop's only syncs are at the logging cadence (``run.log_every``): this test runs the
body of :func:`bench.loop.train` — rollout, E epochs of loss/backward/optimizer step,
the first-epoch gradient norm — under ``torch.cuda.set_sync_debug_mode("error")``.
"""
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CASES = {
    "tabular_single": ["experiment=tabular_single", "algorithm=tpo", "run.seeds=4"],
    "tabular_multi": ["experiment=tabular_multi", "algorithm=tpo", "run.seeds=4"],
    "sequence_grouped": ["experiment=table3_terminal", "algorithm=tpo", "env.horizon=4", "run.seeds=2",
                         "hydra.sweeper.params={}"],
    "sequence_token": ["experiment=table1_vocab", "algorithm=tpo_token", "env.horizon=4", "run.seeds=2",
                       "hydra.sweeper.params={}"],
    "sequence_single_value": ["experiment=table3_terminal", "algorithm=dro_v", "env.horizon=4", "run.seeds=2",
                              "hydra.sweeper.params={}"],
}


@pytest.mark.parametrize("autocast", ["none", "bf16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_step_has_no_host_sync(case, autocast):
    from bench.build import build
    from bench.cli import compose
    from bench.loop import per_seed_grad_norm
    from bench.precision import configure, epoch_loss
    from bench.schema import to_settings

    settings = to_settings(compose([*CASES[case], "run.device=cuda", f"run.autocast={autocast}", "logger=none"]))
    b = build(settings)
    precision = configure(settings.run)
    forward = epoch_loss(b.task, b.loss, precision)

    def step(i):
        with precision.autocast_context():
            rollout, logged = b.task.rollout(i)
        for epoch in range(b.epochs):
            losses, _ = forward(rollout)
            b.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            if epoch == 0:
                logged["grad_norm"] = per_seed_grad_norm(b.task.parameters())
            b.optimizer.step()
        return logged

    step(0)                                   # warm-up: lazy CUDA initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        logged = step(1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(v.device.type == "cuda" for v in logged.values())
    assert all(bool(torch.isfinite(v).all()) for v in logged.values())
