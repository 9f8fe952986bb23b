"""TPO for offline RL with a generative policy: fit TPO's target over critic-scored candidates.

TPO (Kaddour, "Target Policy Optimization", arXiv 2604.06159, 2026, §3) builds, per context, the target
q ∝ p_old·exp(u/η) over a group of K scored candidates, with u the group-standardised scores, and fits the
policy to q by cross-entropy. Offline, with a generative policy p_θ(a | s) (diffusion, flow or GTP) and a
learned critic:

1. Candidates: per state s, K_c actions a_1 … a_K ~ p_old(· | s), drawn by the CURRENT generator's sampler and
   detached (p_old = the frozen snapshot of p_θ at this step).
2. Scores: s_k = min_c Q_c(s, a_k) (clipped double Q); u = standardised within the group
   (:func:`algorithms.shaping.standardise_scores`: a zero-variance group gets u = 0 exactly).
3. Target: the density q(a | s) ∝ p_old(a | s)·exp(u(s, a)/η). On the samples (drawn from p_old) self-normalised
   importance weighting gives q_k = exp(u_k/η)/Σ_j exp(u_j/η) = softmax(u/η)_k: the p_old factor cancels
   against the proposal, so no density of p_old is needed — only samples, which every generative policy has.
4. Fit: TPO minimises CE(q, p_θ) = −E_q[log p_θ(a | s)]. A generative policy has no tractable log-density, but
   its training loss ℓ_gen(s, a) is (up to constants) a bound on or surrogate for −log p_θ(a | s) (the DDPM ELBO's
   ε-loss; flow matching; GTP's consistency + flow losses), so −E_q[log p_θ] becomes Σ_k q_k·ℓ_gen(s, a_k):
   the q-weighted generative loss on the candidates. With equal scores (q_k = 1/K) it is the plain mean of
   ℓ_gen over the candidates — generative BC on the policy's own samples, whose expected gradient is zero at
   p_θ = p_old for an exact likelihood loss: no signal, TPO's zero-variance property.
5. Anchor: + bc_weight·ℓ_gen(s, a_dataset), behaviour cloning on the dataset action, which keeps the policy on
   the data's support (the role the BC term plays in TD3+BC or Diffusion-QL).

    L = mean_n [ Σ_k q_{n,k}·ℓ_gen(s_n, a_{n,k}) ] + bc_weight·mean_n ℓ_gen(s_n, a_n)

ℓ_gen (``generative``): ``"flow"`` — :func:`~algorithms.offline.flow.flow_matching_terms`; ``"diffusion"`` —
:func:`~algorithms.offline.diffusion.ddpm_terms`; ``"gtp"`` — GTP's L_Cons + λ_Flow·L_Flow
(:func:`~algorithms.offline.gtp.gtp_terms`). All candidates of a state and its dataset term share one draw of
ℓ_gen's noise (times and z): every term is still an unbiased draw of its own loss, and the candidates are
compared under common random numbers. The critic is GTP's: clipped double Q with a′ drawn at s′ by the target
generator's sampler.

Phases ``critic`` then ``generator``; targets ``critic`` and ``generator``. Cost: the candidates' chains and their
ℓ_gen run on N·K_c rows, about K_c + 1 times the generative BC step.
Noise blocks ([N, A] each), in order: g blocks of ℓ_gen (flow, diffusion: 2 — time, z/ε; gtp: 4 — u₁, u₂, u₃, z),
then K_c·c blocks of the candidates' chains (candidate k uses blocks g + k·c … g + k·c + c − 1), then c blocks
of the critic's target chain, where c = blocks per chain (flow, gtp: 1, the initial draw; diffusion: T, x_T
and T − 1 ancestral injections): g + (K_c + 1)·c in all (gtp, K_c = 8: 13).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from ..shaping import ZERO_VAR_RTOL, standardise_scores
from .critic import check_ranges, clipped_double_q, require_net
from .diffusion import ddpm_terms
from .flow import flow_matching_terms
from .critic import critic_td_loss
from .generative import (GeneratorFn, check_choice, check_preconditioning, ddpm_sample, flow_euler_sample,
                         noise_blocks, sampler_noise, scalar_draw)
from .gtp import CONSISTENCY_TARGETS, FLOW_WEIGHTINGS, TEACHER_POINTS, TIME_SAMPLINGS, gtp_chain, gtp_terms
from .nets import OfflineNets

GENERATIVES = ("flow", "diffusion", "gtp")


@dataclass(frozen=True)
class TPOOfflineParams:
    """discount: γ; tau: Polyak rate of the critic and generator targets; actor_every: generator period;
    generative: ℓ_gen and sampler (``"flow"``, ``"diffusion"``, ``"gtp"``); n_candidates: K_c per state; eta: η of
    q ∝ exp(u/η); bc_weight: weight of the dataset BC term; std_eps, zero_var_rtol: the group standardisation
    (:func:`algorithms.shaping.standardise_scores`). The remaining fields configure ℓ_gen and its sampler as in
    the matching method: n_timesteps, beta_min, beta_max (diffusion:
    :class:`~algorithms.offline.diffusion.DiffusionBCParams`);
    flow_steps (flow: :class:`~algorithms.offline.flow.FlowBCParams`); t_min, t_max, rho, sigma_data,
    preconditioning, lambda_flow, sample_steps, time_sampling, p_mean, p_std, flow_weighting, teacher_gap,
    teacher_point, ode_steps, consistency_target (gtp:
    :class:`~algorithms.offline.gtp.GTPBCParams`)."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # the GTP / Diffusion-QL backbone γ
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # the GTP / Diffusion-QL backbone EMA
    actor_every: int = field(default=1, metadata={"ge": 1})              # a generator step every step
    generative: str = "gtp"                                              # GTP's policy class: TPO vs GTP's weights
    n_candidates: int = field(default=8, metadata={"ge": 2})             # K_c (choice: a group of 8)
    eta: float = field(default=1.0, metadata={"gt": 0})                  # TPO paper §3 default η = 1
    bc_weight: float = field(default=1.0, metadata={"ge": 0})            # dataset anchor (choice: equal weight)
    std_eps: float = field(default=1e-6, metadata={"ge": 0})             # TPO reference implementation: 1e-6
    zero_var_rtol: float = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})  # algorithms/shaping.py module doc
    n_timesteps: int = field(default=5, metadata={"ge": 1})              # diffusion: Diffusion-QL T = 5
    beta_min: float = field(default=0.1, metadata={"gt": 0})             # diffusion: Diffusion-QL VP β_min
    beta_max: float = field(default=10.0, metadata={"gt": 0})            # diffusion: Diffusion-QL VP β_max
    flow_steps: int = field(default=10, metadata={"ge": 1})              # flow: FQL's 10 Euler steps
    t_min: float = field(default=0.002, metadata={"gt": 0})              # gtp: EDM σ_min (as GTPBCParams)
    t_max: float = field(default=80.0, metadata={"gt": 0})               # gtp: EDM σ_max
    rho: float = field(default=7.0, metadata={"gt": 0})                  # gtp: EDM ρ
    sigma_data: float = field(default=0.5, metadata={"gt": 0})           # gtp: EDM σ_d
    preconditioning: str = "edm"                                         # gtp: EDM scalings of φ
    lambda_flow: float = field(default=1.0, metadata={"ge": 0})          # gtp: λ_Flow
    sample_steps: int = field(default=5, metadata={"ge": 1})             # gtp: K = 5 (GTP's main results)
    time_sampling: str = "lognormal"                                     # gtp: EDM's log-normal t
    p_mean: float = field(default=-1.2, metadata={"ge": -20, "le": 20})  # gtp: EDM P_mean
    p_std: float = field(default=1.2, metadata={"gt": 0})                # gtp: EDM P_std
    flow_weighting: str = "edm"                                          # gtp: EDM's λ(t) on L_Flow
    teacher_gap: float = field(default=0.05, metadata={"gt": 0, "le": 1})  # gtp: max r_t − r_u
    teacher_point: str = "score_approx"                                  # gtp: GTP's score approximation
    ode_steps: int = field(default=3, metadata={"ge": 1})                # gtp: teacher_point="ode" only
    consistency_target: str = "teacher"                                  # gtp: the EMA teacher

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.generative not in GENERATIVES:
            raise ValueError(f"generative: expected one of {', '.join(GENERATIVES)}, got {self.generative!r}")
        check_preconditioning(self.preconditioning)
        check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
        check_choice("flow_weighting", self.flow_weighting, FLOW_WEIGHTINGS)
        check_choice("teacher_point", self.teacher_point, TEACHER_POINTS)
        check_choice("consistency_target", self.consistency_target, CONSISTENCY_TARGETS)
        if not self.beta_max > self.beta_min:
            raise ValueError(f"beta_max: must be > beta_min = {self.beta_min}, got {self.beta_max}")
        if not self.t_max > self.t_min:
            raise ValueError(f"t_max: must be > t_min = {self.t_min}, got {self.t_max}")


def _gen_blocks(params: TPOOfflineParams) -> int:
    return 4 if params.generative == "gtp" else 2


def _chain_blocks(params: TPOOfflineParams) -> int:
    return params.n_timesteps if params.generative == "diffusion" else 1


def tpo_offline_noise(params: TPOOfflineParams) -> int:
    """Noise blocks of ``tpo_offline``: g + (K_c + 1)·c (module doc)."""
    return _gen_blocks(params) + (params.n_candidates + 1) * _chain_blocks(params)


def generative_chain(gen: GeneratorFn, obs: Tensor, blocks: list[Tensor], params: TPOOfflineParams) -> Tensor:
    """One sample per row of the policy ``gen`` from c noise blocks [M, A] (module doc) → [M, A] in [−1, 1]:
    flow — the Euler chain from blocks[0]; gtp — the K-step chain from t_max·blocks[0]; diffusion — the
    ancestral chain (x_T = blocks[0], injections blocks[1:])."""
    if params.generative == "flow":
        return flow_euler_sample(gen, obs, blocks[0], params.flow_steps)
    if params.generative == "gtp":
        return gtp_chain(gen, obs, blocks[0], params)
    return ddpm_sample(gen, obs, blocks[0], params.n_timesteps, params.beta_min, params.beta_max,
                       injected=blocks[1:])


def generative_terms(nets: OfflineNets, obs: Tensor, actions: Tensor, blocks: list[Tensor],
                     params: TPOOfflineParams, purpose: str) -> Tensor:
    """ℓ_gen(s, a) per row [M] for actions [M, A] at states obs [M, O], from the g noise blocks [M, A]
    (module doc); needs nets.generator (and nets.generator_target for ``"gtp"``, its teacher)."""
    gen = require_net(nets, "generator", purpose)
    if params.generative == "flow":
        return flow_matching_terms(gen, obs, actions, scalar_draw(blocks[0]), blocks[1])
    if params.generative == "diffusion":
        return ddpm_terms(gen, obs, actions, scalar_draw(blocks[0]), blocks[1], params)
    cons, flow = gtp_terms(gen, require_net(nets, "generator_target", purpose), obs, actions, blocks, params)
    return cons + params.lambda_flow * flow


def _repeat(x: Tensor, k: int) -> Tensor:
    """[N, D] → [N·k, D], row n repeated k times consecutively (row n·k + j = x[n])."""
    return x[:, None, :].expand(x.shape[0], k, x.shape[1]).reshape(x.shape[0] * k, x.shape[1])


def tpo_offline_critic_loss(batch: TransitionBatch, nets: OfflineNets,
                            params: TPOOfflineParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped double-Q critic with a′ = the target generator's sample at s′ (the last c noise blocks).
    Diagnostics: q_mean, target_mean."""
    gen_target = require_net(nets, "generator_target", "tpo_offline_critic_loss")
    blocks = noise_blocks(batch, tpo_offline_noise(params), "tpo_offline_critic_loss")
    c = _chain_blocks(params)
    next_actions = generative_chain(gen_target, batch.next_observations, blocks[-c:], params)
    return critic_td_loss(batch, nets, next_actions, params.discount, "tpo_offline_critic_loss")


def tpo_offline_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                               params: TPOOfflineParams) -> tuple[Tensor, dict[str, Tensor]]:
    """L = mean_n Σ_k q_{n,k}·ℓ_gen(s_n, a_{n,k}) + bc_weight·mean_n ℓ_gen(s_n, a_n) (module doc).

    a_{n,k}: K_c detached samples of nets.generator at s_n; q = softmax(u/η) over k, u = standardise_scores of
    min_c Q(s_n, a_{n,k}) (nets.critic → [C, M]), detached. Shapes: observations [N, O], actions [N, A];
    batch.noise ≥ :func:`tpo_offline_noise` blocks. Diagnostics: fit_loss, bc_loss, q_max_mean (mean over states
    of max_k q), score_std_mean (mean within-group std of the scores), flat_fraction (groups with u ≡ 0)."""
    purpose = "tpo_offline_generator_loss"
    gen = require_net(nets, "generator", purpose)
    critic = require_net(nets, "critic", purpose)
    blocks = noise_blocks(batch, tpo_offline_noise(params), purpose)
    g, c, K = _gen_blocks(params), _chain_blocks(params), params.n_candidates
    s, N = batch.observations, batch.observations.shape[0]
    s_rep = _repeat(s, K)
    # candidate k of state n sits at row n·K + k and uses blocks g + k·c … g + k·c + c − 1
    chain = [torch.stack([blocks[g + k * c + j] for k in range(K)], 1).reshape(N * K, -1) for j in range(c)]
    with torch.no_grad():   # candidates and their scores are data of the target, not part of the graph
        cand = generative_chain(gen, s_rep, chain, params)
        scores = clipped_double_q(critic(s_rep, cand)).reshape(N, K)
    u = standardise_scores(scores, eps=params.std_eps, rtol=params.zero_var_rtol)
    q = torch.softmax(u / params.eta, -1).detach()
    shared = [_repeat(b, K) for b in blocks[:g]]
    fit = (q * generative_terms(nets, s_rep, cand, shared, params, purpose).reshape(N, K)).sum(-1).mean()
    bc = generative_terms(nets, s, batch.actions, blocks[:g], params, purpose).mean()
    loss = fit + params.bc_weight * bc
    return loss, {"fit_loss": fit.detach(), "bc_loss": bc.detach(), "q_max_mean": q.amax(-1).mean(),
                  "score_std_mean": scores.std(-1, unbiased=False).mean(),
                  "flat_fraction": (u == 0).all(-1).to(u.dtype).mean()}


def tpo_offline_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor, params: TPOOfflineParams) -> Tensor:
    """Actions [N, A] in [−1, 1] of nets.generator's sampler: z [N, A] is the initial draw (z = 0: deterministic;
    diffusion then runs the posterior-mean chain); diffusion also takes z [N, T, A] (ancestral)."""
    gen = require_net(nets, "generator", "tpo_offline_sample_actions")
    if params.generative == "diffusion":
        z0, injected = sampler_noise(z, params.n_timesteps - 1)
        return ddpm_sample(gen, obs, z0, params.n_timesteps, params.beta_min, params.beta_max, injected=injected)
    return generative_chain(gen, obs, [z], params)
