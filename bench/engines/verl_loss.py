"""The suite's TPO registered in verl (``pip install -e .[verl]``): importing this module registers

* the policy loss ``tpo`` (``actor_rollout_ref.actor.policy_loss.loss_mode=tpo``) — :func:`bench.engines.losses.
  verl_tpo_policy_loss`: TPO paper (Kaddour 2026) §3, the registry's ``tpo_loss`` on contiguous groups of
  K = ``actor.rollout_n`` rows;
* the advantage estimator ``tpo_score`` (``algorithm.adv_estimator=tpo_score``) — each rollout's sequence score
  on its tokens, so the loss standardises per group itself; it refuses a batch whose groups verl reordered apart.

TPO's parameters come from the policy-loss config: ``actor_rollout_ref.actor.policy_loss._target_=
bench.engines.verl_loss.TPOPolicyLossConfig`` adds ``tpo_eta``, ``tpo_anchor``, ``tpo_std_eps``,
``tpo_zero_var_rtol`` (defaults: the TPO paper's η = 1, anchored target; the suite's standardisation); without it
the defaults apply. verl's own KL term (``actor.use_kl_loss``, ``kl_loss_coef``, ``low_var_kl`` = k3) is added to
this loss as to any other, so TPO and GRPO runs differ only in the loss and the advantage estimator.

verl imports its plugins in every process (the entry point ``verl.plugins: tpo`` of this package, or
``VERL_USE_EXTERNAL_MODULES=bench.engines.verl_loss``), so Ray workers find both names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from verl.trainer.ppo.core_algos import register_adv_est, register_policy_loss
from verl.workers.config import PolicyLossConfig

from algorithms.shaping import ZERO_VAR_RTOL
from algorithms.tpo import TPOParams
from bench.engines.losses import sequence_score_advantage, verl_tpo_policy_loss

POLICY_LOSS = "tpo"
ADV_ESTIMATOR = "tpo_score"


@dataclass
class TPOPolicyLossConfig(PolicyLossConfig):
    """verl's policy-loss config with TPO's parameters (``loss_mode`` must be ``tpo`` to use them)."""

    loss_mode: str = POLICY_LOSS
    tpo_eta: float = 1.0
    tpo_anchor: bool = True
    tpo_std_eps: float = 1e-6
    tpo_zero_var_rtol: Optional[float] = ZERO_VAR_RTOL


def tpo_params(config: Any) -> TPOParams:
    """TPOParams from verl's actor config (its ``policy_loss`` fields ``tpo_*``; absent ones: the defaults). KL is
    verl's own term (``use_kl_loss``), so ``kl_beta`` is 0 here."""
    pl = config.policy_loss if config is not None else None
    get = (lambda key, default: default) if pl is None else (lambda key, default: pl.get(key, default))
    return TPOParams(eta=float(get("tpo_eta", 1.0)), anchor=bool(get("tpo_anchor", True)),
                     std_eps=float(get("tpo_std_eps", 1e-6)), zero_var_rtol=get("tpo_zero_var_rtol", ZERO_VAR_RTOL),
                     kl_beta=0.0)


@register_policy_loss(POLICY_LOSS)
def compute_policy_loss_tpo(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
                            response_mask: torch.Tensor, loss_agg_mode: str = "token-mean", config: Any = None,
                            rollout_is_weights: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl's policy-loss signature → :func:`bench.engines.losses.verl_tpo_policy_loss`. ``loss_agg_mode`` is not
    used (TPO averages over groups); rollout-correction weights are refused (TPO's target already uses ℓ_old)."""
    if config is None:
        raise ValueError("policy_loss.loss_mode=tpo: verl passed no actor config (K = actor.rollout_n is needed)")
    if rollout_is_weights is not None:
        raise ValueError("policy_loss.loss_mode=tpo: rollout-correction weights are not supported; disable "
                         "algorithm.rollout_correction")
    info = dict(getattr(config, "global_batch_info", None) or {})
    loss, diags = verl_tpo_policy_loss(old_log_prob, log_prob, advantages, response_mask, int(config.rollout_n),
                                       tpo_params(config), dp_size=int(info.get("dp_size") or 1),
                                       global_batch_size=info.get("global_batch_size"))
    return loss, {f"actor/tpo_{k}": float(v) for k, v in diags.items()}


@register_adv_est(ADV_ESTIMATOR)
def compute_tpo_score_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                                index: Any = None, config: Any = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's advantage-estimator signature → :func:`bench.engines.losses.sequence_score_advantage`."""
    return sequence_score_advantage(token_level_rewards, response_mask, index)
