"""Token reversal family through the real harness: matching modes, common random
numbers, seed batching, batch shapes, and a smoke run of every sequence method."""
from __future__ import annotations

import math

import pytest
import torch

from bench import metrics as M
from bench.build import build
from bench.cli import compose
from bench.families import sequence as seq
from bench.loop import train
from bench.records import read_metrics, read_run
from bench.rollout import grouped_sequence_logp, sequence_logp
from bench.run import execute
from bench.schema import to_settings
from bench.models.transformer import TransformerPolicy

# tiny task: H = 3, V = 2, B = 6 prompts, K = 4 (fast on one CPU thread)
TINY = ["env=reversal", "model=transformer", "optim=muon", "logger=none", "env.horizon=3", "env.vocab=2",
        "env.batch_size=6", "env.k=4", "run.progress=false"]


def overrides(*extra: str) -> list[str]:
    return [*TINY, *extra]


def settings(*extra: str):
    return to_settings(compose(overrides(*extra)))


def noop_log(step, logged):
    pass


def snapshot(task) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.named_parameters()}


def optimizer_lrs(optimizer) -> list[float]:
    return sorted({g["lr"] for g in optimizer.param_groups})


# -- matching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["ppo", "dg", "dro_v"])
def test_interaction_matching_scales_single_answer_methods(algorithm):
    s = settings(f"algorithm={algorithm}", "env.matching=interaction", "optim.lr=0.002")
    b = build(s)
    K, B = s.env.k, s.env.batch_size
    assert b.task.n_prompts == B * K == seq.prompts_per_step(s.env, "single")
    assert seq.rollouts_per_step(s.env, "single") == B * K == seq.interactions(s.env, "single")
    assert optimizer_lrs(b.optimizer) == [pytest.approx(0.002 * math.sqrt(K))]
    assert s.optim.lr == 0.002, "the config is never changed"
    ro, logged = b.task.rollout(0)
    assert ro.prompts.shape == (1, B * K, 3) and ro.answers.shape == (1, B * K, 3)
    assert torch.allclose(logged[M.diag("effective_lr")], torch.tensor([0.002 * math.sqrt(K)]))
    assert logged[M.diag("interactions")].tolist() == [B * K]


@pytest.mark.parametrize("algorithm, candidates", [("tpo", "sampled"), ("grpo_token", "token")])
def test_interaction_matching_leaves_grouped_methods_alone(algorithm, candidates):
    for matching in ("prompt", "interaction"):
        s = settings(f"algorithm={algorithm}", f"env.matching={matching}")
        b = build(s)
        assert b.task.n_prompts == s.env.batch_size
        assert optimizer_lrs(b.optimizer) == [pytest.approx(1e-3)]
        assert seq.interactions(s.env, candidates) == s.env.batch_size * s.env.k
    assert seq.rollouts_per_step(s.env, "sampled") == s.env.batch_size * s.env.k
    assert seq.rollouts_per_step(s.env, "token") == s.env.batch_size


def test_prompt_matching_single_answer_methods_see_b_prompts():
    s = settings("algorithm=ppo", "env.matching=prompt")
    b = build(s)
    assert b.task.n_prompts == s.env.batch_size
    assert optimizer_lrs(b.optimizer) == [pytest.approx(1e-3)]


def test_matching_is_recorded(tmp_path):
    summary = execute(compose(overrides("algorithm=ppo", "env.matching=interaction", "run.steps=2",
                                        f"run.root={tmp_path}")))
    assert summary["status"] == "completed"
    rows = read_metrics(next(tmp_path.rglob("metrics.jsonl")).parent)
    K = 4
    assert all(r[M.diag("effective_lr")] == pytest.approx(1e-3 * math.sqrt(K)) for r in rows)
    assert all(r[M.diag("prompts_per_step")] == 6 * K for r in rows)
    assert summary["final"][M.diag("rollouts_per_step")] == 6 * K
    run = read_run(next(tmp_path.rglob("metrics.jsonl")).parent)
    assert run.config["env"]["matching"] == "interaction" and run.config["optim"]["lr"] == 1e-3


# -- common random numbers -----------------------------------------------------------------------
def test_same_seed_same_weights_and_prompts_for_different_algorithms():
    a = build(settings("algorithm=tpo", "run.seeds=2")).task
    b = build(settings("algorithm=ppo", "run.seeds=2")).task
    c = build(settings("algorithm=tpo_token", "run.seeds=2", "run.seed0=5")).task
    for name, p in a.policy.items():
        assert torch.equal(p, b.policy[name]), name
    assert not torch.equal(a.policy["tok_emb.weight"][0], a.policy["tok_emb.weight"][1]), "seeds differ"
    assert not torch.equal(a.policy["tok_emb.weight"], c.policy["tok_emb.weight"])
    for step in range(3):  # grouped (B·K answers) vs single (B answers): same prompts all the same
        ra, _ = a.rollout(step)
        rb, _ = b.rollout(step)
        assert torch.equal(ra.prompts, rb.prompts)
        assert ra.answers.shape != rb.answers.shape


# -- seed batching -------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["tpo", "ppo"])
def test_seed_inside_batch_equals_seed_alone(algorithm):
    steps = 10
    logs: dict[str, list] = {"batch": [], "alone": []}
    tasks = {}
    for key, extra in (("batch", ["run.seeds=3", "run.seed0=0"]), ("alone", ["run.seeds=1", "run.seed0=1"])):
        b = build(settings(f"algorithm={algorithm}", *extra))
        train(b.task, b.loss, b.optimizer, steps=steps, epochs=b.epochs, log_every=1,
              on_log=lambda step, logged, key=key: logs[key].append({k: v.clone() for k, v in logged.items()}))
        tasks[key] = b.task
    for name, p in tasks["alone"].policy.items():
        assert torch.allclose(tasks["batch"].policy[name][1], p[0], atol=1e-5, rtol=1e-4), name
    for batched, alone in zip(logs["batch"], logs["alone"]):
        assert torch.allclose(batched[M.ERROR][1], alone[M.ERROR][0])
        assert torch.allclose(batched[M.LOSS_TOTAL][1], alone[M.LOSS_TOTAL][0], atol=1e-5, rtol=1e-4)


# -- batch shapes --------------------------------------------------------------------------------
def test_token_candidate_batch_shapes_and_scores():
    s = settings("algorithm=tpo_token", "run.seeds=2", "env.vocab=3", "env.k=5", "env.reward=sequential")
    task = build(s).task
    ro, logged = task.rollout(0)
    S, B, H, K = 2, 6, 3, 5
    assert ro.candidates.shape == (S, B, H, K) and ro.logp_old.shape == (S, B, H, K)
    assert torch.equal(ro.candidates[..., 0], ro.answers), "candidate 0 is the behaviour token"
    y = ro.prompts.flip(-1)                                    # reverse copy
    c = (ro.answers == y).float()
    alive = torch.cat([torch.ones(S, B, 1), c.cumprod(-1)[..., :-1]], -1)
    assert torch.equal(ro.scores, alive[..., None] * (ro.candidates == y[..., None]).float())
    fields = task.batch_fields(ro)
    assert fields["logp"].shape == (S, B * H, K, 1) and fields["scores"].shape == (S, B * H, K)
    assert fields["logp"].requires_grad and not fields["logp_old"].requires_grad
    assert torch.allclose(fields["logp"].detach(), fields["logp_old"], atol=1e-5), "epoch 0 = the snapshot"
    assert logged[M.ERROR].shape == (S,)


def test_sampled_group_batch_shapes():
    task = build(settings("algorithm=grpo", "run.seeds=2", "env.reward=terminal")).task
    ro, logged = task.rollout(0)
    assert ro.answers.shape == (2, 6, 4, 3) and ro.scores.shape == (2, 6, 4)
    c = (ro.answers == ro.prompts.flip(-1)[:, :, None]).float()
    assert torch.equal(ro.scores, c.prod(-1))
    assert torch.allclose(logged[M.ERROR], 1 - c.prod(-1).flatten(1).mean(-1))
    assert torch.allclose(logged[M.diag("any_success_frac")], c.prod(-1).amax(-1).mean(-1))
    fields = task.batch_fields(ro)
    assert fields["logp"].shape == (2, 6, 4, 3)
    assert torch.allclose(fields["logp"].detach(), ro.logp_old, atol=1e-5)


def test_single_terminal_reward_on_every_token_and_values():
    task = build(settings("algorithm=dro_v", "run.seeds=2", "env.reward=terminal")).task
    ro, _ = task.rollout(0)
    exact = (ro.answers == ro.prompts.flip(-1)).all(-1).float()
    assert torch.equal(ro.rewards, exact[..., None].expand(2, 6, 3))
    fields = task.batch_fields(ro)
    assert fields["values"].shape == (2, 6) and fields["values"].requires_grad
    assert torch.equal(fields["logp_ref"], ro.logp_old), "reference = rollout snapshot by default"
    sc = fields["scores"]
    assert torch.allclose(sc.mean(-1), torch.zeros(2), atol=1e-6)   # normalised over the batch (DRO)


def test_token_candidates_need_dense_rewards():
    with pytest.raises(ValueError, match="dense reward"):
        build(settings("algorithm=tpo_token", "env.reward=terminal"))


def test_unsupported_candidates_named():
    with pytest.raises(ValueError, match="candidates='label'"):
        build(settings("algorithm=ce"))


def test_grouped_logp_equals_full_buffer_logp():
    torch.manual_seed(0)
    model = TransformerPolicy(3, 4)
    prompts = torch.randint(0, 3, (5, 4))
    answers = torch.randint(0, 3, (5, 2, 4))
    assert torch.allclose(grouped_sequence_logp(model, prompts, answers), sequence_logp(model, prompts, answers),
                          atol=1e-5)


def test_muon_split_on_stacked_parameters():
    b = build(settings("algorithm=reinforce_lb", "run.seeds=2"))
    muon, adamw = b.optimizer.optimizers
    muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}
    named = dict(b.task.named_parameters())
    assert id(named["blocks.0.ffn.fc1.weight"]) in muon_ids and id(named["head.weight"]) in muon_ids
    assert id(named["blocks.0.attn.q.weight"]) not in muon_ids          # reference split: attention → AdamW
    assert id(named["value.fc1.weight"]) not in muon_ids                 # value head → AdamW
    assert all(p.shape[0] == 2 for p in named.values())


# -- smoke: every sequence method ------------------------------------------------------------------
METHODS = [("tpo", "terminal"), ("tpo_no_anchor", "terminal"), ("group_pg", "terminal"), ("grpo", "terminal"),
           ("grpo_nokl", "terminal"), ("grpo_masked", "terminal"), ("rloo", "bag"), ("tpo_token", "bag"),
           ("grpo_token", "sequential"), ("ppo", "terminal"), ("pg", "bag"), ("dg", "terminal"),
           ("reinforce_lb", "terminal"), ("dro_v", "terminal"), ("kto", "bag")]


@pytest.mark.parametrize("algorithm, reward", METHODS)
def test_smoke_each_method(algorithm, reward, tmp_path):
    extra = [f"algorithm={algorithm}", f"env.reward={reward}", "run.seeds=2", "run.steps=3"]
    b = build(settings(*extra))
    before = snapshot(b.task)
    losses = []
    train(b.task, b.loss, b.optimizer, steps=3, epochs=b.epochs, log_every=1,
          on_log=lambda step, logged: losses.append(logged[M.LOSS_TOTAL]))
    assert all(bool(torch.isfinite(l).all()) for l in losses)
    after = snapshot(b.task)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "head.weight" in changed and "blocks.0.ffn.fc1.weight" in changed
    summary = execute(compose(overrides(*extra, f"run.root={tmp_path}")))
    assert summary["status"] == "completed"
    rows = read_metrics(next(tmp_path.rglob("metrics.jsonl")).parent)
    assert {r["seed"] for r in rows} == {0, 1} and len(rows) == 6
    assert all(math.isfinite(r[M.LOSS_TOTAL]) and 0.0 <= r[M.ERROR] <= 1.0 for r in rows)
    assert M.GRAD_NORM in rows[0] and M.diag("all_fail_frac") in rows[0]


def test_grouped_methods_run_once_for_both_matching_modes(tmp_path):
    """A grouped method's interaction-matched job finds the prompt-matched record and is not rerun;
    the report shows its numbers under both matching columns."""
    from bench.report.collect import collect

    base = ["experiment=table3_terminal", "env.horizon=3", "env.batch_size=8", "env.k=4", "run.seeds=2",
            "run.steps=3", "logger=none", f"run.root={tmp_path}"]
    for algorithm in ("tpo", "ppo"):
        for matching in ("prompt", "interaction"):
            execute(compose([*base, f"algorithm={algorithm}", f"env.matching={matching}"]))
    dirs = sorted(p.name.split("-")[0] for p in (tmp_path / "table3_terminal" / "quick").iterdir())
    assert dirs == ["ppo", "ppo", "tpo"]
    tidy = collect(tmp_path, "table3_terminal", "quick").tidy
    cells = tidy.groupby(["algorithm.name", "env.matching"], observed=True).size()
    assert set(cells.index) == {("tpo", "prompt"), ("tpo", "interaction"), ("ppo", "prompt"), ("ppo", "interaction")}
