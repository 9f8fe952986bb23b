"""Masked reductions of per-token loss terms to a scalar.

``aggregate(x, mask, mode, weights=None, constant=None)`` with x, mask of shape
[G, K, T] (groups × candidates × tokens) or [N, T] (sequences × tokens) and
optional sequence weights w of shape [G, K] or [N]. Write m for the mask,
S_n = Σ_t x_nt m_nt for the sequence sum and n for a sequence (for [G, K, T]
the G·K sequences; without weights w ≡ 1). Each token carries its sequence's
weight.

* ``"token_mean"``:          Σ_n w_n Σ_t x m / Σ_n w_n Σ_t m.
* ``"seq_mean_token_mean"``: Σ_n w_n v_n / Σ_n w_n with v_n = S_n / Σ_t m_nt
                              (the token mean; v_n := 0 for a sequence with no
                              real token, which still counts in Σ w).
* ``"seq_sum"``:             Σ_n w_n S_n / Σ_n w_n — the paper's −mean_B Σ_t
                              for PG / PPO / DG.
* ``"group_sum"``:           [G, K, T] only: (1/G') Σ_g Σ_k w_gk S_gk, where G'
                              counts the groups with Σ_k w_gk > 0 (all groups
                              when unweighted; a group whose weights are all 0
                              is absent — this is how GRPO's zero-variance
                              masking renormalises by the number of kept
                              groups). The paper's GRPO/TPO "−Σ_K, mean over
                              groups".
* ``"constant"``:            Σ_n w_n S_n / constant (Dr.GRPO style; ``constant``
                              required, e.g. max tokens × groups).

``mask=None`` means every token is real (no padding): the same value and gradient as an all-ones mask,
without the masking operators (the losses pass the batch's own ``mask``, None when it has no padding).

Every denominator that is 0 (nothing to average) is replaced by 1, so an empty
reduction is 0 and still carries a (zero) gradient. Terms at padding (m = 0)
are selected away, not multiplied by 0, so a non-finite term there cannot turn
the value into NaN (the losses also neutralise padding in their inputs, which
keeps the gradient finite too).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_sum", "group_sum", "constant")


def safe_den(den: Tensor) -> Tensor:
    """den where den > 0, else 1 (so an empty sum divides to 0)."""
    return torch.where(den > 0, den, torch.ones_like(den))


def check_aggregation(mode: str) -> None:
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {mode!r}; valid: {', '.join(AGGREGATIONS)}")


def weighted_mean(v: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Σ w v / Σ w over all elements (plain mean without weights; 0 if Σ w = 0)."""
    if weights is None:
        return v.mean()
    w = weights.to(v.dtype)
    return (w * v).sum() / safe_den(w.sum())


def aggregate(
    x: Tensor,
    mask: Optional[Tensor],
    mode: str,
    weights: Optional[Tensor] = None,
    constant: Optional[float] = None,
) -> Tensor:
    """Reduce per-token terms x ([G, K, T] or [N, T]) to a scalar; see module doc.

    ``mask=None``: every token is real — the value and gradient of an all-ones mask, without its masking
    operators. ValueError for an unknown mode or a mask/weights shape that does not match x."""
    check_aggregation(mode)
    if x.dim() not in (2, 3):
        raise ValueError(f"x: expected [N, T] or [G, K, T], got shape {tuple(x.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"mask: expected shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    if weights is not None and tuple(weights.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"weights: expected shape {tuple(x.shape[:-1])}, got {tuple(weights.shape)}")
    w = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device) if weights is None else weights.to(x.dtype)
    if mask is None:
        seq_sum, tokens = x.sum(-1), float(x.shape[-1])   # S_n; Σ_t m_nt = T for every sequence
    else:
        m = mask.to(x.dtype)
        seq_sum = torch.where(m > 0, x * m, torch.zeros_like(x)).sum(-1)  # S_n, shape x.shape[:-1]
        tokens = m.sum(-1)
    if mode == "token_mean":
        return (w * seq_sum).sum() / safe_den((w * tokens).sum())
    if mode == "seq_mean_token_mean":
        v = seq_sum / (safe_den(tokens) if mask is not None else max(tokens, 1.0))
        return (w * v).sum() / safe_den(w.sum())
    if mode == "seq_sum":
        return (w * seq_sum).sum() / safe_den(w.sum())
    if mode == "group_sum":
        if x.dim() != 3:
            raise ValueError(f"x: aggregation 'group_sum' needs [G, K, T], got shape {tuple(x.shape)}")
        groups = (w.sum(-1) > 0).to(x.dtype).sum()
        return (w * seq_sum).sum() / safe_den(groups)
    if constant is None or constant <= 0:
        raise ValueError(f"constant: aggregation 'constant' needs a positive constant, got {constant!r}")
    return (w * seq_sum).sum() / constant
