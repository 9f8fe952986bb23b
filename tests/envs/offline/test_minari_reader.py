"""Minari directories read with h5py alone (envs/offline/minari.py), on crafted directories
laid out as the Minari documentation describes (``data/main_data.hdf5`` with one
``episode_<id>`` group per episode, ``data/metadata.json``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from envs.offline.d4rl import episode_returns, split_episodes
from envs.offline.minari import (minari_action_bounds, minari_env, minari_transitions, read_minari,
                                 read_minari_metadata)

ENV_SPEC = {"id": "PointMaze_UMaze-v3", "max_episode_steps": 300, "kwargs": {"continuing_task": True}}
ACTION_SPACE = {"type": "Box", "dtype": "float32", "shape": [2], "low": [-1.0, -1.0], "high": [1.0, 1.0]}


def make_episode(rng, steps, end, obs_dim=3, dict_obs=False, column=False):
    """One episode group's arrays; ``end`` in {"terminated", "truncated", "none"}."""
    obs = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
    terminations = np.zeros(steps, dtype=bool)
    truncations = np.zeros(steps, dtype=bool)
    if end == "terminated":
        terminations[-1] = True
    elif end == "truncated":
        truncations[-1] = True
    rewards = rng.normal(size=steps)
    episode = {
        "observations": ({"observation": obs, "desired_goal": obs[:, :2] + 10.0, "achieved_goal": obs[:, :2]}
                         if dict_obs else obs),
        "actions": rng.uniform(-1, 1, size=(steps, 2)).astype(np.float32),
        "rewards": rewards[:, None] if column else rewards,
        "terminations": terminations[:, None] if column else terminations,
        "truncations": truncations,
    }
    return episode, obs


@pytest.fixture
def crafted(tmp_path, minari_dir):
    """Episodes 0, 1, 2, 10 (stored out of order; 10 must come last): terminated, truncated,
    neither (recording stopped), terminated."""
    rng = np.random.default_rng(21)
    specs = [("episode_10", 2, "terminated"), ("episode_0", 3, "terminated"), ("episode_2", 2, "none"),
             ("episode_1", 4, "truncated")]
    episodes, raw = [], {}
    for name, steps, end in specs:
        episode, obs = make_episode(rng, steps, end, column=(name == "episode_1"))
        episodes.append((name, episode))
        raw[name] = (episode, obs)
    metadata = {"env_spec": json.dumps(ENV_SPEC), "action_space": json.dumps(ACTION_SPACE),
                "ref_min_score": -5.0, "ref_max_score": 5.0, "total_episodes": 4}
    root = minari_dir(tmp_path / "ds", episodes, metadata)
    return root, raw


def test_read_minari_flattens_episodes_in_id_order(crafted):
    root, raw = crafted
    data = read_minari(root)
    order = ["episode_0", "episode_1", "episode_2", "episode_10"]
    want_obs, want_next, want_rewards, want_terms, want_timeouts = [], [], [], [], []
    for name in order:  # literal loop over the steps of each episode
        episode, obs = raw[name]
        steps = len(episode["actions"])
        for t in range(steps):
            want_obs.append(obs[t])
            want_next.append(obs[t + 1])
            want_rewards.append(float(np.asarray(episode["rewards"]).reshape(-1)[t]))
            want_terms.append(bool(np.asarray(episode["terminations"]).reshape(-1)[t]))
            last_without_flag = t == steps - 1 and not (want_terms[-1] or episode["truncations"][t])
            want_timeouts.append(bool(episode["truncations"][t]) or last_without_flag)
    np.testing.assert_array_equal(data["observations"], np.array(want_obs))
    np.testing.assert_array_equal(data["next_observations"], np.array(want_next))
    np.testing.assert_allclose(data["rewards"], want_rewards)
    assert data["terminals"].tolist() == want_terms
    assert data["timeouts"].tolist() == want_timeouts
    assert data["episode_ids"].tolist() == [0] * 3 + [1] * 4 + [2] * 2 + [10] * 2
    assert data["actions"].shape == (11, 2) and data["obs_key"] is None
    assert data["metadata/ref_min_score"] == -5.0


def test_minari_episodes_survive_flattening(crafted):
    root, raw = crafted
    data = read_minari(root)
    episodes = split_episodes(data)
    assert [len(e["rewards"]) for e in episodes] == [3, 4, 2, 2]
    assert all(e["complete"] for e in episodes)
    want = [float(np.sum(raw[n][0]["rewards"])) for n in ("episode_0", "episode_1", "episode_2", "episode_10")]
    np.testing.assert_allclose(episode_returns(data), want)


def test_minari_transitions_keep_every_step(crafted):
    data = read_minari(crafted[0])
    t = minari_transitions(data)
    assert all(v.dtype == np.float32 for v in t.values())
    assert t["observations"].shape == (11, 3) and t["rewards"].shape == (11,)
    # the truncated step (end of episode 1, row 6) keeps its true next observation
    np.testing.assert_array_equal(t["next_observations"][6], crafted[1]["episode_1"][1][4])
    assert t["terminals"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]


def test_metadata_env_and_action_bounds(crafted):
    meta = read_minari_metadata(crafted[0])
    assert minari_env(meta) == ("PointMaze_UMaze-v3", {"continuing_task": True}, 300)
    low, high = minari_action_bounds(meta)
    np.testing.assert_array_equal(low, [-1.0, -1.0])
    np.testing.assert_array_equal(high, [1.0, 1.0])
    assert minari_env({}) == ("", {}, None) and minari_action_bounds({}) is None


@pytest.mark.parametrize("where", ["root", "attrs"])
def test_metadata_fallbacks(tmp_path, minari_dir, where):
    rng = np.random.default_rng(5)
    episode, _ = make_episode(rng, 2, "terminated")
    root = minari_dir(tmp_path / where, [("episode_0", episode)], {"env_spec": json.dumps(ENV_SPEC)},
                      metadata_in=where)
    assert minari_env(read_minari_metadata(root))[0] == "PointMaze_UMaze-v3"


def test_dict_observations_take_the_named_key(tmp_path, minari_dir):
    rng = np.random.default_rng(8)
    episodes, raw = [], []
    for k, steps in enumerate((3, 2)):
        episode, obs = make_episode(rng, steps, "truncated", obs_dim=4, dict_obs=True)
        episodes.append((f"episode_{k}", episode))
        raw.append(obs)
    root = minari_dir(tmp_path / "dict", episodes, {})
    data = read_minari(root)
    np.testing.assert_array_equal(data["observations"], np.concatenate([o[:-1] for o in raw]))
    assert data["obs_key"] == "observation"
    goals = read_minari(root, obs_key="desired_goal")["observations"]
    np.testing.assert_array_equal(goals, np.concatenate([o[:-1, :2] + 10.0 for o in raw]))
    with pytest.raises(ValueError, match="achieved_goal, desired_goal, observation.*'pixels'"):
        read_minari(root, obs_key="pixels")


def test_wrong_layouts_raise_one_line(tmp_path, minari_dir):
    rng = np.random.default_rng(9)
    episode, obs = make_episode(rng, 3, "terminated")
    bad = dict(episode, observations=obs[:-1])  # T rows instead of T+1
    with pytest.raises(ValueError, match="episode_0: observations has 3 rows") as info:
        read_minari(minari_dir(tmp_path / "short", [("episode_0", bad)], {}))
    assert "\n" not in str(info.value)
    missing = {k: v for k, v in episode.items() if k != "truncations"}
    with pytest.raises(ValueError, match="episode_0 has no truncations"):
        read_minari(minari_dir(tmp_path / "missing", [("episode_0", missing)], {}))
    with pytest.raises(ValueError, match="no episode_<id> groups"):
        read_minari(minari_dir(tmp_path / "empty", [("other", {"x": np.zeros(2)})], {}))
