"""Pure loss functions of the suite and the one registry ``ALGORITHMS``.

Every entry maps a name to an :class:`AlgorithmSpec`: the loss
``loss(batch, params) -> (scalar, diagnostics)``, its frozen params dataclass
(defaults = paper defaults), the batch kind it reads and the paper's default
number of gradient epochs per rollout batch (TPO paper §4; docs/paper-map.md
§2: PPO, GRPO, TPO and variants 4; DG 1). REINFORCE/PG has no importance
ratio, so reusing a batch would be off-policy — it gets 1 (the reference
implementation reuses it for 4 epochs in the sequence tasks; the harness
config's ``epochs`` overrides), as do the single-pass CE oracle, DRO-V and KTO.

Offline entries (batch ``"transition"``: BC, TD3+BC, IQL and the generative policies — DDPM BC,
Diffusion-QL, consistency BC, Consistency-AC, flow BC, FQL, GTP-BC, GTP, TPO-offline) have ``loss=None``
and list their updates as ``phases`` (:class:`algorithms.registry.Phase`), one loss per network, with the
networks, targets and noise they need (:mod:`algorithms.offline`); the generative ones act through
``sampler``.

Every numeric field of a params dataclass carries its allowed range as plain
field metadata, ``{"ge": x}``, ``{"gt": x}``, ``{"le": x}``, ``{"lt": x}`` (any
combination; an Optional field may also be None); a numeric field without
metadata (``baseline_value``) takes any real value.

Variants are params, not entries: TPO-no-anchor = ``TPOParams(anchor=False)``,
GRPO no-KL = ``GRPOParams(kl_beta=0)``, zero-variance masked GRPO =
``GRPOParams(mask_zero_variance=True)``, Dr. GRPO =
``GRPOParams(adv_scale="none", aggregation="constant", agg_constant=...)``,
TPO_token / GRPO_token = the same losses on token-candidate groups. Every group
and batch-mean normalisation gives exactly zero signal to a group of equal
scores (``zero_var_rtol``; shaping.py, docs/paper-map.md §1).
"""
from __future__ import annotations

from typing import Any, Callable

from .batch import GroupBatch, TrajectoryBatch, TransitionBatch, group_to_trajectories
from .ce import CEParams, ce_loss
from .dg import DGParams, dg_loss
from .dro import DROVParams, KTOParams, dro_v_loss, kto_loss
from .grpo import GRPOParams, RLOOParams, grpo_loss, rloo_loss
from .offline import (BCParams, IQLParams, TD3BCParams, bc_loss, iql_actor_loss, iql_critic_loss, iql_value_loss,
                      td3_bc_actor_loss, td3_bc_critic_loss)
from .offline import consistency as _consistency
from .offline import diffusion as _diffusion
from .offline import flow as _flow
from .offline import gtp as _gtp
from .offline import tpo_offline as _tpo_offline
from .pg import PGParams, pg_loss
from .ppo import PPOParams, ppo_loss
from .registry import AlgorithmSpec, Phase
from .tpo import GroupPGParams, TPOParams, group_pg_loss, tpo_loss

ALGORITHMS: dict[str, AlgorithmSpec] = {
    "tpo": AlgorithmSpec("tpo", tpo_loss, TPOParams, "group", 4, "Target Policy Optimization: CE fit to q ∝ π_old·exp(u/η)"),
    "group_pg": AlgorithmSpec("group_pg", group_pg_loss, GroupPGParams, "group", 4, "TPO ablation: PG with the standardised score u/η"),
    "pg": AlgorithmSpec("pg", pg_loss, PGParams, "trajectory", 1, "REINFORCE with a constant/batch-mean/expected/learned baseline"),
    "ppo": AlgorithmSpec("ppo", ppo_loss, PPOParams, "trajectory", 4, "PPO-clip, token-level ratio, batch-mean baseline"),
    "grpo": AlgorithmSpec("grpo", grpo_loss, GRPOParams, "group", 4, "GRPO: group-standardised advantage, clipped ratio, k3 KL"),
    "rloo": AlgorithmSpec("rloo", rloo_loss, RLOOParams, "group", 4, "REINFORCE with the leave-one-out group baseline"),
    "dg": AlgorithmSpec("dg", dg_loss, DGParams, "trajectory", 1, "Delightful PG: PG gated by σ(A·surprisal/η)"),
    "ce": AlgorithmSpec("ce", ce_loss, CEParams, "group", 1, "supervised cross-entropy oracle (bandits only)"),
    "dro_v": AlgorithmSpec("dro_v", dro_v_loss, DROVParams, "trajectory", 1, "DRO with a value function, single trajectories"),
    "kto": AlgorithmSpec("kto", kto_loss, KTOParams, "trajectory", 1, "KTO on single scored trajectories"),
    # offline (batch "transition"): no single loss, one Phase per network (algorithms/offline/)
    "bc": AlgorithmSpec("bc", None, BCParams, "transition", 1, "behaviour cloning: MSE of a deterministic actor",
                        phases=(Phase("actor", bc_loss),), nets=("actor",)),
    "td3_bc": AlgorithmSpec("td3_bc", None, TD3BCParams, "transition", 1, "TD3+BC: TD3 critic, Q/|Q| + BC actor",
                            phases=(Phase("critic", td3_bc_critic_loss),
                                    Phase("actor", td3_bc_actor_loss, every="actor_every")),
                            nets=("actor", "critic"), targets=("critic", "actor"), noise=1),
    "iql": AlgorithmSpec("iql", None, IQLParams, "transition", 1, "IQL: expectile V, V-bootstrapped twin Q, AWR actor",
                         phases=(Phase("value", iql_value_loss), Phase("actor", iql_actor_loss),
                                 Phase("critic", iql_critic_loss)),
                         nets=("gaussian_actor", "critic", "value"), targets=("critic",)),
}


def _generative(name: str, params: type, summary: str, phases: tuple[Phase, ...], nets: tuple[str, ...],
                targets: tuple[str, ...], noise_of: Callable[[Any], int],
                sampler: Callable[..., Any]) -> AlgorithmSpec:
    """An offline generative policy's spec: ``noise`` is the block count at the params defaults."""
    return AlgorithmSpec(name, None, params, "transition", 1, summary, phases=phases, nets=nets, targets=targets,
                         noise=noise_of(params()), noise_of=noise_of, sampler=sampler)


# offline generative policies (algorithms/offline/generative.py and the modules it lists); each acts through
# its ``sampler``
ALGORITHMS.update({
    "ddpm_bc": _generative(
        "ddpm_bc", _diffusion.DiffusionBCParams, "DDPM behaviour cloning (ε-prediction, VP schedule, T = 5)",
        (Phase("generator", _diffusion.ddpm_bc_loss),), ("generator",), (),
        _diffusion.ddpm_bc_noise, _diffusion.diffusion_sample_actions),
    "diffusion_ql": _generative(
        "diffusion_ql", _diffusion.DiffusionQLParams, "Diffusion-QL: DDPM loss − η·Q/|Q| through the reverse chain",
        (Phase("critic", _diffusion.diffusion_ql_critic_loss),
         Phase("generator", _diffusion.diffusion_ql_generator_loss)),
        ("generator", "critic"), ("critic", "generator"),
        _diffusion.diffusion_ql_noise, _diffusion.diffusion_sample_actions),
    "consistency_bc": _generative(
        "consistency_bc", _consistency.ConsistencyBCParams, "consistency-model BC (consistency training, 2 steps)",
        (Phase("generator", _consistency.consistency_bc_loss),), ("generator",), ("generator",),
        _consistency.consistency_bc_noise, _consistency.consistency_sample_actions),
    "consistency_ac": _generative(
        "consistency_ac", _consistency.ConsistencyACParams, "Consistency-AC: consistency loss − η·Q/|Q|, 2 steps",
        (Phase("critic", _consistency.consistency_ac_critic_loss),
         Phase("generator", _consistency.consistency_ac_generator_loss)),
        ("generator", "critic"), ("critic", "generator"),
        _consistency.consistency_ac_noise, _consistency.consistency_sample_actions),
    "flow_bc": _generative(
        "flow_bc", _flow.FlowBCParams, "flow-matching BC (linear path, 10 Euler steps)",
        (Phase("generator", _flow.flow_bc_loss),), ("generator",), (),
        _flow.flow_bc_noise, _flow.flow_sample_actions),
    "fql": _generative(
        "fql", _flow.FQLParams, "FQL: flow BC + one-step policy maximising Q, distilled from the flow",
        (Phase("critic", _flow.fql_critic_loss), Phase("generator", _flow.fql_generator_loss),
         Phase("actor", _flow.fql_actor_loss)),
        ("generator", "one_step_actor", "critic"), ("critic",),
        _flow.fql_noise, _flow.fql_sample_actions),
    "gtp_bc": _generative(
        "gtp_bc", _gtp.GTPBCParams, "GTP-BC: flow-map policy, consistency + instantaneous flow losses",
        (Phase("generator", _gtp.gtp_bc_generator_loss),), ("generator",), ("generator",),
        _gtp.gtp_bc_noise, _gtp.gtp_sample_actions),
    "gtp": _generative(
        "gtp", _gtp.GTPParams, "GTP: advantage-weighted flow-map policy, clipped double-Q critic",
        (Phase("critic", _gtp.gtp_critic_loss), Phase("generator", _gtp.gtp_generator_loss)),
        ("generator", "critic"), ("critic", "generator"),
        _gtp.gtp_noise, _gtp.gtp_sample_actions),
    "tpo_offline": _generative(
        "tpo_offline", _tpo_offline.TPOOfflineParams, "TPO target over critic-scored generative candidates",
        (Phase("critic", _tpo_offline.tpo_offline_critic_loss),
         Phase("generator", _tpo_offline.tpo_offline_generator_loss)),
        ("generator", "critic"), ("critic", "generator"),
        _tpo_offline.tpo_offline_noise, _tpo_offline.tpo_offline_sample_actions),
})


def get_algorithm(name: str) -> AlgorithmSpec:
    """The registered spec of ``name``; KeyError listing the valid names otherwise."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; valid: {', '.join(sorted(ALGORITHMS))}") from None


__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "BCParams",
    "CEParams",
    "DGParams",
    "DROVParams",
    "GRPOParams",
    "GroupPGParams",
    "IQLParams",
    "KTOParams",
    "PGParams",
    "PPOParams",
    "Phase",
    "RLOOParams",
    "TD3BCParams",
    "TPOParams",
    "GroupBatch",
    "TrajectoryBatch",
    "TransitionBatch",
    "get_algorithm",
    "group_to_trajectories",
]
