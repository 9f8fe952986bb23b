"""The tabular refinement family through the real harness (bench/families/refine.py): the registry losses
on the refiner table give their exact updates, values reach the batches, seeds are independent, every
method runs through the CLI path and the report builds its tables."""
from __future__ import annotations

import math

import pytest
import torch

from bench.build import build
from bench.cli import compose
from bench.loop import train
from bench.records import read_metrics, read_run
from bench.run import execute
from bench.schema import ConfigError, to_settings
from envs.refine import tabular as rt

SMALL = ["logger=none", "run.progress=false", "env=refine_tabular", "env.n_contexts=4", "env.n_actions=4",
         "env.batch_size=6", "env.k=3", "env.rm_steps=50", "env.annotations=200", "optim.lr=0.05"]
METHODS = ["tpo", "grpo", "rloo", "pg", "ppo", "reinforce_lb", "dro_v", "kto", "dg"]


def settings(*overrides: str):
    return to_settings(compose([*SMALL, *overrides]))


def first_grad(s):
    """The task and −∇z of the first epoch's loss (summed over seeds) at the initial refiner."""
    b = build(s)
    ro, _ = b.task.rollout(1)
    losses, _ = b.loss(b.task.batch_fields(ro))
    losses.sum().backward()
    return b.task, -b.task.z.grad


def test_exact_pg_is_the_gradient_of_the_expected_proxy_reward():
    """candidates=all, constant baseline 0: the weighted PG loss is −Σ_x p(x) Σ_b π_θ(b|x) R_φ(s, b) in
    gradient, so −∇z loss = ∇z E[R_φ(S, A₂)] (autograd of the closed form)."""
    task, g = first_grad(settings("algorithm=pg", "algorithm.candidates=all", "algorithm.baseline=constant",
                                  "run.seeds=2", "env.init_std=0.5"))
    z = task.z.detach().clone().requires_grad_(True)
    value = (rt.state_probs(task.base_probs)[..., None] * torch.softmax(z, -1) * task.proxy[:, :, None, :]).sum()
    value.backward()
    assert torch.allclose(g, z.grad, atol=1e-7) and float(g.abs().max()) > 1e-3


def test_exact_tpo_direction_is_q_minus_pi_per_state():
    """candidates=all: at every state x the TPO step is (q − π)/G with q ∝ π_old·exp(u), u = standardised
    Δ_φ over the M refinements (the registry loss, unchanged)."""
    task, g = first_grad(settings("algorithm=tpo", "algorithm.candidates=all", "run.seeds=2", "env.init_std=0.5"))
    S, N, M, _ = g.shape
    logp = torch.log_softmax(task.z.detach(), -1)
    d = rt.deltas(task.proxy)
    c = d - d.mean(-1, keepdim=True)
    u = c / c.pow(2).mean(-1, keepdim=True).sqrt()
    q = torch.softmax(logp + u, -1)
    assert torch.allclose(g, (q - logp.exp()) / (N * M), atol=1e-7)


def test_sampled_batches_carry_the_settings():
    s = settings("algorithm=tpo", "run.seeds=2", "env.keep_candidate=true")
    b = build(s)
    ro, logged = b.task.rollout(1)
    f = b.task.batch_fields(ro)
    assert f["logp"].shape == (2, 6, 4, 1) and torch.equal(ro.a2[..., -1], ro.a1)   # K = 3 rewrites + A₁
    assert float(f["scores"][..., -1].abs().max()) == 0.0                          # Δ(A₁) = 0
    assert logged["diag/rollouts_per_step"].tolist() == [18.0, 18.0]
    pg = build(settings("algorithm=pg", "run.seeds=2"))
    ro, logged = pg.task.rollout(1)
    f = pg.task.batch_fields(ro)
    assert f["logp"].shape == (2, 18, 1) and logged["diag/rollouts_per_step"].tolist() == [18.0, 18.0]
    proxy = pg.task.proxy
    idx = torch.arange(2)[:, None]
    assert torch.equal(f["rewards"][..., 0], proxy[idx, ro.s, ro.a2[..., 0]])
    assert torch.equal(f["baseline"][..., 0], proxy[idx, ro.s, ro.a1])


@pytest.mark.parametrize("value_init", ["reward_model", "zero"])
def test_value_table_and_references(value_init):
    dro = build(settings("algorithm=dro_v", "algorithm.reference=initial", f"env.value_init={value_init}",
                         "env.reference=copy", "env.reference_copy_bias=0"))
    ro, _ = dro.task.rollout(1)
    f = dro.task.batch_fields(ro)
    want = dro.task.proxy[0, ro.s[0], ro.a1[0]] if value_init == "reward_model" else torch.zeros(18)
    assert torch.equal(f["values"][0].detach(), want)
    assert torch.allclose(f["logp_ref"], torch.full_like(f["logp_ref"], -math.log(4)))   # the uniform reference
    assert torch.equal(f["scores"], f["rewards"][..., 0])                                # DRO-V: raw R_φ(A₂)
    kto = build(settings("algorithm=kto"))
    ro, _ = kto.task.rollout(1)
    f = kto.task.batch_fields(ro)
    assert torch.equal(f["scores"], f["rewards"][..., 0] - f["baseline"][..., 0])        # KTO: Δ, label Δ > 0
    snap = build(settings("algorithm=dro_v"))    # reference: snapshot (the loss default)
    ro, _ = snap.task.rollout(1)
    assert torch.equal(ro.logp_ref, ro.logp_old)


def test_a_seed_computes_the_same_alone_and_in_a_batch():
    def run(seeds: int, seed0: int):
        b = build(settings("algorithm=pg", f"run.seeds={seeds}", f"run.seed0={seed0}", "run.steps=4"))
        logs = []
        train(b.task, b.loss, b.optimizer, steps=4, epochs=b.epochs, log_every=1, on_log=lambda s, m: logs.append(m))
        return b.task, logs

    both, logs2 = run(2, 0)
    alone, logs1 = run(1, 1)
    assert torch.equal(both.proxy[1], alone.proxy[0]) and torch.equal(both.z[1].detach(), alone.z[0].detach())
    assert torch.equal(logs2[-1]["eval/lift"][1], logs1[-1]["eval/lift"][0])
    assert not torch.equal(both.z[0].detach(), both.z[1].detach())


def test_exact_tpo_with_the_gold_reward_model_approaches_the_best_response():
    """R_φ = R*, p = 1, T = 1e6: training the refiner on the exact expected TPO update drives the deployed
    lift to the closed-form best-response lift."""
    s = settings("algorithm=tpo", "algorithm.candidates=all", "algorithm.epochs=1", "env.reward_model=gold",
                 "env.gate_T=1e6", "env.gate_k=2", "run.seeds=2", "run.steps=150", "optim.lr=0.2")
    b = build(s)
    logs = []
    train(b.task, b.loss, b.optimizer, steps=150, epochs=1, log_every=150, on_log=lambda st, m: logs.append(m))
    lift, best = logs[-1]["eval/lift"], logs[-1]["eval/best_response_lift"]
    assert bool((lift > 0.98 * best).all()), (lift, best)
    assert float(logs[-1]["eval/harm_rate"].max()) == 0.0 and float(logs[-1]["eval/proxy_gold_gap"].abs().max()) < 1e-6


@pytest.mark.parametrize("algorithm, extra", [*[(m, []) for m in METHODS],
                                              ("tpo", ["algorithm.candidates=all"]),
                                              ("pg", ["algorithm.candidates=all"])])
def test_each_method_runs_through_the_cli_path(tmp_path, algorithm, extra):
    summary = execute(compose([*SMALL, f"algorithm={algorithm}", *extra, "run.seeds=2", "run.steps=2",
                               "env.eval_every=1", f"run.root={tmp_path}"]))
    assert summary["status"] == "completed"
    (run,) = list((tmp_path / "adhoc" / "quick").iterdir())
    assert read_run(run).config["env"]["name"] == "refine_tabular"
    rows = read_metrics(run)
    assert {(r["step"], r["seed"]) for r in rows} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    numbers = [v for r in rows for k, v in r.items() if k.startswith(("eval/", "train/", "loss/"))]
    assert numbers and all(isinstance(v, float) and math.isfinite(v) for v in numbers)
    last = [r for r in rows if r["step"] == 1]
    assert all(r["eval/kl_ref"] > 0 for r in last)           # the refiner left its initial table
    assert all(0.5 < r["eval/rm_accuracy"] <= 1 for r in last)


def test_report_builds_the_refine_tables(tmp_path):
    from bench.report import build_report

    for algorithm in ("tpo", "pg"):
        execute(compose(["experiment=refine_tabular", "logger=none", "run.progress=false", f"algorithm={algorithm}",
                         "env.annotations=100", "env.gate_T=1", "run.seeds=2", "run.steps=3",
                         f"run.root={tmp_path / 'runs'}"]))
    result = build_report("refine_tabular", "quick", tmp_path / "runs", tmp_path / "results", figures=False,
                          overrides=["run.seeds=2", "run.steps=3"])
    assert {"lift", "harm_rate", "proxy_gold_gap", "kl_ref"} <= set(result.tables)
    cells = result.tables["lift"].cells
    ran = cells[~cells["missing"].astype(bool)]
    assert set(ran["algorithm.name"]) == {"tpo", "pg"} and ran["value"].notna().all() and (ran["n"] == 2).all()


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=tpo", "env.k=1"], "env.k=1: must be >= 2 for algorithm=tpo"),
    (["algorithm=ce"], "algorithm.candidates='label': env=refine_tabular"),
    (["algorithm=tpo", "model=mlp"], "env=refine_tabular needs model=table, got model=mlp"),
    (["env.gate_p=1.5"], "env.gate_p=1.5: must be >= 0 and <= 1"),
    (["env.gate_rule=argmax"], "env.gate_rule='argmax'; valid: softmax, two_way"),
])
def test_bad_input_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        settings(*overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_checkpoint_resume_is_bitwise_identical(interrupt_and_rerun):
    """A run interrupted at step 4 resumes from its step-3 checkpoint (refiner, V table, Adam, sampling
    streams) and matches an uninterrupted run."""
    from bench.families import refine as fam

    base = [*SMALL, "algorithm=reinforce_lb", "run.seeds=2", "run.steps=6", "run.checkpoint_every=2",
            "env.eval_every=2"]
    summary, _, _, resumed, straight = interrupt_and_rerun(base, "adhoc", fam.RefineTabularTask, 4)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 3
    assert resumed == straight
