"""TD3+BC: TD3 with a behaviour-cloning term in the actor objective and a Q-scale-free weight λ.

Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning", §5 (eq. 3 and the
normalisation λ = α / mean|Q| that follows it); the critic phase is TD3's (Fujimoto et al. 2018, Alg. 1:
clipped double Q, §4.2 eq. 10; target policy smoothing, §5.3; delayed actor updates, §5.2). Defaults
are the paper's (its hyperparameter table) and CORL's (Tarasov et al. 2023) Gym configs.

Two phases per gradient step: critic (every step), then actor (every ``actor_every`` steps); the loop
Polyak-updates both targets at rate ``tau``. Randomness arrives as ``batch.noise`` [N, A] (ε ~ N(0, I)).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..batch import TransitionBatch
from .bc import action_mse
from .critic import check_ranges, critic_td_loss, require_net
from .nets import OfflineNets


@dataclass(frozen=True)
class TD3BCParams:
    """discount: γ; tau: Polyak rate of the actor and critic targets; actor_every: the delayed actor's
    period d (the actor phase runs when step % d == 0); alpha: α of λ = α / mean|Q|; policy_noise: σ of
    the target smoothing noise (actions in [−1, 1]); noise_clip: c, the bound on σ·ε."""

    discount: float = field(default=0.99, metadata={"ge": 0, "le": 1})   # TD3+BC hyperparameters / CORL: γ = 0.99
    tau: float = field(default=0.005, metadata={"ge": 0, "le": 1})       # TD3+BC paper / CORL: target update rate 5e-3
    actor_every: int = field(default=2, metadata={"ge": 1})              # TD3 §5.2, TD3+BC / CORL policy_freq = 2
    alpha: float = field(default=2.5, metadata={"ge": 0})                # TD3+BC §5 / CORL: α = 2.5
    policy_noise: float = field(default=0.2, metadata={"ge": 0})         # TD3 §5.3, TD3+BC / CORL: σ = 0.2
    noise_clip: float = field(default=0.5, metadata={"ge": 0})           # TD3 §5.3, TD3+BC / CORL: c = 0.5

    def __post_init__(self) -> None:
        check_ranges(self)


def smoothed_target_action(actor_target_out: Tensor, noise: Tensor, policy_noise: float, noise_clip: float) -> Tensor:
    """a′ = clip(π_target(s′) + clip(σ·ε, −c, c), −1, 1) (TD3 §5.3, target policy smoothing).

    actor_target_out: π_target(s′) [N, A]; noise: ε [N, A] standard normal → a′ [N, A] in [−1, 1].
    """
    smoothing = (policy_noise * noise).clamp(-noise_clip, noise_clip)
    return (actor_target_out + smoothing).clamp(-1.0, 1.0)


def td3_bc_critic_loss(batch: TransitionBatch, nets: OfflineNets,
                       params: TD3BCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """TD3's critic: loss = Σ_c mean_n (Q_c(s, a) − y)², no gradient through y.

    y = r + γ(1 − terminal)·min_c Q_target,c(s′, a′), a′ = :func:`smoothed_target_action` of
    π_target(s′) with ε = batch.noise (TD3 Alg. 1; TD3+BC leaves the critic unchanged).
    Shapes: observations, next_observations [N, O]; actions, noise [N, A]; rewards, terminals [N];
    nets.critic / critic_target → [C, N]; nets.actor_target → [N, A].
    Raises ValueError when batch.noise is None or not [N, A], or a needed network is None.
    Diagnostics: q_mean (mean of Q_c(s, a) over c and n), target_mean (mean y).
    """
    actor_target = require_net(nets, "actor_target", "td3_bc_critic_loss")
    if batch.noise is None or tuple(batch.noise.shape) != tuple(batch.actions.shape):
        got = None if batch.noise is None else tuple(batch.noise.shape)
        raise ValueError(f"noise: td3_bc_critic_loss needs batch.noise of shape {tuple(batch.actions.shape)} "
                         f"(one N(0, 1) draw per action dimension), got {got}")
    next_actions = smoothed_target_action(actor_target(batch.next_observations).detach(), batch.noise,
                                          params.policy_noise, params.noise_clip)
    return critic_td_loss(batch, nets, next_actions, params.discount, "td3_bc_critic_loss")


def td3_bc_actor_loss(batch: TransitionBatch, nets: OfflineNets,
                      params: TD3BCParams) -> tuple[Tensor, dict[str, Tensor]]:
    """TD3+BC's actor (§5, eq. 3 as a loss): −λ·mean_n Q_1(s, π(s)) + mean_{n,a} (π(s) − a)².

    λ = α / mean_n |Q_1(s_n, π(s_n))|, detached: the Q term's gradient does not depend on the scale of Q
    (scaling Q by k scales λ by 1/k). The denominator reads Q_1 at the actor's actions, as the authors'
    code and CORL do (the paper's text writes the dataset pairs (s_i, a_i)). λ is undefined when Q_1 is
    exactly 0 on the whole batch (never with a trained or randomly initialised critic). The BC term is
    :func:`algorithms.offline.bc.action_mse` (mean over the action dimensions too, the scale α is tuned to).
    Shapes: observations [N, O], actions [N, A]; nets.actor → [N, A]; nets.critic → [C, N] (Q_1 = row 0).
    Diagnostics: lambda, q_pi_mean (mean Q_1(s, π(s))), bc_mse.
    """
    actor = require_net(nets, "actor", "td3_bc_actor_loss")
    critic = require_net(nets, "critic", "td3_bc_actor_loss")
    pi = actor(batch.observations)
    q1 = critic(batch.observations, pi)[0]
    lam = (params.alpha / q1.abs().mean()).detach()
    bc = action_mse(pi, batch.actions)
    loss = -lam * q1.mean() + bc
    return loss, {"lambda": lam, "q_pi_mean": q1.detach().mean(), "bc_mse": bc.detach()}
