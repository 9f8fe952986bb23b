"""Tabular bandit family: the logit table is the policy, the registry losses
are applied to it by autograd, and the optimizer is the paper's normalised
step ``z ← z + α g/‖g‖`` with g = −∇_z loss (per seed).

Batches (leading seed axis S on every field; T = 1: an action is a one-token
sequence):

* single-context sampled bandit (``TabularSingleConfig``)
  - ``trajectory`` losses (PG, DG, PPO, ...): the B sampled arms, rewards R − b;
  - ``group`` losses, ``candidates="sampled"`` (GRPO): one group of K = B sampled arms
    scored R − b (the batch is standardised);
  - ``candidates="all"`` (TPO): one group of all A arms scored by
    :func:`arm_scores` (``env.tpo_arm_score``): by default the batch average of the
    per-sample score vectors (R_b − b)·e_{a_b}, i.e. Σ_{b: a_b = a}(R_b − b)/B, as the
    TPO reference implementation builds them; ``arm_mean`` divides by arm a's own
    sample count instead. Unsampled arms score 0 either way;
  - ``candidates="label"`` (CE): all A arms scored by the one-hot correct arm.
* multi-context exact bandit (``TabularMultiConfig``): every action of every
  context is enumerated and weighted by π (``weights``), so each loss returns
  its exact population update; ``candidates`` is not used.

Misalignment (``train/misalignment``) is 1 − cos(g, g_ref) with the first-epoch
ascent direction g = −∇_z loss: g_ref = π_y(e_y − π) (single context, TPO paper
§3.1) or e_y − π (multi-context, §3.2). ``env.cosine_eps`` = ε selects the cosine:
0 (default) the exact one, ε > 0 the form g·g_ref/(√(‖g‖² + ε)·√(‖g_ref‖² + ε)) that
the reference implementation computes with ε = 1e-12 (:func:`misalignment`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from algorithms import diagnostics, ops
from bench import metrics as M
from bench.seeding import generators
from envs import tabular as tab


class NormalisedStep(torch.optim.Optimizer):
    """z ← z + α·g/‖g‖₂ with g = −grad, the norm taken per seed (leading axis)
    over the whole table. A zero gradient leaves z unchanged."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - see class docstring
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.reshape(p.shape[0], -1)
                norm = g.norm(dim=-1).clamp_min(torch.finfo(g.dtype).tiny)
                p.sub_(group["lr"] * (g / norm[:, None]).reshape(p.shape))


@dataclass
class SingleRollout:
    arms: Tensor      # [S, B]
    adv: Tensor       # [S, B] centred reward R − b
    logp_old: Tensor  # [S, A] log π at sampling time


class TabularSingleTask:
    """Single-context sampled bandit (paper Fig. 2)."""

    logs_on_cadence = True   # no evaluation: metrics only on the logged steps (bench.loop.train)

    def __init__(self, cfg: tab.TabularSingleConfig, seeds: list[int], batch_kind: str, candidates: str,
                 device: str = "cpu"):
        self.cfg, self.seeds = cfg, list(seeds)
        self.z = tab.init_single(cfg, len(seeds), device).requires_grad_(True)
        self.gens = generators(self.seeds, "sample", device)   # on the run's device: no host round trip
        self.fields = _SINGLE_BUILDERS[(batch_kind, candidates if batch_kind == "group" else "single")]

    def parameters(self) -> list[Tensor]:
        return [self.z]

    def state_dict(self) -> dict[str, Any]:
        return {"z": self.z.detach().clone(), "gens": [g.get_state() for g in self.gens]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.z.copy_(state["z"])
        for g, s in zip(self.gens, state["gens"]):
            g.set_state(s)

    def rollout(self, step: int) -> tuple[SingleRollout, dict[str, Tensor]]:
        with torch.no_grad():
            logp = ops.log_softmax(self.z, -1)
            arms = tab.sample_arms(logp.exp(), self.cfg.batch_size, self.gens)
            adv = tab.centred_reward(arms, self.cfg.correct, self.cfg.reward_baseline)
            logged = {M.ERROR: tab.error(logp.exp(), self.cfg.correct),
                      M.REWARD: adv.mean(-1) + self.cfg.reward_baseline} if diagnostics.enabled() else {}
        return SingleRollout(arms, adv, logp), logged

    def batch_fields(self, ro: SingleRollout) -> dict[str, Tensor]:
        return self.fields(self, ro, ops.log_softmax(self.z, -1))

    def grad_metrics(self, ro: SingleRollout) -> dict[str, Tensor]:
        oracle = tab.pg_direction(ro.logp_old.exp(), self.cfg.correct)
        return {M.MISALIGNMENT: misalignment(-self.z.grad, oracle, self.cfg.cosine_eps)}

    def after_step(self, step: int) -> dict[str, Tensor]:
        return {}


def arm_scores(arms: Tensor, adv: Tensor, n_arms: int, kind: str) -> Tensor:
    """TPO's single-context score vector s [S, A] from the sampled arms and advantages [S, B].

    ``kind="batch_average"`` (default; the TPO reference implementation): the batch average
    of the per-sample score vectors adv_b·e_{a_b}, s_a = Σ_{b: a_b = a} adv_b / B.
    ``kind="arm_mean"``: the mean of adv over arm a's own samples, s_a = Σ_{b: a_b = a} adv_b / n_a.
    Unsampled arms score 0. The two differ by the per-arm factor n_a/B, which survives the
    standardisation over the A arms (TPO paper §3.1; Appendix A). ValueError for another kind.
    """
    if kind == "batch_average":
        total = torch.zeros(arms.shape[0], n_arms, dtype=adv.dtype, device=adv.device).scatter_add_(1, arms, adv)
        return total / arms.shape[1]
    if kind == "arm_mean":
        return tab.per_arm_mean(arms, adv, n_arms)
    raise ValueError(f"env.tpo_arm_score={kind!r}; valid: {', '.join(tab.TPO_ARM_SCORES)}")


def misalignment(g: Tensor, g_ref: Tensor, eps: float = 0.0) -> Tensor:
    """1 − cos(g, g_ref) per seed over all non-seed axes: [S, ...] → [S].

    eps = 0: the exact cosine (:func:`envs.tabular.misalignment`). eps > 0: the reference
    implementation's g·g_ref / (√(‖g‖² + eps)·√(‖g_ref‖² + eps)) (it uses eps = 1e-12), which
    tends to 1 once both norms fall well below √eps (policies within ~1e-5 of convergence).
    """
    if eps == 0:
        return tab.misalignment(g, g_ref)
    a, b = g.reshape(g.shape[0], -1), g_ref.reshape(g_ref.shape[0], -1)
    dot = (a * b).sum(-1)
    return 1.0 - dot / (((a * a).sum(-1) + eps).sqrt() * ((b * b).sum(-1) + eps).sqrt())


def _single_trajectories(task: TabularSingleTask, ro: SingleRollout, logp: Tensor) -> dict[str, Tensor]:
    return {"logp": logp.gather(1, ro.arms)[..., None], "logp_old": ro.logp_old.gather(1, ro.arms)[..., None],
            "rewards": ro.adv[..., None]}


def _single_sampled_group(task: TabularSingleTask, ro: SingleRollout, logp: Tensor) -> dict[str, Tensor]:
    return {"logp": logp.gather(1, ro.arms)[:, None, :, None],
            "logp_old": ro.logp_old.gather(1, ro.arms)[:, None, :, None], "scores": ro.adv[:, None, :]}


def _single_all_arms(task: TabularSingleTask, ro: SingleRollout, logp: Tensor) -> dict[str, Tensor]:
    scores = arm_scores(ro.arms, ro.adv, task.cfg.n_arms, task.cfg.tpo_arm_score)
    return {"logp": logp[:, None, :, None], "logp_old": ro.logp_old[:, None, :, None], "scores": scores[:, None, :]}


def _single_label(task: TabularSingleTask, ro: SingleRollout, logp: Tensor) -> dict[str, Tensor]:
    label = torch.nn.functional.one_hot(torch.tensor(task.cfg.correct), task.cfg.n_arms).to(logp)
    return {"logp": logp[:, None, :, None], "logp_old": ro.logp_old[:, None, :, None],
            "scores": label.expand(logp.shape[0], 1, -1)}


_SINGLE_BUILDERS = {
    ("trajectory", "single"): _single_trajectories,
    ("group", "sampled"): _single_sampled_group,
    ("group", "all"): _single_all_arms,
    ("group", "label"): _single_label,
}


class TabularMultiTask:
    """Multi-context exact-update bandit (paper Fig. 3)."""

    logs_on_cadence = True   # no evaluation: metrics only on the logged steps (bench.loop.train)

    def __init__(self, cfg: tab.TabularMultiConfig, seeds: list[int], batch_kind: str, candidates: str,
                 device: str = "cpu"):
        self.cfg, self.seeds, self.kind = cfg, list(seeds), batch_kind
        # [S, N, A] laid out action-major (strides of an [S, A, N] tensor): reductions over the A actions then run
        # along a strided axis and vectorise over the contexts (3-4x faster on a CPU than over 10 contiguous values)
        table = tab.init_multi(cfg, generators(self.seeds, "init"), device)
        self.z = table.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True)
        self.label = torch.nn.functional.one_hot(torch.tensor(cfg.correct), cfg.n_actions).to(self.z)

    def parameters(self) -> list[Tensor]:
        return [self.z]

    def state_dict(self) -> dict[str, Any]:
        return {"z": self.z.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.z.copy_(state["z"])

    def rollout(self, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            logp = ops.log_softmax(self.z, -1)
            return logp, {M.ERROR: tab.error(logp.exp(), self.cfg.correct)} if diagnostics.enabled() else {}

    def batch_fields(self, logp_old: Tensor) -> dict[str, Tensor]:
        logp = ops.log_softmax(self.z, -1)
        S, N, A = logp.shape
        scores = self.label.expand(S, N, A)
        if self.kind == "trajectory":
            return {"logp": logp.reshape(S, N * A, 1), "logp_old": logp_old.reshape(S, N * A, 1),
                    "rewards": scores.reshape(S, N * A, 1), "weights": logp_old.exp().reshape(S, N * A)}
        return {"logp": logp[..., None], "logp_old": logp_old[..., None], "scores": scores,
                "weights": logp_old.exp()}

    def grad_metrics(self, logp_old: Tensor) -> dict[str, Tensor]:
        oracle = tab.ce_direction(logp_old.exp(), self.cfg.correct)
        return {M.MISALIGNMENT: misalignment(-self.z.grad, oracle, self.cfg.cosine_eps)}

    def after_step(self, step: int) -> dict[str, Tensor]:
        """The paper reports the error *after* each exact step (on the steps the loop logs)."""
        if not diagnostics.enabled():
            return {}
        with torch.no_grad():
            return {M.ERROR: tab.error(ops.softmax(self.z, -1), self.cfg.correct)}


TASKS: dict[str, Any] = {"tabular_single": TabularSingleTask, "tabular_multi": TabularMultiTask}
