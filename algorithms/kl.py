"""Per-element KL estimators between the current policy and a fixed one.

With log-ratio x = logp − logp_ref (logp carries the gradient, logp_ref is
frozen):

* k1 = x                      (unbiased for KL(π‖π_ref) under samples of π,
                               high variance, can be negative);
* k3 = exp(−x) + x − 1 ≥ 0    (Schulman's low-variance estimator; GRPO's
                               penalty, DeepSeekMath §4.1;
                               docs/paper-map.md §2).

Both act elementwise (per token or per sequence) on any shape.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .batch import masked_sum


def kl_k1(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """k1 = logp − logp_ref (gradient through logp only)."""
    return logp - logp_ref.detach()


def kl_k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """k3 = exp(ref − logp) − (ref − logp) − 1 (gradient through logp only)."""
    d = logp_ref.detach() - logp
    return torch.exp(d) - d - 1.0


def seq_log_ratio(logp: Tensor, logp_ref: Tensor, mask: Tensor) -> Tensor:
    """ℓ = Σ_t mask·(logp − logp_ref) over the last dim: the sequence log-ratio
    log π(y|x) − log π_ref(y|x) used by DRO-V and KTO. Padding (mask 0) is not
    read (:func:`batch.masked_sum`): a −inf there gives neither NaN nor a gradient."""
    return masked_sum(kl_k1(logp, logp_ref), mask)
