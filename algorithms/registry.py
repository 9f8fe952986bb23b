"""The algorithm registry type. The dict itself, ``ALGORITHMS``, lives in
:mod:`algorithms` (``algorithms/__init__.py``) and is the only place a loss is
looked up by name; the harness does so once, at build time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from torch import Tensor

LossFn = Callable[[Any, Any], "tuple[Tensor, dict[str, Tensor]]"]
PhaseLossFn = Callable[[Any, Any, Any], "tuple[Tensor, dict[str, Tensor]]"]


@dataclass(frozen=True)
class Phase:
    """One update of an offline algorithm (offline loop, :mod:`bench.offline_loop`).

    network: the network group whose parameters this phase steps (``"actor"``, ``"critic"``,
             ``"value"``); every other network is read with its parameters detached.
    loss:    ``loss(batch: TransitionBatch, nets: OfflineNets, params) -> (scalar, diagnostics)``.
    every:   name of a params field holding the period in steps (``"actor_every"``: TD3's delayed
             actor), or ``None`` for every step.
    """

    network: str
    loss: PhaseLossFn
    every: Optional[str] = None


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered loss.

    name:    registry key (``"tpo"``, ``"grpo"``, ...).
    loss:    ``loss(batch, params) -> (scalar loss, diagnostics)``; diagnostics
             are detached 0-dim tensors keyed by short names (the harness
             prefixes them with ``diag/``). ``None`` for offline algorithms (see ``phases``).
    params:  frozen dataclass type of the loss hyperparameters, every field
             with its paper default.
    batch:   ``"group"`` (:class:`GroupBatch`), ``"trajectory"``
             (:class:`TrajectoryBatch`) or ``"transition"`` (:class:`TransitionBatch`, offline).
    epochs:  the paper's default number of full-batch gradient epochs per
             rollout batch (the harness config may override it); 1 for offline algorithms.
    summary: one line for listings.

    Offline algorithms (``batch="transition"``) only:

    phases:  the ordered updates of one gradient step (:class:`Phase`), e.g. TD3+BC: critic then actor.
    nets:    the networks the family builds: ``"actor"`` (deterministic, tanh output in [−1, 1]),
             ``"gaussian_actor"`` (tanh mean, state-independent log-std), ``"critic"`` (twin Q),
             ``"value"`` (V(s)).
    targets: networks with a Polyak-averaged target copy (``"critic"``, ``"actor"``), all updated after the
             step's phases on the steps where the actor runs (``step % actor_every == 0``, TD3's schedule;
             rate: the params field ``tau``).
    noise:   standard-normal draws per transition, in units of the action dimension (TD3: 1); with
             ``noise_of`` set, the count at the params defaults.
    noise_of: ``params -> int``: the count for the given params, when it depends on them (generative
             policies: sampling steps, candidates); ``None`` = always ``noise``. Read it through
             :meth:`noise_blocks`.
    sampler: offline policies that act by sampling: ``(nets, obs, z, params) -> actions in [−1, 1]``
             (obs [N, O], z [N, A] the chain's initial draw → [N, A]; z = 0 gives the deterministic
             evaluation action; chains that inject noise per step also take z [N, B, A]);
             ``None`` = ``nets.actor(s)``.
    """

    name: str
    loss: Optional[LossFn]
    params: type
    batch: Literal["group", "trajectory", "transition"]
    epochs: int
    summary: str
    phases: tuple[Phase, ...] = ()
    nets: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    noise: int = 0
    noise_of: Optional[Callable[[Any], int]] = None
    sampler: Optional[Callable[..., Tensor]] = None

    def noise_blocks(self, params: Any) -> int:
        """Standard-normal [N, A] blocks per transition a step draws under ``params``: ``noise_of(params)``
        when set, else ``noise``."""
        return self.noise if self.noise_of is None else int(self.noise_of(params))
