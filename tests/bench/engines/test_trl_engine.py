"""engine=trl: two TRL steps of TPO and of DRO-V on the tiny model change the parameters and write the native
loop's records (metric names, evaluations, seeds as chunks); bad engine settings are one-line errors."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def overrides(algorithm, tmp_path, *extra):
    return ["env=rlvr", f"algorithm={algorithm}", "engine=trl", "+env.settings.max_operand=9",
            "+env.settings.n_terms=1", "env.prompts_per_step=2", "env.k=4", "env.eval_size=2", "env.eval_every=1",
            "env.sft.steps=30", "env.max_new_tokens=4", "model.hidden=32", "model.heads=2", "model.intermediate=64",
            "run.steps=2", "run.seeds=1", "logger=none", "run.progress=false", f"run.root={tmp_path}", *extra]


@pytest.mark.parametrize("algorithm", ["tpo", "dro_v"])
def test_two_trl_steps_change_the_parameters(tmp_path, algorithm):
    pytest.importorskip("trl")
    from bench import engines
    from bench.cli import compose
    from bench.schema import to_settings

    s = to_settings(compose(overrides(algorithm, tmp_path, "algorithm.epochs=2")))
    built = engines.builder(s)(s, [0])
    before = [p.detach().clone() for p in built.task.parameters()]
    logged = []
    built.train(built.task, built.loss, built.optimizer, steps=2, epochs=built.epochs, log_every=1,
                on_log=lambda step, m: logged.append((step, {k: float(v[0]) for k, v in m.items()})))
    after = built.task.parameters()
    assert any(not torch.equal(p, q) for p, q in zip(after, before)), "no parameter changed"
    if algorithm == "dro_v":   # the value model V(x) is trained too
        n_value = len(list(built.task.suite.values[0].parameters()))
        assert any(not torch.equal(p, q) for p, q in zip(after[-n_value:], before[-n_value:]))
    assert [step for step, _ in logged] == [0, 1]
    for _, m in logged:
        assert math.isfinite(m["loss/total"]) and 0.0 <= m["train/reward"] <= 1.0
    assert "eval/accuracy" in logged[0][1] and "eval/accuracy" in logged[1][1]   # before step 0, after the last


def test_bench_engine_trl_writes_records_that_the_report_reads(tmp_path):
    pytest.importorskip("trl")
    from bench.cli import compose
    from bench.records import read_metrics, read_run
    from bench.report.collect import collect
    from bench.run import execute

    summary = execute(compose(overrides("tpo", tmp_path, "run.seeds=2")))
    assert summary["status"] == "completed"
    (run_dir,) = (tmp_path / "adhoc" / "quick").iterdir()
    assert read_run(run_dir).config["engine"]["name"] == "trl"
    rows = read_metrics(run_dir)
    assert {(r["seed"], r["step"]) for r in rows} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    runs = collect(tmp_path, "adhoc", "quick").runs
    assert list(runs["engine.name"]) == ["trl"] and list(runs["algorithm.name"]) == ["tpo"]


def test_engine_settings_it_cannot_honour_are_one_line(tmp_path):
    from bench import engines
    from bench.cli import compose
    from bench.schema import ConfigError, to_settings

    with pytest.raises(ConfigError, match=r"^engine=trl: algorithm=grpo \(loss grpo\); valid: tpo, dro_v$"):
        engines.builder(to_settings(compose(overrides("grpo", tmp_path))))
    with pytest.raises(ConfigError, match=r"^run.checkpoint_every=5: not supported with engine=trl"):
        engines.builder(to_settings(compose(overrides("tpo", tmp_path, "run.checkpoint_every=5"))))
    native = to_settings(compose(["env=rlvr", f"run.root={tmp_path}"]))
    assert engines.is_native(native) and engines.seeds_per_chunk(native) is None
