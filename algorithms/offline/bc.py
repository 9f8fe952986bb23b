"""Behaviour cloning (BC): a deterministic actor regressed on the dataset actions.

A D4RL baseline (Fu et al. 2020, the BC rows of its score tables) and the BC term of TD3+BC
(Fujimoto & Gu 2021, §5, eq. 3); CORL (Tarasov et al. 2023) runs it with the same MSE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..batch import TransitionBatch
from .critic import check_ranges, require_net
from .nets import OfflineNets


@dataclass(frozen=True)
class BCParams:
    """BC has no hyperparameter of its own. ``discount``, ``tau`` and ``actor_every`` are unused by the
    loss; every offline params dataclass carries them so the offline loop reads them uniformly
    (``actor_every = 1``: the actor steps every step; no target network, so ``tau`` moves nothing)."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # unused; TD3+BC / IQL / CORL γ
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # unused; TD3+BC / IQL / CORL τ
    actor_every: int = field(default=1, metadata={"ge": 1})              # an actor step every step

    def __post_init__(self) -> None:
        check_ranges(self)


def action_mse(pred: Tensor, actions: Tensor) -> Tensor:
    """mean_{n,a} (π(s_n)_a − a_{n,a})² = (1/A)·mean_n ‖π(s_n) − a_n‖²: pred, actions [N, A] → scalar.

    The mean runs over the action dimensions too, as the TD3+BC authors' code and CORL compute the BC
    term (PyTorch's ``mse_loss``); TD3+BC's α = 2.5 is tuned against this scale (§5, eq. 3 writes
    (π(s) − a)² without fixing the reduction), so TD3+BC and BC share it.
    """
    return (pred - actions.detach()).pow(2).mean()


def bc_loss(batch: TransitionBatch, nets: OfflineNets, params: BCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """BC: loss = mean_{n,a} (π(s_n) − a_n)² (:func:`action_mse`).

    Shapes: batch.observations [N, O], batch.actions [N, A] in [−1, 1]; nets.actor: [N, O] → [N, A].
    Only the actor is read. Raises ValueError when nets.actor is None.
    Invariant (tests): the gradient w.r.t. the actor output is 2(π(s) − a)/(N·A).
    """
    actor = require_net(nets, "actor", "bc_loss")
    loss = action_mse(actor(batch.observations), batch.actions)
    return loss, {"bc_mse": loss.detach()}
