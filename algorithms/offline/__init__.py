"""Offline-RL losses on D4RL transitions (:class:`algorithms.batch.TransitionBatch`).

Each algorithm is a tuple of phases (:class:`algorithms.registry.Phase`), one loss per network:
``loss(batch, nets, params) -> (scalar, diagnostics)``, where ``nets`` (:class:`OfflineNets`) holds
the callables the loss reads. Losses are pure and ``torch.func.vmap``-safe (the offline loop maps
them over seeds); randomness arrives as ``batch.noise``.

* BC (:mod:`.bc`): a deterministic actor regressed on the dataset actions.
* TD3+BC (:mod:`.td3_bc`, Fujimoto & Gu 2021): critic phase, then a delayed actor phase.
* IQL (:mod:`.iql`, Kostrikov et al. 2022): value, actor, critic phases.
* Shared twin-critic pieces (:mod:`.critic`): TD target, clipped double Q, twin regression, expectile loss.
* Generative policies (shared pieces in :mod:`.generative`): DDPM BC and Diffusion-QL (:mod:`.diffusion`),
  consistency BC and Consistency-AC (:mod:`.consistency`), flow-matching BC and FQL (:mod:`.flow`), GTP and
  GTP-BC (:mod:`.gtp`), TPO over critic-scored candidates (:mod:`.tpo_offline`). Each also provides a sampler
  ``(nets, obs, z, params) -> actions`` (``AlgorithmSpec.sampler``).
"""
from __future__ import annotations

from .bc import BCParams, action_mse, bc_loss
from .critic import check_ranges, clipped_double_q, critic_td_loss, expectile_loss, require_net, td_target, twin_q_loss
from .iql import IQLParams, awr_weights, iql_actor_loss, iql_critic_loss, iql_value_loss
from .consistency import (ConsistencyACParams, ConsistencyBCParams, consistency_ac_critic_loss,
                          consistency_ac_generator_loss, consistency_ac_noise, consistency_bc_loss,
                          consistency_bc_noise, consistency_sample_actions)
from .diffusion import (DiffusionBCParams, DiffusionQLParams, ddpm_bc_loss, ddpm_bc_noise, diffusion_ql_critic_loss,
                        diffusion_ql_generator_loss, diffusion_ql_noise, diffusion_sample_actions)
from .flow import (FlowBCParams, FQLParams, flow_bc_loss, flow_bc_noise, flow_sample_actions, fql_actor_loss,
                   fql_critic_loss, fql_generator_loss, fql_noise, fql_sample_actions)
from .gtp import (GTPBCParams, GTPParams, gtp_bc_generator_loss, gtp_bc_noise, gtp_critic_loss, gtp_generator_loss,
                  gtp_noise, gtp_sample_actions)
from .nets import OfflineNets
from .td3_bc import TD3BCParams, smoothed_target_action, td3_bc_actor_loss, td3_bc_critic_loss
from .tpo_offline import (TPOOfflineParams, tpo_offline_critic_loss, tpo_offline_generator_loss, tpo_offline_noise,
                          tpo_offline_sample_actions)

__all__ = [
    "BCParams",
    "ConsistencyACParams",
    "ConsistencyBCParams",
    "DiffusionBCParams",
    "DiffusionQLParams",
    "FQLParams",
    "FlowBCParams",
    "GTPBCParams",
    "GTPParams",
    "IQLParams",
    "OfflineNets",
    "TD3BCParams",
    "TPOOfflineParams",
    "action_mse",
    "awr_weights",
    "bc_loss",
    "check_ranges",
    "clipped_double_q",
    "critic_td_loss",
    "consistency_ac_critic_loss",
    "consistency_ac_generator_loss",
    "consistency_ac_noise",
    "consistency_bc_loss",
    "consistency_bc_noise",
    "consistency_sample_actions",
    "ddpm_bc_loss",
    "ddpm_bc_noise",
    "diffusion_ql_critic_loss",
    "diffusion_ql_generator_loss",
    "diffusion_ql_noise",
    "diffusion_sample_actions",
    "expectile_loss",
    "flow_bc_loss",
    "flow_bc_noise",
    "flow_sample_actions",
    "fql_actor_loss",
    "fql_critic_loss",
    "fql_generator_loss",
    "fql_noise",
    "fql_sample_actions",
    "gtp_bc_generator_loss",
    "gtp_bc_noise",
    "gtp_critic_loss",
    "gtp_generator_loss",
    "gtp_noise",
    "gtp_sample_actions",
    "iql_actor_loss",
    "iql_critic_loss",
    "iql_value_loss",
    "require_net",
    "smoothed_target_action",
    "td3_bc_actor_loss",
    "td3_bc_critic_loss",
    "td_target",
    "tpo_offline_critic_loss",
    "tpo_offline_generator_loss",
    "tpo_offline_noise",
    "tpo_offline_sample_actions",
    "twin_q_loss",
]
