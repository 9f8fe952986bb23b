"""A small D4RL-layout dataset written in a test: Pendulum-v1 episodes under uniform random actions, with the
metadata a generated (``-gen``) file carries, so the offline family can load and evaluate it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_pendulum_dataset(root: Path, dataset_id: str = "pendulum-tiny-gen", episodes: int = 3,
                           steps: int = 50, seed: int = 0) -> Path:
    """``episodes`` × ``steps`` transitions of Pendulum-v1 (episode limit ``steps``: every episode ends in a
    time-out) at ``root/<dataset_id>.hdf5``; returns the path."""
    import gymnasium as gym
    import h5py

    rng = np.random.default_rng(seed)
    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    obs_l, act_l, rew_l, term_l, tout_l = [], [], [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + ep)
        for t in range(steps):
            a = rng.uniform(-2.0, 2.0, size=(1,)).astype(np.float32)
            nxt, r, terminated, truncated, _ = env.step(a)
            obs_l.append(obs), act_l.append(a), rew_l.append(r)
            term_l.append(terminated), tout_l.append(truncated)
            obs = nxt
    env.close()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{dataset_id}.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.asarray(obs_l, dtype=np.float32)
        f["actions"] = np.asarray(act_l, dtype=np.float32)
        f["rewards"] = np.asarray(rew_l, dtype=np.float32)
        f["terminals"] = np.asarray(term_l, dtype=bool)
        f["timeouts"] = np.asarray(tout_l, dtype=bool)
        meta = {"dataset_id": dataset_id, "env_id": "Pendulum-v1", "env_kwargs": json.dumps({}), "obs_key": "",
                "max_episode_steps": steps, "ref_random_return": -1200.0 * steps / 200,
                "ref_expert_return": -150.0 * steps / 200, "behaviour_policy": "uniform random",
                "behaviour_return": float(np.sum(rew_l) / episodes), "generator": "tpo-bench",
                "generator_version": 1, "seed": seed, "config": json.dumps({"test": True}),
                "action_low": np.array([-2.0], dtype=np.float32), "action_high": np.array([2.0], dtype=np.float32)}
        for k, v in meta.items():
            f[f"metadata/{k}"] = v
    return path
