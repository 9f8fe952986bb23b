"""Pieces shared by the offline losses: the TD target, the twin-critic regression, clipped double Q,
the expectile loss, and the checks every offline params dataclass and loss runs.

Every function here is safe under ``torch.func.vmap`` over a seed axis (no python control flow on tensor
values, no host reads, no in-place ops on inputs, no random draws).

* Clipped double Q: Fujimoto et al. 2018 ("Addressing Function Approximation Error in Actor-Critic
  Methods", TD3), §4.2 eq. (10): the target takes the minimum over the twin target critics.
* Expectile regression: Kostrikov et al. 2022 ("Offline Reinforcement Learning with Implicit
  Q-Learning"), eq. (5): L₂^τ(u) = |τ − 1(u < 0)|·u².
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import Tensor

from ..batch import TransitionBatch
from .nets import OfflineNets


def clipped_double_q(q: Tensor) -> Tensor:
    """min_c Q_c: q [C, N] → [N] (TD3 §4.2, eq. 10; IQL's Q̂ of eqs. 5 and 7)."""
    return q.amin(0)


def td_target(rewards: Tensor, terminals: Tensor, next_value: Tensor, discount: float) -> Tensor:
    """y = r + γ·(1 − terminal)·next_value, detached (no gradient through the target).

    rewards, terminals, next_value [N] → y [N]. ``next_value`` is the bootstrap at s′: the clipped
    double-Q value min_c Q_target,c(s′, a′) (TD3+BC) or V(s′) (IQL eq. 6). A terminal transition
    (terminal = 1) does not bootstrap: y = r exactly, whatever next_value holds (finite).
    """
    not_done = 1.0 - terminals.to(rewards.dtype)
    return (rewards + discount * not_done * next_value).detach()


def twin_q_loss(q: Tensor, target: Tensor) -> Tensor:
    """Σ_c mean_n (Q_c(s_n, a_n) − y_n)²: q [C, N], target [N] → scalar.

    The sum over the C critics is the TD3 / TD3+BC objective (each critic regresses on the shared
    clipped target) and the IQL authors' eq. (6) for both critics; CORL's IQL divides by C instead,
    a constant factor that Adam's update is invariant to (up to its ε). ``target`` is detached here too.
    """
    return (q - target.detach()[None, :]).pow(2).mean(-1).sum(0)


def expectile_loss(u: Tensor, expectile: float) -> Tensor:
    """mean_n |τ − 1(u_n < 0)|·u_n² (IQL eq. 5, L₂^τ): u [N] → scalar, τ = ``expectile`` ∈ (0, 1).

    τ > 0.5 weighs positive residuals u = Q − V more, so V tracks an upper expectile of Q over the
    dataset actions; τ = 0.5 is half the mean squared error.
    """
    weight = (expectile - (u < 0).to(u.dtype)).abs()
    return (weight * u.pow(2)).mean()


_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<"),
}


def check_ranges(params: Any) -> None:
    """Check every field of an offline params dataclass against its ``ge``/``gt``/``le``/``lt`` metadata.

    Raises ValueError with one line naming the field, the allowed range and the value, e.g.
    ``discount: must be >= 0 and <= 1, got 1.5``; an int field given a non-int value names its type.
    """
    for f in dataclasses.fields(params):
        bounds = {k: f.metadata[k] for k in _BOUNDS if k in f.metadata}
        if not bounds:
            continue
        value = getattr(params, f.name)
        if f.type in (int, "int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{f.name}: must be an int, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{f.name}: must be a number, got {value!r}")
        if not all(_BOUNDS[k][0](value, b) for k, b in bounds.items()):
            allowed = " and ".join(f"{_BOUNDS[k][1]} {b}" for k, b in bounds.items())
            raise ValueError(f"{f.name}: must be {allowed}, got {value}")


def require_net(nets: OfflineNets, name: str, purpose: str) -> Callable[..., Tensor]:
    """``nets.<name>``, or ValueError naming the missing network and the loss that needs it."""
    fn = getattr(nets, name)
    if fn is None:
        raise ValueError(f"nets.{name}: {purpose} needs nets.{name}, got None")
    return fn


def critic_td_loss(batch: TransitionBatch, nets: OfflineNets, next_actions: Tensor,
                           discount: float, purpose: str) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped double-Q critic (TD3 §4.2 eq. 10; TD3+BC, Diffusion-QL, Consistency-AC, FQL, GTP): loss =
    Σ_c mean_n (Q_c(s, a) − y)², y = r + γ(1 − terminal)·min_c Q_target,c(s′, a′), a′ = ``next_actions``
    [N, A] (the method's target-policy sample at s′), detached; no gradient through y.
    Diagnostics: q_mean, target_mean."""
    critic = require_net(nets, "critic", purpose)
    critic_target = require_net(nets, "critic_target", purpose)
    next_q = clipped_double_q(critic_target(batch.next_observations, next_actions.detach()))
    y = td_target(batch.rewards, batch.terminals, next_q, discount)
    q = critic(batch.observations, batch.actions)
    return twin_q_loss(q, y), {"q_mean": q.detach().mean(), "target_mean": y.mean()}
