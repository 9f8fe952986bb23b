"""SAC behaviour policies and the datasets sampled from them (D4RL, Fu et al. 2020 §5 "Gym-MuJoCo").

One behaviour run per (env, seed, behaviour settings) — stable-baselines3 SAC (Haarnoja et al. 2018),
seeded, one torch thread — is cached under ``<root>/behaviour/<env>-s<seed>-<hash>/``:

* ``actor_<step>.pt`` — the actor's parameters every ``snapshot_every`` steps and at the end;
* ``replay.npz`` — every training transition in order (raw env actions, terminals, time-outs);
* ``behaviour.json`` (written last: its presence marks a complete run) — the settings, the reference
  returns, each snapshot's stochastic evaluation return and normalised score, the medium snapshot.

The datasets sample the policy's stochastic actions, as D4RL: a = tanh(μ(s) + σ(s)·ε), ε ~ N(0, I), mapped
affinely from [−1, 1] onto the action box; ε comes from a numpy stream of the generation seed, so the same
seed gives the same bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from envs.offline.generate.rollout import collect, episode_returns, make_env, reset_seeds, stream
from envs.offline.generate.specs import BEHAVIOUR_FIELDS, GENERATOR_VERSION, DatasetSpec, SACConfig

Say = Optional[Callable[[str], None]]


def normalised_score(ret, random_return: float, expert_return: float):
    """100·(R − R_random)/(R_expert − R_random) (D4RL, Fu et al. 2020 §5)."""
    return 100.0 * (np.asarray(ret, dtype=np.float64) - random_return) / (expert_return - random_return)


def behaviour_settings(spec: DatasetSpec, cfg: SACConfig, seed: int) -> dict:
    """Everything that defines a behaviour run (JSON-able)."""
    return {"env_id": spec.env_id, "env_kwargs": spec.env_kwargs, "seed": int(seed),
            "generator_version": GENERATOR_VERSION,
            **{k: (list(v) if isinstance(v, tuple) else v)
               for k, v in dataclasses.asdict(cfg).items() if k in BEHAVIOUR_FIELDS}}


def behaviour_dir(root: Path, spec: DatasetSpec, cfg: SACConfig, seed: int) -> Path:
    """``<root>/behaviour/<env>-s<seed>-<first 12 hex of sha256(settings)>``."""
    key = hashlib.sha256(json.dumps(behaviour_settings(spec, cfg, seed), sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / "behaviour" / f"{spec.env_name}-s{seed}-{key}"


def _sac(env, cfg: SACConfig, seed: int, buffer_size: Optional[int] = None):
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", env, learning_rate=cfg.sac_learning_rate, buffer_size=buffer_size or cfg.sac_steps,
               learning_starts=cfg.sac_learning_starts, batch_size=cfg.sac_batch_size, tau=cfg.sac_tau,
               gamma=cfg.sac_gamma, train_freq=cfg.sac_train_freq, gradient_steps=1, ent_coef="auto",
               policy_kwargs={"net_arch": list(cfg.sac_hidden)}, seed=seed, device="cpu", verbose=0)


def actor_policy(actor, low: np.ndarray, high: np.ndarray, rng: np.random.Generator, deterministic: bool = False):
    """Batched policy of an SB3 SAC actor: tanh-squashed Gaussian, noise from ``rng`` (none when
    ``deterministic``), mapped onto [low, high]. Returns raw actions [B, A] float32."""
    import torch

    low64, high64 = low.astype(np.float64), high.astype(np.float64)

    def policy(observations: list) -> np.ndarray:
        x = torch.as_tensor(np.stack([np.asarray(o, dtype=np.float32) for o in observations]))
        with torch.no_grad():
            mean, log_std, _ = actor.get_action_dist_params(x)
        u = mean.numpy().astype(np.float64)
        if not deterministic:
            u = u + np.exp(log_std.numpy().astype(np.float64)) * rng.standard_normal(u.shape)
        return (low64 + 0.5 * (np.tanh(u) + 1.0) * (high64 - low64)).astype(np.float32)

    return policy


def uniform_policy(low: np.ndarray, high: np.ndarray, rng: np.random.Generator):
    """Uniform-random actions on [low, high] from ``rng``."""
    return lambda obs: rng.uniform(low, high, size=(len(obs), len(low))).astype(np.float32)


class Behaviour:
    """A complete cached behaviour run: ``info`` (behaviour.json), ``replay`` arrays, ``policy(step, rng)``."""

    def __init__(self, path: Path, spec: DatasetSpec, cfg: SACConfig, seed: int):
        self.path, self.spec, self.cfg, self.seed = path, spec, cfg, seed
        self.info = json.loads((path / "behaviour.json").read_text())
        env = make_env(spec.env_id, spec.env_kwargs)
        self.low = env.action_space.low.astype(np.float32)
        self.high = env.action_space.high.astype(np.float32)
        self._model = _sac(env, cfg, seed, buffer_size=1)   # only its actor is used

    def replay(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "replay.npz") as z:
            return {k: z[k] for k in z.files}

    def policy(self, step: int, rng: np.random.Generator, deterministic: bool = False):
        import torch

        self._model.actor.load_state_dict(torch.load(self.path / f"actor_{step:09d}.pt", weights_only=True))
        return actor_policy(self._model.actor, self.low, self.high, rng, deterministic)


def _valid(path: Path, settings: dict) -> bool:
    try:
        info = json.loads((path / "behaviour.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("settings") == json.loads(json.dumps(settings))
            and (path / "replay.npz").is_file()
            and all((path / f"actor_{s:09d}.pt").is_file() for s in info.get("snapshot_steps", [None])))


def train_behaviour(root: Path, spec: DatasetSpec, cfg: SACConfig, seed: int, say: Say = None) -> Behaviour:
    """The cached behaviour run of (env, seed, behaviour settings); trains it first when absent or
    incomplete (written to a temporary directory, renamed when complete)."""
    path = behaviour_dir(root, spec, cfg, seed)
    settings = behaviour_settings(spec, cfg, seed)
    if _valid(path, settings):
        return Behaviour(path, spec, cfg, seed)
    if path.exists():
        if say:
            say(f"notice: {path} is incomplete or stale; retraining the behaviour policy")
        shutil.rmtree(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        info = _train(tmp, spec, cfg, seed, settings, say)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, path)
    except OSError:   # another process finished the same run first
        shutil.rmtree(tmp, ignore_errors=True)
        if not _valid(path, settings):
            raise
    if say:
        m = info["snapshot_steps"].index(info["medium_step"])
        say(f"{spec.env_name} SAC: trained in {info['train_seconds']:.0f} s; refs random "
            f"{info['ref_random_return']:.1f}, expert {info['ref_expert_return']:.1f}; medium = step "
            f"{info['medium_step']} (score {info['snapshot_scores'][m]:.1f})")
    return Behaviour(path, spec, cfg, seed)


def _train(tmp: Path, spec: DatasetSpec, cfg: SACConfig, seed: int, settings: dict, say: Say) -> dict:
    """Train, snapshot, evaluate; writes everything into ``tmp`` and returns the behaviour.json content."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    n = cfg.sac_steps
    env = make_env(spec.env_id, spec.env_kwargs)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    # SB3 collects whole rollouts of train_freq steps, so training may run past n: rows beyond n are not kept
    m = n + cfg.sac_train_freq
    rec = {"observations": np.zeros((m, obs_dim), np.float32), "actions": np.zeros((m, act_dim), np.float32),
           "rewards": np.zeros(m, np.float32), "terminals": np.zeros(m, bool), "timeouts": np.zeros(m, bool)}
    steps = sorted({*range(cfg.snapshot_every, n + 1, cfg.snapshot_every), n})
    report = max(n // 10, 1)
    t0 = time.perf_counter()

    class Record(BaseCallback):
        """Stores each transition (raw action) and saves the actor at the snapshot steps."""

        def _on_step(self) -> bool:
            t = self.num_timesteps - 1
            loc = self.locals
            rec["observations"][t] = self.model._last_obs[0]
            rec["actions"][t] = loc["actions"][0]
            rec["rewards"][t] = loc["rewards"][0]
            trunc = bool(loc["infos"][0].get("TimeLimit.truncated", False))
            rec["terminals"][t] = bool(loc["dones"][0]) and not trunc
            rec["timeouts"][t] = trunc
            if self.num_timesteps in steps_set:
                torch.save(self.model.actor.state_dict(), tmp / f"actor_{self.num_timesteps:09d}.pt")
            if say and self.num_timesteps % report == 0:
                say(f"{spec.env_name} SAC: {self.num_timesteps}/{n} steps "
                    f"({time.perf_counter() - t0:.0f} s)")
            return True

    steps_set = set(steps)
    model = _sac(env, cfg, seed)
    model.learn(total_timesteps=n, callback=Record())
    train_s = time.perf_counter() - t0
    np.savez(tmp / "replay.npz", **{k: v[:n] for k, v in rec.items()})

    # reference returns and snapshot evaluation, in the evaluation env
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    env.close()
    make = lambda: make_env(spec.env_id, spec.env_kwargs)  # noqa: E731
    actor = model.actor

    def load(step):
        actor.load_state_dict(torch.load(tmp / f"actor_{step:09d}.pt", weights_only=True))
        return actor

    ref_random = episode_returns(make, uniform_policy(low, high, stream(seed, "ref/random")),
                                 reset_seeds(stream(seed, "ref/random/env"), cfg.ref_episodes)).mean()
    ref_expert = episode_returns(make, actor_policy(load(n), low, high, stream(seed, "ref/expert"),
                                                    cfg.ref_expert_deterministic),
                                 reset_seeds(stream(seed, "ref/expert/env"), cfg.ref_episodes)).mean()
    eval_seeds = reset_seeds(stream(seed, "snapshot/env"), cfg.snapshot_episodes)
    returns = [float(episode_returns(make, actor_policy(load(s), low, high, stream(seed, f"snapshot/{s}")),
                                     eval_seeds).mean()) for s in steps]
    scores = normalised_score(returns, ref_random, ref_expert)
    medium = steps[int(np.argmin(np.abs(scores - cfg.medium_target)))]
    info = {"settings": settings, "snapshot_steps": steps, "snapshot_returns": returns,
            "snapshot_scores": [float(x) for x in scores], "medium_step": medium, "expert_step": n,
            "ref_random_return": float(ref_random), "ref_expert_return": float(ref_expert),
            "train_seconds": train_s, "eval_seconds": time.perf_counter() - t0 - train_s}
    (tmp / "behaviour.json").write_text(json.dumps(info, indent=1))
    return info


def _episode_returns(arrays: dict) -> np.ndarray:
    """Returns of the episodes that end (terminal or time-out) within the arrays."""
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"])
    starts = np.r_[0, ends[:-1] + 1]
    return np.add.reduceat(arrays["rewards"].astype(np.float64), starts) if len(ends) else np.zeros(0)


def generate_sac(spec: DatasetSpec, cfg: SACConfig, seed: int, root: Path, say: Say = None) -> tuple[dict, dict]:
    """Arrays and metadata (without checksum) of one SAC-behaviour dataset (see the module docstring)."""
    b = train_behaviour(root, spec, cfg, seed, say)
    info, kind = b.info, spec.kind
    make = lambda: make_env(spec.env_id, spec.env_kwargs)  # noqa: E731

    def sample(which: str) -> tuple[dict, np.ndarray]:
        rng = stream(seed, f"sample/{which}")
        if which == "random":
            pol = uniform_policy(b.low, b.high, rng)
        else:
            pol = b.policy(info["medium_step"] if which == "medium" else info["expert_step"], rng)
        return collect(make, pol, cfg.steps, reset_seeds(stream(seed, f"sample/{which}/env"), cfg.n_envs))

    m, e = info["medium_step"], info["expert_step"]
    if kind == "medium-replay":
        replay = b.replay()
        arrays = {k: v[:m].copy() for k, v in replay.items()}
        returns = _episode_returns(arrays)   # episodes that end by step m
        if not (arrays["terminals"][-1] or arrays["timeouts"][-1]):   # cut mid-episode at the snapshot
            arrays["timeouts"][-1] = True
        if not len(returns):   # no episode ends before the cut: report the cut one's partial return
            returns = _episode_returns(arrays)
        policy = (f"SAC replay buffer, training steps 1..{m} of {e} (uniform actions for the first "
                  f"{cfg.sac_learning_starts}; medium snapshot score {info['snapshot_scores'][info['snapshot_steps'].index(m)]:.1f})")
    elif kind == "medium-expert":
        a1, r1 = sample("medium")
        a2, r2 = sample("expert")
        arrays = {k: np.concatenate([a1[k], a2[k]]) for k in a1}
        returns = np.concatenate([r1, r2])
        policy = f"SAC step {m} (medium) then SAC step {e} (expert) datasets concatenated, stochastic actions"
    else:
        arrays, returns = sample(kind)
        policy = {"random": "uniform random actions",
                  "medium": f"SAC snapshot at training step {m} of {e}, stochastic actions "
                            f"(snapshot score {info['snapshot_scores'][info['snapshot_steps'].index(m)]:.1f})",
                  "expert": f"SAC final policy (training step {e}), stochastic actions"}[kind]
    meta = {
        "env_kwargs": spec.env_kwargs,
        "obs_key": "",
        "max_episode_steps": int(spec.env_kwargs["max_episode_steps"]),
        "ref_random_return": info["ref_random_return"],
        "ref_expert_return": info["ref_expert_return"],
        "behaviour_policy": policy,
        "behaviour_return": float(returns.mean()) if len(returns) else float("nan"),
        "action_low": b.low,
        "action_high": b.high,
        "medium_step": int(m),
        "expert_step": int(e),
    }
    return arrays, meta
