"""Tabular bandits (TPO paper §2, Figs. 2–3; docs/paper-map.md §3).

Pure task functions over batched logit tables: every tensor carries a leading
seed dimension S so that all seeds of an experiment run in one process.

* Single-context sampled bandit: logits z ∈ R^A (A = 100) start at 0, the
  correct arm is ``correct``; each step samples B arms from softmax(z); the
  reward is 1 for the correct arm, and methods see the centred reward
  R − b with b = ``reward_baseline`` (0.5 in the paper).
* Multi-context exact bandit: N contexts × A actions, logits ~ N(0, σ²),
  correct action ``correct`` in every context; updates are exact
  expectations (every action enumerated, weighted by π).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


TPO_ARM_SCORES = ("batch_average", "arm_mean")  # TabularSingleConfig.tpo_arm_score


@dataclass(frozen=True)
class TabularSingleConfig:
    """Single-context sampled bandit (Fig. 2)."""

    name: str = "tabular_single"
    n_arms: int = field(default=100, metadata={"ge": 2})       # §2: z ∈ R^100
    batch_size: int = field(default=100, metadata={"ge": 1})   # §2: B = 100 sampled arms per step
    correct: int = field(default=0, metadata={"ge": 0})        # §2: correct arm 0 (< n_arms)
    reward_baseline: float = 0.5  # §2: advantage R − 0.5 for every method
    # TPO's arm scores s_a: "batch_average" = Σ_{b: a_b = a}(R_b − b)/B, the batch average of the
    # per-sample score vectors (R_b − b)·e_{a_b}, as the TPO reference implementation builds them
    # (default); "arm_mean" = the mean of R − b over arm a's own samples. Unsampled arms score 0.
    tpo_arm_score: str = field(default="batch_average", metadata={"choices": TPO_ARM_SCORES})
    # Misalignment cosine g·g*/(√(‖g‖² + ε)·√(‖g*‖² + ε)): ε = 0 is the exact cosine (default);
    # ε = 1e-12 is the reference implementation's form, which inflates 1 − cos once ‖g‖ ≲ 1e-5.
    cosine_eps: float = field(default=0.0, metadata={"ge": 0.0})

    def __post_init__(self) -> None:
        check_choice("tpo_arm_score", self.tpo_arm_score, TPO_ARM_SCORES)
        check_cosine_eps(self.cosine_eps)


@dataclass(frozen=True)
class TabularMultiConfig:
    """Multi-context exact-update bandit (Fig. 3)."""

    name: str = "tabular_multi"
    n_contexts: int = field(default=100, metadata={"ge": 1})   # §2: N = 100
    n_actions: int = field(default=10, metadata={"ge": 2})     # §2: 10 actions
    logit_std: float = field(default=1.0, metadata={"ge": 0})  # §2: logits ~ N(0, 1)
    correct: int = field(default=0, metadata={"ge": 0})        # §2: correct action 0 (< n_actions)
    cosine_eps: float = field(default=0.0, metadata={"ge": 0.0})  # as TabularSingleConfig.cosine_eps

    def __post_init__(self) -> None:
        check_cosine_eps(self.cosine_eps)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ValueError naming ``env.<name>``, the value and the valid choices unless value is one of them."""
    if value not in choices:
        raise ValueError(f"env.{name}={value!r}; valid: {', '.join(choices)}")


def check_cosine_eps(eps: float) -> None:
    """ValueError unless ε ≥ 0 (0: exact cosine; 1e-12: the reference implementation's form)."""
    if not eps >= 0:
        raise ValueError(f"env.cosine_eps={eps}; must be >= 0 (0: exact cosine, 1e-12: reference form)")


def init_single(cfg: TabularSingleConfig, seeds: int, device: str | torch.device = "cpu") -> Tensor:
    """Initial logits [S, A]: all zeros (uniform policy)."""
    return torch.zeros(seeds, cfg.n_arms, device=device)


def init_multi(cfg: TabularMultiConfig, generators: list[torch.Generator], device: str | torch.device = "cpu") -> Tensor:
    """Initial logits [S, N, A] ~ N(0, σ²), seed s drawn from ``generators[s]``."""
    tables = [torch.randn(cfg.n_contexts, cfg.n_actions, generator=g) * cfg.logit_std for g in generators]
    return torch.stack(tables).to(device)


def sample_arms(probs: Tensor, batch_size: int, generators: list[torch.Generator]) -> Tensor:
    """Arms [S, B] drawn i.i.d. from ``probs`` [S, A], seed s from ``generators[s]`` (on ``probs``' device)."""
    draws = [torch.multinomial(p, batch_size, replacement=True, generator=g) for p, g in zip(probs, generators)]
    return torch.stack(draws)


def centred_reward(arms: Tensor, correct: int, baseline: float) -> Tensor:
    """R − b with R = 1{arm = correct}; same shape as ``arms``."""
    return (arms == correct).to(torch.float32) - baseline


def per_arm_mean(arms: Tensor, values: Tensor, n_arms: int) -> Tensor:
    """Mean of ``values`` over the samples of each arm, 0 for unsampled arms.

    arms, values: [S, B] → [S, A]. (TPO's single-context scores, §2.)
    """
    S = arms.shape[0]
    total = torch.zeros(S, n_arms, dtype=values.dtype, device=values.device).scatter_add_(1, arms, values)
    count = torch.zeros(S, n_arms, dtype=values.dtype, device=values.device).scatter_add_(1, arms, torch.ones_like(values))
    return torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros_like(total))


def error(probs: Tensor, correct: int) -> Tensor:
    """1 − π(correct), averaged over every axis but the seed axis: [S, ..., A] → [S]."""
    err = 1.0 - probs[..., correct]
    return err.reshape(err.shape[0], -1).mean(-1)


def pg_direction(probs: Tensor, correct: int) -> Tensor:
    """Exact expected PG ascent direction in logit space, π_y(e_y − π): same shape as ``probs``."""
    onehot = torch.nn.functional.one_hot(torch.tensor(correct), probs.shape[-1]).to(probs)
    return probs[..., correct : correct + 1] * (onehot - probs)


def ce_direction(probs: Tensor, correct: int) -> Tensor:
    """Cross-entropy ascent direction e_y − π (β = 1): same shape as ``probs``."""
    onehot = torch.nn.functional.one_hot(torch.tensor(correct), probs.shape[-1]).to(probs)
    return onehot - probs


def misalignment(g: Tensor, g_ref: Tensor) -> Tensor:
    """1 − cos(g, g_ref) per seed, flattening all non-seed axes: [S, ...] → [S]."""
    a = g.reshape(g.shape[0], -1)
    b = g_ref.reshape(g_ref.shape[0], -1)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-30)
    return 1.0 - cos
