"""REINFORCE / vanilla policy gradient with a choice of baseline.

Williams (1992); as run in the TPO paper (Kaddour 2026, §4 baselines) and the
DG paper (Osband 2026, eq. for the REINFORCE estimator); docs/paper-map.md §1–2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from .aggregate import aggregate, check_aggregation
from .batch import TrajectoryBatch, masked
from .shaping import ZERO_VAR_RTOL, check_baseline, check_zero_var_rtol, trajectory_advantage, value_loss


@dataclass(frozen=True)
class PGParams:
    """baseline: "constant" | "batch_mean" | "expected" | "learned";
    baseline_value: the constant c for "constant" (any real); value_coef:
    weight of the value regression when baseline="learned"; aggregation: see
    aggregate.py; zero_var_rtol: with "batch_mean", a token position whose
    rewards span ≤ zero_var_rtol·max|r| over the batch gets A = 0 exactly
    (shaping.py module doc; None: the plain r − mean_B r, as the reference)."""

    baseline: str = "batch_mean"
    baseline_value: float = 0.0
    value_coef: float = field(default=0.5, metadata={"ge": 0})
    aggregation: str = "seq_sum"
    zero_var_rtol: Optional[float] = field(default=ZERO_VAR_RTOL, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_baseline(self.baseline)
        check_aggregation(self.aggregation)
        check_zero_var_rtol(self.zero_var_rtol)


def pg_loss(batch: TrajectoryBatch, params: PGParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Policy gradient: loss = −agg(sg[A_t] · log π_θ(a_t)).

    Shapes: batch.logp, rewards, mask [N, T]; weights, values [N].
    A_t = r_t − b_t with b from :func:`shaping.advantage` (shared with PPO and
    DG). Default aggregation "seq_sum": −Σ_n w_n Σ_t m A log π / Σ_n w_n, the
    paper's −mean_B Σ_t. Padding (m = 0) is not read: a −inf log-prob there
    gives a finite loss and a zero gradient. With baseline="learned" adds
    value_coef · ½ · mean_n (r_n − V_n)², r_n = batch.seq_scores().

    Invariant (tests): on the exact tabular bandit (weights = π, constant
    baseline, any c) −∇_z loss = p (e_y − π), i.e. β_PG = p; equals PPO and
    GRPO at ratio 1.
    """
    adv = trajectory_advantage(batch, params.baseline, params.baseline_value, params.zero_var_rtol)
    mask = batch.mask   # None: no padding (aggregate/masked then skip their masking)
    loss = aggregate(-adv * masked(batch.logp, mask), mask, params.aggregation, weights=batch.weights)
    if params.baseline == "learned" and params.value_coef != 0:
        loss = loss + params.value_coef * value_loss(batch)
    diags = {
        "adv_abs": aggregate(adv.abs(), mask, "token_mean", weights=batch.weights),
        "adv_mean": aggregate(adv, mask, "token_mean", weights=batch.weights),
    }
    return loss, {k: v.detach() for k, v in diags.items()}
