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


@pytest.mark.parametrize("arm_score", ["batch_average", "arm_mean"])
def test_single_context_tpo_direction_is_q_minus_pi(arm_score):
    s = settings("experiment=tabular_single", "algorithm=tpo", "run.seeds=3", f"env.tpo_arm_score={arm_score}")
    b = build(s)
    ro, _ = b.task.rollout(0)
    losses, _ = b.loss(b.task.batch_fields(ro))
    losses.sum().backward()
    total = torch.zeros(3, 100).scatter_add_(1, ro.arms, ro.adv)
    count = torch.zeros(3, 100).scatter_add_(1, ro.arms, torch.ones_like(ro.adv))
    u_raw = total / 100 if arm_score == "batch_average" else total / count.clamp_min(1)
    c = u_raw - u_raw.mean(-1, keepdim=True)
    u = c / c.std(-1, unbiased=False, keepdim=True)
    q = torch.softmax(ro.logp_old + u, -1)
    assert torch.allclose(-b.task.z.grad, q - ro.logp_old.exp(), atol=1e-6)


def test_tpo_arm_scores_hand_example():
    """B = 4 samples over A = 5 arms: arms (0, 0, 0, 2), advantages R − 0.5 = (½, ½, ½, −½).

    batch average (reference code, default): s = (3·½, 0, −½, 0, 0)/4 = (3/8, 0, −1/8, 0, 0);
    mean over each arm's own samples:        s = (½, 0, −½, 0, 0).
    The standardised scores differ (the per-arm factor n_a/B survives standardisation), so the TPO
    directions q − π differ; at the uniform policy q = softmax(u)."""
    from bench.families.tabular import SingleRollout, arm_scores

    arms = torch.tensor([[0, 0, 0, 2]])
    adv = torch.tensor([[0.5, 0.5, 0.5, -0.5]])
    expected = {"batch_average": [3 / 8, 0, -1 / 8, 0, 0], "arm_mean": [0.5, 0, -0.5, 0, 0]}
    for kind, s_hand in expected.items():
        assert torch.allclose(arm_scores(arms, adv, 5, kind), torch.tensor([s_hand]))
        st = settings("experiment=tabular_single", "algorithm=tpo", "run.seeds=1", "env.n_arms=5",
                      "env.batch_size=4", f"env.tpo_arm_score={kind}")
        b = build(st)
        ro = SingleRollout(arms, adv, torch.full((1, 5), -torch.log(torch.tensor(5.0))))
        losses, _ = b.loss(b.task.batch_fields(ro))
        losses.sum().backward()
        s_t = torch.tensor(s_hand, dtype=torch.float64)
        c = s_t - s_t.mean()   # batch_average: c = (13, −2, −7, −2, −2)/40, std = √0.02875
        u = c / (c.pow(2).mean()).sqrt()
        g_hand = torch.softmax(u, -1) - 0.2
        assert torch.allclose(-b.task.z.grad[0].double(), g_hand, atol=1e-6), kind
    u_avg = torch.tensor([13, -2, -7, -2, -2]) / 40 / 0.02875 ** 0.5
    assert torch.allclose(u_avg[0], torch.tensor(1.91663), atol=1e-4)   # vs 1.58114 = √2.5 for arm_mean
    with pytest.raises(ValueError, match="env.tpo_arm_score='nope'; valid: batch_average, arm_mean"):
        arm_scores(arms, adv, 5, "nope")
    with pytest.raises(Exception, match="env.tpo_arm_score=.*nope.*batch_average.*arm_mean"):
        settings("experiment=tabular_single", "env.tpo_arm_score=nope")


def test_misalignment_near_convergence_exact_vs_reference_eps():
    """p₀ = 1 − ε, ε = 1e-8, the other two arms ε/2 each. Oracle g* = p₀(e₀ − π) = p₀ε·(1, −½, −½);
    g = ε·(1, −1, 0) moves arm 1's mass onto the correct arm.

    exact:     cos = (1 + ½)/(√2·√1.5) = √3/2            → 1 − cos = 1 − √3/2 ≈ 0.13397
    ref. form: cos = 1.5p₀ε² / √((2ε² + 1e-12)(1.5p₀²ε² + 1e-12)) ≈ 1.5e-16/1e-12 = 1.5e-4 → 1 − cos ≈ 0.99985
    (both squared norms, ~1e-16, are swamped by the 1e-12 inside the square roots)."""
    from bench.families.tabular import misalignment

    eps = 1e-8
    p0 = 1 - eps
    probs = torch.tensor([[p0, eps / 2, eps / 2]], dtype=torch.float64)
    g_star = tab.pg_direction(probs, 0)
    assert torch.allclose(g_star, p0 * eps * torch.tensor([[1.0, -0.5, -0.5]], dtype=torch.float64), rtol=1e-6)
    g = eps * torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    exact = 1 - 3 ** 0.5 / 2
    ref = 1 - 1.5 * p0 * eps**2 / ((2 * eps**2 + 1e-12) * (1.5 * p0**2 * eps**2 + 1e-12)) ** 0.5
    assert abs(float(misalignment(g, g_star)[0]) - exact) < 1e-6 and abs(exact - 0.13397) < 1e-5
    assert abs(float(misalignment(g, g_star, 1e-12)[0]) - ref) < 1e-9 and abs(ref - 0.99985) < 1e-5
    # far from convergence the two forms agree: the same vectors scaled up to norm ~1
    big = misalignment(g / eps, g_star / eps, 1e-12)
    assert abs(float(big[0]) - exact) < 1e-6


@pytest.mark.parametrize("env", ["tabular_single", "tabular_multi"])
def test_cosine_eps_reaches_the_logged_misalignment(env):
    from bench.families.tabular import misalignment

    logged = {}
    for eps in (0.0, 1e-12, 1e-2):
        s = settings(f"experiment={env}", "algorithm=pg", "run.seeds=2", f"env.cosine_eps={eps}")
        assert s.env.cosine_eps == eps
        b = build(s)
        ro, _ = b.task.rollout(0)
        losses, _ = b.loss(b.task.batch_fields(ro))
        losses.sum().backward()
        logged[eps] = b.task.grad_metrics(ro)["train/misalignment"]
        probs = ro.logp_old.exp() if env == "tabular_single" else ro.exp()
        oracle = tab.pg_direction(probs, 0) if env == "tabular_single" else tab.ce_direction(probs, 0)
        assert torch.allclose(logged[eps], misalignment(-b.task.z.grad, oracle, eps))
    assert torch.allclose(logged[0.0], logged[1e-12], atol=1e-5)   # norms ~1e-2 ≫ 1e-6: no visible change
    assert bool((logged[1e-2] > logged[0.0] + 1e-3).all())        # a large ε inflates 1 − cos
    with pytest.raises(Exception, match=r"env.cosine_eps=-1.0.*must be >= 0"):
        settings(f"experiment={env}", "env.cosine_eps=-1")


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
    # optim.lr=nan is now rejected before the run; a NaN reward baseline poisons the first loss instead
    cfg = compose(["experiment=tabular_single", "algorithm=pg", "env.reward_baseline=nan", "run.seeds=2", "run.steps=10",
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
