"""Batch vocabulary shared by every loss and every task family.

Two batch types cover the on-policy families:

* :class:`GroupBatch` — G groups (a context / prompt, or a prefix state for
  token-level groups) × K scored candidates, each candidate a sequence of up to
  T tokens. Bandit actions are sequences of length T = 1.
* :class:`TrajectoryBatch` — N single trajectories (one completion per
  context), each with its own scalar score; the vocabulary of REINFORCE, PPO,
  DG, DRO-V and KTO.

A third, :class:`TransitionBatch`, serves the offline family (D4RL transitions).

Conventions
-----------
* ``logp`` is the *current* per-token log-probability under θ (it carries the
  autograd graph); the training loop recomputes it every epoch and builds a
  new batch with :func:`dataclasses.replace`. Everything else is frozen at
  rollout time and must not require grad (``values`` excepted: a learned
  baseline is trained through the loss).
* ``mask`` is a float tensor in {0, 1} marking real tokens (padding 0).
  Values at padding positions are never read: every masked sum goes through
  :func:`masked_sum`, which selects instead of multiplying, so a −inf or NaN
  log-prob at a padding position cannot become inf·0 = NaN in a value or a
  gradient.
* ``weights`` are expectation weights of candidates/trajectories. Sampled
  data uses all-ones (the default, ``None``); exact population updates (the
  tabular bandits) pass the behaviour probabilities so that a weighted sum
  over *all* actions equals the expectation over sampled ones.
* Shapes are checked on construction; a wrong shape raises ``ValueError``
  naming the field, the expected and the actual shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    """Σ_t mask·x over the last dim, reading x only where mask > 0 (padding contributes exactly 0 to the
    value and receives a zero gradient, whatever it holds). x, mask [..., T] → [...]."""
    return torch.where(mask > 0, x * mask, torch.zeros_like(x)).sum(-1)


def sequence_sum(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Σ_t x over the last dim, over real tokens only: :func:`masked_sum` with ``mask``, the plain sum without one
    (the value and gradient of an all-ones mask, at a fraction of the operators). x [..., T] → [...]."""
    return x.sum(-1) if mask is None else masked_sum(x, mask.to(x.dtype))


def masked(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """x where mask > 0, else 0 (same shape): per-token inputs with padding neutralised; x itself when
    ``mask`` is None (no padding)."""
    return x if mask is None else torch.where(mask > 0, x, torch.zeros_like(x))


def _check(name: str, t: Optional[Tensor], shape: tuple[int, ...]) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


@dataclass(frozen=True)
class GroupBatch:
    """G groups × K candidates × T tokens.

    Fields (shapes):
        logp:      [G, K, T] current token log-probs log π_θ (with grad).
        logp_old:  [G, K, T] behaviour token log-probs, frozen at sampling.
        scores:    [G, K]    scalar score of each candidate (reward of the
                               sequence, e.g. mean_t r_t or the exact-match bit).
        mask:      [G, K, T] 1 for real tokens, 0 for padding (default all 1).
        weights:   [G, K]    expectation weights (default all 1).
        logp_ref:  [G, K, T] fixed reference-policy log-probs (optional; for
                               GRPO with a fixed-reference KL).
    """

    logp: Tensor
    logp_old: Tensor
    scores: Tensor
    mask: Optional[Tensor] = None
    weights: Optional[Tensor] = None
    logp_ref: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.logp.dim() != 3:
            raise ValueError(f"logp: expected 3 dims [G, K, T], got shape {tuple(self.logp.shape)}")
        G, K, T = self.logp.shape
        _check("logp_old", self.logp_old, (G, K, T))
        _check("scores", self.scores, (G, K))
        _check("mask", self.mask, (G, K, T))
        _check("weights", self.weights, (G, K))
        _check("logp_ref", self.logp_ref, (G, K, T))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.logp.shape)  # type: ignore[return-value]

    def token_mask(self) -> Tensor:
        """[G, K, T] float mask (all ones when none was given)."""
        return torch.ones_like(self.logp) if self.mask is None else self.mask.to(self.logp.dtype)

    def candidate_weights(self) -> Tensor:
        """[G, K] expectation weights (all ones when none were given)."""
        return torch.ones_like(self.scores, dtype=self.logp.dtype) if self.weights is None else self.weights.to(self.logp.dtype)

    def seq_logp(self) -> Tensor:
        """[G, K] sequence log-prob ℓ_θ(y) = Σ_t mask·log π_θ(y_t | y_<t)."""
        return sequence_sum(self.logp, self.mask)

    def seq_logp_old(self) -> Tensor:
        """[G, K] frozen behaviour sequence log-prob ℓ_old(y)."""
        return sequence_sum(self.logp_old, self.mask)

    def seq_logp_ref(self) -> Tensor:
        """[G, K] fixed reference sequence log-prob ℓ_ref(y); ValueError if logp_ref is None."""
        return sequence_sum(require_field(self, "logp_ref", "a reference-policy term"), self.mask)


@dataclass(frozen=True)
class TrajectoryBatch:
    """N single trajectories of up to T tokens, one per context.

    Fields (shapes):
        logp:      [N, T] current token log-probs (with grad).
        logp_old:  [N, T] behaviour token log-probs, frozen at sampling.
        rewards:   [N, T] per-token reward r_t (a sequence-level score is a
                           reward broadcast or placed by the task; the loop
                           decides, the loss only reads this tensor).
        mask:      [N, T] 1 for real tokens (default all 1).
        weights:   [N]    expectation weights (default all 1).
        baseline:  [N, T] external baseline b_t for ``baseline="expected"``
                           (e.g. Σ_k π_k² in the MNIST bandit); frozen.
        values:    [N]    learned value V(x) of the context (with grad) for
                           ``baseline="learned"`` and DRO-V.
        logp_ref:  [N, T] reference-policy log-probs (DRO-V / KTO).
        scores:    [N]    scalar sequence score r (DRO-V / KTO; default
                           Σ_t rewards).
    """

    logp: Tensor
    logp_old: Tensor
    rewards: Tensor
    mask: Optional[Tensor] = None
    weights: Optional[Tensor] = None
    baseline: Optional[Tensor] = None
    values: Optional[Tensor] = None
    logp_ref: Optional[Tensor] = None
    scores: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.logp.dim() != 2:
            raise ValueError(f"logp: expected 2 dims [N, T], got shape {tuple(self.logp.shape)}")
        N, T = self.logp.shape
        _check("logp_old", self.logp_old, (N, T))
        _check("rewards", self.rewards, (N, T))
        _check("mask", self.mask, (N, T))
        _check("weights", self.weights, (N,))
        _check("baseline", self.baseline, (N, T))
        _check("values", self.values, (N,))
        _check("logp_ref", self.logp_ref, (N, T))
        _check("scores", self.scores, (N,))

    def token_mask(self) -> Tensor:
        """[N, T] float mask (all ones when none was given)."""
        return torch.ones_like(self.logp) if self.mask is None else self.mask.to(self.logp.dtype)

    def traj_weights(self) -> Tensor:
        """[N] expectation weights (all ones when none were given)."""
        if self.weights is None:
            return torch.ones(self.logp.shape[0], dtype=self.logp.dtype, device=self.logp.device)
        return self.weights.to(self.logp.dtype)

    def seq_scores(self) -> Tensor:
        """[N] scalar score r: ``scores`` if given, else Σ_t mask·r_t."""
        if self.scores is not None:
            return self.scores
        return sequence_sum(self.rewards, self.mask)


@dataclass(frozen=True)
class TransitionBatch:
    """N offline-RL transitions (s, a, r, s′, terminal) — D4RL ``qlearning_dataset`` keys.

    Fields (shapes):
        observations:      [N, O] states s (normalised by the family when ``env.normalise_obs``).
        actions:           [N, A] dataset actions, scaled by the family to [−1, 1] (every offline
                                  loss assumes that range).
        rewards:           [N]    r (after the env's reward convention, e.g. scale/shift).
        next_observations: [N, O] s′.
        terminals:         [N]    1.0 where s′ is terminal (no bootstrap), else 0.0; time-limit
                                  truncations never appear here (the reader drops them).
        noise:             [N, M] standard-normal draws from the seed's own stream, for losses that
                                  sample (TD3's target smoothing, generative policies); ``None`` when
                                  the algorithm declares ``noise = 0``. M = noise·A.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    terminals: Tensor
    noise: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.observations.dim() != 2 or self.actions.dim() != 2:
            raise ValueError(f"observations/actions: expected [N, O] and [N, A], got shapes "
                             f"{tuple(self.observations.shape)} and {tuple(self.actions.shape)}")
        N = self.observations.shape[0]
        _check("rewards", self.rewards, (N,))
        _check("terminals", self.terminals, (N,))
        _check("next_observations", self.next_observations, tuple(self.observations.shape))
        if self.actions.shape[0] != N:
            raise ValueError(f"actions: expected leading dim {N}, got shape {tuple(self.actions.shape)}")
        if self.noise is not None and (self.noise.dim() != 2 or self.noise.shape[0] != N):
            raise ValueError(f"noise: expected shape ({N}, M), got {tuple(self.noise.shape)}")


def group_to_trajectories(batch: GroupBatch) -> TrajectoryBatch:
    """View a [G, K, T] group batch as G·K single trajectories.

    The sequence score is placed as a reward on every real token divided by
    nothing: ``rewards[n, t] = scores[n]·mask[n, t]`` — i.e. the same scalar
    advantage multiplies every token's log-prob (sequence-level REINFORCE).
    """
    G, K, T = batch.shape
    mask = None if batch.mask is None else batch.token_mask().reshape(G * K, T)
    scores = batch.scores.reshape(G * K)
    return TrajectoryBatch(
        logp=batch.logp.reshape(G * K, T),
        logp_old=batch.logp_old.reshape(G * K, T),
        rewards=(scores[:, None].to(torch.promote_types(scores.dtype, batch.logp.dtype)).expand(G * K, T)
                 if mask is None else scores[:, None] * mask),
        mask=mask,
        weights=None if batch.weights is None else batch.weights.reshape(G * K),
        logp_ref=None if batch.logp_ref is None else batch.logp_ref.reshape(G * K, T),
        scores=scores,
    )


def require_field(batch: object, name: str, purpose: str) -> Tensor:
    """Return ``batch.<name>``, or raise ValueError naming the missing field and why it is needed."""
    value = getattr(batch, name)
    if value is None:
        raise ValueError(f"{name}: {purpose} needs batch.{name}, got None")
    return value
