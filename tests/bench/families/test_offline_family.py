"""The offline family and loop: smoke runs of every offline algorithm, stacked seeds equal lone seeds,
target updates, preprocessing, evaluation and the one-line data errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.bench.families.offline_data import write_pendulum_dataset

from algorithms import ALGORITHMS

BASELINES = ("bc", "td3_bc", "iql")
OFFLINE = tuple(sorted(k for k, s in ALGORITHMS.items() if s.batch == "transition"))   # + the generative policies


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline-data")
    write_pendulum_dataset(root)
    return root


def overrides(data_dir, algorithm, tmp_path, *extra):
    return ["env=offline", f"algorithm={algorithm}", "env.dataset=pendulum-tiny-gen", f"env.data_dir={data_dir}",
            "env.batch_size=32", "env.eval_every=3", "env.eval_episodes=2", "model.actor_hidden=[16,16]",
            "model.critic_hidden=[16,16]", "model.value_hidden=[16,16]", "model.generator_hidden=[16,16]",
            "run.steps=4", "run.seeds=2",
            "logger=none", "run.progress=false", f"run.root={tmp_path}", *extra]


def settings_for(data_dir, algorithm, tmp_path, *extra):
    from bench.cli import compose
    from bench.schema import to_settings

    return to_settings(compose(overrides(data_dir, algorithm, tmp_path, *extra)))


@pytest.mark.parametrize("algorithm", OFFLINE)
def test_smoke_every_offline_algorithm(data_dir, tmp_path, algorithm):
    """A few steps: losses finite, every network changed, evaluation logged at steps 0, 3 and the records say so."""
    from bench.build import build
    from bench.cli import compose
    from bench.records import read_metrics
    from bench.run import execute

    settings = settings_for(data_dir, algorithm, tmp_path)
    before = {k: [p.detach().clone() for p in v] for k, v in build(settings).task.networks.items()}
    summary = execute(compose(overrides(data_dir, algorithm, tmp_path)))
    assert summary["status"] == "completed"
    (run_dir,) = (tmp_path / "adhoc" / "quick").iterdir()
    rows = read_metrics(run_dir)
    evals = sorted({r["step"] for r in rows if "eval/normalised_score" in r})
    assert evals == [0, 3]
    for r in rows:
        for k, v in r.items():
            if k.startswith(("loss/", "eval/")):
                assert np.isfinite(v), (k, v)
    spec = ALGORITHMS[algorithm]
    assert {k for r in rows for k in r if k.startswith("loss/")} == {f"loss/{p.network}" for p in spec.phases}
    # the trained task: rebuild, train in-process and compare with the initial weights
    from bench.build import build as rebuild
    built = rebuild(settings)
    built.train(built.task, built.loss, built.optimizer, steps=2, epochs=1, log_every=1, on_log=lambda s, m: None)
    for name, ps in built.task.networks.items():
        assert any(not torch.equal(p, q) for p, q in zip(ps, before[name])), f"{name} did not change"


@pytest.mark.parametrize("algorithm", BASELINES + ("gtp", "fql"))
def test_stacked_seeds_equal_lone_seed(data_dir, tmp_path, algorithm):
    """Seed 1 trained beside seed 0 ends with the parameters it gets trained alone (vmap: no cross-seed term)."""
    from bench.build import build

    def trained(seeds, seed0):
        s = settings_for(data_dir, algorithm, tmp_path, f"run.seeds={seeds}", f"run.seed0={seed0}")
        b = build(s)
        b.train(b.task, b.loss, b.optimizer, steps=5, epochs=1, log_every=10, on_log=lambda s, m: None)
        return b.task

    both, alone = trained(2, 0), trained(1, 1)
    for name, ps in alone.networks.items():
        for p_both, p_alone in zip(both.networks[name], ps):
            torch.testing.assert_close(p_both[1:2], p_alone, rtol=1e-5, atol=1e-6)
    for name, ps in alone.targets.items():
        for p_both, p_alone in zip(both.targets[name], ps):
            torch.testing.assert_close(p_both[1:2], p_alone, rtol=1e-5, atol=1e-6)


def test_target_update_is_polyak(data_dir, tmp_path):
    from bench.build import build

    task = build(settings_for(data_dir, "td3_bc", tmp_path)).task
    with torch.no_grad():
        for p in task.networks["critic"]:
            p.add_(1.0)
    old = [t.clone() for t in task.targets["critic"]]
    task.update_target("critic", 0.25)
    for t, o, p in zip(task.targets["critic"], old, task.networks["critic"]):
        torch.testing.assert_close(t, o + 0.25 * (p.detach() - o))


def test_td3_bc_actor_is_delayed(data_dir, tmp_path):
    """TD3+BC's actor and its target move only on steps with step % actor_every == 0."""
    from bench.build import build

    b = build(settings_for(data_dir, "td3_bc", tmp_path, "algorithm.actor_every=2"))
    b.train(b.task, b.loss, b.optimizer, steps=1, epochs=1, log_every=1, on_log=lambda s, m: None)
    after0 = [p.detach().clone() for p in b.task.networks["actor"]]
    target0 = [p.clone() for p in b.task.targets["actor"]]
    b.train(b.task, b.loss, b.optimizer, steps=2, epochs=1, log_every=1, on_log=lambda s, m: None, start_step=1)
    assert all(torch.equal(p, q) for p, q in zip(b.task.networks["actor"], after0))
    assert all(torch.equal(p, q) for p, q in zip(b.task.targets["actor"], target0))


def test_preprocessing_actions_and_observations(data_dir, tmp_path):
    from bench.build import build

    task = build(settings_for(data_dir, "bc", tmp_path)).task
    a = task.data["actions"]
    assert a.min() >= -1 and a.max() <= 1 and a.abs().max() > 0.9    # [−2, 2] mapped to [−1, 1]
    env_a = torch.tensor([[-2.0], [0.0], [2.0]])
    torch.testing.assert_close(task.to_env(task.to_unit(env_a)), env_a)
    o = task.data["observations"]
    torch.testing.assert_close(o.mean(0), torch.zeros(o.shape[1]), atol=1e-4, rtol=0)
    assert torch.all((o.std(0, unbiased=False) - 1).abs() < 1e-2)
    raw = build(settings_for(data_dir, "bc", tmp_path, "env.normalise_obs=false")).task
    assert not torch.allclose(raw.data["observations"], o)


def test_evaluation_uses_common_start_states(data_dir, tmp_path):
    """Every seed and algorithm evaluates from the same reset seeds; returns and scores are per seed."""
    from bench.build import build

    a = build(settings_for(data_dir, "bc", tmp_path)).task
    b = build(settings_for(data_dir, "iql", tmp_path)).task
    assert a.eval_seeds() == b.eval_seeds() and len(set(a.eval_seeds())) == 4
    out = a.evaluate()
    assert out["eval/return"].shape == (2,) and out["eval/normalised_score"].shape == (2,)
    ref_min, ref_max = a.info.ref_min_score, a.info.ref_max_score
    torch.testing.assert_close(out["eval/normalised_score"],
                               100 * (out["eval/return"] - ref_min) / (ref_max - ref_min))


def test_missing_dataset_is_one_line(tmp_path):
    cmd = [sys.executable, "-m", "bench.cli", "env=offline", "algorithm=bc", "env.dataset=pendulum-medium-replay-gen",
           f"env.data_dir={tmp_path / 'empty'}", "logger=none", f"run.root={tmp_path / 'runs'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "pendulum-medium-replay-gen" in lines[0] and "bench-data" in lines[0], out.stderr
    assert not (tmp_path / "runs" / "adhoc").exists()


def test_on_policy_algorithm_refused_on_offline_env(data_dir, tmp_path):
    from bench.build import build
    from bench.schema import ConfigError

    with pytest.raises(ConfigError, match="offline algorithms only"):
        build(settings_for(data_dir, "ppo", tmp_path))


def test_killed_run_resumes_to_the_same_records(data_dir, interrupt_and_rerun):
    """A run killed mid-way resumes from its checkpoint (networks, targets, Adam, data and noise streams) and
    logs exactly what an uninterrupted run logs."""
    from bench.families.offline import OfflineTask

    args = ["env=offline", "algorithm=td3_bc", "env.dataset=pendulum-tiny-gen", f"env.data_dir={data_dir}",
            "env.batch_size=16", "env.eval_every=4", "env.eval_episodes=1", "model.actor_hidden=[8]",
            "model.critic_hidden=[8]", "run.steps=8", "run.seeds=2", "run.log_every=1", "run.checkpoint_every=2",
            "logger=none", "run.progress=false"]
    summary, _, killed, resumed, straight = interrupt_and_rerun(args, "adhoc", OfflineTask, 5, method="sample")
    assert summary["status"] == "completed"
    assert 0 < len(killed) < len(straight)
    assert resumed == straight


def test_td3_bc_targets_move_only_with_the_delayed_actor(data_dir, tmp_path):
    """TD3 (Fujimoto et al. 2018, Alg. 1): both target networks are updated on the actor's steps only."""
    from bench.build import build

    b = build(settings_for(data_dir, "td3_bc", tmp_path, "algorithm.actor_every=2"))
    initial = [p.clone() for p in b.task.targets["critic"]]
    b.train(b.task, b.loss, b.optimizer, steps=1, epochs=1, log_every=1, on_log=lambda s, m: None)
    after0 = [p.clone() for p in b.task.targets["critic"]]
    assert any(not torch.equal(p, q) for p, q in zip(after0, initial))      # step 0: actor step, targets move
    b.train(b.task, b.loss, b.optimizer, steps=2, epochs=1, log_every=1, on_log=lambda s, m: None, start_step=1)
    assert all(torch.equal(p, q) for p, q in zip(b.task.targets["critic"], after0))   # step 1: critic only


def test_nan_stops_the_run_with_a_record_saying_so(data_dir, tmp_path, monkeypatch):
    """A non-finite loss (here: NaN observations from step 2) stops the run; its record says status=nan."""
    from bench.cli import compose
    from bench.families.offline import OfflineTask
    from bench.records import read_run
    from bench.run import execute

    real = OfflineTask.sample

    def poisoned(self, step):
        fields = real(self, step)
        if step >= 2:
            fields["observations"] = torch.full_like(fields["observations"], float("nan"))
        return fields

    monkeypatch.setattr(OfflineTask, "sample", poisoned)
    summary = execute(compose(overrides(data_dir, "td3_bc", tmp_path, "run.log_every=1")))
    assert summary["status"] == "nan"
    (run_dir,) = (tmp_path / "adhoc" / "quick").iterdir()
    assert read_run(run_dir).status == "nan"
