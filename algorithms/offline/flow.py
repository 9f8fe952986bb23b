"""Flow policies: flow-matching behaviour cloning and Flow Q-Learning (FQL).

Park, Li & Levine 2025, "Flow Q-Learning" (ICML): a BC flow policy trained by flow matching on the linear
path x_t = (1 − t)·z + t·a (velocity target a − z, t ~ U[0, 1], z ~ N(0, I); Lipman et al. 2023, Liu et al.
2023), sampled by K = 10 Euler steps (:func:`~algorithms.offline.generative.flow_euler_sample`), and a one-step
policy μ_ω(s, z) trained to maximise Q while staying close to the flow's K-step output from the same z:

    L(ω) = E[−Q(s, μ_ω(s, z)) + α·‖μ_ω(s, z) − μ_θ(s, z)‖²]     (μ_θ = the BC flow's Euler chain, frozen)

* ``flow_bc`` — phase ``generator`` (flow matching).
* ``fql`` — phases ``critic``, ``generator`` (the BC flow; no Q term), ``actor`` (the one-step policy, network
  kind ``one_step_actor``); target ``critic``. FQL steps all three from one combined loss; here they are three
  phases in that order, so the distillation target is the flow after this step's update (the losses of the
  three networks are separable, so each phase's gradient is the combined loss's gradient w.r.t. its network
  up to that one-phase lag).

Reductions: both squared norms are per-element means (1/A)‖·‖², the scale of FQL's α. The one-step policy's Q
is the mean over the twin critics (FQL's actor); the critic's target is clipped double Q with a′ = μ_ω(s′, z′)
(FQL samples the next action from the one-step policy; there is no target actor).

Noise blocks ([N, A] each), in order: ``flow_bc``: 0 time t (Φ of column 0), 1 z. ``fql``: 0 t, 1 z of the flow
loss, 2 z of the one-step policy (and of its distillation target), 3 z′ of the critic's next action: 4 blocks.

Evaluation: ``flow_bc`` — the Euler chain from z (:func:`flow_sample_actions`); ``fql`` — μ_ω(s, z)
(:func:`fql_sample_actions`); z = 0 gives the deterministic action.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, require_net
from .critic import critic_td_loss
from .generative import (GeneratorFn, flow_euler_sample, flow_path, noise_blocks,
                         per_sample_sq, scalar_draw)
from .nets import OfflineNets


@dataclass(frozen=True)
class FlowBCParams:
    """discount: γ (unused without a critic); tau: Polyak rate of the targets (unused: flow BC has none);
    actor_every: generator period; flow_steps: K, Euler steps of the flow sampler."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # unused; FQL γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # unused; FQL target rate 0.005
    actor_every: int = field(default=1, metadata={"ge": 1})              # a generator step every step
    flow_steps: int = field(default=10, metadata={"ge": 1})              # FQL: 10 flow (Euler) steps

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class FQLParams(FlowBCParams):
    """FlowBCParams' fields (discount γ and tau now used by the critic and its target) plus alpha: α, the
    distillation coefficient; normalise_q: divide the Q term by mean|Q| (detached), as TD3+BC's λ."""

    alpha: float = field(default=10.0, metadata={"ge": 0})               # FQL: α = 10 (its D4RL AntMaze setting)
    normalise_q: bool = False                                            # FQL default: the raw −Q term


def flow_bc_noise(params: FlowBCParams) -> int:
    """Noise blocks of ``flow_bc``: 2 (time, z)."""
    return 2


def fql_noise(params: FQLParams) -> int:
    """Noise blocks of ``fql``: 4 (module doc)."""
    return 4


def flow_matching_terms(gen: GeneratorFn, obs: Tensor, actions: Tensor, t: Tensor, z: Tensor) -> Tensor:
    """Per-transition flow-matching loss (1/A)‖v_θ(s, x_t, t) − (a − z)‖² [N], x_t = (1 − t)·z + t·a
    (FQL's BC flow loss): obs [N, O], actions, z [N, A], t [N] ∈ [0, 1]; the network sees t and τ = 0."""
    a = actions.detach()
    v = gen(obs, flow_path(a, z, t), t, torch.zeros_like(t))
    return per_sample_sq(v, a - z)


def _flow_bc(batch: TransitionBatch, nets: OfflineNets, blocks: list[Tensor], purpose: str) -> Tensor:
    gen = require_net(nets, "generator", purpose)
    return flow_matching_terms(gen, batch.observations, batch.actions, scalar_draw(blocks[0]), blocks[1]).mean()


def flow_bc_loss(batch: TransitionBatch, nets: OfflineNets, params: FlowBCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Flow-matching BC: loss = mean_n :func:`flow_matching_terms`, t = Φ(block 0, column 0), z = block 1.

    Shapes: observations [N, O], actions [N, A]; batch.noise ≥ 2 blocks; nets.generator (s, x, t, τ) → [N, A].
    Raises ValueError for missing noise or network. Diagnostics: flow_loss."""
    blocks = noise_blocks(batch, flow_bc_noise(params), "flow_bc_loss")
    loss = _flow_bc(batch, nets, blocks, "flow_bc_loss")
    return loss, {"flow_loss": loss.detach()}


def fql_critic_loss(batch: TransitionBatch, nets: OfflineNets, params: FQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """FQL's critic: clipped double Q with a′ = μ_ω(s′, z′) (nets.one_step, z′ = block 3), detached.
    Diagnostics: q_mean, target_mean."""
    one_step = require_net(nets, "one_step", "fql_critic_loss")
    blocks = noise_blocks(batch, fql_noise(params), "fql_critic_loss")
    next_actions = one_step(batch.next_observations, blocks[3])
    return critic_td_loss(batch, nets, next_actions, params.discount, "fql_critic_loss")


def fql_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                       params: FQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """FQL's BC flow: the flow-matching loss alone (t = block 0, z = block 1). Diagnostics: flow_loss."""
    blocks = noise_blocks(batch, fql_noise(params), "fql_generator_loss")
    loss = _flow_bc(batch, nets, blocks, "fql_generator_loss")
    return loss, {"flow_loss": loss.detach()}


def fql_actor_loss(batch: TransitionBatch, nets: OfflineNets, params: FQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """FQL's one-step policy: loss = −mean_n Q̄(s, μ_ω(s, z)) [÷ mean|Q̄|, detached, if normalise_q]
    + α·mean_n (1/A)‖μ_ω(s, z) − μ_θ(s, z)‖², Q̄ = mean over the twin critics, μ_θ(s, z) = the BC flow's
    K-step Euler chain from the same z (block 2), detached. Diagnostics: q_pi_mean, distill_mse."""
    one_step = require_net(nets, "one_step", "fql_actor_loss")
    gen = require_net(nets, "generator", "fql_actor_loss")
    critic = require_net(nets, "critic", "fql_actor_loss")
    z = noise_blocks(batch, fql_noise(params), "fql_actor_loss")[2]
    a = one_step(batch.observations, z)
    q = critic(batch.observations, a).mean(0)
    q_loss = -q.mean()
    if params.normalise_q:
        q_loss = q_loss / q.abs().mean().detach()
    target = flow_euler_sample(gen, batch.observations, z, params.flow_steps).detach()
    distill = per_sample_sq(a, target).mean()
    loss = q_loss + params.alpha * distill
    return loss, {"q_pi_mean": q.detach().mean(), "distill_mse": distill.detach()}


def flow_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor, params: FlowBCParams) -> Tensor:
    """Actions [N, A] in [−1, 1]: the BC flow's K-step Euler chain from z [N, A] (z = 0: deterministic)."""
    gen = require_net(nets, "generator", "flow_sample_actions")
    return flow_euler_sample(gen, obs, z, params.flow_steps)


def fql_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor, params: FQLParams) -> Tensor:
    """Actions [N, A] in [−1, 1]: FQL's one-step policy μ_ω(s, z), clamped (z = 0: deterministic)."""
    one_step = require_net(nets, "one_step", "fql_sample_actions")
    return one_step(obs, z).clamp(-1.0, 1.0)
