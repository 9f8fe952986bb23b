"""Delightful Policy Gradient (DG).

Osband, "Delightful Policy Gradient", arXiv 2603.14608 (2026): the PG term of
each token is gated by the sigmoid of its "delight" A_t · surprisal_t / η;
docs/paper-map.md §2 and §3 (β_DG = p·σ(−log p) = p/(1+p) on the tabular bandit).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from .aggregate import aggregate, check_aggregation
from .batch import TrajectoryBatch, masked
from .shaping import ZERO_VAR_RTOL, check_baseline, check_zero_var_rtol, trajectory_advantage


@dataclass(frozen=True)
class DGParams:
    """eta: gate temperature η; baseline/baseline_value/zero_var_rtol: as
    PGParams; surprisal_clip: upper clip of −log π(a_t) inside the gate (None =
    off); aggregation: see aggregate.py."""

    eta: float = field(default=1.0, metadata={"gt": 0})
    baseline: str = "batch_mean"
    baseline_value: float = 0.0
    surprisal_clip: Optional[float] = field(default=None, metadata={"ge": 0})
    aggregation: str = "seq_sum"
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_baseline(self.baseline)
        check_aggregation(self.aggregation)
        check_zero_var_rtol(self.zero_var_rtol)
        if not self.eta > 0:
            raise ValueError(f"eta: must be > 0, got {self.eta}")


def delight_gate(adv: Tensor, logp: Tensor, eta: float, surprisal_clip: Optional[float]) -> Tensor:
    """w_t = σ(A_t · sg[−log π_θ(a_t)] / η), surprisal clipped above at surprisal_clip."""
    surprisal = -logp.detach()
    if surprisal_clip is not None:
        surprisal = surprisal.clamp(max=surprisal_clip)
    return torch.sigmoid(adv * surprisal / eta)


def dg_loss(batch: TrajectoryBatch, params: DGParams) -> tuple[Tensor, dict[str, Tensor]]:
    """DG: loss = −agg(sg[w_t A_t] · log π_θ(a_t)), w_t = σ(A_t·sg[−log π_θ(a_t)]/η).

    Shapes: batch.logp, rewards, mask [N, T]; weights [N].
    A_t: the PG advantage (:func:`shaping.advantage`). The surprisal is that of
    the current policy, detached. One gradient epoch per batch in the paper.
    Padding (m = 0) is not read: a −inf log-prob there (infinite surprisal)
    gives a finite loss and a zero gradient.

    Invariants (tests): η → ∞ gives w = ½, i.e. half the PG gradient; on the
    exact tabular bandit with A = r, −∇_z loss = p σ(−log p)(e_y − π).
    """
    adv = trajectory_advantage(batch, params.baseline, params.baseline_value, params.zero_var_rtol)
    mask = batch.mask   # None: no padding (aggregate/masked then skip their masking)
    logp = masked(batch.logp, mask)
    gate = delight_gate(adv, logp, params.eta, params.surprisal_clip)
    loss = aggregate(-(gate * adv).detach() * logp, mask, params.aggregation, weights=batch.weights)
    diags = {
        "gate_mean": aggregate(gate, mask, "token_mean", weights=batch.weights),
        "adv_abs": aggregate(adv.abs(), mask, "token_mean", weights=batch.weights),
    }
    return loss, {k: v.detach() for k, v in diags.items()}
