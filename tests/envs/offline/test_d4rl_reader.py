"""The D4RL layout reader (envs/offline/d4rl.py) against literal python loops over the rows.

The reference loops restate the semantics of D4RL's ``qlearning_dataset`` helper (Fu et al.
2020, code release): rows 0..N-2, time-out rows skipped, a step counter for files without
``timeouts`` that is reset after time-outs and reset-then-incremented after terminals.
"""
from __future__ import annotations

import numpy as np
import pytest

from envs.offline.d4rl import (check_layout, episode_returns, qlearning_dataset, read_hdf5, split_episodes,
                               time_out_flags)


def literal_qlearning(data, max_episode_steps=None):
    """Row-by-row transitions, one python iteration per row."""
    rewards = np.asarray(data["rewards"]).reshape(-1)
    terminals = np.asarray(data["terminals"]).reshape(-1)
    n = rewards.shape[0]
    out = {k: [] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    step = 0
    for i in range(n - 1):
        if "timeouts" in data:
            time_out = bool(np.asarray(data["timeouts"]).reshape(-1)[i])
        else:
            time_out = step == max_episode_steps - 1
        if time_out:
            step = 0
            continue
        if terminals[i]:
            step = 0
        out["observations"].append(data["observations"][i])
        out["actions"].append(data["actions"][i])
        out["next_observations"].append(data["observations"][i + 1])
        out["rewards"].append(rewards[i])
        out["terminals"].append(1.0 if terminals[i] else 0.0)
        step += 1
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def literal_episodes(data):
    """Episodes cut after every terminal/time-out row; the tail (if any) is partial."""
    terminals = np.asarray(data["terminals"]).reshape(-1)
    timeouts = np.asarray(data["timeouts"]).reshape(-1)
    episodes, current = [], []
    for i in range(terminals.shape[0]):
        current.append(i)
        if terminals[i] or timeouts[i]:
            episodes.append((current, True))
            current = []
    if current:
        episodes.append((current, False))
    return episodes


def assert_same(got, want):
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == np.float32, key
        np.testing.assert_array_equal(got[key], want[key].reshape(got[key].shape), err_msg=key)


@pytest.fixture
def crafted(make_episodes):
    """Episodes: terminal, time-out, terminal at the last row before a time-out episode,
    a row that is both terminal and time-out, and a final partial episode."""
    data = make_episodes([5, 6, 3, 4, 4], ["terminal", "timeout", "terminal", "timeout", "partial"], seed=3)
    terminals = data["terminals"].copy()
    terminals[5 + 6 + 3 + 4 - 1, 0] = True  # the 4th episode's last row: terminal and time-out
    data["terminals"] = terminals
    return data


def test_read_hdf5_flat_keys_squeezes_and_python_metadata(tmp_path, write_hdf5, crafted):
    n = crafted["rewards"].shape[0]
    entries = dict(crafted, **{
        "infos/qpos": np.arange(n * 2, dtype=np.float64).reshape(n, 2),
        "metadata/algorithm": "SAC",
        "metadata/seed": 5,
        "metadata/ref": 1.5,
        "metadata/flag": True,
        "metadata/policy/fc0/weight": np.ones((2, 3)),
        "metadata/names": np.array([b"a", b"bc"]),
    })
    path = write_hdf5(tmp_path / "x.hdf5", entries)
    data = read_hdf5(path)
    assert set(data) == set(entries)
    assert crafted["rewards"].shape == (n, 1) and crafted["terminals"].shape == (n, 1)
    assert data["rewards"].shape == (n,) and data["terminals"].shape == (n,) and data["timeouts"].shape == (n,)
    np.testing.assert_array_equal(data["rewards"], crafted["rewards"][:, 0])
    assert data["observations"].shape == (n, 3) and data["infos/qpos"].shape == (n, 2)
    assert data["metadata/algorithm"] == "SAC" and isinstance(data["metadata/algorithm"], str)
    assert data["metadata/seed"] == 5 and isinstance(data["metadata/seed"], int)
    assert data["metadata/ref"] == 1.5 and isinstance(data["metadata/ref"], float)
    assert data["metadata/flag"] is True
    assert data["metadata/policy/fc0/weight"].shape == (2, 3)
    assert data["metadata/names"].tolist() == ["a", "bc"]
    assert set(read_hdf5(path, prefix="metadata/")) == {k for k in entries if k.startswith("metadata/")}


def test_qlearning_matches_literal_loop_with_timeouts(crafted):
    got = qlearning_dataset(crafted)
    want = literal_qlearning(crafted)
    assert_same(got, want)
    n = crafted["rewards"].shape[0]
    # 2 time-out rows among 0..N-2 are dropped (one of them also terminal), plus the last row
    assert got["rewards"].shape == (n - 1 - 2,)
    np.testing.assert_array_equal(got["terminals"].sum(), 2.0)  # the two plain terminals stay


def test_timeout_row_is_dropped_and_next_observation_stays_in_episode(crafted):
    got = qlearning_dataset(crafted)
    obs = crafted["observations"]
    # the first episode's terminal row (row 4) is kept: its s' is row 5 but terminal = 1
    k = int(np.flatnonzero(got["terminals"])[0])
    np.testing.assert_array_equal(got["observations"][k], obs[4])
    # the time-out row 10 (end of episode 2) never appears as a source observation
    assert not any(np.array_equal(o, obs[10]) for o in got["observations"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_qlearning_random_flags_match_literal_loop(seed):
    rng = np.random.default_rng(seed)
    n = 200
    data = {
        "observations": rng.normal(size=(n, 4)),
        "actions": rng.normal(size=(n, 2)),
        "rewards": rng.normal(size=n),
        "terminals": rng.random(n) < 0.05,
        "timeouts": rng.random(n) < 0.05,
    }
    assert_same(qlearning_dataset(data), literal_qlearning(data))
    v0 = {k: v for k, v in data.items() if k != "timeouts"}
    for max_steps in (1, 2, 7, 30):
        assert_same(qlearning_dataset(v0, max_episode_steps=max_steps), literal_qlearning(v0, max_steps))


def test_v0_file_without_timeouts_uses_the_step_counter(tmp_path, write_hdf5, make_episodes):
    data = make_episodes([3, 13], ["terminal", "partial"], seed=4)
    del data["timeouts"]
    data = read_hdf5(write_hdf5(tmp_path / "v0.hdf5", data))
    assert "timeouts" not in data
    # limit 5: the counter is 0,1,2 (terminal at row 2, reset then incremented to 1), so rows
    # 3,4,5,6 count 1..4 and row 6 is the time-out; then 0..4 again: rows 7..11, time-out at 11
    flags = time_out_flags(data["terminals"], 5)
    assert np.flatnonzero(flags).tolist() == [6, 11]
    got = qlearning_dataset(data, max_episode_steps=5)
    assert_same(got, literal_qlearning(data, 5))
    assert got["rewards"].shape == (16 - 1 - 2,)
    with pytest.raises(ValueError, match="max_episode_steps"):
        qlearning_dataset(data)
    with pytest.raises(ValueError, match="max_episode_steps"):
        time_out_flags(data["terminals"], 0)


def test_stored_next_observations_are_ignored(crafted):
    data = dict(crafted, next_observations=np.zeros_like(crafted["observations"]))
    assert_same(qlearning_dataset(data), literal_qlearning(crafted))


def test_split_episodes_and_returns_match_literal_loop(crafted):
    rewards = crafted["rewards"].reshape(-1)
    episodes = split_episodes(crafted)
    want = literal_episodes(crafted)
    assert [len(e["rewards"]) for e in episodes] == [len(rows) for rows, _ in want] == [5, 6, 3, 4, 4]
    assert [e["complete"] for e in episodes] == [c for _, c in want] == [True, True, True, True, False]
    for episode, (rows, _) in zip(episodes, want):
        np.testing.assert_array_equal(episode["observations"], crafted["observations"][rows])
        np.testing.assert_array_equal(episode["rewards"], rewards[rows])
    returns = episode_returns(crafted)
    want_returns = [sum(float(rewards[i]) for i in rows) for rows, complete in want if complete]
    np.testing.assert_allclose(returns, want_returns, rtol=1e-12)
    assert returns.shape == (4,)  # the final partial episode is left out


def test_split_episodes_v0_adds_inferred_timeouts(make_episodes):
    data = make_episodes([3, 13], ["terminal", "partial"], seed=4)
    del data["timeouts"]
    episodes = split_episodes(data, max_episode_steps=5)
    assert [len(e["rewards"]) for e in episodes] == [3, 4, 5, 4]
    assert [e["complete"] for e in episodes] == [True, True, True, False]
    assert episodes[1]["timeouts"].tolist() == [False, False, False, True]
    assert episode_returns(data, max_episode_steps=5).shape == (3,)


def test_check_layout_names_the_problem(crafted):
    with pytest.raises(ValueError, match="missing key.*actions"):
        check_layout({k: v for k, v in crafted.items() if k != "actions"})
    with pytest.raises(ValueError, match="mismatched lengths.*rewards=19"):
        check_layout(dict(crafted, rewards=np.zeros(19)))
    with pytest.raises(ValueError, match=r"observations must be \[N, O\]"):
        check_layout(dict(crafted, observations=np.zeros(22)))
    with pytest.raises(ValueError, match="at least 2"):
        check_layout({k: np.asarray(v)[:1] for k, v in crafted.items()})
