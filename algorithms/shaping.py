"""Score shaping and baselines shared by every loss.

Group methods (TPO, Group PG, GRPO, RLOO) turn the K scores of a group into
per-candidate signals over the *last* dimension K; trajectory methods (PG, PPO,
DG) subtract a baseline from per-token rewards. Nothing here carries a
gradient except what the caller passes in (every output is meant to be used
under stop-gradient and is returned detached where the maths says ``sg``).

Weights: ``weights`` [..., K] are expectation weights of candidates; the mean
and the (population, ddof 0) std of a group are taken under the weights
normalised to sum to 1 within the group. With all-ones weights this is the
plain mean/std; with behaviour probabilities π it is the exact population
statistic used by the tabular updates (EXPERIMENTS.md §2).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .aggregate import safe_den as _safe_den
from .aggregate import weighted_mean
from .batch import TrajectoryBatch, require_field

BASELINES = ("constant", "batch_mean", "expected", "learned")


def group_moments(s: Tensor, weights: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(mean, population std) of ``s`` over the last dim, keepdim, optionally weighted."""
    if weights is None:
        mean = s.mean(-1, keepdim=True)
        var = ((s - mean) ** 2).mean(-1, keepdim=True)
    else:
        w = weights.to(s.dtype)
        w = w / _safe_den(w.sum(-1, keepdim=True))
        mean = (w * s).sum(-1, keepdim=True)
        var = (w * (s - mean) ** 2).sum(-1, keepdim=True)
    return mean, var.clamp_min(0.0).sqrt()


def standardise_scores(s: Tensor, eps: float = 1e-6, weights: Optional[Tensor] = None) -> Tensor:
    """TPO rule over the last dim K: c = s − mean(s), sd = std(c) (ddof 0);
    u = c / sd if sd > eps else c (equal scores give u = 0).

    Example: a one-hot over 10 candidates gives (3, −1/3, …, −1/3).
    """
    mean, sd = group_moments(s, weights)
    c = s - mean
    ok = sd > eps
    return torch.where(ok, c / torch.where(ok, sd, torch.ones_like(sd)), c)


def grpo_advantage(s: Tensor, eps: float = 1e-8, weights: Optional[Tensor] = None) -> Tensor:
    """GRPO advantage over the last dim K: A = (s − mean(s)) / (std(s) + eps)."""
    mean, sd = group_moments(s, weights)
    return (s - mean) / (sd + eps)


def leave_one_out_advantage(s: Tensor) -> Tensor:
    """RLOO: A_k = s_k − mean_{j≠k} s_j = (K·s_k − Σ_j s_j) / (K − 1); needs K ≥ 2."""
    K = s.shape[-1]
    if K < 2:
        raise ValueError(f"scores: leave-one-out baseline needs K >= 2 candidates, got K={K}")
    return (K * s - s.sum(-1, keepdim=True)) / (K - 1)


def zero_variance_groups(s: Tensor, eps: float = 1e-6, weights: Optional[Tensor] = None) -> Tensor:
    """bool [..] (last dim reduced): True where the group's score std ≤ eps."""
    return group_moments(s, weights)[1].squeeze(-1) <= eps


def success_fail_means(v: Tensor, s: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Diagnostic: mean of per-candidate ``v`` [G, K] over *successful* candidates
    (score equal to the group's max) and over the others, counting only groups
    with non-zero score variance. Empty sets give 0. Returns detached 0-dim tensors."""
    v, s = v.detach(), s.detach()
    live = (~zero_variance_groups(s, eps)).to(v.dtype)[:, None]
    succ = (s >= s.max(-1, keepdim=True).values).to(v.dtype) * live
    fail = live - succ
    return (v * succ).sum() / _safe_den(succ.sum()), (v * fail).sum() / _safe_den(fail.sum())


def advantage(
    rewards: Tensor,
    mask: Tensor,
    mode: str,
    constant: float = 0.0,
    baseline: Optional[Tensor] = None,
    values: Optional[Tensor] = None,
    weights: Optional[Tensor] = None,
) -> Tensor:
    """Per-token advantage A [N, T] = r_t − b_t for trajectory methods (PG, PPO, DG).

    mode:
      * ``"constant"``:   b_t = constant.
      * ``"batch_mean"``: b_t = Σ_n w_n m_nt r_nt / Σ_n w_n m_nt, the (weighted,
        masked) mean of r_t over the N trajectories at token position t
        (0 where no trajectory has a token t).
      * ``"expected"``:   b_t = ``baseline`` [N, T] (e.g. Σ_k π_k² on MNIST).
      * ``"learned"``:    b_t = sg[values] [N] broadcast over t.
    Returned detached (the losses use sg[A]).
    """
    check_baseline(mode)
    r = rewards.detach()
    if mode == "constant":
        b = torch.full_like(r, float(constant))
    elif mode == "batch_mean":
        m = mask.to(r.dtype)
        if weights is not None:
            m = m * weights.to(r.dtype)[:, None]
        b = ((r * m).sum(0) / _safe_den(m.sum(0)))[None, :]
    elif mode == "expected":
        if baseline is None:
            raise ValueError("baseline: baseline='expected' needs batch.baseline [N, T], got None")
        b = baseline.detach().to(r.dtype)
    else:  # "learned"
        if values is None:
            raise ValueError("values: baseline='learned' needs batch.values [N], got None")
        b = values.detach().to(r.dtype)[:, None]
    return r - b


def check_baseline(mode: str) -> None:
    """Raise ValueError for an unknown baseline mode (used by params __post_init__)."""
    if mode not in BASELINES:
        raise ValueError(f"unknown baseline mode {mode!r}; valid: {', '.join(BASELINES)}")


def trajectory_advantage(batch: TrajectoryBatch, mode: str, constant: float = 0.0) -> Tensor:
    """:func:`advantage` read off a :class:`TrajectoryBatch` (the one advantage of PG, PPO and DG)."""
    return advantage(batch.rewards, batch.token_mask(), mode, constant, batch.baseline, batch.values, batch.weights)


def value_loss(batch: TrajectoryBatch) -> Tensor:
    """½ Σ_n w_n (r_n − V_n)² / Σ_n w_n with r = batch.seq_scores(), V = batch.values (with grad)."""
    values = require_field(batch, "values", "a learned value baseline")
    r = batch.seq_scores().detach().to(values.dtype)
    return 0.5 * weighted_mean((r - values) ** 2, batch.weights)
