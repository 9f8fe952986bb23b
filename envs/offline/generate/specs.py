"""The generated datasets: ids, what each one is, every generation setting, and where files live.

Two recipes of D4RL (Fu et al. 2020, §5), re-run locally:

* ``maze2d-{umaze,medium,large}-gen`` — a waypoint controller (breadth-first search over maze cells +
  PD control) drives a point mass to randomly chosen goal cells in one long trajectory ("Maze2D");
  rewards are the env's sparse reward for one FIXED goal cell (:class:`Maze2dConfig`).
* ``{pendulum,hopper,halfcheetah,walker2d}-{random,medium,expert,medium-replay,medium-expert}-gen`` —
  a soft actor-critic behaviour policy (Haarnoja et al. 2018) is trained once per env and sampled
  ("Gym-MuJoCo"): random = uniform actions, medium = the training snapshot closest to one third of the
  expert's normalised score, expert = the final policy, medium-replay = the SAC replay buffer up to the
  medium snapshot, medium-expert = medium + expert concatenated (:class:`SACConfig`).

Every field of a config is a generation setting: it is written to ``metadata/config`` and a file is
reused only when its stored config equals the requested one.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

# the readers' root rule: data_dir, else $TPO_BENCH_DATA, else $XDG_CACHE_HOME (~/.cache)/tpo-bench/datasets
from envs.offline.datasets import data_root

GENERATOR = "tpo-bench"
GENERATOR_VERSION = 1


def dataset_path(dataset_id: str, root: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``<data_root(root)>/<dataset_id>.hdf5`` (the id is not validated here)."""
    return data_root(root) / f"{dataset_id}.hdf5"


# ----------------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class Maze2dConfig:
    """Settings of one maze2d dataset (D4RL, Fu et al. 2020 §5 "Maze2D").

    steps:             rows in the dataset: one uninterrupted trajectory of the controller (D4RL: 1e6
                       for umaze; the defaults here are sized to generate in about a minute).
    max_episode_steps: evaluation episode length (gymnasium-robotics: 300 / 600 / 800); the trajectory is
                       cut into chunks of this many rows by ``timeouts`` (the env is not reset there).
    goal_cell:         (row, col) of the fixed evaluation goal in the maze map (marked ``"g"``).
    kp, kd:            PD gains: action = kp·(waypoint − position) − kd·velocity, clipped to [−1, 1].
    action_noise:      std of Gaussian noise added to the controller's action before clipping (dataset
                       only; widens action coverage; the expert reference runs noise-free).
    reach_distance:    a random target cell counts as reached within this distance of its centre
                       (the env's own success radius is 0.45).
    ref_episodes:      evaluation episodes for ``ref_random_return`` / ``ref_expert_return`` (≥ 10).
    """

    steps: int = 200_000
    max_episode_steps: int = 300
    goal_cell: tuple[int, int] = (1, 1)
    kp: float = 10.0
    kd: float = 1.0
    action_noise: float = 0.1
    reach_distance: float = 0.45
    ref_episodes: int = 20


@dataclass(frozen=True)
class SACConfig:
    """Settings of one SAC-behaviour dataset (D4RL, Fu et al. 2020 §5 "Gym-MuJoCo").

    The ``sac_*``, ``snapshot_*``, ``medium_target`` and ``ref_*`` fields define the behaviour run, which
    is trained once per (env, seed, those fields) and cached under ``<root>/behaviour/``; the five
    datasets of an env share it. SAC hyperparameters follow Haarnoja et al. 2018 (Table 1: Adam 3e-4,
    batch 256, two 256-unit hidden layers, τ = 0.005, γ = 0.99, one gradient step per env step,
    automatic entropy tuning).

    steps:              transitions sampled for random / medium / expert (medium-expert holds 2·steps;
                        medium-replay holds the replay buffer up to the medium snapshot, whatever steps is).
    n_envs:             environments stepped in lock-step while sampling (episodes are stored whole,
                        one after another; only the run order changes, not the policy).
    sac_steps:          environment steps of SAC training (the expert's budget).
    sac_learning_starts: uniform-random steps before the first gradient step.
    sac_learning_rate, sac_batch_size, sac_gamma, sac_tau, sac_hidden: SAC hyperparameters.
    sac_train_freq:     environment steps per gradient step (SAC: 1). More than 1 slows learning per
                        environment step, so the replay buffer up to the medium snapshot holds more episodes.
    snapshot_every:     a policy snapshot every this many training steps (plus the final step).
    snapshot_episodes:  stochastic evaluation episodes per snapshot, to pick the medium one.
    medium_target:      normalised score (0 = random, 100 = expert) the medium snapshot aims at
                        (D4RL: "approximately 1/3 the performance of the expert").
    ref_episodes:       evaluation episodes for the reference returns (≥ 10).
    ref_expert_deterministic: evaluate the expert reference with its mean action (tanh of the Gaussian
                        mean) instead of sampling; default False, so the expert dataset scores ≈ 100.
    """

    steps: int = 1_000_000
    n_envs: int = 10
    sac_steps: int = 1_000_000
    sac_learning_starts: int = 10_000
    sac_learning_rate: float = 3e-4
    sac_batch_size: int = 256
    sac_gamma: float = 0.99
    sac_tau: float = 0.005
    sac_hidden: tuple[int, ...] = (256, 256)
    sac_train_freq: int = 1
    snapshot_every: int = 10_000
    snapshot_episodes: int = 5
    medium_target: float = 100.0 / 3.0
    ref_episodes: int = 10
    ref_expert_deterministic: bool = False


Config = Union[Maze2dConfig, SACConfig]

# fields that define the behaviour run (shared by the five datasets of an env)
BEHAVIOUR_FIELDS = ("sac_steps", "sac_learning_starts", "sac_learning_rate", "sac_batch_size", "sac_gamma",
                    "sac_tau", "sac_hidden", "snapshot_every", "snapshot_episodes", "medium_target",
                    "ref_episodes", "ref_expert_deterministic")


@dataclass(frozen=True)
class DatasetSpec:
    """dataset_id: ``...-gen`` id; family: ``"maze2d"`` or ``"sac"``; env_id: gymnasium id to evaluate in;
    env_kwargs: kwargs for ``gymnasium.make`` (JSON-able); kind: ``random`` / ``medium`` / ``expert`` /
    ``medium-replay`` / ``medium-expert`` / ``maze2d``; obs_key: dict-observation key or ``""``;
    defaults: the config used when nothing is overridden; summary: one line."""

    dataset_id: str
    family: str
    env_id: str
    env_kwargs: dict = field(hash=False, compare=False)
    kind: str
    obs_key: str
    defaults: Config
    summary: str

    @property
    def env_name(self) -> str:
        """The dataset id's env part (``"pendulum"``, ``"maze2d-umaze"``)."""
        return self.dataset_id[: -len(f"-{self.kind}-gen")] if self.family == "sac" else self.dataset_id[:-4]


SAC_KINDS = {
    "random": "uniform-random actions",
    "medium": "SAC snapshot at about 1/3 of the expert's normalised score",
    "expert": "final SAC policy",
    "medium-replay": "SAC replay buffer up to the medium snapshot",
    "medium-expert": "medium + expert concatenated",
}

MAZES = {   # name: (gymnasium id, gymnasium-robotics map, step limit, fixed goal cell, default steps)
    "umaze": ("PointMaze_UMaze-v3", (
        (1, 1, 1, 1, 1),
        (1, 0, 0, 0, 1),
        (1, 1, 1, 0, 1),
        (1, 0, 0, 0, 1),
        (1, 1, 1, 1, 1)), 300, (1, 1), 200_000),
    "medium": ("PointMaze_Medium-v3", (
        (1, 1, 1, 1, 1, 1, 1, 1),
        (1, 0, 0, 1, 1, 0, 0, 1),
        (1, 0, 0, 1, 0, 0, 0, 1),
        (1, 1, 0, 0, 0, 1, 1, 1),
        (1, 0, 0, 1, 0, 0, 0, 1),
        (1, 0, 1, 0, 0, 1, 0, 1),
        (1, 0, 0, 0, 1, 0, 0, 1),
        (1, 1, 1, 1, 1, 1, 1, 1)), 600, (6, 6), 400_000),
    "large": ("PointMaze_Large-v3", (
        (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1),
        (1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1),
        (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1),
        (1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1),
        (1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1),
        (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1),
        (1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1),
        (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)), 800, (7, 10), 400_000),
}

SAC_ENVS = {   # name: (gymnasium id, step limit, defaults)
    # Pendulum-v1: minutes on a 2-core CPU (SAC converges within ~10k gradient steps). One gradient step per
    # 4 env steps: with one per step SAC reaches the medium level within 13 episodes and medium-replay held
    # 2.6k transitions of near-random play (normalised −5.4), too little for any offline method to improve on
    "pendulum": ("Pendulum-v1", 200, SACConfig(
        steps=100_000, n_envs=10, sac_steps=40_000, sac_learning_starts=1_000, sac_train_freq=4,
        snapshot_every=400, snapshot_episodes=20, ref_episodes=50)),
    # locomotion: paper scale (D4RL: 1M-step SAC, 1M transitions per dataset); ≈ 2 h of SAC per env here
    "hopper": ("Hopper-v5", 1000, SACConfig()),
    "halfcheetah": ("HalfCheetah-v5", 1000, SACConfig()),
    "walker2d": ("Walker2d-v5", 1000, SACConfig()),
}


def maze_map(name: str, goal_cell: tuple[int, int]) -> list[list]:
    """The gymnasium-robotics map of maze ``name`` with ``"g"`` at ``goal_cell`` (row, col): the env then
    always places its goal in that cell (reset cells: every other free cell)."""
    rows = [list(r) for r in MAZES[name][1]]
    r, c = goal_cell
    if not (0 <= r < len(rows) and 0 <= c < len(rows[0])) or rows[r][c] != 0:
        free = [(i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if v == 0]
        raise ValueError(f"goal_cell: {tuple(goal_cell)} is not a free cell of the {name} maze; free cells: {free}")
    rows[r][c] = "g"
    return rows


def _build() -> dict[str, DatasetSpec]:
    specs: dict[str, DatasetSpec] = {}
    for name, (env_id, _, limit, goal, steps) in MAZES.items():
        did = f"maze2d-{name}-gen"
        cfg = Maze2dConfig(steps=steps, max_episode_steps=limit, goal_cell=goal)
        specs[did] = DatasetSpec(did, "maze2d", env_id, maze_env_kwargs(name, cfg), "maze2d", "observation", cfg,
                                 f"{env_id}, waypoint controller to random goals, sparse reward of goal cell {goal}")
    for name, (env_id, limit, cfg) in SAC_ENVS.items():
        for kind, what in SAC_KINDS.items():
            did = f"{name}-{kind}-gen"
            specs[did] = DatasetSpec(did, "sac", env_id, {"max_episode_steps": limit}, kind, "", cfg,
                                     f"{env_id}, {what}")
    return specs


def maze_env_kwargs(name: str, cfg: Maze2dConfig) -> dict:
    """``gymnasium.make`` kwargs of the evaluation env: continuing task, fixed goal cell, no goal resampling."""
    return {"maze_map": maze_map(name, tuple(cfg.goal_cell)), "continuing_task": True, "reset_target": False,
            "max_episode_steps": int(cfg.max_episode_steps)}


DATASETS: dict[str, DatasetSpec] = _build()

QUICK_IDS: tuple[str, ...] = ("pendulum-medium-replay-gen", "maze2d-umaze-gen", "pendulum-random-gen",
                              "pendulum-medium-gen", "pendulum-expert-gen", "pendulum-medium-expert-gen")


def dataset_ids() -> list[str]:
    """Every generated dataset id, in listing order."""
    return list(DATASETS)


class UnknownDatasetError(KeyError):
    """An id that is not a generated dataset; ``str()`` is one line listing the valid ids."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_spec(dataset_id: str) -> DatasetSpec:
    """Registry lookup; raises :class:`UnknownDatasetError` (one line with every valid id)."""
    try:
        return DATASETS[dataset_id]
    except KeyError:
        raise UnknownDatasetError(f"unknown dataset id {dataset_id!r}; valid ids: {', '.join(DATASETS)}") from None


# ----------------------------------------------------------------------------------------------------
# overrides


def _coerce(name: str, default, value):
    """Convert ``value`` (possibly a CLI string) to the type of the field's default; ValueError otherwise."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes"):
                    return True
                if value.lower() in ("0", "false", "no"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, int):
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").replace("x", ",").split(",") if v]
            return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: cannot use {value!r} (expected {type(default).__name__})") from None
    return value


_POSITIVE = {"steps", "n_envs", "sac_steps", "sac_batch_size", "snapshot_every", "snapshot_episodes",
             "max_episode_steps"}


def make_config(spec: DatasetSpec, overrides: dict) -> Config:
    """``spec.defaults`` with ``overrides`` applied and validated; ValueError (one line naming the field,
    the value and the allowed range / the valid fields) on a bad one."""
    cfg = spec.defaults
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{spec.dataset_id}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    new = {k: _coerce(k, fields[k], v) for k, v in overrides.items()}
    cfg = dataclasses.replace(cfg, **new)
    for k in _POSITIVE & set(fields):
        if getattr(cfg, k) < 1:
            raise ValueError(f"{k}: {getattr(cfg, k)} is not allowed (must be ≥ 1)")
    if getattr(cfg, "ref_episodes") < 10:
        raise ValueError(f"ref_episodes: {cfg.ref_episodes} is not allowed (must be ≥ 10)")
    if isinstance(cfg, SACConfig):
        if not 0 <= cfg.sac_learning_starts < cfg.sac_steps:
            raise ValueError(f"sac_learning_starts: {cfg.sac_learning_starts} is not allowed "
                             f"(must be in [0, sac_steps={cfg.sac_steps}))")
        if not 0.0 < cfg.medium_target < 100.0:
            raise ValueError(f"medium_target: {cfg.medium_target} is not allowed (must be in (0, 100))")
        if not cfg.sac_hidden or min(cfg.sac_hidden) < 1:
            raise ValueError(f"sac_hidden: {cfg.sac_hidden} is not allowed (positive layer widths)")
        for k in ("sac_learning_rate", "sac_tau"):
            if not getattr(cfg, k) > 0:
                raise ValueError(f"{k}: {getattr(cfg, k)} is not allowed (must be > 0)")
        if not 0.0 < cfg.sac_gamma <= 1.0:
            raise ValueError(f"sac_gamma: {cfg.sac_gamma} is not allowed (must be in (0, 1])")
    else:
        maze_map(spec.env_name.split("-", 1)[1], tuple(cfg.goal_cell))   # validates goal_cell
        for k in ("kp", "kd", "action_noise", "reach_distance"):
            if getattr(cfg, k) < 0:
                raise ValueError(f"{k}: {getattr(cfg, k)} is not allowed (must be ≥ 0)")
    return cfg
