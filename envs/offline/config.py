"""Settings of the offline-RL family (``env=offline``): which dataset, how it is preprocessed, how the
policy is evaluated. The family is :mod:`bench.families.offline`; the data layer is :mod:`envs.offline`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class OfflineConfig:
    """Offline RL on a D4RL-format dataset.

    dataset:         dataset id: a D4RL id (``hopper-medium-v2``, ``maze2d-umaze-v1``) read from
                     ``<data_dir>/<id>.hdf5``, a Minari id (``mujoco/hopper/medium-v0``), or a locally generated
                     id ending in ``-gen`` (``pendulum-medium-replay-gen``; ``bench-data generate ID``).
    data_dir:        where datasets live; null: ``$TPO_BENCH_DATA``, else ``~/.cache/tpo-bench/datasets``.
    batch_size:      transitions per gradient step and seed (TD3+BC, IQL, CORL: 256).
    normalise_obs:   standardise observations by the dataset's mean and std (TD3+BC paper §5, "state
                     normalization"); evaluation observations get the same affine map.
    obs_norm_eps:    added to the std (TD3+BC: 1e-3).
    reward_scale, reward_bias: r ← reward_scale·r + reward_bias on the dataset rewards (IQL's AntMaze
                     convention is reward_bias = −1); the evaluation return is always the env's raw reward.
    eval_every:      evaluate after the update of every step with ``step % eval_every == 0`` and after the last
                     step; tables report the LAST evaluation, never the best.
    eval_episodes:   episodes per seed and evaluation (deterministic policy: the actor's mean action).
    latency_batches: at every evaluation also time the deterministic policy on this many dataset states per
                     seed, one metric ``time/act_ms_b<B>`` (ms per action) per entry; [] (default): none.
    """

    name: str = "offline"
    dataset: str = "pendulum-medium-replay-gen"
    data_dir: Optional[str] = None
    batch_size: int = field(default=256, metadata={"ge": 1})
    normalise_obs: bool = True
    obs_norm_eps: float = field(default=1e-3, metadata={"gt": 0})
    reward_scale: float = field(default=1.0, metadata={"gt": 0})
    reward_bias: float = 0.0
    eval_every: int = field(default=5000, metadata={"ge": 1})
    eval_episodes: int = field(default=10, metadata={"ge": 1})
    latency_batches: list[int] = field(default_factory=list, metadata={"ge": 1})
