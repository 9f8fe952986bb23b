"""The networks an offline loss reads, as callables (losses take tensors and callables, never modules).

The offline loop builds one :class:`OfflineNets` per seed and phase (inside ``torch.func.vmap`` over the
seed axis). Only the network the phase updates carries gradient; every other callable reads detached
parameters, so a loss may call any of them freely. Actions are in [−1, 1] (the family scales them).

Shapes: obs [N, O], act [N, A]; ``critic`` returns [C, N] (C = 2, the twin Q ensemble); ``value`` and
``actor_log_prob`` return [N]; ``actor`` returns [N, A].

Generative policies (:mod:`algorithms.offline.generative` and the modules it lists) read three more fields.
Their network kinds in an :class:`algorithms.registry.AlgorithmSpec`'s ``nets``:

* ``"generator"`` — parameters under the name ``"generator"`` (:func:`bench.models.generative.generator`);
  fills ``generator`` and, when the spec's ``targets`` has ``"generator"``, ``generator_target`` (its Polyak
  copy: Diffusion-QL's EMA actor, the consistency target θ⁻, GTP's teacher θ⁻).
* ``"one_step_actor"`` — parameters under the name ``"actor"`` (FQL's one-step policy, an MLP on [s, z] with a
  tanh output: :func:`bench.models.generative.one_step_actor`); fills ``one_step``.

Critics stay the twin ``critic`` / ``critic_target``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from torch import Tensor

ObsFn = Callable[[Tensor], Tensor]
ObsActFn = Callable[[Tensor, Tensor], Tensor]
GeneratorFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class OfflineNets:
    """actor:          s → a ∈ [−1, 1]^A (deterministic actor, or the Gaussian actor's tanh mean).
    actor_target:      the actor's Polyak target copy (when the algorithm declares ``targets=("actor", …)``).
    actor_log_prob:    (s, a) → log π(a|s) [N] of the Gaussian actor (``nets`` has ``"gaussian_actor"``).
    critic:            (s, a) → [C, N] twin Q values.
    critic_target:     the critic's Polyak target copy.
    value:             s → V(s) [N].
    generator:         (s, x, t, τ) → [N, A]: the generative policy's network on a noisy action x [N, A] at
                       times t, τ [N] (the method fixes their meaning and scale; methods without τ pass 0).
    generator_target:  the generator's Polyak copy, same signature.
    one_step:          (s, z) → a ∈ [−1, 1]^A [N, A]: FQL's one-step policy on noise z [N, A].
    """

    actor: Optional[ObsFn] = None
    actor_target: Optional[ObsFn] = None
    actor_log_prob: Optional[ObsActFn] = None
    critic: Optional[ObsActFn] = None
    critic_target: Optional[ObsActFn] = None
    value: Optional[ObsFn] = None
    generator: Optional[GeneratorFn] = None
    generator_target: Optional[GeneratorFn] = None
    one_step: Optional[ObsActFn] = None
