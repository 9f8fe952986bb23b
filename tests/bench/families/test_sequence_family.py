"""Token reversal family through the real harness: matching modes, common random
numbers, seed batching, batch shapes, and a smoke run of every sequence method."""
from __future__ import annotations

import functools
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
        # Attention is invariant to the key bias (it adds q·b_k to every key of a row): its exact gradient is 0 and
        # the computed one rounding noise, which Muon (the reference split orthogonalises it as a [heads, d_head]
        # matrix) turns into lr-sized steps — it differs with any change of rounding and never reaches the output.
        if not name.endswith("attn.k.bias"):
            assert torch.allclose(tasks["batch"].policy[name][1], p[0], atol=1e-5, rtol=1e-4), name
    tokens = torch.randint(0, 2, (1, 5, 2 * 3), generator=torch.Generator().manual_seed(0))
    batched = seq.StackedPolicy(tasks["batch"].template, {k: v[1:2] for k, v in tasks["batch"].policy.items()})(tokens)
    alone = seq.StackedPolicy(tasks["alone"].template, tasks["alone"].policy)(tokens)
    assert torch.allclose(batched, alone, atol=1e-4), "the trained policies' logits"
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


# -- the experiments' settings against the TPO paper ----------------------------------------------------
@functools.lru_cache(maxsize=None)
def experiment_grid(experiment: str, scale: str) -> tuple:
    """Settings at the experiment's sweep-grid points at ``scale``: every value of every axis, the other
    axes at their first value (so each axis' full set of values is seen)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from bench.cli import CONF_DIR, register_all

    register_all()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = hydra_compose("config", overrides=[f"experiment={experiment}", f"scale={scale}"],
                            return_hydra_config=True)
    grid = {k: str(v).split(",") for k, v in (cfg.hydra.sweeper.params or {}).items()}
    first = {k: vs[0] for k, vs in grid.items()}
    points = [dict(first, **{k: v}) for k, vs in grid.items() for v in vs] or [first]
    unique = {tuple(sorted(p.items())): p for p in points}.values()
    return tuple(to_settings(compose([f"experiment={experiment}", f"scale={scale}", "logger=none",
                                      *(f"{k}={v}" for k, v in p.items())])) for p in unique)


def _values(points, get) -> set:
    return {get(s) for s in points}


# experiment: (paper location, algorithms, {getter name: allowed values}, seeds)
TERMINAL_8 = dict(logic={"reverse_copy"}, reward={"terminal"}, horizon={8}, vocab={2}, batch_size={256}, steps={2000})
PAPER_SETTINGS = {
    "table1_vocab": ("Table 1", {"tpo_token", "grpo_token", "dg", "ppo"},
                     dict(logic={"reverse_copy"}, reward={"bag"}, horizon={10}, vocab={2, 4, 8, 16}, batch_size={100},
                          k={8}, steps={1000}, matching={"prompt"}), 20),
    "table2_variations": ("Table 2", {"tpo_token", "grpo_token", "dg", "ppo"},
                          dict(logic={"copy", "flip", "reverse_copy", "reverse_flip"}, reward={"bag", "sequential"},
                               horizon={10}, vocab={2}, batch_size={100}, k={8}, steps={1000},
                               matching={"prompt", "interaction"}), 10),
    "table3_terminal": ("Table 3", {"tpo", "grpo", "grpo_nokl", "ppo", "dg", "dro_v", "reinforce_lb"},
                        dict(logic={"reverse_copy"}, reward={"terminal"}, horizon={7, 8, 9, 10}, vocab={2},
                             batch_size={100}, k={8}, steps={2000}, matching={"prompt", "interaction"}), 20),
    "ablation_anchor": ("Fig. 8", {"tpo", "tpo_no_anchor", "group_pg", "grpo", "grpo_nokl"},
                        dict(logic={"reverse_copy"}, reward={"terminal"}, horizon={7, 8, 10}, vocab={2},
                             batch_size={100}, k={8}, steps={2000}, matching={"prompt"}), 20),
    "table5_eta": ("Table 5", {"tpo_token"},
                   dict(logic={"reverse_copy"}, reward={"bag"}, horizon={10}, vocab={2}, batch_size={100}, k={8},
                        eta={0.25, 0.5, 1.0, 2.0, 4.0}, matching={"prompt"}), 10),
    "diagnostics_sparse": ("§4, Figs. 10, 11, 14", {"tpo", "tpo_1ep", "grpo", "grpo_nokl", "ppo", "dg"},
                           dict(TERMINAL_8, k={32}), 10),
    "sweep_k": ("Fig. 12", {"tpo", "grpo"}, dict(TERMINAL_8, k={4, 8, 16, 32, 64}), 30),
    "sweep_epochs": ("Fig. 15", {"tpo", "grpo"}, dict(TERMINAL_8, k={32}, epochs={1, 2, 4, 8, 16}), 30),
    "grpo_masking": ("Fig. 13", {"grpo", "grpo_masked", "tpo"}, dict(TERMINAL_8, k={32}), 30),
}
GETTERS = {"logic": lambda s: s.env.logic, "reward": lambda s: s.env.reward, "horizon": lambda s: s.env.horizon,
           "vocab": lambda s: s.env.vocab, "batch_size": lambda s: s.env.batch_size, "k": lambda s: s.env.k,
           "steps": lambda s: s.run.steps, "matching": lambda s: s.env.matching,
           "eta": lambda s: s.loss_params.eta, "epochs": lambda s: s.algorithm.epochs}
# gradient epochs per batch (TPO paper §3, App. E; the reference reuses REINFORCE batches 4 times)
EPOCHS = {"dg": 1, "dro_v": 1, "tpo_1ep": 1}


@pytest.mark.parametrize("experiment", sorted(PAPER_SETTINGS))
def test_sequence_experiment_is_the_paper_setting_at_paper_scale(experiment):
    where, algorithms, expected, seeds = PAPER_SETTINGS[experiment]
    points = experiment_grid(experiment, "paper")
    assert _values(points, lambda s: s.algorithm.name) == algorithms, where
    for name, allowed in expected.items():
        assert _values(points, GETTERS[name]) == allowed, (where, name)
    assert _values(points, lambda s: s.run.seeds) == {seeds}, where
    assert _values(points, lambda s: (s.model.name, s.optim.name, s.optim.lr)) == {("transformer", "muon", 1e-3)}
    if "epochs" not in expected:
        for s in points:
            assert s.algorithm.epochs == EPOCHS.get(s.algorithm.name, 4), (where, s.algorithm.name)


@pytest.mark.parametrize("experiment", sorted(PAPER_SETTINGS) + ["tabular_single", "tabular_multi"])
def test_quick_scale_changes_only_seeds_steps_horizon_and_grid(experiment):
    """Quick = the paper setting with fewer seeds/steps, a smaller H or a sub-grid: same code path."""
    import dataclasses

    def key(s):
        d = {g: dataclasses.asdict(getattr(s, g)) for g in ("algorithm", "env", "model", "optim")}
        d["run"] = {k: v for k, v in dataclasses.asdict(s.run).items() if k not in ("seeds", "steps")}
        d["env"].pop("horizon", None)
        return repr(sorted(d.items()))

    paper = {key(s) for s in experiment_grid(experiment, "paper")}
    quick = experiment_grid(experiment, "quick")
    assert all(key(s) in paper for s in quick), experiment
    q = quick[0]
    p = experiment_grid(experiment, "paper")[0]
    assert q.run.seeds <= p.run.seeds and q.run.steps <= p.run.steps


def test_table5_default_is_token_tpo_on_bag_reward_and_the_terminal_reading_is_an_override():
    s = to_settings(compose(["experiment=table5_eta", "logger=none"]))
    assert (s.algorithm.name, s.algorithm.candidates, s.env.reward, s.env.horizon, s.algorithm.epochs) == \
        ("tpo_token", "token", "bag", 10, 4)
    quick = to_settings(compose(["experiment=table5_eta", "scale=quick", "logger=none"]))
    assert (quick.env.horizon, quick.run.seeds, quick.run.steps) == (10, 3, 300)
    old = to_settings(compose(["experiment=table5_eta", "algorithm=tpo", "env.reward=terminal", "run.steps=2000",
                               "algorithm.eta=0.5", "logger=none"]))
    assert (old.algorithm.candidates, old.env.reward, old.loss_params.eta) == ("sampled", "terminal", 0.5)


def test_reinforce_takes_four_epochs_in_table3_and_one_in_the_bandits():
    for algorithm in ("reinforce_lb", "pg"):
        s = to_settings(compose(["experiment=table3_terminal", f"algorithm={algorithm}", "logger=none"]))
        assert s.algorithm.epochs == 4, algorithm
    for experiment in ("tabular_single", "tabular_multi", "mnist"):
        s = to_settings(compose([f"experiment={experiment}", "algorithm=pg", "logger=none"]))
        assert s.algorithm.epochs == 1, experiment
    assert to_settings(compose(["algorithm=pg", "logger=none"])).algorithm.epochs == 1   # the algorithm default
