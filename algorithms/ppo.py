"""PPO with a clipped token-level ratio, as run in the TPO paper's experiments.

Schulman et al., "Proximal Policy Optimization Algorithms", arXiv 1707.06347,
eq. (7) (L^CLIP); the TPO paper's variant (Kaddour 2026, §4): one rollout per
prompt, A_t = r_t − mean_B r_t, no critic, no GAE; docs/paper-map.md §1–2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from .aggregate import aggregate, check_aggregation
from .batch import TrajectoryBatch, masked
from .kl import kl_k3
from .shaping import ZERO_VAR_RTOL, check_baseline, check_zero_var_rtol, trajectory_advantage, value_loss


@dataclass(frozen=True)
class PPOParams:
    """clip_eps: ε of clip(ρ, 1−ε, 1+ε); baseline/baseline_value/zero_var_rtol:
    as PGParams; aggregation: see aggregate.py; value_coef > 0 adds a
    learned-critic regression when batch.values is given; log_ratio_clamp:
    |log ρ_t| bound before exp, as GRPO's (None = unclamped, the TPO paper's
    PPO — then one extreme token can overflow ρ to inf)."""

    clip_eps: float = field(default=0.2, metadata={"ge": 0})
    baseline: str = "batch_mean"
    baseline_value: float = 0.0
    aggregation: str = "seq_sum"
    value_coef: float = field(default=0.0, metadata={"ge": 0})
    log_ratio_clamp: Optional[float] = field(default=20.0, metadata={"gt": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_baseline(self.baseline)
        check_aggregation(self.aggregation)
        check_zero_var_rtol(self.zero_var_rtol)
        if not self.clip_eps >= 0:
            raise ValueError(f"clip_eps: must be >= 0, got {self.clip_eps}")
        if self.log_ratio_clamp is not None and not self.log_ratio_clamp > 0:
            raise ValueError(f"log_ratio_clamp: must be > 0 (or None for no clamp), got {self.log_ratio_clamp}")


def clipped_surrogate(log_ratio: Tensor, adv: Tensor, clip_eps: float) -> tuple[Tensor, Tensor]:
    """(min(ρA, clip(ρ, 1−ε, 1+ε)A), ρ) with ρ = exp(log_ratio); shared by PPO and GRPO.

    The minimum is the clipped term exactly where the clip binds — A > 0 and ρ > 1+ε, or A < 0 and
    ρ < 1−ε — and ρA elsewhere (inside the range the two are equal), so it is computed as that selection,
    with the clipped term constant: the same value and gradient (A·∂ρ where the clip does not bind, 0 where
    it does) as ``torch.minimum`` of the two, with fewer and cheaper operators in the backward pass (tested
    bit for bit against the minimum form)."""
    ratio = torch.exp(log_ratio)
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    binds = ((adv > 0) & (ratio > 1.0 + clip_eps)) | ((adv < 0) & (ratio < 1.0 - clip_eps))
    return torch.where(binds, clipped.detach(), ratio * adv), ratio


def ppo_loss(batch: TrajectoryBatch, params: PPOParams) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip: loss = −agg(min(ρ_t A_t, clip(ρ_t, 1−ε, 1+ε) A_t)).

    Shapes: batch.logp, logp_old, rewards, mask [N, T]; weights, values [N].
    ρ_t = exp(clip(log π_θ(a_t) − log π_old(a_t), ±log_ratio_clamp)) at real
    tokens (token level; padding gets log ρ = 0 and contributes exactly 0, so a
    −inf or extreme log-prob there cannot make inf·0 = NaN);
    A_t: the PG advantage (:func:`shaping.advantage`, default r_t − mean_B r_t).
    Default aggregation "seq_sum" = the paper's −mean_B Σ_t. With value_coef > 0
    and batch.values: + value_coef · ½ · mean_n (r_n − V_n)².

    Invariant (tests): at ratio 1 (logp = logp_old) the gradient equals
    pg_loss's with the same advantage and aggregation.
    """
    adv = trajectory_advantage(batch, params.baseline, params.baseline_value, params.zero_var_rtol)
    mask = batch.mask   # None: no padding (aggregate/masked then skip their masking)
    log_ratio = masked(batch.logp - batch.logp_old.detach(), mask)
    if params.log_ratio_clamp is not None:
        log_ratio = log_ratio.clamp(-params.log_ratio_clamp, params.log_ratio_clamp)
    surr, ratio = clipped_surrogate(log_ratio, adv, params.clip_eps)
    loss = aggregate(-surr, mask, params.aggregation, weights=batch.weights)
    if params.value_coef > 0 and batch.values is not None:
        loss = loss + params.value_coef * value_loss(batch)
    with torch.no_grad():
        clipped = ((ratio - 1.0).abs() > params.clip_eps).to(batch.logp.dtype)
        diags = {
            "clip_frac": aggregate(clipped, mask, "token_mean", weights=batch.weights),
            "approx_kl": aggregate(kl_k3(log_ratio, torch.zeros_like(log_ratio)), mask, "token_mean",
                                   weights=batch.weights),
            "adv_abs": aggregate(adv.abs(), mask, "token_mean", weights=batch.weights),
        }
    return loss, {k: v.detach() for k, v in diags.items()}
