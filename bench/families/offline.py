"""Offline-RL family (``env=offline``): a D4RL-format dataset, stacked-seed networks, gymnasium evaluation.

Data (:mod:`envs.offline`): the dataset's transitions in ``qlearning_dataset`` form (s, a, r, s′, terminal),
loaded once per run. Preprocessing, all config values recorded with the run:

* observations standardised by the dataset's per-dimension mean and std (+ ``env.obs_norm_eps``) when
  ``env.normalise_obs`` (TD3+BC paper §5); evaluation observations get the same map;
* actions mapped affinely from the dataset's action bounds to [−1, 1] (every offline loss assumes that
  range); policy actions are mapped back before they reach the env;
* rewards r ← ``reward_scale``·r + ``reward_bias``.

Per gradient step and seed: ``env.batch_size`` transitions drawn uniformly with replacement (stream
"data"), and, when the algorithm declares ``noise``, standard-normal draws (stream "noise"). Networks
(:mod:`bench.models.offline`; seed s initialises network ``net`` from its stream "init_<net>", so a
seed's initial weights do not depend on the other seeds or on the algorithm's other networks):
``actor`` / ``gaussian_actor`` / ``one_step_actor`` (FQL's μ(s, z); parameters under the name "actor"),
``critic`` (an ensemble of ``model.n_critics`` Q networks), ``value``, ``generator`` (the generative
policies' network with time embeddings, :mod:`bench.models.generative`); targets are Polyak copies.

Evaluation (after the update of every step with ``step % eval_every == 0`` and of the last step):
``env.eval_episodes`` episodes per seed with the deterministic policy (the actor's output; the Gaussian
actor's mean; a generative policy's sampling chain from z = 0) in the dataset's gymnasium env, episode i of seed s reset with a seed drawn from (s, i)
only, so every algorithm and every evaluation sees the same start states. Logged: ``eval/return``
(mean undiscounted return) and ``eval/normalised_score`` (:func:`envs.offline.scores.normalised_score`
with the dataset's reference returns).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from algorithms.offline.nets import OfflineNets
from bench import metrics as M
from bench.models.generative import generator, init_generator, init_one_step_actor, one_step_actor
from bench.models.offline import ensemble_mlp, gaussian_log_prob, init_mlp, mlp
from bench.seeding import generators, stream_seed, to_device

NETWORK_OF = {"actor": "actor", "gaussian_actor": "actor", "one_step_actor": "actor", "critic": "critic",
              "value": "value", "generator": "generator"}
"""Kind of network an algorithm declares → the name its parameters (and its phases) go by."""


class OfflineTask:
    """The offline task: data tensors, per-network stacked parameters and targets, evaluation."""

    def __init__(self, settings: Any, seeds: list[int], spec: Any):
        from envs.offline.datasets import DatasetError, load_dataset
        from bench.schema import ConfigError

        cfg, model = settings.env, settings.model
        self.cfg, self.seeds, self.steps, self.spec = cfg, list(seeds), settings.run.steps, spec
        device = settings.run.device
        try:
            data = load_dataset(cfg.dataset, cfg.data_dir)
        except DatasetError as exc:
            raise ConfigError(f"env.dataset={cfg.dataset}: {exc}") from None
        self.info = data.info
        obs = torch.as_tensor(np.asarray(data.observations), dtype=torch.float32)
        next_obs = torch.as_tensor(np.asarray(data.next_observations), dtype=torch.float32)
        if cfg.normalise_obs:
            self.obs_mean = obs.mean(0)
            self.obs_std = obs.std(0, unbiased=False) + cfg.obs_norm_eps
        else:
            self.obs_mean, self.obs_std = torch.zeros(obs.shape[1]), torch.ones(obs.shape[1])
        self.act_low = torch.as_tensor(np.asarray(data.action_low), dtype=torch.float32)
        self.act_high = torch.as_tensor(np.asarray(data.action_high), dtype=torch.float32)
        actions = torch.as_tensor(np.asarray(data.actions), dtype=torch.float32)
        self.data = {
            "observations": self.normalise(obs).to(device),
            "actions": self.to_unit(actions).clamp(-1.0, 1.0).to(device),
            "rewards": (cfg.reward_scale * torch.as_tensor(np.asarray(data.rewards), dtype=torch.float32)
                        + cfg.reward_bias).to(device),
            "next_observations": self.normalise(next_obs).to(device),
            "terminals": torch.as_tensor(np.asarray(data.terminals), dtype=torch.float32).to(device),
        }
        self.n_transitions = int(obs.shape[0])
        o, a = obs.shape[1], actions.shape[1]
        self.act_dim = a
        self.networks: dict[str, list[Tensor]] = {}
        for kind in spec.nets:
            gens = generators(self.seeds, f"init_{kind}")
            if kind in ("actor", "gaussian_actor"):
                ps = init_mlp([o, *model.actor_hidden, a], gens, device=device)
                if kind == "gaussian_actor":   # state-independent log σ, initialised at 0 (IQL / CORL)
                    ps.append(torch.zeros(len(seeds), a, device=device, requires_grad=True))
            elif kind == "critic":
                ps = init_mlp([o + a, *model.critic_hidden, 1], gens, ensemble=model.n_critics, device=device)
            elif kind == "value":
                ps = init_mlp([o, *model.value_hidden, 1], gens, device=device)
            elif kind == "generator":
                ps = init_generator(o, a, gens, hidden=model.generator_hidden, time_dim=model.time_dim,
                                    device=device)
            elif kind == "one_step_actor":   # FQL's μ(s, z)
                ps = init_one_step_actor(o, a, gens, hidden=model.actor_hidden, device=device)
            else:
                raise ValueError(f"unknown network kind {kind!r}; valid: {', '.join(NETWORK_OF)}")
            self.networks[NETWORK_OF[kind]] = ps
        self.gaussian = "gaussian_actor" in spec.nets
        self.one_step = "one_step_actor" in spec.nets
        self.loss_params = settings.loss_params
        self.noise_width = spec.noise_blocks(settings.loss_params) * a
        self.targets: dict[str, list[Tensor]] = {name: [p.detach().clone() for p in self.networks[name]]
                                                 for name in spec.targets}
        self.data_gens = generators(self.seeds, "data")
        self.noise_gens = generators(self.seeds, "noise") if self.noise_width else []
        self._envs = None

    # -- preprocessing ---------------------------------------------------------------------------
    def normalise(self, obs: Tensor) -> Tensor:
        """(obs − mean)/std with the dataset's statistics (identity when ``normalise_obs`` is off)."""
        return (obs - self.obs_mean.to(obs.device)) / self.obs_std.to(obs.device)

    def to_unit(self, actions: Tensor) -> Tensor:
        """Env actions → [−1, 1]: 2(a − low)/(high − low) − 1."""
        return 2.0 * (actions - self.act_low) / (self.act_high - self.act_low) - 1.0

    def to_env(self, actions: Tensor) -> Tensor:
        """[−1, 1] → env actions (inverse of :meth:`to_unit`)."""
        return self.act_low + (actions + 1.0) * 0.5 * (self.act_high - self.act_low)

    # -- what the offline loop reads -------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        """Every trainable tensor (each with leading seed axis S), network by network."""
        return [p for ps in self.networks.values() for p in ps]

    def sample(self, step: int) -> dict[str, Tensor]:
        """The step's minibatch per seed: TransitionBatch fields with a leading seed axis [S, B, …]."""
        b = self.cfg.batch_size
        idx = torch.stack([torch.randint(self.n_transitions, (b,), generator=g) for g in self.data_gens])
        idx = to_device(idx, self.data["observations"].device)
        fields = {k: v[idx] for k, v in self.data.items()}
        if self.noise_gens:
            noise = torch.stack([torch.randn(b, self.noise_width, generator=g) for g in self.noise_gens])
            fields["noise"] = to_device(noise, idx.device)
        return fields

    def nets(self, online: dict[str, list[Tensor]], targets: dict[str, list[Tensor]]) -> OfflineNets:
        """One seed's networks as callables (called inside vmap with that seed's parameters)."""
        kw: dict[str, Any] = {}
        if "actor" in online and self.one_step:
            kw["one_step"] = lambda s, z: one_step_actor(online["actor"], s, z)
        elif "actor" in online:
            actor = online["actor"]
            layers = actor[:-1] if self.gaussian else actor
            kw["actor"] = lambda s: torch.tanh(mlp(layers, s))
            if self.gaussian:
                kw["actor_log_prob"] = lambda s, a: gaussian_log_prob(torch.tanh(mlp(layers, s)), actor[-1], a)
            if "actor" in targets:
                t_layers = targets["actor"][:-1] if self.gaussian else targets["actor"]
                kw["actor_target"] = lambda s: torch.tanh(mlp(t_layers, s))
        if "critic" in online:
            kw["critic"] = lambda s, a: ensemble_mlp(online["critic"], torch.cat([s, a], -1))[..., 0]
            if "critic" in targets:
                kw["critic_target"] = lambda s, a: ensemble_mlp(targets["critic"], torch.cat([s, a], -1))[..., 0]
        if "value" in online:
            kw["value"] = lambda s: mlp(online["value"], s)[..., 0]
        if "generator" in online:
            kw["generator"] = lambda s, x, t, tau: generator(online["generator"], s, x, t, tau)
            if "generator" in targets:
                kw["generator_target"] = lambda s, x, t, tau: generator(targets["generator"], s, x, t, tau)
        return OfflineNets(**kw)

    @torch.no_grad()
    def update_target(self, name: str, tau: float) -> None:
        """θ′ ← θ′ + τ(θ − θ′) for network ``name``'s target copy."""
        torch._foreach_lerp_(self.targets[name], [p.detach() for p in self.networks[name]], tau)

    def after_step(self, step: int) -> dict[str, Tensor]:
        if step % self.cfg.eval_every != 0 and step != self.steps - 1:
            return {}
        return self.evaluate()

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic env actions [S·E, A] for observations [S·E, O] (seed-major: rows s·E … s·E + E − 1):
        the actor's output (the Gaussian actor's mean), or, for a generative policy (``spec.sampler``), its
        sampling chain started from z = 0 (FQL: μ(s, 0))."""
        device = self.data["observations"].device
        s = self.normalise(torch.as_tensor(obs, dtype=torch.float32)).to(device)
        a = self.policy(s.reshape(len(self.seeds), -1, s.shape[-1])).reshape(-1, self.act_dim).cpu()
        return self.to_env(a.clamp(-1.0, 1.0)).numpy()

    def policy(self, s: Tensor) -> Tensor:
        """Deterministic actions [S, B, A] in the unit box (unclipped) for normalised observations [S, B, O], every
        seed's networks on its own rows (one vmap)."""
        online = {k: [p.detach() for p in v] for k, v in self.networks.items()}
        targets = self.targets
        if self.spec.sampler is not None:
            def one_seed(online: dict, targets: dict, s: Tensor) -> Tensor:
                z = torch.zeros(s.shape[0], self.act_dim, dtype=s.dtype, device=s.device)
                return self.spec.sampler(self.nets(online, targets), s, z, self.loss_params)
        else:
            def one_seed(online: dict, targets: dict, s: Tensor) -> Tensor:
                return self.nets(online, targets).actor(s)
        with torch.no_grad():
            return torch.func.vmap(one_seed, randomness="error")(online, targets, s)

    def act_latency(self, batch: int, repeats: int = 5) -> float:
        """Inference time of the deterministic policy, in ms per action: the median over ``repeats`` timed calls
        (after one warm-up call) of one call on ``batch`` dataset states per seed, divided by batch·S (S stacked
        seeds share the call). At S = 1 and batch 1 it is the latency of one action; at batch 256 the per-action
        cost of a batched call (the GTP paper's efficiency table reports ms per action)."""
        import statistics
        import time

        n = min(batch, self.n_transitions)
        s = self.data["observations"][:n].expand(len(self.seeds), n, -1)
        sync = torch.cuda.synchronize if s.is_cuda else (lambda: None)
        self.policy(s)
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            self.policy(s)
            sync()
            times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.median(times) / (n * len(self.seeds))

    def eval_seeds(self) -> list[int]:
        """Reset seeds of the evaluation episodes, seed-major: episode i of seed s from stream (s, eval)."""
        return [(stream_seed(s, "eval") + i) % (2 ** 31) for s in self.seeds for i in range(self.cfg.eval_episodes)]

    def evaluate(self) -> dict[str, Tensor]:
        """``eval/return`` and ``eval/normalised_score`` per seed [S] (mean over ``eval_episodes``)."""
        from envs.offline.evaluation import make_vector_env, run_episodes
        from envs.offline.scores import normalised_score

        if self._envs is None:
            self._envs = make_vector_env(self.info, len(self.seeds) * self.cfg.eval_episodes)
        returns = run_episodes(self._envs, self.info.obs_key, self.act, self.eval_seeds())
        per_seed = returns.reshape(len(self.seeds), self.cfg.eval_episodes).mean(1)
        score = normalised_score(per_seed, self.info.ref_min_score, self.info.ref_max_score)
        out = {M.EVAL_RETURN: torch.as_tensor(per_seed, dtype=torch.float32),
               M.EVAL_SCORE: torch.as_tensor(np.asarray(score), dtype=torch.float32)}
        for b in self.cfg.latency_batches:
            out[M.act_ms(b)] = torch.full((len(self.seeds),), self.act_latency(b))
        return out

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Online and target parameters and the random streams (evaluation needs no state)."""
        return {"networks": {k: [p.detach().clone() for p in v] for k, v in self.networks.items()},
                "targets": {k: [p.clone() for p in v] for k, v in self.targets.items()},
                "data_gens": [g.get_state() for g in self.data_gens],
                "noise_gens": [g.get_state() for g in self.noise_gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for group in ("networks", "targets"):
                for name, saved in state[group].items():
                    for p, v in zip(getattr(self, group)[name], saved, strict=True):
                        p.copy_(v)
        for gens, key in ((self.data_gens, "data_gens"), (self.noise_gens, "noise_gens")):
            for g, s in zip(gens, state[key], strict=True):
                g.set_state(s)


def build_offline(settings: Any, seeds: list[int], batch_kind: str) -> OfflineTask:
    """``FAMILIES["offline"]``: the offline task (model ``offline_mlp``, a ``transition`` algorithm)."""
    from algorithms import ALGORITHMS
    from bench.schema import ConfigError

    spec = ALGORITHMS[settings.algorithm.loss]
    if batch_kind != "transition":
        offline = sorted(k for k, s in ALGORITHMS.items() if s.batch == "transition")
        raise ConfigError(f"env=offline trains offline algorithms only; algorithm={settings.algorithm.name} is "
                          f"on-policy (valid: {', '.join(offline)})")
    return OfflineTask(settings, seeds, spec)
