"""Diffusion policies: DDPM behaviour cloning and Diffusion-QL.

Wang, Hunt & Zhou 2023, "Diffusion Policies as an Expressive Policy Class for Offline Reinforcement Learning"
(ICLR): the policy is a conditional DDPM (ε-prediction, T = 5 steps, VP schedule); the actor loss is
L = L_d − α·E[Q(s, a⁰)], a⁰ drawn by the reverse chain with gradient, α = η / E|Q|; the critic is
clipped double Q with the next action drawn from the EMA actor. DDPM: Ho et al. 2020, Alg. 1 (training:
ε-prediction) and Alg. 2 (sampling).

* ``ddpm_bc`` — one phase, ``generator``: L_d = mean_n (1/A)‖ε − ε_θ(s, x_i, i)‖², x_i = √ᾱ_i·a + √(1 − ᾱ_i)·ε,
  i uniform over {0, …, T − 1}.
* ``diffusion_ql`` — phases ``critic`` then ``generator`` (every step: Diffusion-QL updates both each
  iteration); targets ``critic`` and ``generator`` (the EMA actor).

Noise blocks ([N, A] each, :func:`algorithms.offline.generative.noise_blocks`), in order:
``ddpm_bc``: 0 step index i (Φ of column 0), 1 ε.
``diffusion_ql``: 0 i, 1 ε, 2 … T + 1 the actor's reverse chain (x_T, then T − 1 injections), T + 2 … 2T + 1
the target chain at s′ (same layout): 2 + 2T blocks (12 at T = 5).

Deviations, all config-free: the actor's EMA is the loop's Polyak copy at rate ``tau`` on every actor step
(Diffusion-QL: EMA decay 0.995 every 5 steps after 1000 warm-up steps); the fair coin choosing Q₁/|Q₂| or
Q₂/|Q₁| is replaced by its expectation (:func:`~algorithms.offline.generative.normalised_q_term`); no
max-Q backup (Diffusion-QL's AntMaze option) and no gradient-norm clipping (a harness setting). The
reduction of L_d is the per-element mean, which Diffusion-QL's η is tuned against.

Evaluation (:func:`diffusion_sample_actions`): the reverse chain from x_T = z; with z [N, A] no noise is
injected (the posterior-mean chain, deterministic given z; z = 0 is the suite's evaluation action), with
z [N, T, A] it is DDPM's ancestral sampler (Diffusion-QL acts by ancestral sampling).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, require_net
from .critic import critic_td_loss
from .generative import (GeneratorFn, ddpm_index, ddpm_noising, ddpm_sample,
                         noise_blocks, per_sample_sq, q_regularised, sampler_noise, scalar_draw,
                         vp_alpha_bar)
from .nets import OfflineNets


@dataclass(frozen=True)
class DiffusionBCParams:
    """discount: γ (unused without a critic); tau: Polyak rate of the targets (unused: DDPM BC has none);
    actor_every: generator period; n_timesteps: T, the number of diffusion steps; beta_min, beta_max: the VP
    schedule's β range (:func:`algorithms.offline.generative.vp_alpha_bar`)."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # unused; Diffusion-QL γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # unused; Diffusion-QL τ = 0.005
    actor_every: int = field(default=1, metadata={"ge": 1})              # a generator step every step
    n_timesteps: int = field(default=5, metadata={"ge": 1})              # Diffusion-QL: T = 5
    beta_min: float = field(default=0.1, metadata={"gt": 0})             # Diffusion-QL "vp" schedule β_min
    beta_max: float = field(default=10.0, metadata={"gt": 0})            # Diffusion-QL "vp" schedule β_max

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.beta_max > self.beta_min:
            raise ValueError(f"beta_max: must be > beta_min = {self.beta_min}, got {self.beta_max}")


@dataclass(frozen=True)
class DiffusionQLParams(DiffusionBCParams):
    """DiffusionBCParams' fields (discount γ and tau now used: the critic's and the EMA actor's targets)
    plus eta: η of the Q term's weight α = η / E|Q| (Diffusion-QL eq. 3)."""

    eta: float = field(default=1.0, metadata={"ge": 0})                  # Diffusion-QL: η = 1 on Gym locomotion


def ddpm_bc_noise(params: DiffusionBCParams) -> int:
    """Noise blocks of ``ddpm_bc``: 2 (step index, ε)."""
    return 2


def diffusion_ql_noise(params: DiffusionQLParams) -> int:
    """Noise blocks of ``diffusion_ql``: 2 + 2T (module doc)."""
    return 2 + 2 * params.n_timesteps


def ddpm_terms(gen: GeneratorFn, obs: Tensor, actions: Tensor, u: Tensor, eps: Tensor,
               params: DiffusionBCParams) -> Tensor:
    """Per-transition DDPM loss (1/A)‖ε − ε_θ(s, x_i, i)‖² [N] (Ho et al. 2020, Alg. 1 / eq. 14; Diffusion-QL's
    L_d): i = :func:`~algorithms.offline.generative.ddpm_index` of u [N] ∈ [0, 1], x_i =
    √ᾱ_{i+1}·a + √(1 − ᾱ_{i+1})·ε with ᾱ of :func:`~algorithms.offline.generative.vp_alpha_bar` (0-based i;
    ᾱ_{i+1} is the cumulative product over steps 1 … i + 1). The network sees the index i as its time and τ = 0.
    obs [N, O], actions, eps [N, A]."""
    i = ddpm_index(u, params.n_timesteps)
    alpha_bar = vp_alpha_bar(i + 1.0, params.n_timesteps, params.beta_min, params.beta_max)
    x = ddpm_noising(actions.detach(), eps, alpha_bar)
    return per_sample_sq(gen(obs, x, i, torch.zeros_like(i)), eps)


def ddpm_chain(gen: GeneratorFn, obs: Tensor, blocks: list[Tensor], params: DiffusionBCParams) -> Tensor:
    """The ancestral chain of :func:`~algorithms.offline.generative.ddpm_sample` on T noise blocks
    (x_T = blocks[0], the injections blocks[1:]) → [N, A] in [−1, 1], with gradient."""
    return ddpm_sample(gen, obs, blocks[0], params.n_timesteps, params.beta_min, params.beta_max,
                       injected=blocks[1:])


def ddpm_bc_loss(batch: TransitionBatch, nets: OfflineNets,
                 params: DiffusionBCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """DDPM behaviour cloning: loss = mean_n :func:`ddpm_terms` (Diffusion-QL's L_d alone).

    Shapes: observations [N, O], actions [N, A] in [−1, 1]; batch.noise ≥ 2 blocks (module doc);
    nets.generator (s, x, t, τ) → [N, A]. Raises ValueError for missing noise or network.
    Diagnostics: bc_loss."""
    gen = require_net(nets, "generator", "ddpm_bc_loss")
    u_block, eps = noise_blocks(batch, ddpm_bc_noise(params), "ddpm_bc_loss")
    loss = ddpm_terms(gen, batch.observations, batch.actions, scalar_draw(u_block), eps, params).mean()
    return loss, {"bc_loss": loss.detach()}


def diffusion_ql_critic_loss(batch: TransitionBatch, nets: OfflineNets,
                             params: DiffusionQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Diffusion-QL's critic: clipped double Q (:func:`~algorithms.offline.critic.critic_td_loss`)
    with a′ drawn at s′ by the EMA actor's ancestral chain (nets.generator_target, noise blocks T + 2 … 2T + 1).
    Diagnostics: q_mean, target_mean."""
    gen_target = require_net(nets, "generator_target", "diffusion_ql_critic_loss")
    blocks = noise_blocks(batch, diffusion_ql_noise(params), "diffusion_ql_critic_loss")
    T = params.n_timesteps
    next_actions = ddpm_chain(gen_target, batch.next_observations, blocks[2 + T:2 + 2 * T], params)
    return critic_td_loss(batch, nets, next_actions, params.discount, "diffusion_ql_critic_loss")


def diffusion_ql_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                                params: DiffusionQLParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Diffusion-QL's actor: loss = L_d − η·½(mean Q₁(s, a⁰)/mean|Q₂(s, a⁰)| + mean Q₂/mean|Q₁|),
    a⁰ = the reverse chain of nets.generator from x_T (noise blocks 2 … T + 1), with gradient through every
    step; the |Q| denominators are detached (:func:`~algorithms.offline.generative.normalised_q_term`).
    nets.critic → [C, N] (C = 2; with C ≠ 2 each Q_c is divided by the next one's mean |Q|).
    Diagnostics: bc_loss, q_term, q_pi_mean."""
    gen = require_net(nets, "generator", "diffusion_ql_generator_loss")
    critic = require_net(nets, "critic", "diffusion_ql_generator_loss")
    blocks = noise_blocks(batch, diffusion_ql_noise(params), "diffusion_ql_generator_loss")
    T = params.n_timesteps
    bc = ddpm_terms(gen, batch.observations, batch.actions, scalar_draw(blocks[0]), blocks[1], params).mean()
    a0 = ddpm_chain(gen, batch.observations, blocks[2:2 + T], params)
    loss, diags = q_regularised(bc, critic(batch.observations, a0), params.eta)
    return loss, {"bc_loss": bc.detach(), **diags}


def diffusion_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor, params: DiffusionBCParams) -> Tensor:
    """Actions [N, A] in [−1, 1] of nets.generator's reverse chain from x_T: z [N, A] → x_T = z and no injected
    noise (deterministic; z = 0 for evaluation); z [N, T, A] → DDPM's ancestral sampler (z[:, 0] = x_T, then
    one injection per step). obs [N, O]."""
    gen = require_net(nets, "generator", "diffusion_sample_actions")
    x_t, injected = sampler_noise(z, params.n_timesteps - 1)
    return ddpm_sample(gen, obs, x_t, params.n_timesteps, params.beta_min, params.beta_max, injected=injected)
