"""Refinement family, tabular scale (``env=refine_tabular``; :mod:`envs.refine`).

A frozen base policy π₀ proposes A₁; the refiner — an [S, N, M, M] logit table z[s, a₁, a₂], state
x = (s, a₁) — is trained by the registry losses, unchanged, on the learned reward R_φ (fitted once per seed
before RL from simulated annotations, :mod:`envs.refine.reward_model`); the gold reward R* is used only by
the exact evaluation (:func:`envs.refine.tabular.evaluate`). Every batch field carries the seed axis S.

Batches (T = 1: an action is a one-token sequence; Δ(b) = R_φ(s, b) − R_φ(s, a₁)):

* ``group``, ``candidates="sampled"`` (TPO, GRPO, RLOO, Group PG): B = ``env.batch_size`` states
  x = (s ~ uniform, a₁ ~ π₀) per step, K = ``env.k`` rewrites a₂ ~ π_θ(·|x) per state, scores Δ(a₂) (the
  group shift R_φ(s, a₁) does not change a standardised score); ``env.keep_candidate`` adds A₁ itself as
  candidate K + 1 (score 0, log-prob π_θ(a₁|x)): the target can then keep the base action.
* ``group``, ``candidates="all"`` (exact): every state x is a group of all M refinements; ``weights``
  = π_old(b|x)·p(x)·G (G = N·M groups, p(x) = π₀(a₁|s)/N), so the weighted losses (GRPO, RLOO, Group PG)
  return their exact population update; TPO reads weights only as liveness and weighs every state equally
  (as in the TPO paper's exact multi-context bandit).
* ``trajectory``, ``candidates="single"`` (PG, PPO, DG, DRO-V, KTO, REINFORCE-LB): B·K states with one
  rewrite each — the same number of R_φ-scored rewrites per step as a group method. ``rewards`` R_φ(s, a₂);
  ``baseline`` R_φ(s, a₁) (read by ``baseline="expected"``); ``values`` the learned V(x), an [S, N, M] table
  started at R_φ(s, a₁) (``env.value_init="reward_model"``) or 0, trained through the loss (DRO-V and
  ``baseline="learned"``); ``scores`` R_φ(s, a₂) for DRO-V (raw: V(x) lives in R_φ units) and Δ for KTO, whose
  desirable label is then 1[R_φ(A₂) > R_φ(A₁)].
* ``trajectory``, ``candidates="all"`` (exact): all N·M·M (x, a₂) pairs, ``weights`` p(x)·π_old(a₂|x).

``logp_ref``: the reference refiner π_ref of ``env.reference`` (the initial refiner or a copy-biased one) for
KTO, DRO-V with ``reference: initial`` and GRPO with ``kl_to: reference``; the rollout snapshot for DRO-V's
default ``reference: snapshot``.

Metrics: ``train/reward`` = mean R_φ(s, a₂) of the step's rewrites (exact: its expectation); the exact
``eval/`` metrics of :func:`envs.refine.tabular.evaluate` plus ``eval/rm_accuracy`` and
``eval/lift_per_annotation`` (lift / ``env.annotations``, fitted R_φ with a finite budget only), before steps
0, ``eval_every``, … and after the last step; ``diag/rollouts_per_step`` (:func:`rollouts_per_step`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from algorithms import ops
from bench import metrics as M
from bench.families.refine_common import (EVAL_METRICS, check_batch, refine_reference_kind, reward_model_metrics,
                                          single_scores)
from bench.families.sequence import needs_value
from bench.schema import ConfigError
from bench.seeding import generators
from envs.refine import tabular as rt
from envs.refine.config import RefineTabularConfig
from envs.refine.reward_model import fit_reward_model, pairwise_accuracy

def rollouts_per_step(cfg: RefineTabularConfig, batch_kind: str, candidates: str) -> int:
    """Refinements scored by R_φ per step: B·K for sampled batches (group: B states × K rewrites, the keep
    candidate needs no new score; single: B·K states × 1 rewrite); N·M·M for exact ones (every (x, a₂))."""
    if candidates == "all":
        return cfg.n_contexts * cfg.n_actions * cfg.n_actions
    return cfg.batch_size * cfg.k


@dataclass
class SampledRollout:
    s: Tensor                          # [S, n] contexts
    a1: Tensor                         # [S, n] base actions
    a2: Tensor                         # [S, n, K'] candidates (group) or [S, n, 1] single rewrites
    logp_old: Tensor                   # [S, n, K'] log π_old(a2 | s, a1)
    logp_ref: Optional[Tensor] = None  # [S, n, K'] log π_ref(a2 | s, a1)


@dataclass
class ExactRollout:
    logp_old: Tensor                   # [S, N, M, M] log π_old(· | s, a1)
    logp_ref: Optional[Tensor] = None  # [S, N, M, M]


class RefineTabularTask:
    """The tabular refinement task as a :class:`bench.loop.Task` (module doc)."""

    def __init__(self, settings: Any, seeds: list[int], batch_kind: str):
        cfg, algo, params = settings.env, settings.algorithm, settings.loss_params
        self.cfg, self.seeds, self.steps = cfg, list(seeds), settings.run.steps
        device = settings.run.device
        check_batch(cfg.name, batch_kind, algo.candidates, _BUILDERS)
        self.fields: Callable[..., dict[str, Tensor]] = _BUILDERS[(batch_kind, algo.candidates)]
        self.exact = algo.candidates == "all"
        self.kind = batch_kind
        self.base_probs = rt.base_logprobs(cfg, generators(self.seeds, "base"), device).exp()
        self.gold = rt.gold_reward(cfg, generators(self.seeds, "gold"), device)
        q = rt.annotation_policy(cfg, self.base_probs)
        if cfg.reward_model == "gold":
            self.proxy = self.gold.clone()
        else:
            self.proxy = fit_reward_model(self.gold, q, cfg.annotations, cfg.list_size, cfg.annotator_beta, cfg.rm_l2,
                                          cfg.rm_steps, generators(self.seeds, "annotations"))
        self.rm_accuracy = pairwise_accuracy(self.proxy, self.gold, q)
        initial = rt.init_refiner(cfg, generators(self.seeds, "init"), device)
        self.z = initial.clone().requires_grad_(True)
        self.ref_logp = rt.reference_logprobs(cfg, initial)
        self.reference = refine_reference_kind(algo.loss, params)
        self.value: Optional[Tensor] = None
        if needs_value(algo.loss, params):
            v0 = self.proxy.clone() if cfg.value_init == "reward_model" else torch.zeros_like(self.proxy)
            self.value = v0.requires_grad_(True)
        self.loss = algo.loss
        self.sample_gens = generators(self.seeds, "sample")
        S = len(self.seeds)
        self._constants = {M.diag("rollouts_per_step"): torch.full(
            (S,), float(rollouts_per_step(cfg, batch_kind, algo.candidates)), device=device)}

    # -- parameters and state ------------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return [self.z] + ([self.value] if self.value is not None else [])

    def state_dict(self) -> dict[str, Any]:
        return {"z": self.z.detach().clone(), "value": None if self.value is None else self.value.detach().clone(),
                "gens": [g.get_state() for g in self.sample_gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.z.copy_(state["z"])
            if self.value is not None:
                self.value.copy_(state["value"])
        for g, s in zip(self.sample_gens, state["gens"]):
            g.set_state(s)

    # -- Task protocol --------------------------------------------------------------------------
    def rollout(self, step: int) -> tuple[Any, dict[str, Tensor]]:
        logged = self.evaluate() if step % self.cfg.eval_every == 0 and step != self.steps - 1 else {}
        with torch.no_grad():
            logp = ops.log_softmax(self.z, -1)
            if self.exact:
                ref = self._ref(logp)
                reward = (rt.state_probs(self.base_probs)[..., None] * logp.exp() * self.proxy[:, :, None, :])
                logged[M.REWARD] = reward.flatten(1).sum(-1)
                ro: Any = ExactRollout(logp, ref)
            else:
                n = self.cfg.batch_size if self.kind == "group" else self.cfg.batch_size * self.cfg.k
                s, a1 = rt.sample_states(self.base_probs, n, self.sample_gens)
                at_x = _at_states(logp, s, a1)                                        # [S, n, M]
                a2 = rt.sample_rewrites(at_x.exp(), self.cfg.k if self.kind == "group" else 1, self.sample_gens)
                logged[M.REWARD] = _lookup(self.proxy, s, a2).flatten(1).mean(-1)
                if self.kind == "group" and self.cfg.keep_candidate:
                    a2 = torch.cat([a2, a1[..., None]], -1)
                ro = SampledRollout(s, a1, a2, at_x.gather(-1, a2))
                ref = self._ref(logp)
                ro.logp_ref = None if ref is None else _at_states(ref, s, a1).gather(-1, a2)
        logged.update(self._constants)
        return ro, logged

    def _ref(self, logp_old: Tensor) -> Optional[Tensor]:
        if self.reference == "snapshot":
            return logp_old
        return self.ref_logp if self.reference == "reference" else None

    def batch_fields(self, ro: Any) -> dict[str, Tensor]:
        return self.fields(self, ro, ops.log_softmax(self.z, -1))

    def grad_metrics(self, ro: Any) -> dict[str, Tensor]:
        return {}

    def after_step(self, step: int) -> dict[str, Tensor]:
        return self.evaluate() if step == self.steps - 1 else {}

    @torch.no_grad()
    def evaluate(self) -> dict[str, Tensor]:
        """The exact metrics of the current refiner (:func:`envs.refine.tabular.evaluate`), each [S]."""
        out = rt.evaluate(self.cfg, ops.log_softmax(self.z.detach(), -1), self.ref_logp, self.base_probs, self.gold,
                          self.proxy)
        logged = {EVAL_METRICS[k]: v for k, v in out.items()}
        logged.update(reward_model_metrics(self.cfg, out["lift"], self.rm_accuracy))
        return logged


# -- indexing helpers ---------------------------------------------------------------------------
def _at_states(table: Tensor, s: Tensor, a1: Tensor) -> Tensor:
    """table [S, N, M, M] at states (s, a1) [S, n] → [S, n, M]."""
    idx = torch.arange(table.shape[0], device=table.device)[:, None]
    return table[idx, s, a1]


def _lookup(reward: Tensor, s: Tensor, a: Tensor) -> Tensor:
    """reward [S, N, M] at contexts s [S, n] and actions a [S, n, ...] → a's shape."""
    idx = torch.arange(reward.shape[0], device=reward.device)
    extra = a.dim() - s.dim()
    b, c = idx.reshape(-1, *([1] * (a.dim() - 1))), s.reshape(*s.shape, *([1] * extra))
    return reward[b, c, a]


# -- batch builders: (batch kind, candidates) -> fields ----------------------------------------------
def _sampled_group(task: RefineTabularTask, ro: SampledRollout, logp: Tensor) -> dict[str, Tensor]:
    scores = _lookup(task.proxy, ro.s, ro.a2) - _lookup(task.proxy, ro.s, ro.a1)[..., None]
    fields = {"logp": _at_states(logp, ro.s, ro.a1).gather(-1, ro.a2)[..., None],
              "logp_old": ro.logp_old[..., None], "scores": scores}
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref[..., None]
    return fields


def _exact_group(task: RefineTabularTask, ro: ExactRollout, logp: Tensor) -> dict[str, Tensor]:
    S, N, M_, _ = logp.shape
    G = N * M_
    weights = ro.logp_old.exp() * rt.state_probs(task.base_probs)[..., None] * G
    fields = {"logp": logp.reshape(S, G, M_, 1), "logp_old": ro.logp_old.reshape(S, G, M_, 1),
              "scores": rt.deltas(task.proxy).reshape(S, G, M_), "weights": weights.reshape(S, G, M_)}
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref.reshape(S, G, M_, 1)
    return fields


def _sampled_single(task: RefineTabularTask, ro: SampledRollout, logp: Tensor) -> dict[str, Tensor]:
    reward = _lookup(task.proxy, ro.s, ro.a2)[..., 0]                       # [S, n]
    base = _lookup(task.proxy, ro.s, ro.a1)
    fields = {"logp": _at_states(logp, ro.s, ro.a1).gather(-1, ro.a2), "logp_old": ro.logp_old,
              "rewards": reward[..., None], "baseline": base[..., None]}
    scores = single_scores(task.loss, reward, reward - base)
    if scores is not None:
        fields["scores"] = scores
    if task.value is not None:
        fields["values"] = _lookup(task.value, ro.s, ro.a1)
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref
    return fields


def _exact_single(task: RefineTabularTask, ro: ExactRollout, logp: Tensor) -> dict[str, Tensor]:
    S, N, M_, _ = logp.shape
    n = N * M_ * M_
    reward = task.proxy[:, :, None, :].expand(S, N, M_, M_)
    base = task.proxy[..., None].expand(S, N, M_, M_)
    weights = rt.state_probs(task.base_probs)[..., None] * ro.logp_old.exp()
    fields = {"logp": logp.reshape(S, n, 1), "logp_old": ro.logp_old.reshape(S, n, 1),
              "rewards": reward.reshape(S, n, 1), "baseline": base.reshape(S, n, 1), "weights": weights.reshape(S, n)}
    scores = single_scores(task.loss, reward, reward - base)
    if scores is not None:
        fields["scores"] = scores.reshape(S, n)
    if task.value is not None:
        fields["values"] = task.value[..., None].expand(S, N, M_, M_).reshape(S, n)
    if ro.logp_ref is not None:
        fields["logp_ref"] = ro.logp_ref.reshape(S, n, 1)
    return fields


_BUILDERS: dict[tuple[str, str], Callable[..., dict[str, Tensor]]] = {
    ("group", "sampled"): _sampled_group,
    ("group", "all"): _exact_group,
    ("trajectory", "single"): _sampled_single,
    ("trajectory", "all"): _exact_single,
}


def build_refine(settings: Any, seeds: list[int], batch_kind: str) -> RefineTabularTask:
    """``FAMILIES["refine"]``: the tabular refinement task (model must be ``table``)."""
    if settings.model.name != "table":
        raise ConfigError(f"env={settings.env.name} needs model=table, got model={settings.model.name}")
    return RefineTabularTask(settings, seeds, batch_kind)
