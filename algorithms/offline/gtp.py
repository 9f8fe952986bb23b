"""Generative Trajectory Policies (GTP) and GTP-BC.

Feng, Tang, Wang & Chen, "Generative Trajectory Policies", arXiv 2510.11499 (ICML 2026). The policy is a flow
map Φ_θ(s, a_t, t, τ) that carries a noisy action at noise level t to level τ ≤ t along the probability-flow
ODE of the VE noising a_t = a + t·z, parameterised as in CTM (Kim et al. 2024):

    Φ_θ(s, x_t, t, τ) = (1 − τ/t)·φ_θ(s, x_t, t, τ) + (τ/t)·x_t

(:func:`~algorithms.offline.generative.flow_map`; φ_θ = :func:`~algorithms.offline.generative.gtp_phi`, the
generator with EDM's scalings by default). Training (the paper's per-iteration algorithm), per transition:

* **Instantaneous flow loss** (local anchor): L_Flow = λ(t)·(1/A)‖a − φ_θ^inst(s, a_t, t)‖². The instantaneous
  map is the limit τ → t of φ (lim φ = x_t − t·f(x_t, t), the denoiser E[a | x_t]); with the network's explicit
  τ input it is φ_θ evaluated at τ = t, so L_Flow is denoising score matching in the x₀-prediction form.
  λ(t) = (t² + σ_d²)/(t·σ_d)² (``flow_weighting="edm"``: EDM's weighting, Karras et al. 2022 Table 1, which
  makes L_Flow EDM's denoiser loss, as CTM's DSM term) or 1 (``"none"``: the paper's formula as written).
* **Trajectory consistency loss** (global regulator): L_Cons = (1/A)‖Φ_θ(s, a_t, t, τ) − Φ_θ⁻(s, ã_u, u, τ)‖²,
  t ≥ u ≥ τ, θ⁻ the teacher (nets.generator_target, detached), ã_u = a + u·z with the SAME z as a_t: the stable
  score approximation (one solver step of the data-anchored field f̃ = (x − a)/t from t to u lands exactly
  on a + u·z, :func:`~algorithms.offline.generative.score_approx_point`; no ODE solve during training).
* **Advantage weights** on both terms: w = exp(η·max(0, A)/(std(A) + ε)), capped at ``max_weight``; A =
  min_c Q(s, a) − V(s) with V(s) = min_c Q(s, π(s)), π(s) the current policy's deterministic K-step sample (z = 0)
  — the paper leaves V open; this choice needs no extra network and costs K generator calls.
  L_actor = mean_n w_n·(L_Cons + λ_Flow·L_Flow). GTP-BC: η = 0 (w = 1).
* **Critic**: clipped double Q (TD3 / Diffusion-QL style, as the paper states),
  y = r + γ(1 − d)·min_c Q_target,c(s′, a′), a′ the teacher θ⁻'s K-step chain from t_max·z′ (a sample of the
  target policy).

Time draws (a choice of the suite, in the Karras parameterisation r ↦ T·r^ρ of the sampler's grid): t first —
``time_sampling="lognormal"``: ln t ~ N(P_mean, P_std²) (EDM's training distribution, P_mean = −1.2,
P_std = 1.2, from z₁ directly), ``"karras"``: t = T·Φ(z₁)^ρ (the grid's own density) — clamped to
[t_min, t_max]; then, with r_t = (t/T)^{1/ρ} and u_i = Φ(z_i) ∈ [0, 1]: r_τ = r_t·u₂ (τ uniform below t in r),
r_u = max(r_t − Δ·u₃, r_τ) with Δ = ``teacher_gap``, u = min(T·r_u^ρ, t), τ = min(T·r_τ^ρ, u). So
t ≥ u ≥ τ ≥ 0, t ≥ t_min > 0, and τ = 0 (the sampler's last step) is reachable.

Why these choices. The log-normal draw with EDM's weighting: with the grid's own density (half the draws at
t < 0.005 or t > 10) and no weighting, the denoiser learns the noise levels where action modes separate far
more slowly. The small teacher gap: the teacher's input ã_u sits on the straight line from a to a_t, not on
a_t's ODE trajectory; the mean of the consistency target over a | a_t is the flow map only as u → t (at u = τ
it is one DDIM step from t to τ), the paper's O(h^p) bound in the largest step h — so u stays within Δ of t in
the grid coordinate (CT's adjacent grid points, N ≈ 1/Δ).

Ablations (the paper's, on hopper-medium-expert): ``teacher_point="ode"`` replaces the score approximation by an
ODE solve of the teacher's own field from a_t to u (:func:`ode_teacher_point`, ``ode_steps`` ≤ 3 as the paper's);
``consistency_target="shortcut"`` drops the teacher: the target is two detached steps of the online map,
Φ_θ(s, Φ_θ(s, a_t, t, u), u, τ) (a shortcut-model objective, Frans et al. 2024, in the flow-map form).

Sampling: the deterministic chain a_{t_{k+1}} = Φ_θ(s, a_{t_k}, t_k, t_{k+1}) on
T = t_0 > … > t_K = 0 (:func:`~algorithms.offline.generative.gtp_time_grid`), K = 5 (the main results; K = 2 an
option).

Noise blocks ([N, A] each), in order: ``gtp_bc``: 0 z₁ (t), 1 u₂ (τ), 2 u₃ (u) (column 0 of each), 3 z — 4 blocks;
``gtp``: the same and 4 z′ of the critic's next action — 5 blocks.

Values the suite chooses (each a params field): t_max, t_min, ρ, σ_d, the preconditioning, the time draws and
L_Flow's weighting (EDM's), η, λ_Flow, ε and the weight cap (IQL's 100).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, clipped_double_q, require_net
from .critic import critic_td_loss
from .generative import (GeneratorFn, advantage_weights, check_choice, check_preconditioning, edm_weight,
                         gtp_flow_map, gtp_phi, gtp_sample, karras_time, noise_blocks,
                         per_sample_sq, scalar_draw, score_approx_point, uniform_from_normal, ve_noising)
from .nets import OfflineNets

TIME_SAMPLINGS = ("lognormal", "karras")
FLOW_WEIGHTINGS = ("edm", "none")
TEACHER_POINTS = ("score_approx", "ode")
CONSISTENCY_TARGETS = ("teacher", "shortcut")


@dataclass(frozen=True)
class GTPBCParams:
    """discount: γ (unused without a critic); tau: Polyak rate of the teacher θ⁻; actor_every: generator
    period; t_min: smallest training noise level; t_max: T, the prior's scale (a_T = T·z); rho: ρ of the time
    draws and the sampling grid; sigma_data: σ_d of the EDM scalings; preconditioning: ``"edm"`` or ``"none"``
    (φ = the raw network); lambda_flow: λ_Flow, the weight of L_Flow; sample_steps: K; time_sampling: how t is
    drawn (``"lognormal"``, ``"karras"``); p_mean, p_std: the log-normal's parameters; flow_weighting: λ(t) on
    L_Flow (``"edm"``, ``"none"``); teacher_gap: Δ, the largest r_t − r_u of the teacher's level u;
    teacher_point: how the teacher's input ã_u is made (``"score_approx"``: a + u·z; ``"ode"``: ``ode_steps``
    Euler steps of the teacher's own probability-flow ODE from a_t); consistency_target: ``"teacher"`` (the
    EMA teacher at ã_u) or ``"shortcut"`` (no teacher: two detached steps of the online map) — the last two
    are the paper's ablations (module doc)."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # unused; GTP backbone γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # EMA of θ⁻ (Diffusion-QL backbone 0.005)
    actor_every: int = field(default=1, metadata={"ge": 1})              # a generator step every step
    t_min: float = field(default=0.002, metadata={"gt": 0})              # EDM σ_min (choice)
    t_max: float = field(default=80.0, metadata={"gt": 0})               # EDM σ_max = T (choice)
    rho: float = field(default=7.0, metadata={"gt": 0})                  # EDM ρ = 7 (choice)
    sigma_data: float = field(default=0.5, metadata={"gt": 0})           # EDM σ_d = 0.5 (choice)
    preconditioning: str = "edm"                                         # CTM's φ uses EDM's scalings (choice)
    lambda_flow: float = field(default=1.0, metadata={"ge": 0})          # λ_Flow (choice: equal weights)
    sample_steps: int = field(default=5, metadata={"ge": 1})             # GTP: K = 5 (K = 2: Gym avg 88.7 vs 89.0)
    time_sampling: str = "lognormal"                                     # t ~ EDM's log-normal (choice; "karras")
    p_mean: float = field(default=-1.2, metadata={"ge": -20, "le": 20})  # EDM: P_mean = −1.2
    p_std: float = field(default=1.2, metadata={"gt": 0})                # EDM: P_std = 1.2
    flow_weighting: str = "edm"                                          # EDM's λ(t) on L_Flow (choice; "none")
    teacher_gap: float = field(default=0.05, metadata={"gt": 0, "le": 1})  # Δ ≥ r_t − r_u (choice: small steps)
    teacher_point: str = "score_approx"                                  # GTP; "ode": the ablation's ODE solve
    ode_steps: int = field(default=3, metadata={"ge": 1})                # GTP ablation: ≤ 3 solver steps
    consistency_target: str = "teacher"                                  # GTP; "shortcut": the no-teacher ablation

    def __post_init__(self) -> None:
        check_ranges(self)
        check_preconditioning(self.preconditioning)
        check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
        check_choice("flow_weighting", self.flow_weighting, FLOW_WEIGHTINGS)
        check_choice("teacher_point", self.teacher_point, TEACHER_POINTS)
        check_choice("consistency_target", self.consistency_target, CONSISTENCY_TARGETS)
        if not self.t_max > self.t_min:
            raise ValueError(f"t_max: must be > t_min = {self.t_min}, got {self.t_max}")


@dataclass(frozen=True)
class GTPParams(GTPBCParams):
    """GTPBCParams' fields (discount γ and tau now also used by the critic) plus eta: η of the advantage weight
    (0: GTP-BC); adv_eps: ε in std(A) + ε; max_weight: cap on w."""

    eta: float = field(default=1.0, metadata={"ge": 0})                  # η (choice; A is std-normalised)
    adv_eps: float = field(default=1e-6, metadata={"gt": 0})             # ε of std(A) + ε (choice)
    max_weight: float = field(default=100.0, metadata={"gt": 0})         # not in GTP's text: IQL's cap on exp(·)


def gtp_bc_noise(params: GTPBCParams) -> int:
    """Noise blocks of ``gtp_bc``: 4 (z₁, u₂, u₃, z)."""
    return 4


def gtp_noise(params: GTPParams) -> int:
    """Noise blocks of ``gtp``: 5 (z₁, u₂, u₃, z, z′)."""
    return 5


def gtp_times(z1: Tensor, u2: Tensor, u3: Tensor, params: GTPBCParams) -> tuple[Tensor, Tensor, Tensor]:
    """(t, u, τ) [N] each from a standard normal z₁ [N] and two uniforms u₂, u₃ [N] (module doc):
    t_max ≥ t ≥ u ≥ τ ≥ 0 and t ≥ t_min."""
    if params.time_sampling == "lognormal":
        t = torch.exp(params.p_mean + params.p_std * z1)
    else:
        t = karras_time(uniform_from_normal(z1), 0.0, params.t_max, params.rho)
    t = torch.clamp(t, min=params.t_min, max=params.t_max)
    r_t = (t / params.t_max) ** (1.0 / params.rho)
    r_tau = r_t * u2
    r_u = torch.maximum(r_t - params.teacher_gap * u3, r_tau)
    u = torch.minimum(karras_time(r_u, 0.0, params.t_max, params.rho), t)
    tau = torch.minimum(karras_time(r_tau, 0.0, params.t_max, params.rho), u)
    return t, u, tau


def gtp_terms(gen: GeneratorFn, gen_target: GeneratorFn, obs: Tensor, actions: Tensor, blocks: list[Tensor],
              params: GTPBCParams) -> tuple[Tensor, Tensor]:
    """(L_Cons, L_Flow) per transition, [N] each (module doc; L_Flow with its weight λ(t)), from 4 noise blocks
    (z₁, u₂, u₃ from column 0 of the first three; z the fourth).
    obs [N, O], actions [N, A]; the teacher is detached."""
    kw = dict(t_min=params.t_min, sigma_data=params.sigma_data, preconditioning=params.preconditioning)
    t, u, tau = gtp_times(blocks[0][:, 0], scalar_draw(blocks[1]), scalar_draw(blocks[2]), params)
    a, z = actions.detach(), blocks[3]
    a_t = ve_noising(a, z, t)
    flow = per_sample_sq(gtp_phi(gen, obs, a_t, t, t, **kw), a)
    if params.flow_weighting == "edm":
        flow = flow * edm_weight(t, params.sigma_data)
    student = gtp_flow_map(gen, obs, a_t, t, tau, **kw)
    with torch.no_grad():
        if params.consistency_target == "shortcut":
            mid = gtp_flow_map(gen, obs, a_t, t, u, **kw)
            target = gtp_flow_map(gen, obs, mid, u, tau, **kw)
        else:
            a_u = (score_approx_point(a_t, a, t, u) if params.teacher_point == "score_approx"
                   else ode_teacher_point(gen_target, obs, a_t, t, u, params))
            target = gtp_flow_map(gen_target, obs, a_u, u, tau, **kw)
    return per_sample_sq(student, target.detach()), flow


def ode_teacher_point(gen: GeneratorFn, obs: Tensor, x_t: Tensor, t: Tensor, u: Tensor,
                      params: GTPBCParams) -> Tensor:
    """The teacher's input ã_u solved from x_t along the model's own probability-flow ODE (the GTP paper's
    "without score approximation" ablation): ``ode_steps`` Euler steps, uniform in time, of
    dx/dt = f(x, t) = (x − D(s, x, t))/t, D = φ^inst(s, x, t) = φ(s, x, t, t) the network's denoiser (VE
    probability-flow ODE, Karras et al. 2022 Eq. 3 with σ(t) = t). x_t [N, A], t ≥ u ≥ 0 [N] → [N, A]; t = u
    returns x_t. Costs ``ode_steps`` network calls, which is what the score approximation saves."""
    kw = dict(t_min=params.t_min, sigma_data=params.sigma_data, preconditioning=params.preconditioning)
    x, n = x_t, params.ode_steps
    for i in range(n):
        ti = t + (u - t) * (i / n)
        tn = t + (u - t) * ((i + 1) / n)
        denoised = gtp_phi(gen, obs, x, ti, ti, **kw)
        x = x + ((tn - ti) / ti)[:, None] * (x - denoised)
    return x


def gtp_chain(gen: GeneratorFn, obs: Tensor, z: Tensor, params: GTPBCParams) -> Tensor:
    """The K-step deterministic chain from a_T = t_max·z (:func:`~algorithms.offline.generative.gtp_sample`):
    obs [N, O], z [N, A] → [N, A] in [−1, 1]."""
    return gtp_sample(gen, obs, z, t_max=params.t_max, t_min=params.t_min, rho=params.rho,
                      steps=params.sample_steps, sigma_data=params.sigma_data,
                      preconditioning=params.preconditioning)


def _gtp_generator(batch: TransitionBatch, nets: OfflineNets, params: GTPBCParams, weights: Tensor | None,
                   blocks: list[Tensor], purpose: str) -> tuple[Tensor, dict[str, Tensor]]:
    gen = require_net(nets, "generator", purpose)
    gen_target = require_net(nets, "generator_target", purpose)
    cons, flow = gtp_terms(gen, gen_target, batch.observations, batch.actions, blocks[:4], params)
    per = cons + params.lambda_flow * flow
    loss = per.mean() if weights is None else (weights * per).mean()
    return loss, {"cons_loss": cons.detach().mean(), "flow_loss": flow.detach().mean()}


def gtp_bc_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                          params: GTPBCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """GTP-BC: loss = mean_n (L_Cons + λ_Flow·L_Flow) (module doc; η = 0).

    Shapes: observations [N, O], actions [N, A]; batch.noise ≥ 4 blocks; nets.generator and
    nets.generator_target (s, x, t, τ) → [N, A]. Raises ValueError for missing noise or networks.
    Diagnostics: cons_loss, flow_loss (batch means)."""
    blocks = noise_blocks(batch, gtp_bc_noise(params), "gtp_bc_generator_loss")
    return _gtp_generator(batch, nets, params, None, blocks, "gtp_bc_generator_loss")


def gtp_critic_loss(batch: TransitionBatch, nets: OfflineNets, params: GTPParams) -> tuple[Tensor, dict[str, Tensor]]:
    """GTP's critic: clipped double Q with a′ = the teacher θ⁻'s K-step chain at s′ from t_max·z′ (block 4).
    Diagnostics: q_mean, target_mean."""
    gen_target = require_net(nets, "generator_target", "gtp_critic_loss")
    blocks = noise_blocks(batch, gtp_noise(params), "gtp_critic_loss")
    next_actions = gtp_chain(gen_target, batch.next_observations, blocks[4], params)
    return critic_td_loss(batch, nets, next_actions, params.discount, "gtp_critic_loss")


def gtp_generator_loss(batch: TransitionBatch, nets: OfflineNets,
                       params: GTPParams) -> tuple[Tensor, dict[str, Tensor]]:
    """GTP's actor: loss = mean_n w_n·(L_Cons + λ_Flow·L_Flow), w = advantage weights (module doc) with
    A = min_c Q(s, a) − min_c Q(s, π(s)), π(s) the online generator's deterministic chain (z = 0), detached.
    η = 0 gives :func:`gtp_bc_generator_loss` exactly. nets.critic → [C, N].
    Diagnostics: cons_loss, flow_loss, weight_mean, weight_capped, adv_mean."""
    gen = require_net(nets, "generator", "gtp_generator_loss")
    critic = require_net(nets, "critic", "gtp_generator_loss")
    blocks = noise_blocks(batch, gtp_noise(params), "gtp_generator_loss")
    s = batch.observations
    with torch.no_grad():   # A is a weight, not part of the graph
        pi = gtp_chain(gen, s, torch.zeros_like(batch.actions), params)
        adv = clipped_double_q(critic(s, batch.actions)) - clipped_double_q(critic(s, pi))
    w = advantage_weights(adv, params.eta, params.adv_eps, params.max_weight)
    loss, diags = _gtp_generator(batch, nets, params, w, blocks, "gtp_generator_loss")
    diags.update({"weight_mean": w.mean(), "weight_capped": (w >= params.max_weight).to(w.dtype).mean(),
                  "adv_mean": adv.mean()})
    return loss, diags


def gtp_sample_actions(nets: OfflineNets, obs: Tensor, z: Tensor, params: GTPBCParams) -> Tensor:
    """Actions [N, A] in [−1, 1]: nets.generator's deterministic K-step chain from t_max·z, z [N, A]
    (z = 0: the evaluation action). obs [N, O]."""
    gen = require_net(nets, "generator", "gtp_sample_actions")
    return gtp_chain(gen, obs, z, params)
