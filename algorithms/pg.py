"""REINFORCE / vanilla policy gradient with a choice of baseline.

Williams (1992); as run in the TPO paper (Kaddour 2026, §4 baselines) and the
DG paper (Osband 2026, eq. for the REINFORCE estimator); EXPERIMENTS.md §1.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .aggregate import aggregate, check_aggregation
from .batch import TrajectoryBatch
from .shaping import check_baseline, trajectory_advantage, value_loss


@dataclass(frozen=True)
class PGParams:
    """baseline: "constant" | "batch_mean" | "expected" | "learned";
    baseline_value: the constant c for "constant"; value_coef: weight of the
    value regression when baseline="learned"; aggregation: see aggregate.py."""

    baseline: str = "batch_mean"
    baseline_value: float = 0.0
    value_coef: float = 0.5
    aggregation: str = "seq_sum"

    def __post_init__(self) -> None:
        check_baseline(self.baseline)
        check_aggregation(self.aggregation)


def pg_loss(batch: TrajectoryBatch, params: PGParams) -> tuple[Tensor, dict[str, Tensor]]:
    """Policy gradient: loss = −agg(sg[A_t] · log π_θ(a_t)).

    Shapes: batch.logp, rewards, mask [N, T]; weights, values [N].
    A_t = r_t − b_t with b from :func:`shaping.advantage` (shared with PPO and
    DG). Default aggregation "seq_sum": −Σ_n w_n Σ_t m A log π / Σ_n w_n, the
    paper's −mean_B Σ_t. With baseline="learned" adds
    value_coef · ½ · mean_n (r_n − V_n)², r_n = batch.seq_scores().

    Invariant (tests): on the exact tabular bandit (weights = π, constant
    baseline, any c) −∇_z loss = p (e_y − π), i.e. β_PG = p; equals PPO and
    GRPO at ratio 1.
    """
    adv = trajectory_advantage(batch, params.baseline, params.baseline_value)
    mask = batch.token_mask()
    loss = aggregate(-adv * batch.logp, mask, params.aggregation, weights=batch.weights)
    if params.baseline == "learned" and params.value_coef != 0:
        loss = loss + params.value_coef * value_loss(batch)
    diags = {
        "adv_abs": aggregate(adv.abs(), mask, "token_mean", weights=batch.weights),
        "adv_mean": aggregate(adv, mask, "token_mean", weights=batch.weights),
    }
    return loss, {k: v.detach() for k, v in diags.items()}
