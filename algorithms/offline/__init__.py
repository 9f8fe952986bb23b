"""Offline-RL losses on D4RL transitions (:class:`algorithms.batch.TransitionBatch`).

Each algorithm is a tuple of phases (:class:`algorithms.registry.Phase`), one loss per network:
``loss(batch, nets, params) -> (scalar, diagnostics)``, where ``nets`` (:class:`OfflineNets`) holds
the callables the loss reads. Losses are pure and ``torch.func.vmap``-safe (the offline loop maps
them over seeds); randomness arrives as ``batch.noise``.

* BC (:mod:`.bc`): a deterministic actor regressed on the dataset actions.
* TD3+BC (:mod:`.td3_bc`, Fujimoto & Gu 2021): critic phase, then a delayed actor phase.
* IQL (:mod:`.iql`, Kostrikov et al. 2022): value, actor, critic phases.
* Shared twin-critic pieces (:mod:`.critic`): TD target, clipped double Q, twin regression, expectile loss.
"""
from __future__ import annotations

from .bc import BCParams, action_mse, bc_loss
from .critic import check_ranges, clipped_double_q, expectile_loss, require_net, td_target, twin_q_loss
from .iql import IQLParams, awr_weights, iql_actor_loss, iql_critic_loss, iql_value_loss
from .nets import OfflineNets
from .td3_bc import TD3BCParams, smoothed_target_action, td3_bc_actor_loss, td3_bc_critic_loss

__all__ = [
    "BCParams",
    "IQLParams",
    "OfflineNets",
    "TD3BCParams",
    "action_mse",
    "awr_weights",
    "bc_loss",
    "check_ranges",
    "clipped_double_q",
    "expectile_loss",
    "iql_actor_loss",
    "iql_critic_loss",
    "iql_value_loss",
    "require_net",
    "smoothed_target_action",
    "td3_bc_actor_loss",
    "td3_bc_critic_loss",
    "td_target",
    "twin_q_loss",
]
