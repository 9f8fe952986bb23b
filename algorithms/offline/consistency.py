"""Consistency policies: consistency-model behaviour cloning and Consistency-AC.

Ding & Jin 2024, "Consistency Models as a Rich and Efficient Policy Class for Reinforcement Learning" (ICLR):
the consistency policy π_θ(a | s) = f_θ(s, a_T, T) with the boundary-form scalings of Consistency Models
(Song et al. 2023, §3 and App. C: f_θ(x, t) = c_skip(t)·x + c_out(t)·F_θ(x, t), f_θ(x, ε) = x), trained by
consistency training (Consistency Models §5, Alg. 3) — Consistency-BC — and, with a Q term in Diffusion-QL's
form (Diffusion-QL's L_d − α·E[Q] with the consistency loss in place of L_d), Consistency-AC. Sampling: K = 2 steps
(Consistency-AC's setting, as the GTP paper runs its consistency baselines).

Consistency training (no pretrained diffusion model): n uniform over {0, …, N − 2} on the Karras grid
t_n = t(n/(N − 1)) (:func:`~algorithms.offline.generative.karras_time`, ε = t_min, T = t_max, ρ), one z for both
points, loss (1/A)‖f_θ(s, a + t_{n+1}·z, t_{n+1}) − f_θ⁻(s, a + t_n·z, t_n)‖² with θ⁻ the target copy
(nets.generator_target, detached), λ(t_n) = 1 and the squared-ℓ₂ metric (Consistency Models §5). N is fixed
(``n_grid``; Consistency Models anneal N during training, a schedule the offline loop does not carry).

* ``consistency_bc`` — phase ``generator``; target ``generator`` (θ⁻).
* ``consistency_ac`` — phases ``critic`` then ``generator``; targets ``critic`` and ``generator`` (θ⁻ doubles as
  the target actor of the clipped double-Q critic).

Noise blocks ([N, A] each), in order: ``consistency_bc``: 0 grid index n (Φ of column 0), 1 z.
``consistency_ac``: 0 n, 1 z, 2 … K + 1 the actor's K-step chain (a_T draw, then K − 1 injections),
K + 2 … 2K + 1 the target chain at s′: 2 + 2K blocks (6 at K = 2).

Evaluation (:func:`consistency_sample_actions`): z [N, A] → the chain from T·z that re-noises with the same z
(deterministic given z; z = 0 for evaluation); z [N, K, A] → multistep consistency sampling with fresh noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, require_net
from .critic import critic_td_loss
from .generative import (GeneratorFn, consistency_fn, consistency_sample, karras_time,
                         noise_blocks, per_sample_sq, q_regularised, sampler_noise, scalar_draw, ve_noising)
from .nets import OfflineNets


@dataclass(frozen=True)
class ConsistencyBCParams:
    """discount: γ (unused without a critic); tau: Polyak rate of the target θ⁻; actor_every: generator
    period; t_min: ε, the smallest noise level (boundary f(x, ε) = x); t_max: T, the largest; rho: ρ of the
    Karras grid; sigma_data: σ_d of the scalings; n_grid: N, grid points of consistency training;
    sample_steps: K, steps of the sampler."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # unused; Consistency-AC γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # EMA rate of θ⁻ (Diffusion-QL backbone: 0.005)
    actor_every: int = field(default=1, metadata={"ge": 1})              # a generator step every step
    t_min: float = field(default=0.002, metadata={"gt": 0})              # Consistency Models / EDM: ε = 0.002
    t_max: float = field(default=80.0, metadata={"gt": 0})               # Consistency Models / EDM: T = 80
    rho: float = field(default=7.0, metadata={"gt": 0})                  # EDM / Consistency Models: ρ = 7
    sigma_data: float = field(default=0.5, metadata={"gt": 0})           # EDM / Consistency Models: σ_d = 0.5
    n_grid: int = field(default=40, metadata={"ge": 2})                  # fixed N (choice: CM's CT anneals N ≈ 2 → 150)
    sample_steps: int = field(default=2, metadata={"ge": 1})             # Consistency-AC / the GTP paper's baselines: 2

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.t_max > self.t_min:
            raise ValueError(f"t_max: must be > t_min = {self.t_min}, got {self.t_max}")


@dataclass(frozen=True)
class ConsistencyACParams(ConsistencyBCParams):
    """ConsistencyBCParams' fields (discount γ now used by the critic) plus eta: η of the Q term's weight
    α = η / E|Q| (Diffusion-QL's form, which Consistency-AC's actor objective follows)."""

    eta: float = field(default=1.0, metadata={"ge": 0})                  # Diffusion-QL's Gym η = 1 (choice)


def consistency_bc_noise(params: ConsistencyBCParams) -> int:
    """Noise blocks of ``consistency_bc``: 2 (grid index, z)."""
    return 2


def consistency_ac_noise(params: ConsistencyACParams) -> int:
    """Noise blocks of ``consistency_ac``: 2 + 2K (module doc)."""
    return 2 + 2 * params.sample_steps


def consistency_terms(gen: GeneratorFn, gen_target: GeneratorFn, obs: Tensor, actions: Tensor, u: Tensor,
                      z: Tensor, params: ConsistencyBCParams) -> Tensor:
    """Per-transition consistency-training loss [N] (module doc): n = min(⌊u·(N − 1)⌋, N − 2) from u [N],
    student f_θ at (a + t_{n+1}·z, t_{n+1}), teacher f_θ⁻ at (a + t_n·z, t_n), detached.
    obs [N, O], actions, z [N, A]."""
    N = params.n_grid
    n = torch.clamp(torch.floor(u * (N - 1)), max=N - 2)
    t_lo = karras_time(n / (N - 1), params.t_min, params.t_max, params.rho)
    t_hi = karras_time((n + 1) / (N - 1), params.t_min, params.t_max, params.rho)
    a = actions.detach()
    student = consistency_fn(gen, obs, ve_noising(a, z, t_hi), t_hi, t_min=params.t_min, sigma_data=params.sigma_data)
    teacher = consistency_fn(gen_target, obs, ve_noising(a, z, t_lo), t_lo, t_min=params.t_min,
                             sigma_data=params.sigma_data).detach()
    return per_sample_sq(student, teacher)


def consistency_chain(gen: GeneratorFn, obs: Tensor, blocks: list[Tensor], params: ConsistencyBCParams) -> Tensor:
    """K-step consistency sampling on K noise blocks (blocks[0] the a_T draw, blocks[1:] the injections) →
    [N, A] in [−1, 1], with gradient (:func:`~algorithms.offline.generative.consistency_sample`)."""
    return consistency_sample(gen, obs, blocks[0], t_min=params.t_min, t_max=params.t_max, rho=params.rho,
                              steps=params.sample_steps, sigma_data=params.sigma_data, injected=blocks[1:])


def _ct_loss(batch: TransitionBatch, nets: OfflineNets, params: ConsistencyBCParams, blocks: list[Tensor],
             purpose: str) -> Tensor:
    gen = require_net(nets, "generator", purpose)
    gen_target = require_net(nets, "generator_target", purpose)
    return consistency_terms(gen, gen_target, batch.observations, batch.actions, scalar_draw(blocks[0]),
                             blocks[1], params).mean()


def consistency_bc_loss(batch: TransitionBatch, nets: OfflineNets,
                        params: ConsistencyBCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Consistency-BC: loss = mean_n :func:`consistency_terms` (consistency training on the dataset actions).

    Shapes: observations [N, O], actions [N, A]; batch.noise ≥ 2 blocks; nets.generator and
    nets.generator_target (s, x, t, τ) → [N, A]. Raises ValueError for missing noise or networks.
    Diagnostics: consistency_loss."""
    blocks = noise_blocks(batch, consistency_bc_noise(params), "consistency_bc_loss")
    loss = _ct_loss(batch, nets, params, blocks, "consistency_bc_loss")
    return loss, {"consistency_loss": loss.detach()}


def consistency_ac_critic_loss(batch: TransitionBatch, nets: OfflineNets,
                               params: ConsistencyACParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Consistency-AC's critic: clipped double Q with a′ from the target policy θ⁻'s K-step chain at s′
    (noise blocks K + 2 … 2K + 1). Diagnostics: q_mean, target_mean."""
    gen_target = require_net(nets, "generator_target", "consistency_ac_critic_loss")
    blocks = noise_blocks(batch, consistency_ac_noise(params), "consistency_ac_critic_loss")
    K = params.sample_steps
    next_actions = consistency_chain(gen_target, batch.next_observations, blocks[2 + K:2 + 2 * K], params)
    return critic_td_loss(batch, nets, next_actions, params.discount, "consistency_ac_critic_loss")


def consistency_ac_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                                  params: ConsistencyACParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Consistency-AC's actor: loss = L_CT − η·½(mean Q₁/mean|Q₂| + mean Q₂/mean|Q₁|) at a = the K-step chain of
    nets.generator (noise blocks 2 … K + 1), gradient through the chain, |Q| denominators detached.
    Diagnostics: consistency_loss, q_term, q_pi_mean."""
    critic = require_net(nets, "critic", "consistency_ac_generator_loss")
    gen = require_net(nets, "generator", "consistency_ac_generator_loss")
    blocks = noise_blocks(batch, consistency_ac_noise(params), "consistency_ac_generator_loss")
    ct = _ct_loss(batch, nets, params, blocks, "consistency_ac_generator_loss")
    a = consistency_chain(gen, batch.observations, blocks[2:2 + params.sample_steps], params)
    loss, diags = q_regularised(ct, critic(batch.observations, a), params.eta)
    return loss, {"consistency_loss": ct.detach(), **diags}


def consistency_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor,
                               params: ConsistencyBCParams) -> Tensor:
    """Actions [N, A] in [−1, 1] of nets.generator's K-step chain: z [N, A] → from T·z, re-noised with the same z
    (deterministic given z; z = 0 for evaluation); z [N, K, A] → with the K − 1 injections. obs [N, O]."""
    gen = require_net(nets, "generator", "consistency_sample_actions")
    z0, injected = sampler_noise(z, params.sample_steps - 1)
    return consistency_sample(gen, obs, z0, t_min=params.t_min, t_max=params.t_max, rho=params.rho,
                              steps=params.sample_steps, sigma_data=params.sigma_data, injected=injected)
