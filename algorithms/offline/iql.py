"""Implicit Q-Learning (IQL): expectile value, SARSA-style twin critic, advantage-weighted actor.

Kostrikov, Nair & Levine 2022, "Offline Reinforcement Learning with Implicit Q-Learning": eq. (5)
(value, expectile regression on the target critic), eq. (6) (critic, bootstrapped from V(s′)), eq. (7)
(policy extraction by advantage-weighted regression), Alg. 1. Defaults are the paper's Gym-locomotion
settings (its appendix of experimental details: τ = 0.7, β = 3.0) as in CORL's (Tarasov et al. 2023) Gym configs.

Phase order per gradient step: value → actor → critic, then the loop Polyak-updates the critic target
(the only target). Value first: both the actor's advantage and the critic's TD target read V, so they
read this step's V. Actor before critic: the actor's advantage reads Q_target, which moves when the
critic phase ends (its Polyak update), so the actor sees the same Q_target as the value phase. This is
the order of the authors' reference implementation (value, actor, critic, target update); CORL steps
value, critic, actor but feeds the critic and the actor the V from before the value step, a one-step lag
of V only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, clipped_double_q, expectile_loss, require_net, td_target, twin_q_loss
from .nets import OfflineNets


@dataclass(frozen=True)
class IQLParams:
    """discount: γ; tau: Polyak rate of the critic target (IQL's expectile τ is ``expectile`` here);
    actor_every: actor period (IQL steps the actor every step); expectile: τ of L₂^τ (eq. 5);
    beta: inverse temperature β of the AWR weight exp(β·A) (eq. 7); max_weight: the cap on exp(β·A)."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # IQL appendix / CORL: γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # IQL appendix / CORL: target rate 0.005
    actor_every: int = field(default=1, metadata={"ge": 1})              # IQL Alg. 1 / CORL: actor every step
    expectile: float = field(default=0.7, metadata={"gt": 0, "lt": 1})   # IQL appendix, Gym locomotion (AntMaze 0.9)
    beta: float = field(default=3.0, metadata={"ge": 0})                 # IQL appendix, Gym locomotion (AntMaze 10)
    max_weight: float = field(default=100.0, metadata={"gt": 0})         # authors' code / CORL: exp(β·A) ≤ 100

    def __post_init__(self) -> None:
        check_ranges(self)


def awr_weights(advantage: Tensor, beta: float, max_weight: float) -> Tensor:
    """w = min(exp(β·A), max_weight), detached: advantage [N] → [N] (IQL eq. 7 with the cap).

    An overflowing exp (β·A large) is +inf before the cap and exactly ``max_weight`` after it.
    """
    return torch.exp(beta * advantage.detach()).clamp(max=max_weight)


def iql_value_loss(batch: TransitionBatch, nets: OfflineNets, params: IQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """IQL eq. (5): L_V = mean_n |τ − 1(u_n < 0)|·u_n², u = min_c Q_target,c(s, a) − V(s).

    Q_target is detached (only V is fitted). Shapes: observations [N, O], actions [N, A];
    nets.critic_target → [C, N]; nets.value → [N].
    Diagnostics: value_mean (mean V(s)), adv_mean (mean u).
    """
    critic_target = require_net(nets, "critic_target", "iql_value_loss")
    value = require_net(nets, "value", "iql_value_loss")
    q = clipped_double_q(critic_target(batch.observations, batch.actions)).detach()
    v = value(batch.observations)
    u = q - v
    loss = expectile_loss(u, params.expectile)
    return loss, {"value_mean": v.detach().mean(), "adv_mean": u.detach().mean()}


def iql_actor_loss(batch: TransitionBatch, nets: OfflineNets, params: IQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """IQL eq. (7), AWR: loss = −mean_n w_n·log π(a_n | s_n),
    w = min(exp(β·(min_c Q_target,c(s, a) − V(s))), max_weight) (max_weight = 100).

    The weight is detached (:func:`awr_weights`); the gradient reaches the actor only through
    nets.actor_log_prob (s, a) → [N] (Σ over action dimensions). Shapes: observations [N, O],
    actions [N, A]; critic_target → [C, N]; value → [N].
    Diagnostics: weight_mean, weight_capped (fraction of weights at the cap), adv_mean, log_prob_mean.
    """
    log_prob = require_net(nets, "actor_log_prob", "iql_actor_loss")
    critic_target = require_net(nets, "critic_target", "iql_actor_loss")
    value = require_net(nets, "value", "iql_actor_loss")
    adv = (clipped_double_q(critic_target(batch.observations, batch.actions)) - value(batch.observations)).detach()
    w = awr_weights(adv, params.beta, params.max_weight)
    logp = log_prob(batch.observations, batch.actions)
    loss = -(w * logp).mean()
    return loss, {"weight_mean": w.mean(), "weight_capped": (w >= params.max_weight).to(w.dtype).mean(),
                  "adv_mean": adv.mean(), "log_prob_mean": logp.detach().mean()}


def iql_critic_loss(batch: TransitionBatch, nets: OfflineNets, params: IQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """IQL eq. (6): loss = Σ_c mean_n (Q_c(s, a) − y)², y = r + γ(1 − terminal)·V(s′), no gradient through y.

    The sum over the twin critics is the authors' (CORL averages over C: a factor 1/C that Adam's step
    is invariant to, up to its ε). Shapes: observations, next_observations [N, O], actions [N, A],
    rewards, terminals [N]; nets.critic → [C, N]; nets.value → [N].
    Diagnostics: q_mean, target_mean.
    """
    critic = require_net(nets, "critic", "iql_critic_loss")
    value = require_net(nets, "value", "iql_critic_loss")
    y = td_target(batch.rewards, batch.terminals, value(batch.next_observations), params.discount)
    q = critic(batch.observations, batch.actions)
    loss = twin_q_loss(q, y)
    return loss, {"q_mean": q.detach().mean(), "target_mean": y.mean()}
