"""Single-trajectory offline-regularised methods: DRO-V and KTO.

DRO: Richemond et al., "Offline Regularised Reinforcement Learning for Large
Language Models Alignment", arXiv 2405.19107 (2024), §4 (L(π, V) =
½ E[(r − V(x) − τ log(π(y|x)/π_ref(y|x)))²] and the practical gradients).
KTO: Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic
Optimization", arXiv 2402.01306 (2024), eq. (8). docs/paper-map.md §1–2.

Both read scalar scores normalised over the batch (mean 0, variance 1;
docs/paper-map.md §2): the task family builds them with
:func:`normalise_scores` and the loss params, so the normalisation's
thresholds are in the algorithm config and the run record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import Tensor

from .aggregate import weighted_mean
from .batch import TrajectoryBatch, masked_sum, require_field
from .kl import seq_log_ratio
from .shaping import ZERO_VAR_RTOL, check_zero_var_rtol, standardise_scores


@dataclass(frozen=True)
class DROVParams:
    """tau: KL regularisation τ; value_coef: weight of the value regression;
    reference: which policy the loop put in batch.logp_ref ("snapshot" or
    "initial") — recorded only, the loss reads batch.logp_ref; std_eps,
    zero_var_rtol: the batch normalisation of the scores
    (:func:`normalise_scores`; a batch of equal scores gets exactly 0, None =
    no zero-variance test)."""

    tau: float = field(default=1.0, metadata={"ge": 0})
    value_coef: float = field(default=1.0, metadata={"ge": 0})
    reference: str = "snapshot"
    std_eps: float = field(default=1e-6, metadata={"ge": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        if self.reference not in ("snapshot", "initial"):
            raise ValueError(f"reference: expected 'snapshot' or 'initial', got {self.reference!r}")
        check_zero_var_rtol(self.zero_var_rtol)


@dataclass(frozen=True)
class KTOParams:
    """beta: β of the sigmoid; desirable/undesirable_weight: λ_D, λ_U;
    std_eps, zero_var_rtol: as :class:`DROVParams` (a batch of equal scores
    normalises to exactly 0, so every trajectory counts as undesirable instead
    of being split by the sign of a rounding residue)."""

    beta: float = field(default=0.1, metadata={"gt": 0})
    desirable_weight: float = field(default=1.0, metadata={"ge": 0})
    undesirable_weight: float = field(default=1.0, metadata={"ge": 0})
    std_eps: float = field(default=1e-6, metadata={"ge": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_zero_var_rtol(self.zero_var_rtol)


def normalise_scores(scores: Tensor, params: Union[DROVParams, KTOParams]) -> Tensor:
    """Scores standardised over the batch (last dim N): (r − mean)/std when std > params.std_eps,
    else r − mean; exactly 0 for a batch whose scores span ≤ params.zero_var_rtol·max|r|
    (:func:`shaping.standardise_scores`). scores [..., N] → [..., N]."""
    return standardise_scores(scores, params.std_eps, rtol=params.zero_var_rtol)


def _log_ratio(batch: TrajectoryBatch, who: str) -> Tensor:
    ref = require_field(batch, "logp_ref", who)
    return seq_log_ratio(batch.logp, ref, batch.token_mask())


def dro_v_loss(batch: TrajectoryBatch, params: DROVParams) -> tuple[Tensor, dict[str, Tensor]]:
    """DRO-V: policy and value parts of L(π, V) = ½ E[(r − V(x) − τℓ)²].

    Shapes: batch.logp, logp_ref, mask [N, T]; values [N] (with grad); scores [N]
    (r = batch.seq_scores(), normalised by the family with :func:`normalise_scores`);
    weights [N]. ℓ_n = Σ_t m (log π_θ − log π_ref), log π_θ(y) = Σ_t m log π_θ
    (padding not read: a −inf there gives neither NaN nor a gradient).
        policy = −(r − sg[V])·log π_θ(y) + (τ/2)·ℓ²     (∇ = −(r − V)∇log π + τℓ∇ℓ)
        value  = ½ (r − V − τ·sg[ℓ])²
        loss   = Σ_n w_n (policy + value_coef·value) / Σ_n w_n

    Invariant (tests): stationary points satisfy r − V = τℓ — the value part's
    optimum V = r − τℓ and the policy part's optimum ℓ = (r − V)/τ.
    """
    values = require_field(batch, "values", "DRO-V's value function")
    ell = _log_ratio(batch, "DRO-V")
    r = batch.seq_scores().detach().to(ell.dtype)
    seq_logp = masked_sum(batch.logp, batch.token_mask())
    policy = -(r - values.detach()) * seq_logp + 0.5 * params.tau * ell**2
    value = 0.5 * (r - values - params.tau * ell.detach()) ** 2
    loss = weighted_mean(policy + params.value_coef * value, batch.weights)
    with torch.no_grad():
        diags = {
            "residual_abs": weighted_mean((r - values - params.tau * ell).abs(), batch.weights),
            "log_ratio": weighted_mean(ell, batch.weights),
            "value_mean": weighted_mean(values, batch.weights),
        }
    return loss, {k: v.detach() for k, v in diags.items()}


def kto_loss(batch: TrajectoryBatch, params: KTOParams) -> tuple[Tensor, dict[str, Tensor]]:
    """KTO on single scored trajectories (desirable ⇔ score > 0).

    Shapes: batch.logp, logp_ref, mask [N, T]; scores [N] (normalised: mean 0,
    :func:`normalise_scores`); weights [N]. ℓ_n = Σ_t m (log π_θ − log π_ref)
    (padding not read);
        z0 = max(0, mean_n sg[ℓ_n])                      (batch KL estimate)
        desirable:   λ_D (1 − σ(β(ℓ − z0)))
        undesirable: λ_U (1 − σ(β(z0 − ℓ)))
        loss = weighted mean over trajectories.

    Invariant (tests): the gradient raises ℓ of desirable trajectories and
    lowers ℓ of undesirable ones.
    """
    ell = _log_ratio(batch, "KTO")
    z0 = weighted_mean(ell.detach(), batch.weights).clamp_min(0.0)
    good = batch.seq_scores().to(ell.dtype) > 0
    per = torch.where(
        good,
        params.desirable_weight * (1.0 - torch.sigmoid(params.beta * (ell - z0))),
        params.undesirable_weight * (1.0 - torch.sigmoid(params.beta * (z0 - ell))),
    )
    loss = weighted_mean(per, batch.weights)
    diags = {"z0": z0, "desirable_frac": weighted_mean(good.to(ell.dtype), batch.weights), "log_ratio": weighted_mean(ell, batch.weights)}
    return loss, {k: v.detach() for k, v in diags.items()}
