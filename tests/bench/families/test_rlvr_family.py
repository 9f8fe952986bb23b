"""The LLM RLVR family: two RL steps of every on-policy algorithm on the tiny model (losses finite, parameters
changed, records written), evaluations before the first and after the last step, gradient accumulation over
micro-batches of whole groups, and the one-line errors for a missing model or data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

RLVR_ALGORITHMS = ("tpo", "grpo", "grpo_nokl", "grpo_masked", "dr_grpo", "rloo", "group_pg", "dg", "pg", "ppo",
                   "reinforce_lb", "dro_v", "kto")


@pytest.fixture(autouse=True)
def sft_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def overrides(algorithm, tmp_path, *extra):
    # a copy task (answer = the one operand) that 60 SFT steps make the model solve about half the time: every
    # group has successes and failures, so every method has a gradient
    return ["env=rlvr", f"algorithm={algorithm}", "+env.settings.max_operand=9", "+env.settings.n_terms=1",
            "env.prompts_per_step=2", "env.k=4", "env.eval_size=2", "env.eval_every=1", "env.sft.steps=60",
            "env.max_new_tokens=4", "model.hidden=32", "model.heads=2", "model.intermediate=64", "run.steps=2",
            "run.seeds=2", "logger=none", "run.progress=false", f"run.root={tmp_path}", *extra]


def built(algorithm, tmp_path, *extra):
    from bench.build import build
    from bench.cli import compose
    from bench.schema import to_settings

    return build(to_settings(compose(overrides(algorithm, tmp_path, *extra))))


@pytest.mark.parametrize("algorithm", RLVR_ALGORITHMS)
def test_two_steps_of_every_algorithm(tmp_path, algorithm):
    from bench.cli import compose
    from bench.records import read_metrics
    from bench.run import execute

    summary = execute(compose(overrides(algorithm, tmp_path)))
    assert summary["status"] == "completed"
    (run_dir,) = (tmp_path / "adhoc" / "quick").iterdir()
    rows = read_metrics(run_dir)
    assert {r["seed"] for r in rows} == {0, 1} and {r["step"] for r in rows} == {0, 1}
    for r in rows:
        assert np.isfinite(r["loss/total"]) and 0.0 <= r["train/reward"] <= 1.0
        assert 0.0 <= r["eval/accuracy"] <= 1.0     # before step 0 and after the last step (eval_every = 1)
    b = built(algorithm, tmp_path)
    before = [p.detach().clone() for p in b.task.parameters()]
    b.train(b.task, b.loss, b.optimizer, steps=2, epochs=b.epochs, log_every=1, on_log=lambda s, m: None)
    per_seed = [len(b.task._seed_params(i)) for i in range(2)]
    changed = [not torch.equal(p, q) for p, q in zip(b.task.parameters(), before)]
    assert any(changed[:per_seed[0]]) and any(changed[per_seed[0]:]), "a seed's model did not change"


def test_seeds_share_nothing_and_every_algorithm_starts_from_the_same_sft_weights(tmp_path):
    a, b = built("tpo", tmp_path), built("grpo", tmp_path)
    for pa, pb in zip(a.task.models[0].parameters(), b.task.models[0].parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.task.models[0].parameters()), next(a.task.models[1].parameters()))


@pytest.mark.parametrize("algorithm", ["tpo", "rloo"])
def test_micro_batches_of_whole_groups_accumulate_the_full_batch_gradient(tmp_path, algorithm):
    from bench.loop import accumulate
    from bench.precision import epoch_loss

    b = built(algorithm, tmp_path, "env.prompts_per_step=3", "env.k=8", "env.micro_batch_groups=1")
    ro, logged = b.task.rollout(0)
    # exact when every group is live (no zero-variance group: the losses' per-batch normalisers are then G)
    assert float(logged["diag/zero_variance_frac"].max()) == 0.0
    forward = epoch_loss(b.task, b.loss)
    params = b.task.parameters()
    assert all(p.grad is None for p in params)
    full_loss, _ = accumulate(forward, ro, None)
    full = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    parts = b.task.micro_batches(ro)
    assert len(parts) == 3 and sum(w for _, w in parts) == pytest.approx(1.0)
    micro_loss, _ = accumulate(forward, ro, b.task.micro_batches)
    torch.testing.assert_close(micro_loss, full_loss, rtol=1e-5, atol=1e-6)
    for p, g in zip(params, full):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_group_batch_fields_are_grouped_contiguously(tmp_path):
    b = built("tpo", tmp_path)
    ro, logged = b.task.rollout(0)
    f = b.task.batch_fields(ro)
    S, G, K = 2, 2, 4
    assert f["logp"].shape[:3] == (S, G, K) and f["scores"].shape == (S, G, K)
    assert f["logp"].shape == f["mask"].shape == f["logp_old"].shape
    # the sampling-time log-probs equal the recomputed ones before any update (same weights, fp32)
    torch.testing.assert_close(f["logp"].detach() * f["mask"], f["logp_old"] * f["mask"], rtol=1e-4, atol=1e-5)
    assert logged["diag/completions_per_step"][0] == G * K and "eval/accuracy" in logged
    torch.testing.assert_close(logged["diag/kl_ref"], torch.zeros(2), atol=1e-5, rtol=0)


def test_missing_model_path_is_one_line_naming_it(tmp_path):
    from bench.cli import compose
    from bench.schema import ConfigError, to_settings
    from bench.build import build

    missing = tmp_path / "Qwen3-1.7B"
    with pytest.raises(ConfigError) as err:
        build(to_settings(compose(overrides("tpo", tmp_path, f"model.path={missing}"))))
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg and "hf download Qwen/Qwen3-1.7B" in msg


def test_paper_scale_composes_and_names_the_missing_model(tmp_path):
    from bench.cli import compose
    from bench.schema import ConfigError, to_settings
    from bench.build import build

    s = to_settings(compose(["experiment=llm_rlvr", "scale=paper", "env.task=gsm8k", f"run.root={tmp_path}"]))
    assert (s.env.k, s.env.prompts_per_step, s.model.lora.rank, s.optim.lr) == (16, 16, 32, 1e-5)
    with pytest.raises(ConfigError, match="models/Qwen3-1.7B"):
        build(s)


def test_missing_gsm8k_files_are_one_line(tmp_path):
    from bench.cli import compose
    from bench.schema import ConfigError, to_settings
    from bench.build import build

    with pytest.raises(ConfigError) as err:
        build(to_settings(compose(overrides("tpo", tmp_path, "env.task=gsm8k", "env.settings={}",
                                            f"+env.settings.data_dir={tmp_path / 'gsm8k'}"))))
    assert "\n" not in str(err.value) and "gsm8k" in str(err.value)


@pytest.mark.parametrize("task", ["graph_color", "knights_knaves", "gsm8k"])
def test_paper_scale_gives_every_task_of_its_grid_valid_settings(tmp_path, task):
    """The paper grid's tasks build with the paper scale's settings (no arithmetic settings leak into them);
    gsm8k stops only because its files are absent."""
    pytest.importorskip("reasoning_gym")
    from bench.cli import compose
    from bench.schema import to_settings
    from envs.rlvr.config import build_task
    from envs.rlvr.errors import TaskDataNotFound

    s = to_settings(compose(["experiment=llm_rlvr", "scale=paper", f"env.task={task}", f"run.root={tmp_path}"]))
    if task == "gsm8k":
        with pytest.raises(TaskDataNotFound):
            build_task(s.env)
    else:
        assert build_task(s.env).prompts("train", 2, seed=0)
