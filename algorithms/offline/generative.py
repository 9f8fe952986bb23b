"""Shared pieces of the generative offline policies: noise blocks and time draws, noise schedules, VE noising,
the CTM-style flow map, the K-step samplers, and the clipped double-Q critic they share.

The policies (each a tuple of phases, :mod:`algorithms.offline`):

* :mod:`.diffusion` — DDPM behaviour cloning and Diffusion-QL (Wang, Hunt & Zhou 2023, ICLR);
* :mod:`.consistency` — consistency-model BC and Consistency-AC (Ding & Jin 2024, ICLR);
* :mod:`.flow` — flow-matching BC and FQL (Park, Li & Levine 2025, ICML);
* :mod:`.gtp` — GTP and GTP-BC (Feng, Tang, Wang & Chen, "Generative Trajectory Policies", arXiv 2510.11499,
  ICML 2026);
* :mod:`.tpo_offline` — TPO's target (Kaddour 2026, §3) over critic-scored candidates of any of the above.

Conventions shared by all of them:

* **Network.** ``nets.generator(s, x, t, τ) -> [N, A]`` (:mod:`bench.models.generative`). Each method fixes what
  t and τ mean and how they are fed: DDPM passes its step index i ∈ {0, …, T−1} (Diffusion-QL's input), flow
  matching its time t ∈ [0, 1] (FQL's input), the VE methods (consistency, GTP) :func:`ve_time_feature` of
  their noise levels. Methods without a second time pass τ = 0.
* **Randomness.** Losses are pure: every draw arrives in ``batch.noise`` [N, M], read as ``M / A`` blocks of
  [N, A] standard normals (:func:`noise_blocks`; each method documents its block layout). A scalar draw per
  transition (a time) is the first column of its own block, mapped through the normal CDF, u = Φ(z) ∈ [0, 1]
  (:func:`uniform_from_normal`), when it needs a uniform (GTP's log-normal t uses the normal itself): one block
  per scalar, so the layout does not depend on A.
* **Per-transition losses** are means over the action dimensions, (1/A)·‖·‖² (the suite's ``action_mse``
  reduction; a constant factor against the papers' ‖·‖², which Adam's step is invariant to up to its ε).
* **Samplers** take ``z`` [N, A] (the chain's initial draw; zeros give the deterministic evaluation action) and,
  for chains that inject noise at every step (DDPM ancestral, multistep consistency), optionally [N, B, A]:
  the initial draw, then one block per injection (:func:`sampler_noise`). Outputs are clamped to [−1, 1].
  z = 0 follows the probability-flow trajectory from the prior's centre: for a multimodal action distribution
  that trajectory can end between modes, so an evaluation that wants the policy's own behaviour passes
  z ~ N(0, I) from the seed's stream instead.

Everything here is safe under ``torch.func.vmap`` over a seed axis: no python control flow on tensor values,
no host reads, no in-place ops on inputs, no random draws.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ..batch import TransitionBatch
from .nets import OfflineNets

Number = Union[float, Tensor]
GeneratorFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

PRECONDITIONINGS = ("edm", "none")


# -- randomness ---------------------------------------------------------------------------------------------
def uniform_from_normal(z: Tensor) -> Tensor:
    """u = Φ(z) = ½(1 + erf(z/√2)) ∈ [0, 1]: a standard normal mapped to U(0, 1) (probability integral
    transform), elementwise. Φ(0) = ½; in float32 Φ(z) rounds to exactly 1 for z ≳ 5.4 and stays > 0 down to
    z ≈ −13, so callers clamp what must stay inside an open interval."""
    return torch.special.ndtr(z)


def noise_blocks(batch: TransitionBatch, count: int, purpose: str) -> list[Tensor]:
    """The first ``count`` [N, A] blocks of ``batch.noise`` (block k = columns k·A … (k+1)·A − 1).

    Raises ValueError (one line: the loss, the shape it needs, the shape it got) when batch.noise is None or
    has fewer than count·A columns; extra columns are ignored.
    """
    N, A = batch.actions.shape
    noise = batch.noise
    if noise is None or noise.dim() != 2 or noise.shape[0] != N or noise.shape[1] < count * A:
        got = None if noise is None else tuple(noise.shape)
        raise ValueError(f"noise: {purpose} needs batch.noise of shape ({N}, {count * A}) ({count} blocks of "
                         f"N(0, 1) draws per action dimension), got {got}")
    return [noise[:, k * A:(k + 1) * A] for k in range(count)]


def scalar_draw(block: Tensor) -> Tensor:
    """u ∈ [0, 1] per transition from a noise block [N, A]: Φ of its first column → [N]."""
    return uniform_from_normal(block[:, 0])


def sampler_noise(z: Tensor, injections: int) -> tuple[Tensor, Optional[list[Tensor]]]:
    """Split a sampler's noise: z [N, A] → (z, None) (no injected noise: a deterministic chain from z);
    z [N, 1 + injections, A] → (z[:, 0], [z[:, 1], …]) (the initial draw, then one block per injection).
    ValueError naming both allowed shapes otherwise."""
    if z.dim() == 2:
        return z, None
    if z.dim() == 3 and z.shape[1] == 1 + injections:
        return z[:, 0], [z[:, k + 1] for k in range(injections)]
    raise ValueError(f"z: expected shape [N, A] (deterministic chain) or [N, {1 + injections}, A] (initial draw "
                     f"+ {injections} injected), got {tuple(z.shape)}")


def per_sample_sq(pred: Tensor, target: Tensor) -> Tensor:
    """(1/A)·‖pred − target‖² per row: [N, A], [N, A] → [N]."""
    return (pred - target).pow(2).mean(-1)


def _exp(x: Number) -> Number:
    return torch.exp(x) if isinstance(x, Tensor) else math.exp(x)


def _sqrt(x: Number) -> Number:
    return torch.sqrt(x) if isinstance(x, Tensor) else math.sqrt(x)


# -- DDPM, variance-preserving schedule ---------------------------------------------------------------------
def vp_alpha_bar(m: Number, steps: int, beta_min: float, beta_max: float) -> Number:
    """ᾱ_m = Π_{k ≤ m} α_k of the discrete VP schedule α_k = exp(−β_min/T − ½(β_max − β_min)(2k − 1)/T²)
    (Xiao et al. 2022's VP form, Diffusion-QL's "vp" schedule with β_min = 0.1, β_max = 10, T = 5), in closed
    form since Σ_{k ≤ m}(2k − 1) = m²: ᾱ_m = exp(−m·β_min/T − ½(β_max − β_min)·m²/T²). m ∈ {0, …, T} (a
    python number or a tensor of them); ᾱ_0 = 1."""
    return _exp(-m * beta_min / steps - 0.5 * (beta_max - beta_min) * m * m / (steps * steps))


def ddpm_index(u: Tensor, steps: int) -> Tensor:
    """Step index i = min(⌊u·T⌋, T − 1) ∈ {0, …, T − 1} (float, same dtype) from u ∈ [0, 1]: uniform over
    the T steps (DDPM, Ho et al. 2020, Alg. 1: t ~ Uniform({1, …, T}), here 0-based)."""
    return torch.clamp(torch.floor(u * steps), max=steps - 1)


def ddpm_noising(a: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_i = √ᾱ_i·a + √(1 − ᾱ_i)·ε (DDPM eq. 4, q(x_i | x_0)): a, eps [N, A], alpha_bar [N] → [N, A]."""
    ab = alpha_bar[:, None]
    return torch.sqrt(ab) * a + torch.sqrt(1.0 - ab) * eps


def ddpm_sample(gen: GeneratorFn, obs: Tensor, z: Tensor, steps: int, beta_min: float, beta_max: float,
                injected: Optional[Sequence[Tensor]] = None) -> Tensor:
    """DDPM reverse chain (Ho et al. 2020, Alg. 2, with Diffusion-QL's clipped x̂₀): x_T = z, then for
    i = T − 1 … 0, with ε̂ = gen(s, x_i, i, 0):

        x̂₀ = clip((x_i − √(1 − ᾱ_i)·ε̂)/√ᾱ_i, −1, 1)
        x_{i−1} = β_i√ᾱ_{i−1}/(1 − ᾱ_i)·x̂₀ + (1 − ᾱ_{i−1})√α_i/(1 − ᾱ_i)·x_i + σ_i·ξ_i,
        σ_i² = β_i(1 − ᾱ_{i−1})/(1 − ᾱ_i)   (the posterior variance β̃_i, DDPM eq. 7)

    ξ_i = injected[T − 1 − i] for i ≥ 1 (ancestral sampling, T − 1 blocks) or 0 when ``injected`` is None
    (the posterior-mean chain: deterministic given z). The final action is clamped to [−1, 1].
    obs [N, O], z [N, A] → [N, A]; differentiable in the generator's parameters.
    """
    x = z
    n = z.shape[0]
    zeros = torch.zeros(n, dtype=z.dtype, device=z.device)
    for i in range(steps - 1, -1, -1):
        ab, ab_prev = vp_alpha_bar(i + 1, steps, beta_min, beta_max), vp_alpha_bar(i, steps, beta_min, beta_max)
        alpha = ab / ab_prev
        beta = 1.0 - alpha
        eps = gen(obs, x, zeros + i, zeros)
        x0 = ((x - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)).clamp(-1.0, 1.0)
        x = (beta * math.sqrt(ab_prev) / (1.0 - ab)) * x0 + ((1.0 - ab_prev) * math.sqrt(alpha) / (1.0 - ab)) * x
        if injected is not None and i > 0:
            x = x + math.sqrt(beta * (1.0 - ab_prev) / (1.0 - ab)) * injected[steps - 1 - i]
    return x.clamp(-1.0, 1.0)


# -- flow matching (linear path) ----------------------------------------------------------------------------
def flow_path(a: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 − t)·z + t·a (the linear / rectified-flow path from noise at t = 0 to data at t = 1; FQL,
    Lipman et al. 2023): a, z [N, A], t [N] → [N, A]. Its velocity dx_t/dt = a − z is the regression target."""
    return (1.0 - t[:, None]) * z + t[:, None] * a


def flow_euler_sample(gen: GeneratorFn, obs: Tensor, z: Tensor, steps: int) -> Tensor:
    """Euler integration of dx/dt = v(s, x, t) from x_0 = z over t_k = k/K, k = 0 … K − 1 (FQL's sampler,
    K = 10), clamped to [−1, 1] at the end. obs [N, O], z [N, A] → [N, A]; deterministic given z."""
    x = z
    zeros = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    for k in range(steps):
        x = x + gen(obs, x, zeros + k / steps, zeros) / steps
    return x.clamp(-1.0, 1.0)


# -- variance-exploding (EDM) noise levels ------------------------------------------------------------------
def karras_time(r: Number, t_min: float, t_max: float, rho: float) -> Number:
    """t(r) = (t_min^{1/ρ} + r·(t_max^{1/ρ} − t_min^{1/ρ}))^ρ, r ∈ [0, 1] → [t_min, t_max] increasing (Karras
    et al. 2022, EDM, eq. 5; Consistency Models' discretisation with r = (i − 1)/(N − 1)). t_min = 0 gives
    t_max·r^ρ."""
    lo, hi = t_min ** (1.0 / rho), t_max ** (1.0 / rho)
    return (lo + r * (hi - lo)) ** rho


def ve_noising(a: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """x_t = a + t·z (variance exploding; the GTP paper's noising, EDM): a, z [N, A], t [N] → [N, A]."""
    return a + t[:, None] * z


def score_approx_point(x_t: Tensor, a: Tensor, t: Tensor, u: Tensor) -> Tensor:
    """GTP's stable score approximation (GTP paper, training): one Euler step from t to u of the data-anchored field
    f̃(x, t) = (x − a)/t, x_u = x_t + (u − t)·(x_t − a)/t. With x_t = a + t·z it equals a + u·z exactly (the
    field is exact along the straight VE path, so any solver order gives the same point): the teacher's input
    ã_u without an ODE solve. x_t, a [N, A], t, u [N] (t > 0) → [N, A]."""
    return x_t + ((u - t) / t)[:, None] * (x_t - a)


def ve_time_feature(t: Tensor, t_min: float) -> Tensor:
    """The network's time input for a VE noise level: log(1 + t/t_min) ≥ 0, t ≥ 0 [N] → [N] (a log scale
    like EDM's c_noise = ¼·ln σ, shifted so that τ = 0, the end of every sampling chain, is finite: 0)."""
    return torch.log1p(t / t_min)


def edm_scalings(t: Tensor, sigma_data: float, t_min: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) at noise level t [N] → three [N] tensors:
    c_skip = σ_d²/((t − t_min)² + σ_d²), c_out = σ_d·(t − t_min)/√(σ_d² + t²), c_in = 1/√(σ_d² + t²).
    t_min = 0: EDM's preconditioning (Karras et al. 2022, Table 1); t_min = ε: Consistency Models' boundary
    form (Song et al. 2023, §3 and App. C), with c_skip(ε) = 1 and c_out(ε) = 0, so f(x, ε) = x."""
    sd2 = sigma_data * sigma_data
    c_skip = sd2 / ((t - t_min).pow(2) + sd2)
    c_out = sigma_data * (t - t_min) / torch.sqrt(sd2 + t.pow(2))
    c_in = 1.0 / torch.sqrt(sd2 + t.pow(2))
    return c_skip, c_out, c_in


def edm_weight(t: Tensor, sigma_data: float) -> Tensor:
    """λ(t) = (t² + σ_d²)/(t·σ_d)², EDM's loss weighting (Karras et al. 2022, Table 1): t [N] > 0 → [N]. With
    EDM's scalings λ·c_out² = 1, so every noise level trains the network at unit weight."""
    return (t.pow(2) + sigma_data ** 2) / (t * sigma_data).pow(2)


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """ValueError (one line: the field, the valid choices, the value) unless ``value`` is in ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def check_preconditioning(value: str) -> None:
    """ValueError (one line) unless ``value`` is one of :data:`PRECONDITIONINGS`."""
    check_choice("preconditioning", value, PRECONDITIONINGS)


# -- GTP: the CTM-style flow map ----------------------------------------------------------------------------
def gtp_phi(gen: GeneratorFn, obs: Tensor, x: Tensor, t: Tensor, tau: Tensor, *, t_min: float,
            sigma_data: float, preconditioning: str) -> Tensor:
    """φ_θ(s, x_t, t, τ) [N, A], GTP's network output of the flow map (GTP paper, the flow map; CTM's parameterisation):

    * ``"none"``: φ = gen(s, x_t, c(t), c(τ));
    * ``"edm"``:  φ = c_skip(t)·x_t + c_out(t)·gen(s, c_in(t)·x_t, c(t), c(τ)) (EDM's scalings,
      :func:`edm_scalings` with t_min = 0, as CTM's g_θ; they keep the network's input and output O(1) at
      every t), with c = :func:`ve_time_feature`.

    At τ = t, φ_θ is the instantaneous map φ^inst(x_t, t) = lim_{τ→t} φ = x_t − t·f(x_t, t), the denoiser
    E[a | x_t] (GTP paper): the network evaluated with τ = t.
    """
    ct, ctau = ve_time_feature(t, t_min), ve_time_feature(tau, t_min)
    if preconditioning == "none":
        return gen(obs, x, ct, ctau)
    c_skip, c_out, c_in = edm_scalings(t, sigma_data)
    return c_skip[:, None] * x + c_out[:, None] * gen(obs, c_in[:, None] * x, ct, ctau)


def flow_map(phi: Tensor, x_t: Tensor, t: Tensor, tau: Tensor) -> Tensor:
    """Φ(x_t, t, τ) = (1 − τ/t)·φ + (τ/t)·x_t (GTP paper, CTM's parameterisation): phi, x_t [N, A], t, tau [N]
    (t > 0, 0 ≤ τ ≤ t) → [N, A]. Φ = x_t exactly at τ = t (the boundary condition) and Φ = φ at τ = 0."""
    ratio = (tau / t)[:, None]
    return (1.0 - ratio) * phi + ratio * x_t


def gtp_flow_map(gen: GeneratorFn, obs: Tensor, x: Tensor, t: Tensor, tau: Tensor, *, t_min: float,
                 sigma_data: float, preconditioning: str) -> Tensor:
    """Φ_θ(s, x_t, t, τ) = :func:`flow_map` of :func:`gtp_phi`: [N, A]."""
    phi = gtp_phi(gen, obs, x, t, tau, t_min=t_min, sigma_data=sigma_data, preconditioning=preconditioning)
    return flow_map(phi, x, t, tau)


def gtp_time_grid(t_max: float, rho: float, steps: int, t_min: float) -> list[float]:
    """The deterministic sampling grid T = t_0 > t_1 > … > t_K = 0: t_k = max(T·(1 − k/K)^ρ, t_min) for
    k < K (the Karras spacing of :func:`karras_time` with t_min = 0, floored at the smallest training level),
    t_K = 0. K = 5: GTP's main results; K = 2 its fast variant (GTP paper, experiments)."""
    return [max(t_max * (1.0 - k / steps) ** rho, t_min) for k in range(steps)] + [0.0]


def gtp_sample(gen: GeneratorFn, obs: Tensor, z: Tensor, *, t_max: float, t_min: float, rho: float,
               steps: int, sigma_data: float, preconditioning: str) -> Tensor:
    """GTP's K-step chain (GTP paper, sampling): a_{t_0} = T·z, a_{t_{k+1}} = Φ_θ(s, a_{t_k}, t_k, t_{k+1}) on
    :func:`gtp_time_grid`, clamped to [−1, 1]. obs [N, O], z [N, A] → [N, A]; deterministic given z
    (z = 0: the evaluation action)."""
    grid = gtp_time_grid(t_max, rho, steps, t_min)
    x = t_max * z
    ones = torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
    for t, tau in zip(grid[:-1], grid[1:]):
        x = gtp_flow_map(gen, obs, x, ones * t, ones * tau, t_min=t_min, sigma_data=sigma_data,
                         preconditioning=preconditioning)
    return x.clamp(-1.0, 1.0)


# -- consistency models --------------------------------------------------------------------------------------
def consistency_fn(gen: GeneratorFn, obs: Tensor, x: Tensor, t: Tensor, *, t_min: float,
                   sigma_data: float) -> Tensor:
    """f_θ(s, x_t, t) = c_skip(t)·x_t + c_out(t)·gen(s, c_in(t)·x_t, c(t), 0) with the boundary-form scalings
    (:func:`edm_scalings` with t_min = ε: f(x, ε) = x; Consistency Models §3, Consistency-AC), c =
    :func:`ve_time_feature`. x [N, A], t [N] → [N, A]."""
    c_skip, c_out, c_in = edm_scalings(t, sigma_data, t_min)
    feat = ve_time_feature(t, t_min)
    return c_skip[:, None] * x + c_out[:, None] * gen(obs, c_in[:, None] * x, feat, torch.zeros_like(feat))


def consistency_grid(t_min: float, t_max: float, rho: float, steps: int) -> list[float]:
    """Noise levels of K-step consistency sampling: t_k = t(1 − k/K) of :func:`karras_time`, k = 0 … K − 1
    (t_0 = T; K = 2 gives T and the Karras midpoint)."""
    return [karras_time(1.0 - k / steps, t_min, t_max, rho) for k in range(steps)]


def consistency_sample(gen: GeneratorFn, obs: Tensor, z: Tensor, *, t_min: float, t_max: float, rho: float,
                       steps: int, sigma_data: float, injected: Optional[Sequence[Tensor]] = None) -> Tensor:
    """Multistep consistency sampling (Consistency Models, Alg. 1): a = f(s, T·z, T); then for t_k, k ≥ 1, of
    :func:`consistency_grid`: x = a + √(t_k² − ε²)·ξ_k, a = f(s, x, t_k); every a clamped to [−1, 1] (the data
    range, as Diffusion-QL clips x̂₀). ξ_k = injected[k − 1] (K − 1 blocks), or ξ_k = z when ``injected`` is None
    (one draw for the whole chain: deterministic given z, and every x still at its noise level, where a
    re-noise of 0 would feed f a clean action at level t_k). obs [N, O], z [N, A] → [N, A]; differentiable
    in the generator's parameters."""
    grid = consistency_grid(t_min, t_max, rho, steps)
    ones = torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
    a = consistency_fn(gen, obs, t_max * z, ones * t_max, t_min=t_min, sigma_data=sigma_data).clamp(-1.0, 1.0)
    for k, t in enumerate(grid[1:], start=1):
        xi = z if injected is None else injected[k - 1]
        x = a + math.sqrt(max(t * t - t_min * t_min, 0.0)) * xi
        a = consistency_fn(gen, obs, x, ones * t, t_min=t_min, sigma_data=sigma_data).clamp(-1.0, 1.0)
    return a


# -- critic and Q terms shared by the actor-critic variants --------------------------------------------------
def normalised_q_term(q: Tensor) -> Tensor:
    """½·(mean Q₁/mean|Q₂| + mean Q₂/mean|Q₁|), denominators detached: q [2, N] (twin Q at the policy's
    actions) → scalar. Diffusion-QL's actor (L = L_d − α·E[Q], α = η/E|Q|) picks Q₁/|Q₂| or Q₂/|Q₁| by a fair
    coin each step; this is that coin's expectation, with no random draw."""
    q1, q2 = q[0], q[1]
    return 0.5 * (q1.mean() / q2.abs().mean().detach() + q2.mean() / q1.abs().mean().detach())


def q_regularised(generative_loss: Tensor, q: Tensor, eta: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The Diffusion-QL-style actor loss L = L_gen − η·:func:`normalised_q_term` (q [2, N] at the policy's own
    actions, with gradient through them) and its diagnostics q_term, q_pi_mean (Diffusion-QL; Consistency-AC)."""
    q_term = normalised_q_term(q)
    return generative_loss - eta * q_term, {"q_term": q_term.detach(), "q_pi_mean": q.detach().mean()}


def advantage_weights(adv: Tensor, eta: float, eps: float, max_weight: float) -> Tensor:
    """w = min(exp(η·max(0, A)/(std(A) + ε)), max_weight), detached: adv [N] → [N] (the GTP paper's practical
    weight; std over the batch, population form). Negative advantages get weight 1; η = 0 gives w = 1
    exactly."""
    adv = adv.detach()
    sd = adv.std(unbiased=False)
    return torch.exp(eta * adv.clamp(min=0.0) / (sd + eps)).clamp(max=max_weight)
