"""The sequence-scale refinement family through the real harness (bench/families/refine_sequence.py): the cache of
π₀ and R_φ (miss, hit, a foreign file), batch shapes and values, the gate, seeds independent inside a batch, every
method through the CLI path with stacked seeds, the report's tables and over-optimisation figure, one-line errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.build import build
from bench.cli import compose
from bench.families import refine_sequence as fam
from bench.loop import train
from bench.records import read_metrics
from bench.run import execute
from bench.schema import ConfigError, to_settings
from envs.refine.gate import gate_choice_probs

TINY = ["logger=none", "run.progress=false", "env=refine_sequence", "env.horizon=3", "env.vocab=3",
        "model.d_model=16", "model.n_layers=1", "model.d_ff=32", "model.value_hidden=8", "env.base_max_steps=20",
        "env.base_accuracy=0.7", "env.base_eval_prompts=64", "env.annotations=64", "env.rm_steps=5",
        "env.rm_batch=32", "env.rm_heldout=64", "env.batch_size=4", "env.k=3", "env.eval_prompts=16", "env.gate_k=2"]
METHODS = ["tpo", "grpo", "pg", "ppo", "reinforce_lb", "dro_v", "kto"]


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory, monkeypatch):
    """One cache folder for the module (π₀ and R_φ trained once), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "refine_sequence_cache"))


def settings(*overrides: str):
    return to_settings(compose([*TINY, *overrides]))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))


def test_cache_misses_then_hits_and_retrains_a_foreign_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def fit(m: nn.Module) -> dict[str, float]:
        calls.append(1)
        with torch.no_grad():
            m.w.fill_(len(calls))
        return {"loss": 0.5}

    a = Tiny()
    assert fam.load_or_train("kind", {"seed": 0}, a, fit) == {"loss": 0.5, "cached": 0.0}
    b = Tiny()
    assert fam.load_or_train("kind", {"seed": 0}, b, fit) == {"loss": 0.5, "cached": 1.0}
    assert len(calls) == 1 and torch.equal(a.w, b.w)                               # hit: loaded, not trained
    assert fam.load_or_train("kind", {"seed": 1}, Tiny(), fit)["cached"] == 0.0 and len(calls) == 2   # other key
    path = tmp_path / "tpo-bench" / "kind" / f"{fam.cache_key('kind', {'seed': 0})}.pt"
    assert path.exists()
    path.write_bytes(b"not a checkpoint")
    c = Tiny()
    assert fam.load_or_train("kind", {"seed": 0}, c, fit)["cached"] == 0.0 and float(c.w.detach()[0]) == 3.0


def test_base_and_reward_model_are_cached_and_recorded():
    s = settings("algorithm=tpo", "run.seeds=2", "run.seed0=40")
    first = build(s).task
    second = build(s).task
    assert first.base_info["diag/base_cached"].tolist() == [0.0, 0.0]
    assert second.base_info["diag/base_cached"].tolist() == [1.0, 1.0] and second.rm_cached.tolist() == [1.0, 1.0]
    for k, v in first.base.params.items():
        assert torch.equal(v, second.base.params[k])
    steps = first.base_info["diag/base_steps"]
    acc = first.base_info["diag/base_token_accuracy"]
    assert bool(((acc >= 0.7) | (steps == 20)).all()) and bool((acc > 0).all())     # target reached or the cap
    assert bool(((first.rm_accuracy >= 0) & (first.rm_accuracy <= 1)).all())


def test_group_and_single_batches():
    b = build(settings("algorithm=tpo", "run.seeds=2", "env.keep_candidate=true"))
    ro, logged = b.task.rollout(1)
    f = b.task.batch_fields(ro)
    assert f["logp"].shape == (2, 4, 4, 3) and f["scores"].shape == (2, 4, 4)      # K = 3 rewrites + A₁, H = 3
    assert torch.equal(ro.a2[:, :, -1], ro.a1) and float(f["scores"][..., -1].abs().max()) == 0.0
    assert torch.allclose(f["logp"].detach(), f["logp_old"], atol=1e-5)             # recomputed = sampling-time
    assert logged["diag/rollouts_per_step"].tolist() == [12.0, 12.0]
    pg = build(settings("algorithm=reinforce_lb", "run.seeds=2"))
    ro, _ = pg.task.rollout(1)
    f = pg.task.batch_fields(ro)
    assert f["logp"].shape == (2, 12, 3) and f["rewards"].shape == (2, 12, 3) and f["values"].shape == (2, 12)
    assert torch.equal(f["rewards"][..., 0], pg.task.proxy_rewrites(ro.x, ro.a1, ro.proxy_a1, ro.a2)[..., 0])
    assert torch.equal(f["baseline"][..., 2], pg.task.proxy(ro.x, ro.a1))
    assert torch.allclose(f["values"].detach(), f["baseline"][..., 0])            # V(x) starts at R_φ(x, A₁)
    kto = build(settings("algorithm=kto"))
    ro, _ = kto.task.rollout(1)
    f = kto.task.batch_fields(ro)
    assert torch.allclose(f["scores"], f["rewards"][..., 0] - f["baseline"][..., 0])   # KTO: Δ
    ref = kto.task.reference_dists(ro.x, ro.a1, ro.a2).gather(-1, ro.a2[..., None])[..., 0][:, :, 0]
    assert torch.allclose(f["logp_ref"], ref)                                       # the initial refiner


def test_the_gate_never_deploys_a_worse_refinement_of_the_task():
    task = build(settings("algorithm=tpo", "run.seeds=2", "env.gate_T=1")).task
    x, a1 = task.eval_x, task.eval_a1
    a2, _ = task.sample_refinements(x, a1, 4, [torch.Generator().manual_seed(i) for i in range(2)])
    delta = task.proxy_rewrites(x, a1, task.eval_proxy_a1, a2) - task.eval_proxy_a1[..., None]
    choice = gate_choice_probs(delta, 1.0, 1.0)
    assert bool((delta < 0).any()) and float(choice[..., 1:][delta < 0].abs().max()) == 0.0
    out = task.evaluate(0)
    assert float((out["eval/harm_rate"] - out["eval/acceptance_rate"]).max()) <= 1e-6
    assert torch.allclose(out["eval/gold_value"] - out["eval/lift"], task.eval_gold_a1.mean(-1))


def test_copy_bias_zero_is_a_refiner_from_scratch_and_the_copy_reference():
    scratch = build(settings("algorithm=tpo", "env.copy_bias=0", "env.reference=copy")).task
    copy = build(settings("algorithm=tpo", "env.copy_bias=8")).task
    assert float(copy.evaluate(0)["eval/copy_rate"]) > 0.9 > float(scratch.evaluate(0)["eval/copy_rate"])
    assert float(scratch.evaluate(0)["eval/kl_ref"]) > 0.1                     # far from the copy reference
    assert float(copy.evaluate(0)["eval/kl_ref"]) < 1e-6                      # the initial refiner is its reference


def test_a_seed_computes_the_same_alone_and_in_a_batch():
    def run(seeds: int, seed0: int):
        b = build(settings("algorithm=pg", f"run.seeds={seeds}", f"run.seed0={seed0}", "run.steps=3",
                           "env.eval_every=2"))
        logs = []
        train(b.task, b.loss, b.optimizer, steps=3, epochs=b.epochs, log_every=1, on_log=lambda s, m: logs.append(m))
        return b.task, logs

    both, logs2 = run(2, 0)
    alone, logs1 = run(1, 1)
    for k, v in both.policy.items():
        if not k.endswith("attn.k.bias"):   # zero exact gradient, rounding noise normalised by the optimizer
            assert torch.allclose(v[1].detach(), alone.policy[k][0].detach(), atol=1e-5), k   # (test_sequence_family)
    assert abs(float(logs2[-1]["eval/lift"][1]) - float(logs1[-1]["eval/lift"][0])) < 1e-5


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
    assert all(r["eval/kl_ref"] > 0 for r in last)                         # the refiner left its initial weights
    assert all(0 <= r["eval/harm_rate"] <= r["eval/acceptance_rate"] <= 1 for r in last)


def test_report_builds_the_tables_and_the_overoptimisation_figure(tmp_path):
    from bench.report import build_report

    for algorithm in ("tpo", "pg"):
        execute(compose(["experiment=refine_sequence", *TINY[:2], *TINY[3:], f"algorithm={algorithm}",
                         "env.annotations=300", "env.gate_T=1", "run.seeds=2", "run.steps=3", "env.eval_every=1",
                         f"run.root={tmp_path / 'runs'}"]))
    result = build_report("refine_sequence", "quick", tmp_path / "runs", tmp_path / "results", figures=True,
                          overrides=[*TINY[3:], "run.seeds=2", "run.steps=3", "env.eval_every=1"])
    assert {"lift", "harm_rate", "proxy_gold_gap", "kl_ref"} <= set(result.tables)
    cells = result.tables["lift"].cells
    ran = cells[~cells["missing"].astype(bool)]
    assert set(ran["algorithm.name"]) == {"tpo", "pg"} and ran["value"].notna().all() and (ran["n"] == 2).all()
    assert (result.out_dir / "overoptimisation.png").stat().st_size > 1000


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=tpo", "env.k=1"], "env.k=1: must be >= 2 for algorithm=tpo"),
    (["algorithm=tpo_token"], "algorithm.candidates='token': env=refine_sequence has no batch"),
])
def test_bad_input_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        build(settings(*overrides))
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_a_model_other_than_the_transformer_is_one_line():
    with pytest.raises(ConfigError) as err:
        build(to_settings(compose(["logger=none", "env=refine_sequence", "algorithm=tpo", "model=table"])))
    assert str(err.value) == "env=refine_sequence needs model=transformer, got model=table"


@pytest.mark.parametrize("override, message", [
    ("env.gold=soft", "env.gold='soft'; valid: dense, sparse"),
    ("env.gate_p=1.5", "env.gate_p=1.5: must be >= 0 and <= 1"),
])
def test_bad_settings_are_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        settings(override)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_checkpoint_resume_is_bitwise_identical(interrupt_and_rerun):
    """Interrupted at step 4, resumed from the step-3 checkpoint (refiner, V network, Adam, sampling streams)."""
    base = [*TINY, "algorithm=reinforce_lb", "run.seeds=2", "run.steps=6", "run.checkpoint_every=2",
            "env.eval_every=2"]
    summary, _, _, resumed, straight = interrupt_and_rerun(base, "adhoc", fam.RefineSequenceTask, 4)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 3
    assert resumed == straight
