"""Generated D4RL-layout datasets (envs.offline.generate): the file contract the readers depend on,
episode structure, reproducibility, caching and atomic writes — at tiny budgets (SAC 300 steps,
500 transitions; maze2d 2,000 steps)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("stable_baselines3")
pytest.importorskip("gymnasium_robotics")

import h5py  # noqa: E402

from envs.offline.generate import (DATASETS, UnknownDatasetError, checksum, data_root, generate,  # noqa: E402
                                   generate_dataset, read_arrays, read_metadata, verify)
from envs.offline.generate.rollout import make_env  # noqa: E402

SAC_TINY = dict(sac_steps=300, sac_learning_starts=100, snapshot_every=100, snapshot_episodes=2, steps=500,
                ref_episodes=10, n_envs=4)
MAZE_TINY = dict(steps=2000, ref_episodes=10)
PENDULUM = [f"pendulum-{k}-gen" for k in ("random", "medium", "expert", "medium-replay", "medium-expert")]
META_TYPES = {"dataset_id": str, "env_id": str, "env_kwargs": str, "obs_key": str, "max_episode_steps": int,
              "ref_random_return": float, "ref_expert_return": float, "behaviour_policy": str,
              "behaviour_return": float, "generator": str, "generator_version": int, "seed": int, "config": str,
              "checksum": str}


def tiny(did: str) -> dict:
    return dict(MAZE_TINY) if did.startswith("maze2d") else dict(SAC_TINY)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Every pendulum dataset and maze2d-umaze, generated once at tiny budgets (seed 0)."""
    r = tmp_path_factory.mktemp("data")
    for did in [*PENDULUM, "maze2d-umaze-gen"]:
        generate(did, r, seed=0, **tiny(did))
    return r


@pytest.mark.parametrize("did", [*PENDULUM, "maze2d-umaze-gen"])
def test_layout_keys_dtypes_and_metadata(root, did):
    path = root / f"{did}.hdf5"
    with h5py.File(path, "r") as f:
        for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
            assert k in f, k
        assert f["metadata/dataset_id"].asstr()[()] == did
    a = read_arrays(path)
    n = len(a["rewards"])
    assert a["observations"].dtype == np.float32 and a["observations"].ndim == 2
    assert a["actions"].dtype == np.float32 and a["actions"].shape[0] == n
    assert a["rewards"].dtype == np.float32 and a["rewards"].shape == (n,)
    assert a["terminals"].dtype == np.bool_ and a["timeouts"].dtype == np.bool_
    m = read_metadata(path)
    for k, t in META_TYPES.items():
        assert isinstance(m[k], t), (k, type(m[k]))
    assert m["generator"] == "tpo-bench" and m["seed"] == 0
    assert m["checksum"] == checksum(a)
    assert np.isfinite(m["ref_random_return"]) and np.isfinite(m["ref_expert_return"])
    assert m["ref_random_return"] != m["ref_expert_return"]
    low, high = m["action_low"], m["action_high"]
    assert low.shape == high.shape == (a["actions"].shape[1],)
    assert np.all(a["actions"] >= low) and np.all(a["actions"] <= high)
    cfg = json.loads(m["config"])
    assert cfg["dataset_id"] == did and cfg["steps"] == tiny(did)["steps"]
    # the evaluation env is built from env_id + env_kwargs alone, with the dataset's observation shape
    env = make_env(m["env_id"], json.loads(m["env_kwargs"]))
    obs, _ = env.reset(seed=0)
    o = obs[m["obs_key"]] if m["obs_key"] else obs
    assert np.shape(o) == a["observations"].shape[1:]
    assert env.spec.max_episode_steps == m["max_episode_steps"]
    env.close()


def test_pendulum_episodes_are_time_outs_only(root):
    for did in ("pendulum-random-gen", "pendulum-medium-gen", "pendulum-expert-gen"):
        a = read_arrays(root / f"{did}.hdf5")
        assert not a["terminals"].any()
        ends = np.flatnonzero(a["timeouts"])
        # 200-step episodes; 500 rows = two whole episodes + one cut at row 500 (marked as a time-out)
        np.testing.assert_array_equal(ends, [199, 399, 499])
    m = read_metadata(root / "pendulum-medium-replay-gen.hdf5")
    a = read_arrays(root / "pendulum-medium-replay-gen.hdf5")
    assert len(a["rewards"]) == m["medium_step"] and not a["terminals"].any() and a["timeouts"][-1]


def test_medium_expert_is_medium_then_expert(root):
    me = read_arrays(root / "pendulum-medium-expert-gen.hdf5")
    md = read_arrays(root / "pendulum-medium-gen.hdf5")
    ex = read_arrays(root / "pendulum-expert-gen.hdf5")
    for k in me:
        np.testing.assert_array_equal(me[k], np.concatenate([md[k], ex[k]]))
    assert not np.array_equal(md["actions"], ex["actions"])


def test_pendulum_datasets_share_one_behaviour_run(root):
    runs = [p for p in (root / "behaviour").iterdir() if p.is_dir()]
    assert len(runs) == 1
    info = json.loads((runs[0] / "behaviour.json").read_text())
    assert info["snapshot_steps"] == [100, 200, 300] and info["expert_step"] == 300
    scores = np.array(info["snapshot_scores"])
    assert info["medium_step"] == info["snapshot_steps"][int(np.argmin(np.abs(scores - 100 / 3)))]
    m = read_metadata(root / "pendulum-medium-gen.hdf5")
    assert m["ref_expert_return"] == info["ref_expert_return"]


def test_maze2d_rewards_are_the_fixed_goal_sparse_reward(root):
    path = root / "maze2d-umaze-gen.hdf5"
    a, m = read_arrays(path), read_metadata(path)
    assert m["obs_key"] == "observation" and a["observations"].shape[1] == 4
    assert not a["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(a["timeouts"]), np.r_[299:2000:300, 1999])
    goal = a["infos/goal"]
    assert np.all(goal == goal[0])   # one fixed goal for the whole trajectory
    kwargs = json.loads(m["env_kwargs"])
    assert kwargs["continuing_task"] is True and kwargs["maze_map"][1][1] == "g"
    assert np.all(np.abs(goal[0] - np.array([-1.0, 1.0])) <= 0.25 + 1e-6)   # inside cell (1, 1) of the U-maze
    # one uninterrupted trajectory: r_t = 1 exactly when the NEXT position is within 0.45 of the goal
    dist = np.linalg.norm(a["observations"][1:, :2].astype(np.float64) - goal[0], axis=1)
    ok = np.abs(dist - 0.45) > 1e-4   # float32 storage: skip the boundary
    np.testing.assert_array_equal(a["rewards"][:-1][ok], (dist <= 0.45)[ok].astype(np.float32))
    assert m["ref_expert_return"] > 100 > m["ref_random_return"]   # the controller reaches the goal
    # the controller keeps moving between random target cells
    assert np.abs(np.diff(a["observations"][:, :2], axis=0)).sum() > 50


def test_same_seed_is_byte_identical_and_other_seed_differs(root, tmp_path):
    for did in ("pendulum-medium-replay-gen", "pendulum-medium-gen", "maze2d-umaze-gen"):
        again = generate(did, tmp_path / "again", seed=0, **tiny(did))
        a, b = read_arrays(root / f"{did}.hdf5"), read_arrays(again)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), (did, k)
        assert read_metadata(again)["checksum"] == read_metadata(root / f"{did}.hdf5")["checksum"]
    for did in ("pendulum-medium-gen", "maze2d-umaze-gen"):
        other = generate(did, tmp_path / "other", seed=1, **tiny(did))
        assert not np.array_equal(read_arrays(other)["observations"], read_arrays(root / f"{did}.hdf5")["observations"])
        assert read_metadata(other)["seed"] == 1


def test_cache_hit_does_not_rewrite(root):
    path = root / "pendulum-expert-gen.hdf5"
    before = path.stat().st_mtime_ns
    r = generate_dataset("pendulum-expert-gen", root, seed=0, say=None, **SAC_TINY)
    assert r.path == path and not r.generated
    assert path.stat().st_mtime_ns == before


def test_changed_setting_or_corrupt_file_regenerates(root, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(root / "maze2d-umaze-gen.hdf5", d)
    path = d / "maze2d-umaze-gen.hdf5"
    good = read_metadata(path)["checksum"]
    lines: list[str] = []
    # a changed setting: regenerated, with a one-line notice naming the setting
    r = generate_dataset("maze2d-umaze-gen", d, seed=0, say=lines.append, **{**MAZE_TINY, "steps": 1500})
    assert r.generated and r.rows == 1500 and "steps: 2000 -> 1500" in r.notice
    assert sum("notice" in x for x in lines) == 1 and all("\n" not in x for x in lines)
    # arrays edited in place: the checksum no longer matches -> regenerated to the right bytes
    r = generate_dataset("maze2d-umaze-gen", d, seed=0, say=None, **MAZE_TINY)
    assert r.generated
    with h5py.File(path, "r+") as f:
        f["rewards"][0] = 7.0
    r = generate_dataset("maze2d-umaze-gen", d, seed=0, say=None, **MAZE_TINY)
    assert r.generated and "corrupt" in r.notice
    assert verify(path)["checksum"] == good
    # a truncated file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    r = generate_dataset("maze2d-umaze-gen", d, seed=0, say=None, **MAZE_TINY)
    assert r.generated and "corrupt" in r.notice and verify(path)["checksum"] == good


def test_killed_write_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    import envs.offline.generate.writer as writer

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        generate("maze2d-umaze-gen", tmp_path, seed=0, steps=300, ref_episodes=10)
    assert list(tmp_path.iterdir()) == []


def test_killed_behaviour_training_leaves_no_behaviour_run(tmp_path, monkeypatch):
    import envs.offline.generate.behaviour as behaviour

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(behaviour.np, "savez", killed)   # dies after SAC training, before the run is complete
    with pytest.raises(KeyboardInterrupt):
        generate("pendulum-medium-gen", tmp_path, seed=0, **{**SAC_TINY, "sac_steps": 150})
    assert list((tmp_path / "behaviour").iterdir()) == [] and not (tmp_path / "pendulum-medium-gen.hdf5").exists()


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(UnknownDatasetError) as e:
        generate("hopper-medium-v2", tmp_path)
    assert "\n" not in str(e.value) and "pendulum-medium-replay-gen" in str(e.value)
    for kw, word in ((dict(steps=0), "steps"), (dict(stepz=5), "stepz"), (dict(ref_episodes=3), "ref_episodes"),
                     (dict(goal_cell=(0, 0)), "goal_cell"), (dict(seed=-1), "seed")):
        with pytest.raises(ValueError) as e:
            generate("maze2d-umaze-gen", tmp_path, **kw)
        assert word in str(e.value) and "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())


def test_data_root_rule(monkeypatch, tmp_path):
    monkeypatch.delenv("TPO_BENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "tpo-bench" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root() == data_root(None) and str(data_root()).endswith(os.path.join(".cache", "tpo-bench", "datasets"))
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "flag") == tmp_path / "flag"


def test_registry_ids():
    ids = set(DATASETS)
    assert len(ids) == 3 + 4 * 5 and all(i.endswith("-gen") for i in ids)
    assert {"maze2d-umaze-gen", "pendulum-medium-replay-gen", "walker2d-medium-expert-gen"} <= ids
    assert DATASETS["hopper-medium-gen"].env_id == "Hopper-v5"
