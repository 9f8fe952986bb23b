"""Supervised cross-entropy oracle (bandits only).

The "CE" row of the TPO paper's tabular and MNIST bandits (Kaddour 2026, §4.1
and Appendix B: β_CE = 1): it is told the correct action, so it is an upper
reference, not an RL method. docs/paper-map.md §2–4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .aggregate import aggregate, safe_den
from . import ops
from .batch import GroupBatch


@dataclass(frozen=True)
class CEParams:
    """No hyperparameters."""


def ce_loss(batch: GroupBatch, params: CEParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy to the score-normalised target over the full action set.

    Shapes: batch.logp [G, K, T] with the K candidates = all actions (T = 1 for
    bandits); scores [G, K] ≥ 0 (one-hot of the correct action).
        target_gk = s_gk / Σ_k s_gk   (a group with Σ s = 0 contributes 0)
        loss = (1/G) Σ_g −Σ_k target_gk log_softmax_K(ℓ_θ)_gk
    Weights are not used.

    Invariant (tests): on the tabular bandit −∇_z loss = e_y − π (β_CE = 1).
    """
    s = batch.scores.to(batch.logp.dtype).detach()
    target = s / safe_den(s.sum(-1, keepdim=True))
    logp_group = ops.log_softmax(batch.seq_logp(), -1)
    x = -(target * logp_group)
    loss = aggregate(x[..., None], None, "group_sum")
    p_target = (target * logp_group.exp()).sum(-1).mean()
    return loss, {"p_target": p_target.detach()}
