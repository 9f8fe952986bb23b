"""Policy rollouts in gymnasium envs: lock-stepped batches of environments, one policy call per step.

A policy is ``policy(observations: list) -> actions [B, A]`` (raw env actions) for the B observations of
the environments still running, in environment order; it draws its randomness from its own
``numpy.random.Generator`` so a seed reproduces a rollout exactly.
"""
from __future__ import annotations

import contextlib
import io
import json
import zlib
from typing import Callable, Sequence

import numpy as np

Policy = Callable[[list], np.ndarray]


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of generation seed ``seed`` (independent of every other stream)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))]))


def reset_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` env reset seeds in [0, 2³¹) drawn from ``rng``."""
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


def import_robotics() -> None:
    """Import gymnasium-robotics (registers PointMaze) without its import-time notice on stderr."""
    with contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics  # noqa: F401


def make_env(env_id: str, env_kwargs: dict | str):
    """``gymnasium.make(env_id, **env_kwargs)`` — exactly how a reader builds the evaluation env."""
    import gymnasium

    if isinstance(env_kwargs, str):
        env_kwargs = json.loads(env_kwargs)
    if env_id.startswith(("PointMaze", "AntMaze")):
        import_robotics()
    return gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)


def observation(obs, obs_key: str) -> np.ndarray:
    """The stored observation: ``obs[obs_key]`` for dict observations, else ``obs``; float32."""
    return np.asarray(obs[obs_key] if obs_key else obs, dtype=np.float32)


def episode_returns(make: Callable[[], object], policy: Policy, seeds: Sequence[int], n_envs: int = 10
                    ) -> np.ndarray:
    """Undiscounted return of one episode per seed (episode ``i`` starts from ``reset(seed=seeds[i])``),
    run ``n_envs`` at a time in lock-step (the envs are built once and reused).

    Returns float64 [len(seeds)]."""
    seeds = [int(s) for s in seeds]
    envs = [make() for _ in range(max(1, min(n_envs, len(seeds))))]
    ret = np.zeros(len(seeds))
    for start in range(0, len(seeds), len(envs)):
        wave = list(range(start, min(start + len(envs), len(seeds))))
        obs = {i: envs[i - start].reset(seed=seeds[i])[0] for i in wave}
        active = wave
        while active:
            acts = policy([obs[i] for i in active])
            still = []
            for a, i in zip(acts, active):
                o, r, term, trunc, _ = envs[i - start].step(a)
                ret[i] += float(r)
                obs[i] = o
                if not (term or trunc):
                    still.append(i)
            active = still
    for env in envs:
        env.close()
    return ret


def collect(make: Callable[[], object], policy: Policy, rows: int, seeds: Sequence[int], obs_key: str = ""
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Whole episodes from ``len(seeds)`` lock-stepped envs until at least ``rows`` rows are complete.

    Episodes are stored in the order they end (ties: env order); the last one is cut at ``rows`` and its
    final row marked ``timeouts`` when it did not end there. Returns (arrays with ``observations`` [rows, O]
    float32, ``actions`` [rows, A] float32, ``rewards`` [rows] float32, ``terminals``/``timeouts`` [rows]
    bool; the returns of the complete, uncut episodes, float64).
    """
    envs = [make() for _ in seeds]
    obs = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
    cur = [{"o": [], "a": [], "r": [], "d": [], "t": []} for _ in envs]
    done: list[dict] = []
    n_done = 0
    while n_done < rows:
        acts = np.asarray(policy(obs))
        for i, env in enumerate(envs):
            o2, r, term, trunc, _ = env.step(acts[i])
            ep = cur[i]
            ep["o"].append(observation(obs[i], obs_key))
            ep["a"].append(np.asarray(acts[i], dtype=np.float32))
            ep["r"].append(float(r))
            ep["d"].append(bool(term))
            ep["t"].append(bool(trunc and not term))
            if term or trunc:
                done.append(ep)
                n_done += len(ep["r"])
                cur[i] = {"o": [], "a": [], "r": [], "d": [], "t": []}
                o2 = env.reset()[0]
            obs[i] = o2
    for env in envs:
        env.close()
    returns = np.array([sum(ep["r"]) for ep in done])
    while n_done - len(done[-1]["r"]) >= rows:
        n_done -= len(done.pop()["r"])
        returns = returns[:-1]
    arrays = {
        "observations": np.stack([o for ep in done for o in ep["o"]])[:rows],
        "actions": np.stack([a for ep in done for a in ep["a"]])[:rows],
        "rewards": np.array([r for ep in done for r in ep["r"]], dtype=np.float32)[:rows],
        "terminals": np.array([d for ep in done for d in ep["d"]], dtype=bool)[:rows],
        "timeouts": np.array([t for ep in done for t in ep["t"]], dtype=bool)[:rows],
    }
    if n_done > rows:   # the last episode was cut
        returns = returns[:-1]
        arrays["timeouts"][-1] = True
    return arrays, returns
