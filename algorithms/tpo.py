"""Target Policy Optimization (TPO) and its Group PG ablation.

Kaddour, "Target Policy Optimization", arXiv 2604.06159 (2026), §3 (target
construction and the cross-entropy fit) and the Group PG ablation (Fig. 8);
docs/paper-map.md §1–2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from . import diagnostics, ops
from .aggregate import aggregate, weighted_mean
from .batch import GroupBatch, require_field
from .kl import kl_k3
from .shaping import (ZERO_VAR_RTOL, check_zero_var_rtol, standardise_scores, success_fail_means,
                      zero_variance_groups)


@dataclass(frozen=True)
class TPOParams:
    """eta: target temperature η; anchor: q ∝ π_old·exp(u/η) (True) or
    exp(u/η) (TPO-no-anchor); std_eps: divide c by sd only when sd > std_eps
    (the reference implementation's 1e-6); zero_var_rtol: a group whose live
    scores span ≤ zero_var_rtol·max|s| gets u = 0 exactly (shaping.py module
    doc); None reproduces the reference implementation of the TPO paper, which
    has no such test (u = c/sd if sd > 1e-6 else c, so equal fp32 scores keep
    their mean residue, u = c of the order of one ulp; docs/paper-map.md §7);
    kl_beta: β of an optional k3 KL penalty to the fixed reference policy (batch.logp_ref; 0 = none, the TPO
    paper's default; its LLM runs on GSM8K use 1e-3 with LoRA, §3.8 / App. G)."""

    eta: float = field(default=1.0, metadata={"gt": 0})
    anchor: bool = True
    std_eps: float = field(default=1e-6, metadata={"ge": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})
    kl_beta: float = field(default=0.0, metadata={"ge": 0})

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"eta: must be > 0, got {self.eta}")
        check_zero_var_rtol(self.zero_var_rtol)


@dataclass(frozen=True)
class GroupPGParams:
    """eta: scale of the standardised score; std_eps, zero_var_rtol: the
    standardisation of :class:`TPOParams` (None = the reference rule)."""

    eta: float = field(default=1.0, metadata={"gt": 0})
    std_eps: float = field(default=1e-6, metadata={"ge": 0})
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"eta: must be > 0, got {self.eta}")
        check_zero_var_rtol(self.zero_var_rtol)


def candidate_live(batch: GroupBatch) -> Tensor:
    """[G, K] bool: candidates that take part (weight > 0; all when unweighted)."""
    if batch.weights is None:
        return torch.ones(batch.scores.shape, dtype=torch.bool, device=batch.scores.device)
    return batch.weights > 0


def group_log_softmax(logits: Tensor, live: Optional[Tensor]) -> Tensor:
    """log_softmax over K restricted to live candidates (excluded → probability 0; ``live=None``: all live)."""
    if live is None:
        return ops.log_softmax(logits, -1)
    return ops.log_softmax(logits.masked_fill(~live, torch.finfo(logits.dtype).min), -1)


def standardised_scores(batch: GroupBatch, eps: float, rtol: Optional[float] = ZERO_VAR_RTOL) -> Tensor:
    """u [G, K]: TPO standardisation of the scores over the live candidates (equal weight);
    a flat group (tolerance ``rtol``, None = no test) gives u = 0 exactly."""
    return _standardised(batch, eps, rtol, _live_weights(batch))


def _standardised(batch: GroupBatch, eps: float, rtol: Optional[float], live_w: Optional[Tensor]) -> Tensor:
    return standardise_scores(batch.scores.to(batch.logp.dtype), eps, weights=live_w, rtol=rtol)


def _live(batch: GroupBatch) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """(live [G, K] bool, its 0/1 weights in the log-probs' dtype); (None, None) for an unweighted batch,
    where every candidate is live (the losses then skip their masking operators)."""
    if batch.weights is None:
        return None, None
    live = candidate_live(batch)
    return live, live.to(batch.logp.dtype)


def _live_weights(batch: GroupBatch) -> Optional[Tensor]:
    """[G, K] 0/1 weights of the live candidates (None when the batch is unweighted)."""
    return _live(batch)[1]


def tpo_log_target(batch: GroupBatch, params: TPOParams) -> Tensor:
    """log q [G, K] (constant): log_softmax_K(ℓ_old + u/η) (anchor) or log_softmax_K(u/η)."""
    return _log_target(batch, params, *_live(batch))


def _log_target(batch: GroupBatch, params: TPOParams, live: Optional[Tensor], live_w: Optional[Tensor]) -> Tensor:
    logits = _standardised(batch, params.std_eps, params.zero_var_rtol, live_w) / params.eta
    if params.anchor:
        logits = logits + batch.seq_logp_old()
    return group_log_softmax(logits.detach(), live)


def tpo_loss(batch: GroupBatch, params: TPOParams) -> tuple[Tensor, dict[str, Tensor]]:
    """TPO: fit the policy's group distribution to a fixed target by cross-entropy.

    Shapes: batch.logp/logp_old/mask [G, K, T], scores [G, K]; ℓ_θ = seq_logp [G, K].
        u = standardise_K(scores)                 (c/std(c), or c when std ≤ std_eps;
                                                   0 for a flat group, see TPOParams)
        q = softmax_K(ℓ_old + u/η)   (anchor)  |  softmax_K(u/η)   (no anchor)    sg
        p_θ = softmax_K(ℓ_θ)
        loss = (1/G) Σ_g −Σ_k q_gk log p_θ,gk
    Candidates with weight 0 are excluded from both softmaxes and from the
    standardisation (and a group with none left from the mean); otherwise the
    weights are not used — q already is the whole target distribution.
    Token-level TPO (TPO_token) is this same function on token-candidate groups:
    G = B·H prefix states, K next-token candidates, T = 1.

    The value is the cross-entropy above; its gradient is built as exactly
    sg[p_θ − q]/G per group logit (autograd of the cross-entropy gives
    (p_θ·Σ_k q_k − q)/G, off by an ulp when Σ_k q_k rounds away from 1).

    Invariant (tests): ∂loss/∂ℓ_θ,gk = (p_θ,gk − q_gk)/G; at the snapshot
    (ℓ_θ = ℓ_old) equal scores give q = p and a gradient of exactly zero.
    """
    live, live_w = _live(batch)   # None: every candidate is live (no weights)
    log_q = _log_target(batch, params, live, live_w)
    q = log_q.exp()
    ell = batch.seq_logp()
    logp_group = group_log_softmax(ell, live)
    p = logp_group.detach().exp()
    step = ell - ell.detach()   # value 0, ∂/∂ℓ = 1 on live candidates
    if live is not None:
        step = torch.where(live, step, torch.zeros_like(ell))
    x = -(q * logp_group.detach()) + (p - q) * step
    loss = aggregate(x[..., None], None, "group_sum", weights=live_w)
    kl = None
    if params.kl_beta > 0:   # + β·KL(π‖π_ref), k3 per token, token mean over live candidates (as GRPO's penalty)
        require_field(batch, "logp_ref", "TPO with kl_beta > 0")
        mask = batch.mask
        kl = aggregate(kl_k3(batch.logp, batch.logp_ref), mask, "token_mean", weights=live_w)
        loss = loss + params.kl_beta * kl
    if not diagnostics.enabled():
        return loss, {}
    with torch.no_grad():
        rtol = params.zero_var_rtol
        q_s, q_f = success_fail_means(q, batch.scores, params.std_eps, rtol)
        diags = {
            "target_entropy": (-(q * log_q).sum(-1)).mean(),
            "kl_q_p": (q * (log_q - logp_group)).sum(-1).mean(),
            "q_success": q_s,
            "q_fail": q_f,
            "zero_var_frac": weighted_mean(
                zero_variance_groups(batch.scores, params.std_eps, live_w, rtol).to(x.dtype)),
        }
        if kl is not None:
            diags["kl_penalty"] = kl
    return loss, {k: v.detach() for k, v in diags.items()}


def group_pg_loss(batch: GroupBatch, params: GroupPGParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Group PG (the TPO paper's ablation): the TPO signal u used as a PG advantage.

    Shapes: as :func:`tpo_loss`. With u the TPO standardised scores [G, K]:
        loss = (1/G) Σ_g −Σ_k w_gk sg[u_gk/η] ℓ_θ,gk
    (w ≡ 1 for sampled data; expectation weights for exact updates; weight-0
    candidates are excluded from the standardisation as in TPO).

    Invariant (tests): ∇_θ loss = −(1/G) Σ_g Σ_k w u/η ∇ℓ_θ.
    """
    live_w = _live_weights(batch)
    u = _standardised(batch, params.std_eps, params.zero_var_rtol, live_w).detach()
    x = -(u / params.eta) * batch.seq_logp()
    loss = aggregate(x[..., None], None, "group_sum", weights=batch.candidate_weights())
    zero_var = zero_variance_groups(batch.scores, params.std_eps, live_w, params.zero_var_rtol)
    diags = {"adv_abs": u.abs().mean(), "zero_var_frac": zero_var.to(u.dtype).mean()}
    return loss, {k: v.detach() for k, v in diags.items()}
