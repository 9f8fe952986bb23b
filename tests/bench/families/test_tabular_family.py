"""Tabular bandits through the real harness: the registry losses on the logit
table give the paper's directions, seeds are independent, values reach the loss."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.build import build
from bench.cli import compose
from bench.loop import LossRunner, train
from bench.records import read_metrics, read_run
from bench.run import execute
from bench.schema import to_settings
from envs import tabular as tab


def settings(*overrides):
    return to_settings(compose(["logger=none", *overrides]))


def one_direction(s):
    """Ascent direction g = −∇z loss of the first step, and the task."""
    b = build(s)
    ro, _ = b.task.rollout(0)
    losses, _ = b.loss(b.task.batch_fields(ro))
    losses.sum().backward()
    return -b.task.z.grad, b.task


@pytest.mark.parametrize("algorithm, beta", [
    ("ce", lambda p: torch.ones_like(p)),
    ("pg", lambda p: p),
    ("dg", lambda p: p / (1 + p)),
    ("grpo", lambda p: (p / (1 - p)).sqrt()),
    ("tpo", lambda p: p * (torch.exp(torch.tensor(10 / 3)) - 1) / (p * torch.exp(torch.tensor(10 / 3)) + 1 - p)),
])
def test_multi_context_exact_directions_match_closed_forms(algorithm, beta):
    """§2: every exact direction is β(p)(e_y − π) per context (same real losses, not a copy)."""
    s = settings("experiment=tabular_multi", f"algorithm={algorithm}", "run.seeds=2")
    g, task = one_direction(s)
    probs = torch.softmax(task.z.detach(), -1)
    p = probs[..., 0]
    expected = beta(p)[..., None] * tab.ce_direction(probs, 0)
    # the loss averages over the N contexts of a seed: compare up to that one global factor
    scale = (g * expected).sum() / (expected * expected).sum()
    assert torch.allclose(g, scale * expected, atol=1e-6 * float(expected.abs().max()))
    assert scale > 0


def test_single_context_tpo_direction_is_q_minus_pi():
    s = settings("experiment=tabular_single", "algorithm=tpo", "run.seeds=3")
    b = build(s)
    ro, _ = b.task.rollout(0)
    losses, _ = b.loss(b.task.batch_fields(ro))
    losses.sum().backward()
    u_raw = tab.per_arm_mean(ro.arms, ro.adv, 100)
    c = u_raw - u_raw.mean(-1, keepdim=True)
    u = c / c.std(-1, unbiased=False, keepdim=True)
    q = torch.softmax(ro.logp_old + u, -1)
    assert torch.allclose(-b.task.z.grad, q - ro.logp_old.exp(), atol=1e-6)


def test_seed_batching_equals_running_each_seed_alone():
    rows = {}
    for seeds, seed0 in ((3, 0), (1, 1)):
        s = settings("experiment=tabular_single", "algorithm=dg", f"run.seeds={seeds}", f"run.seed0={seed0}",
                     "run.steps=30")
        b = build(s)
        out = []
        train(b.task, b.loss, b.optimizer, steps=30, epochs=1, log_every=1,
              on_log=lambda step, m: out.append({k: v.clone() for k, v in m.items()}))
        rows[seed0] = out
    batched = torch.stack([r["train/error"][1] for r in rows[0]])
    alone = torch.stack([r["train/error"][0] for r in rows[1]])
    assert torch.allclose(batched, alone, atol=1e-6)


def test_distinctive_values_reach_loss_and_optimizer(monkeypatch):
    seen = {}
    s = settings("experiment=tabular_single", "algorithm=tpo", "algorithm.eta=0.123", "optim.lr=0.037",
                 "run.seeds=2")
    b = build(s)
    inner = b.loss.loss

    def spy(batch, params):
        seen["eta"] = params.eta
        return inner(batch, params)

    b.loss = dataclasses.replace(b.loss, loss=spy)
    train(b.task, b.loss, b.optimizer, steps=1, epochs=1, log_every=1, on_log=lambda *a: None)
    assert seen["eta"] == 0.123
    assert b.optimizer.param_groups[0]["lr"] == 0.037


@pytest.mark.parametrize("algorithm", ["pg", "dg", "tpo", "grpo", "ce", "ppo", "group_pg", "rloo", "grpo_nokl"])
def test_every_algorithm_runs_on_the_exact_bandit(tmp_path, algorithm):
    cfg = compose(["experiment=tabular_multi", f"algorithm={algorithm}", "run.seeds=2", "run.steps=20",
                   "logger=none", f"run.root={tmp_path}"])
    summary = execute(cfg)
    assert summary["status"] == "completed"
    (run,) = list((tmp_path / "tabular_multi" / "quick").iterdir())
    rows = [r for r in read_metrics(run) if r["seed"] == 0]
    first, last = rows[0]["train/error"], rows[-1]["train/error"]
    assert last < first, f"{algorithm} did not reduce the error"


def test_nan_stops_the_run_with_a_record(tmp_path):
    cfg = compose(["experiment=tabular_single", "algorithm=pg", "optim.lr=nan", "run.seeds=2", "run.steps=10",
                   "logger=none", f"run.root={tmp_path}"])
    summary = execute(cfg)
    assert summary["status"] == "nan" and "non-finite" in summary["error"]
    (run,) = list((tmp_path / "tabular_single" / "quick").iterdir())
    assert read_run(run).status == "nan" and summary["steps_done"] < 10


def test_completed_run_is_not_rerun(tmp_path):
    overrides = ["experiment=tabular_single", "algorithm=tpo", "run.seeds=2", "run.steps=5", "logger=none",
                 f"run.root={tmp_path}"]
    first = execute(compose(overrides))
    (run,) = list((tmp_path / "tabular_single" / "quick").iterdir())
    mtime = (run / "metrics.jsonl").stat().st_mtime_ns
    second = execute(compose(overrides + ["logger=wandb", "logger.mode=disabled"]))  # logging is not identity
    assert second["config_hash"] == first["config_hash"]
    assert (run / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_paper_claims_single_context_quick():
    """Fig. 2 claim at reduced seeds: TPO and DG end below PG and GRPO in error."""
    final = {}
    for algorithm in ("pg", "dg", "tpo", "grpo"):
        s = settings("experiment=tabular_single", f"algorithm={algorithm}", "run.seeds=10")
        b = build(s)
        out = []
        train(b.task, b.loss, b.optimizer, steps=s.run.steps, epochs=s.algorithm.epochs, log_every=s.run.steps,
              on_log=lambda step, m: out.append(m["train/error"].mean().item()))
        final[algorithm] = out[-1]
    assert max(final["tpo"], final["dg"]) < min(final["pg"], final["grpo"]), final
