"""maze2d datasets (D4RL, Fu et al. 2020 §5 "Maze2D") in gymnasium-robotics PointMaze-v3.

A waypoint controller — breadth-first search over the maze's free cells to a target cell, then PD control
of the point mass towards the centre of the next cell on the path (the target point itself once inside the
target cell) — drives to a randomly chosen target cell, picks a new random target cell when within
``reach_distance`` of it, and never resets the environment: the dataset is one long trajectory. Rewards
are the env's sparse reward (1 within 0.45 of the goal) for the FIXED goal cell of the dataset's
evaluation env (continuing task, no goal resampling). ``timeouts`` cut the trajectory into chunks of
``max_episode_steps`` rows (the evaluation episode length; the env is not reset there, so a chunk starts
where the previous one stopped); ``terminals`` are all False.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from envs.offline.generate.rollout import episode_returns, make_env, reset_seeds, stream
from envs.offline.generate.specs import DatasetSpec, Maze2dConfig, maze_env_kwargs


class WaypointController:
    """Breadth-first search over free cells + PD control (gains ``kp`` on position, ``kd`` on velocity).

    maze: ``env.unwrapped.maze`` (gymnasium-robotics ``Maze``: ``maze_map``, ``cell_xy_to_rowcol``,
    ``cell_rowcol_to_xy``). ``action(obs, target_cell, target_xy)`` → action [2] in [−1, 1].
    """

    def __init__(self, maze, kp: float, kd: float):
        self.maze, self.kp, self.kd = maze, float(kp), float(kd)
        grid = maze.maze_map
        self.free = [(i, j) for i, row in enumerate(grid) for j, v in enumerate(row) if v != 1]
        self._free = set(self.free)
        self._next: dict[tuple[int, int], dict[tuple[int, int], tuple[int, int]]] = {}

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        """(row, col) of the cell containing point ``xy`` (as ``maze.cell_xy_to_rowcol``)."""
        m = self.maze
        return (math.floor((m.y_map_center - xy[1]) / m.maze_size_scaling),
                math.floor((xy[0] + m.x_map_center) / m.maze_size_scaling))

    def centre(self, cell: tuple[int, int]) -> np.ndarray:
        return np.asarray(self.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)

    def next_cells(self, target: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
        """For every free cell reachable from ``target``, the neighbour one step closer to it (BFS)."""
        table = self._next.get(target)
        if table is None:
            table, frontier = {target: target}, deque([target])
            while frontier:
                c = frontier.popleft()
                for d in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    n = (c[0] + d[0], c[1] + d[1])
                    if n in self._free and n not in table:
                        table[n] = c
                        frontier.append(n)
            self._next[target] = table
        return table

    def action(self, position: np.ndarray, velocity: np.ndarray, target_cell: tuple[int, int],
               target_xy: np.ndarray) -> np.ndarray:
        here = self.cell(position)
        table = self.next_cells(target_cell)
        if here == target_cell or here not in table:
            waypoint = target_xy
        else:
            waypoint = self.centre(table[here])
        a = self.kp * (waypoint - position) - self.kd * velocity
        return np.clip(a, -1.0, 1.0)

    def policy(self, observations: list) -> np.ndarray:
        """Batched policy for :func:`episode_returns`: drive each env to its own ``desired_goal``."""
        out = []
        for o in observations:
            x = o["observation"]
            goal = np.asarray(o["desired_goal"], dtype=np.float64)
            out.append(self.action(x[:2], x[2:4], self.cell(goal), goal))
        return np.asarray(out, dtype=np.float32)


def generate_maze2d(spec: DatasetSpec, cfg: Maze2dConfig, seed: int, say=None) -> tuple[dict, dict]:
    """Arrays and metadata of one maze2d dataset. Returns (arrays, metadata without checksum)."""
    name = spec.env_name.split("-", 1)[1]
    kwargs = maze_env_kwargs(name, cfg)
    env = make_env(spec.env_id, {**kwargs, "max_episode_steps": cfg.steps + 1})   # one trajectory, no cut
    base = env.unwrapped
    obs, _ = env.reset(seed=reset_seeds(stream(seed, "maze2d/env"), 1)[0])
    ctrl = WaypointController(base.maze, cfg.kp, cfg.kd)
    rng = stream(seed, "maze2d/controller")
    free = ctrl.free

    def new_target(current):
        while True:
            c = free[int(rng.integers(len(free)))]
            if c != current:
                return c

    n = cfg.steps
    observations = np.empty((n, 4), dtype=np.float32)
    actions = np.empty((n, 2), dtype=np.float32)
    rewards = np.empty(n, dtype=np.float32)
    goals = np.empty((n, 2), dtype=np.float32)
    target = new_target(None)
    target_xy = ctrl.centre(target)
    reached = 0
    report = max(n // 10, 1)
    for t in range(n):
        x = obs["observation"]
        if math.hypot(x[0] - target_xy[0], x[1] - target_xy[1]) <= cfg.reach_distance:
            target = new_target(target)
            target_xy = ctrl.centre(target)
            reached += 1
        a = ctrl.action(x[:2], x[2:4], target, target_xy)
        if cfg.action_noise > 0:
            a = np.clip(a + cfg.action_noise * rng.standard_normal(2), -1.0, 1.0)
        a = a.astype(np.float32)
        observations[t] = x
        actions[t] = a
        goals[t] = obs["desired_goal"]
        obs, r, term, trunc, _ = env.step(a)
        rewards[t] = r
        if say is not None and (t + 1) % report == 0:
            say(f"{spec.dataset_id}: {t + 1}/{n} steps, {reached} targets reached")
    env.close()
    timeouts = np.zeros(n, dtype=bool)
    timeouts[cfg.max_episode_steps - 1::cfg.max_episode_steps] = True
    timeouts[-1] = True
    arrays = {"observations": observations, "actions": actions, "rewards": rewards,
              "terminals": np.zeros(n, dtype=bool), "timeouts": timeouts, "infos/goal": goals}

    # reference returns in the evaluation env (continuing task, fixed goal, max_episode_steps)
    make = lambda: make_env(spec.env_id, kwargs)  # noqa: E731
    probe = make()
    low, high = probe.action_space.low.astype(np.float32), probe.action_space.high.astype(np.float32)
    ref_ctrl = WaypointController(probe.unwrapped.maze, cfg.kp, cfg.kd)
    probe.close()
    urng = stream(seed, "ref/random")
    random_ret = episode_returns(make, lambda o: urng.uniform(low, high, size=(len(o), len(low))),
                                 reset_seeds(stream(seed, "ref/random/env"), cfg.ref_episodes), n_envs=1)
    expert_ret = episode_returns(make, ref_ctrl.policy, reset_seeds(stream(seed, "ref/expert/env"), cfg.ref_episodes),
                                 n_envs=1)
    ends = np.flatnonzero(timeouts)
    starts = np.r_[0, ends[:-1] + 1]
    chunk_returns = np.add.reduceat(rewards.astype(np.float64), starts)
    full = (ends - starts + 1) == cfg.max_episode_steps
    if full.any():   # a shorter last chunk would bias the mean return down
        chunk_returns = chunk_returns[full]
    meta = {
        "env_kwargs": kwargs,
        "obs_key": "observation",
        "max_episode_steps": int(cfg.max_episode_steps),
        "ref_random_return": float(random_ret.mean()),
        "ref_expert_return": float(expert_ret.mean()),
        "behaviour_policy": (f"waypoint controller: BFS over cells + PD (kp={cfg.kp}, kd={cfg.kd}), "
                             f"Gaussian action noise std {cfg.action_noise}, random target cells "
                             f"({reached} reached)"),
        "behaviour_return": float(chunk_returns.mean()),
        "action_low": low,
        "action_high": high,
    }
    return arrays, meta
