"""The LLM-scale refinement family through the real harness (bench/families/refine_llm.py): π₀ from the RLVR family's
SFT cache and R_φ from its own cache (miss, then hit), batch shapes and values, the gate, every method through the
CLI path with stacked seeds, the report's tables and over-optimisation figure, one-line errors."""
from __future__ import annotations

import math

import pytest
import torch

from bench.build import build
from bench.cli import compose
from bench.families import refine_llm as fam
from bench.records import read_metrics
from bench.run import execute
from bench.schema import ConfigError, to_settings
from envs.refine.gate import gate_choice_probs

TINY = ["logger=none", "run.progress=false", "env=refine_llm", "model.hidden=16", "model.layers=1", "model.heads=2",
        "model.intermediate=32", "env.sft.steps=20", "env.annotations=32", "env.rm_steps=4", "env.rm_batch=16",
        "env.rm_heldout=16", "env.batch_size=2", "env.k=2", "env.eval_prompts=8", "env.gate_k=2",
        "env.max_new_tokens=3"]
METHODS = ["tpo", "grpo", "pg", "ppo", "reinforce_lb", "dro_v", "kto"]


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory, monkeypatch):
    """One cache folder for the module (π₀'s SFT and R_φ trained once), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "refine_llm_cache"))


def settings(*overrides: str):
    return to_settings(compose([*TINY, *overrides]))


def test_base_and_reward_model_are_cached_and_shared_with_rlvr(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    s = settings("algorithm=tpo", "run.seeds=2", "run.seed0=40")
    first = build(s).task
    second = build(s).task
    assert first.info["diag/base_cached"].tolist() == [0.0, 0.0] and first.rm_cached.tolist() == [0.0, 0.0]
    assert second.info["diag/base_cached"].tolist() == [1.0, 1.0] and second.rm_cached.tolist() == [1.0, 1.0]
    for a, b in zip(first.scorers[1].parameters(), second.scorers[1].parameters()):
        assert torch.equal(a, b)
    assert len(list((tmp_path / "tpo-bench" / "sft").glob("*.pt"))) == 2          # π₀: the RLVR family's SFT files
    assert len(list((tmp_path / "tpo-bench" / "refine_llm_rm").glob("*.pt"))) == 2
    rlvr = build(to_settings(compose(["logger=none", "env=rlvr", "algorithm=tpo", "run.seeds=2", "run.seed0=40",
                                      *TINY[3:8]]))).task
    assert [m["sft_cached"] for m in rlvr.sft] == [1.0, 1.0]                       # the same cache file
    for a, b in zip(rlvr.models[0].parameters(), first.bases[0].parameters()):
        assert torch.equal(a, b)
    assert bool(((first.rm_accuracy >= 0) & (first.rm_accuracy <= 1)).all())


def test_group_and_single_batches():
    b = build(settings("algorithm=tpo", "run.seeds=2", "env.keep_candidate=true"))
    ro, logged = b.task.rollout(1)
    f = b.task.batch_fields(ro)
    T = ro.completion_mask.shape[-1]
    assert f["logp"].shape == (2, 2, 3, T) and f["scores"].shape == (2, 2, 3) and f["mask"].shape == (2, 2, 3, T)
    assert float(f["scores"][..., -1].abs().max()) == 0.0                          # A₁ as candidate K + 1: Δ = 0
    assert torch.allclose(f["logp"].detach() * f["mask"], f["logp_old"] * f["mask"], atol=1e-4)   # recomputed
    assert logged["diag/rollouts_per_step"].tolist() == [4.0, 4.0]
    pg = build(settings("algorithm=reinforce_lb", "run.seeds=2"))
    ro, _ = pg.task.rollout(1)
    f = pg.task.batch_fields(ro)
    T = ro.completion_mask.shape[-1]
    assert f["logp"].shape == (2, 4, T) and f["rewards"].shape == (2, 4, T) and f["values"].shape == (2, 4)
    assert torch.allclose(f["values"].detach(), ro.proxy_a1)                       # V(x) starts at R_φ(S, A₁)
    assert torch.equal(f["baseline"], ro.proxy_a1[..., None] * ro.completion_mask)
    kto = build(settings("algorithm=kto"))
    ro, _ = kto.task.rollout(1)
    f = kto.task.batch_fields(ro)
    assert torch.allclose(f["scores"], ro.proxy_a2[..., 0] - ro.proxy_a1)         # KTO: Δ
    assert torch.allclose(f["logp_ref"] * f["mask"], f["logp"].detach() * f["mask"], atol=1e-4)  # initial = current


def test_the_gate_never_deploys_a_worse_refinement_of_the_task():
    task = build(settings("algorithm=tpo", "run.seeds=2", "env.gate_T=1", "env.eval_prompts=32")).task
    i, K = 0, 4
    rows = task.rewrite(i, task.revisions(task.eval_problems, task.eval_a1[i]), K, 7)
    delta = task.proxy_rewrites(i, task.eval_problems, task.eval_a1[i], task.eval_proxy_a1[i], rows.texts, K) \
        - task.eval_proxy_a1[i][:, None]
    choice = gate_choice_probs(delta, 1.0, 1.0)
    assert bool((delta < 0).any()) and float(choice[..., 1:][delta < 0].abs().max()) == 0.0
    out = task.evaluate(0)
    assert float((out["eval/harm_rate"] - out["eval/acceptance_rate"]).max()) <= 1e-6
    assert torch.allclose(out["eval/gold_value"] - out["eval/lift"], task.eval_gold_a1.mean(-1))
    assert float(out["eval/kl_ref"].abs().max()) < 1e-5                             # the refiner is still π₀


@pytest.mark.parametrize("algorithm", METHODS)
def test_each_method_runs_two_steps_through_the_cli_path(tmp_path, algorithm):
    summary = execute(compose([*TINY, f"algorithm={algorithm}", "run.seeds=2", "run.steps=2", "env.eval_every=1",
                               f"run.root={tmp_path}"]))
    assert summary["status"] == "completed"
    (run,) = list((tmp_path / "adhoc" / "quick").iterdir())
    rows = read_metrics(run)
    assert {(r["step"], r["seed"]) for r in rows} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    numbers = [v for r in rows for k, v in r.items() if k.startswith(("eval/", "train/", "loss/"))]
    assert numbers and all(isinstance(v, float) and math.isfinite(v) for v in numbers)
    last = [r for r in rows if r["step"] == 1]
    assert all(r["eval/kl_ref"] != 0 for r in last)                         # the refiner left its initial weights
    assert all(0 <= r["eval/harm_rate"] <= r["eval/acceptance_rate"] <= 1 for r in last)


def test_report_builds_the_tables_and_the_overoptimisation_figure(tmp_path):
    from bench.report import build_report

    for algorithm in ("tpo", "pg"):
        execute(compose(["experiment=refine_llm", *TINY[:2], *TINY[3:], f"algorithm={algorithm}",
                         "env.annotations=100", "env.gate_T=1", "run.seeds=2", "run.steps=2", "env.eval_every=1",
                         f"run.root={tmp_path / 'runs'}"]))
    result = build_report("refine_llm", "quick", tmp_path / "runs", tmp_path / "results", figures=True,
                          overrides=[*TINY[3:], "run.seeds=2", "run.steps=2", "env.eval_every=1"])
    assert {"lift", "harm_rate", "proxy_gold_gap", "kl_ref"} <= set(result.tables)
    cells = result.tables["lift"].cells
    ran = cells[~cells["missing"].astype(bool)]
    assert set(ran["algorithm.name"]) == {"tpo", "pg"} and ran["value"].notna().all() and (ran["n"] == 2).all()
    assert (result.out_dir / "overoptimisation.png").stat().st_size > 1000


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=tpo", "env.k=1"], "env.k=1: must be >= 2 for algorithm=tpo"),
    (["algorithm=tpo_token"], "algorithm.candidates='token': env=refine_llm has no batch"),
    (["algorithm=tpo", "env.template='{prompt}?{answer}'"], "env.template='{prompt}?{answer}': characters '?'"),
    (["algorithm=tpo", "env.task=nonsense"], "env.task=nonsense:"),
    (["algorithm=tpo", "model.path=/nonexistent/Qwen3-1.7B"], "model.path='/nonexistent/Qwen3-1.7B': no checkpoint"),
])
def test_bad_input_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        build(settings(*overrides))
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_a_model_other_than_the_lm_is_one_line():
    with pytest.raises(ConfigError) as err:
        build(to_settings(compose(["logger=none", "env=refine_llm", "algorithm=tpo", "model=transformer"])))
    assert str(err.value) == "env=refine_llm needs model=lm, got model=transformer"


def test_checkpoint_resume_is_bitwise_identical(interrupt_and_rerun):
    """Interrupted at step 3, resumed from the step-2 checkpoint (refiners, V networks, Adam, sampling streams)."""
    base = [*TINY, "algorithm=reinforce_lb", "run.seeds=2", "run.steps=4", "run.checkpoint_every=1",
            "env.eval_every=2"]
    summary, _, _, resumed, straight = interrupt_and_rerun(base, "adhoc", fam.RefineLLMTask, 3)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 2
    assert resumed == straight
