"""Dataset ids, locations, loading and errors (envs/offline/datasets.py)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from envs.offline.d4rl import qlearning_dataset
from envs.offline.datasets import (GENERATED_METADATA_KEYS, DatasetError, DatasetNotFound, DatasetUnreadable,
                                   d4rl_download_url, data_root, dataset_info, dataset_path, load_dataset)

GEN = "pendulum-medium-replay-gen"


@pytest.fixture(autouse=True)
def no_d4rl_package(monkeypatch):
    """No test depends on a ``d4rl`` installed here: importing it fails unless a test says otherwise."""
    monkeypatch.setitem(sys.modules, "d4rl", None)
    monkeypatch.delenv("TPO_BENCH_DATA", raising=False)


def assert_one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    return message


# --------------------------------------------------------------------------- locations


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data_root() == tmp_path / "home" / ".cache" / "tpo-bench" / "datasets"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "tpo-bench" / "datasets"
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root("~/d") == tmp_path / "home" / "d"


def test_dataset_path_forms(tmp_path):
    assert dataset_path("hopper-medium-v2", tmp_path) == tmp_path / "hopper-medium-v2.hdf5"
    assert dataset_path(GEN, tmp_path) == tmp_path / f"{GEN}.hdf5"
    assert dataset_path("mujoco/hopper/medium-v0", tmp_path) == tmp_path / "minari" / "mujoco" / "hopper" / "medium-v0"


def test_d4rl_download_urls_follow_infos_patterns():
    root = "http://rail.eecs.berkeley.edu/datasets/offline_rl"
    assert d4rl_download_url("hopper-medium-replay-v2") == f"{root}/gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    assert d4rl_download_url("maze2d-umaze-v1") == f"{root}/maze2d/maze2d-umaze-sparse-v1.hdf5"
    assert d4rl_download_url("antmaze-medium-play-v2") == (
        f"{root}/ant_maze_v2/Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5")
    with pytest.raises(KeyError):
        d4rl_download_url(GEN)


# --------------------------------------------------------------------------- errors


def test_missing_d4rl_file(tmp_path):
    path = tmp_path / "hopper-medium-v2.hdf5"
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("hopper-medium-v2", tmp_path)
    assert_one_line(info, path, "hopper-medium-v2.hdf5", "gym_mujoco_v2/hopper_medium-v2.hdf5",
                    "TPO_BENCH_DATA / env.data_dir")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DatasetError)


def test_missing_generated_file(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset(GEN, tmp_path)
    assert_one_line(info, tmp_path / f"{GEN}.hdf5", f"`bench-data generate {GEN}`")


def test_misspelled_generated_id_suggests_the_closest_one_not_a_generate_command(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("pendulum-mediun-gen", tmp_path)
    assert_one_line(info, tmp_path / "pendulum-mediun-gen.hdf5", "did you mean pendulum-medium-gen?")
    assert "bench-data generate pendulum-mediun-gen" not in str(info.value)


def test_missing_minari_directory(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("mujoco/hopper/medium-v0", tmp_path)
    assert_one_line(info, tmp_path / "minari" / "mujoco" / "hopper" / "medium-v0", "minari download")


def test_unknown_id_lists_the_valid_forms(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("hoper-medium-v2", tmp_path)
    assert_one_line(info, tmp_path / "hoper-medium-v2.hdf5", "hopper,halfcheetah,walker2d", "maze2d-",
                    "antmaze-", "-gen", "Minari")
    with pytest.raises(DatasetNotFound, match="non-empty"):
        load_dataset("", tmp_path)


def test_truncated_file(tmp_path, write_generated):
    path, _ = write_generated(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset(GEN, tmp_path)
    assert_one_line(info, path, "truncated or not HDF5")
    assert isinstance(info.value, ValueError)
    with pytest.raises(DatasetUnreadable):
        dataset_info(GEN, tmp_path)


def test_not_hdf5_file(tmp_path):
    path = tmp_path / "hopper-medium-v2.hdf5"
    path.write_text("<html>404</html>")
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset("hopper-medium-v2", tmp_path)
    assert_one_line(info, path)


def test_wrong_layout_missing_key(tmp_path, write_hdf5, make_episodes):
    data = make_episodes([4, 3], ["terminal", "timeout"])
    del data["actions"]
    path = write_hdf5(tmp_path / "hopper-medium-v2.hdf5", data)
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset("hopper-medium-v2", tmp_path)
    assert_one_line(info, path, "missing key(s) actions")


def test_wrong_layout_mismatched_lengths(tmp_path, write_hdf5, make_episodes):
    data = make_episodes([4, 3], ["terminal", "timeout"])
    data["rewards"] = data["rewards"][:-1]
    path = write_hdf5(tmp_path / "walker2d-expert-v2.hdf5", data)
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset("walker2d-expert-v2", tmp_path)
    assert_one_line(info, path, "mismatched lengths", "rewards=6", "observations=7")


def test_generated_file_missing_metadata(tmp_path, write_generated):
    path, _ = write_generated(tmp_path, drop=("ref_expert_return", "seed"))
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset(GEN, tmp_path)
    assert_one_line(info, path, "metadata/ref_expert_return", "metadata/seed", f"bench-data generate {GEN}")


def test_generated_file_of_another_dataset(tmp_path, write_generated):
    path, _ = write_generated(tmp_path, dataset_id="maze2d-umaze-gen")
    path.rename(tmp_path / f"{GEN}.hdf5")
    with pytest.raises(DatasetUnreadable) as info:
        load_dataset(GEN, tmp_path)
    assert_one_line(info, "maze2d-umaze-gen", "metadata/dataset_id")


def test_generated_file_bad_env_kwargs(tmp_path, write_generated):
    write_generated(tmp_path, env_kwargs="{not json")
    with pytest.raises(DatasetUnreadable, match="bad generator metadata"):
        load_dataset(GEN, tmp_path)


# --------------------------------------------------------------------------- loading


def test_generated_file_loads_with_its_metadata(tmp_path, write_generated):
    path, entries = write_generated(tmp_path)
    ds = load_dataset(GEN, tmp_path)
    info = ds.info
    assert (info.id, info.source, info.path) == (GEN, "generated", str(path))
    assert (info.env_id, info.env_kwargs, info.obs_key, info.max_episode_steps) == \
        ("Pendulum-v1", {"g": 9.81}, None, 200)
    assert (info.ref_min_score, info.ref_max_score) == (-1200.5, -150.25)
    assert info.ref_source == "the generator's recorded random/expert returns" and not info.comparable_to_d4rl
    assert info.metadata["behaviour_policy"] == "sac-medium" and info.metadata["seed"] == 7
    assert set(GENERATED_METADATA_KEYS) <= set(info.metadata)
    want = qlearning_dataset(entries)
    for key in ("observations", "actions", "rewards", "next_observations", "terminals"):
        value = getattr(ds, key)
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, want[key])
    # 12 rows, episodes 4 (terminal) + 5 (time-out) + 3 (partial): 11 candidates - 1 time-out
    assert (ds.size, ds.obs_dim, ds.action_dim) == (10, 3, 1)
    rewards = entries["rewards"].reshape(-1).astype(np.float64)
    np.testing.assert_allclose(ds.episode_returns, [rewards[:4].sum(), rewards[4:9].sum()])
    np.testing.assert_array_equal(ds.action_low, [-2.0])
    np.testing.assert_array_equal(ds.action_high, [2.0])
    assert dataset_info(GEN, tmp_path) == info


def test_generated_file_found_through_env_var(tmp_path, write_generated, monkeypatch):
    write_generated(tmp_path, obs_key="observation")
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path))
    assert load_dataset(GEN).info.obs_key == "observation"


def test_d4rl_file_info(tmp_path, write_hdf5, make_episodes):
    write_hdf5(tmp_path / "hopper-medium-v2.hdf5", dict(make_episodes([4, 3], ["timeout", "timeout"]),
                                                        **{"metadata/algorithm": "SAC"}))
    ds = load_dataset("hopper-medium-v2", tmp_path)
    info = ds.info
    assert (info.source, info.env_id, info.env_kwargs, info.obs_key, info.max_episode_steps) == \
        ("d4rl-file", "Hopper-v5", {}, None, 1000)
    assert (info.ref_min_score, info.ref_max_score) == (-20.272305, 3234.3)
    assert info.ref_source == "D4RL reference constants" and info.comparable_to_d4rl
    assert info.metadata == {"algorithm": "SAC"}
    np.testing.assert_array_equal(ds.action_low, [-1.0, -1.0])
    np.testing.assert_array_equal(ds.action_high, [1.0, 1.0])
    assert ds.size == 7 - 1 - 1 and ds.episode_returns.shape == (2,)


def test_d4rl_maze2d_and_ant_info(tmp_path, write_hdf5, make_episodes):
    for dataset_id in ("maze2d-medium-dense-v1", "ant-medium-v2", "antmaze-umaze-v0"):
        write_hdf5(tmp_path / f"{dataset_id}.hdf5", make_episodes([4, 3], ["timeout", "timeout"]))
    maze = dataset_info("maze2d-medium-dense-v1", tmp_path)
    assert (maze.env_id, maze.obs_key, maze.max_episode_steps) == ("PointMaze_MediumDense-v3", "observation", 600)
    assert maze.env_kwargs["continuing_task"] is True and "eval_note" in maze.metadata
    ant = dataset_info("ant-medium-v2", tmp_path)
    assert ant.env_id == "Ant-v5" and "111" in ant.metadata["eval_note"]
    antmaze = dataset_info("antmaze-umaze-v0", tmp_path)
    assert (antmaze.env_id, antmaze.max_episode_steps, antmaze.ref_max_score) == ("AntMaze_UMaze-v5", 700, 1.0)


def test_v0_style_d4rl_file_uses_max_episode_steps(tmp_path, write_hdf5, make_episodes):
    data = make_episodes([1005], ["partial"])
    del data["timeouts"]
    write_hdf5(tmp_path / "halfcheetah-random-v2.hdf5", data)
    ds = load_dataset("halfcheetah-random-v2", tmp_path)
    assert ds.size == 1005 - 1 - 1  # the time-out at row 999 (limit 1000) and the last row dropped
    assert ds.episode_returns.shape == (1,)


def test_unknown_id_with_a_file_loads_without_an_eval_env(tmp_path, write_hdf5, make_episodes):
    write_hdf5(tmp_path / "my-data.hdf5", make_episodes([4, 3], ["terminal", "timeout"]))
    ds = load_dataset("my-data", tmp_path)
    assert (ds.info.source, ds.info.env_id, ds.info.comparable_to_d4rl) == ("d4rl-file", "", False)
    assert math.isnan(ds.info.ref_min_score)


def test_minari_id_loads(tmp_path, minari_dir):
    rng = np.random.default_rng(13)
    episodes = []
    for k, steps in enumerate((3, 4)):
        obs = rng.normal(size=(steps + 1, 4)).astype(np.float32)
        episodes.append((f"episode_{k}", {
            "observations": {"observation": obs, "desired_goal": obs[:, :2]},
            "actions": rng.uniform(-1, 1, size=(steps, 2)), "rewards": rng.normal(size=steps),
            "terminations": np.arange(steps) == steps - 1, "truncations": np.zeros(steps, dtype=bool)}))
    spec = {"id": "PointMaze_UMaze-v3", "max_episode_steps": 300, "kwargs": {"continuing_task": True}}
    box = {"type": "Box", "dtype": "float32", "shape": [2], "low": [-1.0, -0.5], "high": [1.0, 0.5]}
    minari_dir(tmp_path / "minari" / "D4RL" / "pointmaze" / "umaze-v2", episodes,
               {"env_spec": json.dumps(spec), "action_space": json.dumps(box), "ref_min_score": 1.0,
                "ref_max_score": 3.0})
    ds = load_dataset("D4RL/pointmaze/umaze-v2", tmp_path)
    info = ds.info
    assert (info.source, info.env_id, info.env_kwargs, info.obs_key, info.max_episode_steps) == \
        ("minari", "PointMaze_UMaze-v3", {"continuing_task": True}, "observation", 300)
    assert (info.ref_min_score, info.ref_max_score, info.comparable_to_d4rl) == (1.0, 3.0, False)
    assert ds.size == 7 and ds.observations.dtype == np.float32 and ds.terminals.sum() == 2
    np.testing.assert_array_equal(ds.action_low, [-1.0, -0.5])
    assert ds.episode_returns.shape == (2,)


# --------------------------------------------------------------------------- the d4rl package


def _fake_package(root: Path, d4rl_body: str) -> None:
    (root / "d4rl").mkdir(parents=True)
    (root / "d4rl" / "__init__.py").write_text(textwrap.dedent(d4rl_body))
    (root / "gym.py").write_text(textwrap.dedent("""
        import numpy as np

        class _Env:
            dataset_filepath = "/fake/d4rl/hopper_medium-v2.hdf5"

            def get_dataset(self):
                rng = np.random.default_rng(0)
                return {"observations": rng.normal(size=(6, 11)), "actions": rng.normal(size=(6, 3)),
                        "rewards": rng.normal(size=(6, 1)), "terminals": np.zeros(6, dtype=bool),
                        "timeouts": np.arange(6) == 2}

        def make(dataset_id):
            assert dataset_id == "hopper-medium-v2"
            return _Env()
    """))


def test_d4rl_package_is_used_when_no_file(tmp_path, monkeypatch):
    _fake_package(tmp_path / "site", "")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "d4rl")
    monkeypatch.delitem(sys.modules, "gym", raising=False)
    ds = load_dataset("hopper-medium-v2", tmp_path / "data")
    assert (ds.info.source, ds.info.path, ds.info.env_id) == ("d4rl-package", "/fake/d4rl/hopper_medium-v2.hdf5",
                                                                "Hopper-v5")
    assert ds.size == 6 - 1 - 1 and ds.rewards.shape == (4,)


def test_d4rl_package_that_raises_on_import_counts_as_absent(tmp_path, monkeypatch):
    _fake_package(tmp_path / "site", "raise RuntimeError('MuJoCo 2.1 binaries not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "d4rl")
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("hopper-medium-v2", tmp_path / "data")
    assert_one_line(info, tmp_path / "data" / "hopper-medium-v2.hdf5", "gym_mujoco_v2")


def test_import_stays_light():
    code = "import sys, envs.offline; assert 'h5py' not in sys.modules, 'h5py imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
