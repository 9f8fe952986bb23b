"""Evaluation environments of the offline family: the gymnasium env a dataset's info names, vectorised.

A dataset's :class:`envs.offline.datasets.DatasetInfo` carries the gymnasium id (``env_id``), its keyword
arguments (``env_kwargs``; a generated maze2d file fixes its goal cell there), the episode step limit and,
for dict observations (gymnasium-robotics PointMaze), the key of the policy's observation (``obs_key``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def make_vector_env(info: Any, n: int) -> Any:
    """``n`` copies of the dataset's evaluation env in one ``gymnasium.vector.SyncVectorEnv``.

    Raises ValueError (one line) when gymnasium cannot create the env (unknown id or a missing package)."""
    import gymnasium as gym

    kwargs = dict(info.env_kwargs or {})
    kwargs.setdefault("max_episode_steps", int(info.max_episode_steps))
    if info.env_id.startswith(("PointMaze", "AntMaze")):
        from envs.offline.generate.rollout import import_robotics

        import_robotics()   # registers the maze envs, without the package's import-time notice

    def make() -> Any:
        return gym.make(info.env_id, **kwargs)

    try:
        make().close()
    except Exception as exc:  # noqa: BLE001 - one line naming the env
        raise ValueError(f"cannot create evaluation env {info.env_id!r} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return gym.vector.SyncVectorEnv([make for _ in range(n)])


def observation_array(obs: Any, obs_key: str | None) -> np.ndarray:
    """The policy's observation [n, O] float32 from a vector env's observation (a dict one by ``obs_key``)."""
    if obs_key:
        obs = obs[obs_key]
    return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


def run_episodes(envs: Any, obs_key: str | None, policy: Callable[[np.ndarray], np.ndarray],
                 seeds: list[int]) -> np.ndarray:
    """One episode in each of the vector env's n copies (copy i reset with ``seeds[i]``); ``policy`` maps
    observations [n, O] to env actions [n, A]. Returns the undiscounted episode returns [n] (raw env reward).

    An episode ends at its first ``terminated`` or ``truncated`` (the step limit); later autoreset steps of
    that copy are not counted."""
    obs, _ = envs.reset(seed=[int(s) for s in seeds])
    n = len(seeds)
    returns = np.zeros(n, dtype=np.float64)
    live = np.ones(n, dtype=bool)
    while live.any():
        actions = policy(observation_array(obs, obs_key))
        obs, reward, terminated, truncated, _ = envs.step(actions)
        returns += np.where(live, reward, 0.0)
        live &= ~(np.asarray(terminated) | np.asarray(truncated))
    return returns
