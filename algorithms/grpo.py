"""GRPO (and its variants) and RLOO.

Shao et al., "DeepSeekMath", arXiv 2402.03300 (2024), §4.1 eq. (3) (GRPO
objective with the k3 KL penalty); as configured in the TPO paper (Kaddour
2026, §4 and the reference implementation: sequence-level ratio, KL to the
rollout snapshot); Dr. GRPO (Liu et al., "Understanding R1-Zero-Like
Training", arXiv 2503.20783, 2025): no division by the group std
(``adv_scale="none"``) and no per-response length normalisation (a constant
normaliser, ``aggregation="constant"``); RLOO: Ahmadian et al., arXiv
2402.14740 (2024), eq. (7). docs/paper-map.md §1–2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from . import diagnostics
from .aggregate import aggregate, check_aggregation
from .batch import GroupBatch, masked, require_field
from .kl import kl_k3
from .ppo import clipped_surrogate
from .shaping import (ZERO_VAR_RTOL, check_adv_scale, check_zero_var_rtol, grpo_advantage, leave_one_out_advantage,
                      success_fail_means, zero_variance_groups)


@dataclass(frozen=True)
class GRPOParams:
    """clip_eps: ε; kl_beta: β (0 = "GRPO no-KL"); kl_to: "snapshot" (rollout
    policy, the paper's code) or "reference" (batch.logp_ref); log_ratio_clamp:
    |log ρ| bound before exp; adv_scale: "std" (A = (s − mean)/(std + adv_eps),
    GRPO) or "none" (A = s − mean, Dr. GRPO); adv_eps: std epsilon of the
    advantage; zero_var_rtol: a group whose live scores span ≤
    zero_var_rtol·max|s| is zero-variance: A = 0 exactly (shaping.py module
    doc); None reproduces the reference implementation, A = (s − mean)/(std +
    1e-8) with no zero-variance test (equal fp32 scores such as k/H can then get
    an O(1) advantage of one sign; docs/paper-map.md §7);
    mask_zero_variance: drop zero-variance groups — under zero_var_rtol, or,
    when it is None, groups with score std ≤ zero_var_eps (the reference rule;
    for sampled scores the two agree, but with exact weights π the std rule
    also drops nearly converged contexts, σ = √(p(1 − p)) ≤ 1e-6);
    aggregation/agg_constant: see aggregate.py; ratio_level: "sequence" (one
    ratio per candidate) or "token" (per-token ratios, A broadcast over tokens)."""

    clip_eps: float = field(default=0.2, metadata={"ge": 0})
    kl_beta: float = field(default=0.04, metadata={"ge": 0})
    kl_to: str = "snapshot"
    log_ratio_clamp: float = field(default=20.0, metadata={"gt": 0})
    adv_scale: str = "std"
    adv_eps: float = field(default=1e-8, metadata={"ge": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})
    mask_zero_variance: bool = False
    zero_var_eps: float = field(default=1e-6, metadata={"ge": 0})
    aggregation: str = "group_sum"
    agg_constant: Optional[float] = field(default=None, metadata={"gt": 0})
    ratio_level: str = "sequence"

    def __post_init__(self) -> None:
        check_aggregation(self.aggregation)
        check_adv_scale(self.adv_scale)
        check_zero_var_rtol(self.zero_var_rtol)
        if self.kl_to not in ("snapshot", "reference"):
            raise ValueError(f"kl_to: expected 'snapshot' or 'reference', got {self.kl_to!r}")
        if self.ratio_level not in ("sequence", "token"):
            raise ValueError(f"ratio_level: expected 'sequence' or 'token', got {self.ratio_level!r}")
        if self.aggregation == "constant" and not (self.agg_constant or 0) > 0:
            raise ValueError(f"agg_constant: aggregation 'constant' needs a positive value, got {self.agg_constant!r}")


@dataclass(frozen=True)
class RLOOParams:
    """aggregation: see aggregate.py (applied to the per-token terms);
    zero_var_rtol: a group whose scores span ≤ zero_var_rtol·max|s| gets A = 0
    exactly (None: the plain leave-one-out formula, which leaves an ulp-sized
    residue on equal fp32 scores)."""

    aggregation: str = "group_sum"
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_aggregation(self.aggregation)
        check_zero_var_rtol(self.zero_var_rtol)


def grpo_loss(batch: GroupBatch, params: GRPOParams) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO: loss = −agg(min(ρA, clip(ρ, 1±ε)A) − β·KL_k3).

    Shapes: batch.logp, logp_old, mask (, logp_ref) [G, K, T]; scores, weights [G, K].
    A = (s − mean_K s)/(std_K s + adv_eps) (adv_scale "std") or s − mean_K s
    ("none", Dr. GRPO), weighted by batch.weights if given; a zero-variance
    group (GRPOParams.zero_var_rtol) has A = 0 exactly, hence a zero surrogate
    gradient.
    ratio_level "sequence": log ρ = clip(ℓ_θ − ℓ_old, ±log_ratio_clamp) per
    candidate, terms of shape [G, K, 1]; "token": the same per token [G, K, T].
    KL = exp(−x) + x − 1 on x = log ρ (kl_to="snapshot") or on the (equally
    clamped) log-ratio to logp_ref (kl_to="reference").
    Default "group_sum": loss = −(1/G') Σ_g Σ_k w_k (surr − β·KL) (Σ_t for tokens).
    mask_zero_variance: zero-variance groups get weight 0, so G' = the number
    of kept groups (none kept → loss 0, with a zero gradient). Token-level
    log-ratios are read only at real tokens (padding gets log ρ = 0), so a
    −inf or extreme log-prob there cannot make inf·0 = NaN.
    GRPO_token is this function on token-candidate groups (G = B·H, T = 1).

    Invariants (tests): at ratio 1 with β = 0 the gradient is the PG gradient
    with advantage A; at ratio 1 the KL gradient is zero; tabular exact update
    (weights = π) gives β_GRPO = √(p/(1−p)); Dr. GRPO on scores (1, 0) and
    (0.2, 0) at ratio 1 gives per-candidate gradients ∝ (0.5, −0.5), (0.1, −0.1).
    """
    scores = batch.scores.to(batch.logp.dtype)
    rtol = params.zero_var_rtol
    adv = grpo_advantage(scores, params.adv_eps, weights=batch.weights, rtol=rtol, scale=params.adv_scale).detach()
    zero_var = None   # [G] bool, computed only where it is used (masking, diagnostics)
    w = batch.candidate_weights()
    if params.mask_zero_variance:
        zero_var = zero_variance_groups(scores, params.zero_var_eps, weights=batch.weights, rtol=rtol)
        w = w * (~zero_var).to(w.dtype)[:, None]
    if params.ratio_level == "sequence":
        new, old, mask = batch.seq_logp()[..., None], batch.seq_logp_old()[..., None], None
    else:
        new, old, mask = batch.logp, batch.logp_old, batch.mask   # mask None: no padding
    c = params.log_ratio_clamp
    log_ratio = masked(new - old.detach(), mask).clamp(-c, c)
    surr, ratio = clipped_surrogate(log_ratio, adv[..., None], params.clip_eps)
    if params.kl_to == "snapshot":
        kl_x = log_ratio
    else:
        require_field(batch, "logp_ref", "GRPO with kl_to='reference'")
        ref = batch.seq_logp_ref()[..., None] if params.ratio_level == "sequence" else batch.logp_ref
        kl_x = masked(new - ref.detach(), mask).clamp(-c, c)
    kl = kl_k3(kl_x, torch.zeros_like(kl_x))
    x = -(surr - params.kl_beta * kl)
    loss = aggregate(x, mask, params.aggregation, weights=w, constant=params.agg_constant)
    if not diagnostics.enabled():
        return loss, {}
    with torch.no_grad():
        if zero_var is None:
            zero_var = zero_variance_groups(scores, params.zero_var_eps, weights=batch.weights, rtol=rtol)
        a_s, a_f = success_fail_means(adv, scores, params.zero_var_eps, rtol)
        diags = {
            "clip_frac": aggregate(((ratio - 1.0).abs() > params.clip_eps).to(x.dtype), mask, "token_mean", weights=w),
            "kl": aggregate(kl, mask, "token_mean", weights=w),
            "adv_abs": adv.abs().mean(),
            "zero_var_frac": zero_var.to(x.dtype).mean(),
            "a_success": a_s,
            "a_fail": a_f,
        }
    return loss, {k: v.detach() for k, v in diags.items()}


def rloo_loss(batch: GroupBatch, params: RLOOParams) -> tuple[Tensor, dict[str, Tensor]]:
    """RLOO: REINFORCE with the leave-one-out baseline.

    Shapes: batch.logp, mask [G, K, T]; scores, weights [G, K]; needs K ≥ 2.
    A_k = s_k − (1/(K−1)) Σ_{j≠k} s_j (unweighted; a sampled-data estimator;
    A = 0 exactly for a group of equal scores, RLOOParams.zero_var_rtol);
    loss = −agg(sg[A_k] · log π_θ(y_k,t)) over the per-token terms (padding not
    read); with the default "group_sum" this is −(1/G) Σ_g Σ_k w_k A_k ℓ_θ(y_k).

    Invariant (tests): A matches a hand example (s = (1, 0, 0, 1) →
    A = (2/3, −2/3, −2/3, 2/3)); the gradient w.r.t. ℓ_θ is −A/G.
    """
    adv = leave_one_out_advantage(batch.scores.to(batch.logp.dtype), params.zero_var_rtol).detach()
    mask = batch.mask   # None: no padding
    loss = aggregate(-adv[..., None] * masked(batch.logp, mask), mask, params.aggregation, weights=batch.weights)
    return loss, {"adv_abs": adv.abs().mean().detach()}
