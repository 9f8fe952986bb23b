"""The suite's LLM losses on an engine's rows: flat [N, T] tensors in, the registry loss out.

Engines (TRL, verl) hand a loss per-token tensors of N completions, padded to T tokens, in an order of their own:
TRL shuffles its generation batch, verl may reorder it and cuts it into micro-batches. The functions here turn such
rows back into the suite's batch types and call the registry losses unchanged (:func:`algorithms.tpo.tpo_loss`,
:func:`algorithms.dro.dro_v_loss`), so the engine paths compute exactly the suite's numbers:

* :func:`tpo_loss_rows` — rows carrying a group id (the prompt they answer): sorted into [G, K, T] groups, then
  ``tpo_loss`` (TPO paper, Kaddour 2026, §3: q = softmax_K(ℓ_old + u/η) over sequence log-probs, cross-entropy).
  The result does not depend on the order of the rows (tested with shuffled groups).
* :func:`dro_v_loss_rows` — single completions with a learned value V(x): ``dro_v_loss`` (Richemond et al. 2024,
  §4); the scores are already normalised over the step's batch (:func:`algorithms.dro.normalise_scores`).
* :func:`verl_tpo_policy_loss` — verl's policy-loss view (no group ids: contiguous groups of K rows, the sequence
  score in ``advantages``; verl's global-batch normalisation), and :func:`sequence_score_advantage`, the advantage
  estimator that writes that score (and checks that verl kept every group contiguous).

Imports torch and ``algorithms`` only: no engine is needed to use or test these functions.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from algorithms.batch import GroupBatch, TrajectoryBatch
from algorithms.dro import DROVParams, dro_v_loss
from algorithms.tpo import TPOParams, tpo_loss


class GroupLayoutError(ValueError):
    """Rows that do not form whole groups of K completions (an engine split or mixed a group)."""


def group_order(group_ids: Tensor, k: int) -> Tensor:
    """Permutation [N] (long) that makes each group's rows contiguous, groups in increasing id, rows of a group in
    their given order (stable sort).

    Shapes: group_ids [N] (integer). Raises :class:`GroupLayoutError` (one line) unless N is a multiple of K and every
    id present occurs exactly K times.
    """
    if k < 1:
        raise GroupLayoutError(f"k={k}: must be >= 1")
    n = int(group_ids.numel())
    if n == 0 or n % k:
        raise GroupLayoutError(f"rows={n}: not a whole number of groups of K={k} completions (an engine split a group)")
    order = torch.sort(group_ids.reshape(-1), stable=True).indices
    ids = group_ids.reshape(-1)[order].view(n // k, k)
    whole = bool((ids == ids[:, :1]).all()) and bool((ids[1:, 0] != ids[:-1, 0]).all())
    if not whole:
        raise GroupLayoutError(f"group ids: some group has other than K={k} rows here (an engine split a group)")
    return order


def _grouped(x: Optional[Tensor], order: Tensor, g: int, k: int) -> Optional[Tensor]:
    return None if x is None else x[order].reshape(g, k, *x.shape[1:])


def tpo_loss_rows(logp: Tensor, logp_old: Tensor, mask: Tensor, scores: Tensor, group_ids: Tensor, k: int,
                  params: TPOParams, logp_ref: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
    """TPO on N = G·K rows in any order: :func:`algorithms.tpo.tpo_loss` on the rows sorted into groups.

    Shapes: logp (with grad), logp_old, mask, logp_ref [N, T]; scores [N] (the sequence scores, raw: the loss
    standardises them per group); group_ids [N] (integer, K rows per id). mask may be bool/int/float (1 = real
    token). Returns the scalar loss (the mean over the G groups of −Σ_k q log p_θ) and the loss' diagnostics.
    Raises :class:`GroupLayoutError` when the rows are not whole groups.
    """
    order = group_order(group_ids, k)
    g = logp.shape[0] // k
    batch = GroupBatch(logp=_grouped(logp, order, g, k), logp_old=_grouped(logp_old.to(logp.dtype), order, g, k),
                       scores=_grouped(scores.to(logp.dtype), order, g, k),
                       mask=_grouped(mask.to(logp.dtype), order, g, k),
                       logp_ref=_grouped(None if logp_ref is None else logp_ref.to(logp.dtype), order, g, k))
    return tpo_loss(batch, params)


def dro_v_loss_rows(logp: Tensor, logp_ref: Tensor, mask: Tensor, scores: Tensor, values: Tensor,
                    params: DROVParams) -> tuple[Tensor, dict[str, Tensor]]:
    """DRO-V on N single completions: :func:`algorithms.dro.dro_v_loss` (the rows' order does not matter).

    Shapes: logp (with grad), logp_ref, mask [N, T]; scores [N] normalised over the step's batch
    (:func:`algorithms.dro.normalise_scores`); values [N] = V(x) of each completion's prompt (with grad). The loss
    is a mean over the N rows, so equal-size slices of a batch average to the batch's loss.
    """
    m = mask.to(logp.dtype)
    s = scores.to(logp.dtype)
    batch = TrajectoryBatch(logp=logp, logp_old=logp_ref.to(logp.dtype), rewards=s[:, None] * m, mask=m,
                            values=values, logp_ref=logp_ref.to(logp.dtype), scores=s)
    return dro_v_loss(batch, params)


def first_token_value(x: Tensor, mask: Tensor) -> Tensor:
    """[N]: x at each row's first real token (mask > 0); 0 for a row without one. x, mask [N, T]."""
    live = mask > 0
    first = live.to(torch.int64).argmax(-1, keepdim=True)
    return torch.where(live.any(-1), x.gather(-1, first).squeeze(-1), torch.zeros((), dtype=x.dtype, device=x.device))


def verl_tpo_policy_loss(old_log_prob: Tensor, log_prob: Tensor, advantages: Tensor, response_mask: Tensor, k: int,
                         params: TPOParams, dp_size: int = 1,
                         global_batch_size: Optional[int] = None) -> tuple[Tensor, dict[str, Tensor]]:
    """TPO in verl's policy-loss shape: one micro-batch of contiguous groups of K rows, no group ids.

    Shapes: old_log_prob, log_prob (with grad), advantages, response_mask [B, T] with B = G_micro·K; ``advantages``
    holds each row's sequence score on its response tokens (written by :func:`sequence_score_advantage`). Rows
    [jK, (j+1)K) are group j: verl repeats each prompt's K rollouts next to each other, and the configuration
    checks (:func:`bench.engines.verl.check_verl_config`) keep them so up to the loss.

    Normalisation follows verl's global-batch convention: with ``global_batch_size`` (sequences in the global
    mini-batch) the micro-batch returns Σ_{g in micro} CE_g · dp_size / (global_batch_size / K), so that summing
    the micro-batches' gradients and averaging over the dp_size ranks gives the mean over the mini-batch's groups —
    the suite's (1/G) Σ_g; without it, the mean over this micro-batch's groups. Raises :class:`GroupLayoutError`
    when B is not a multiple of K.
    """
    b = log_prob.shape[0]
    ids = torch.arange(b, device=log_prob.device) // k
    scores = first_token_value(advantages.detach(), response_mask)
    loss, diags = tpo_loss_rows(log_prob, old_log_prob, response_mask, scores, ids, k, params)
    if global_batch_size:
        loss = loss * (b // k) * dp_size / (global_batch_size / k)
    return loss, diags


def sequence_score_advantage(token_level_rewards: Tensor, response_mask: Tensor,
                             index: Optional[Sequence[Any]] = None) -> tuple[Tensor, Tensor]:
    """Advantage estimator for TPO in verl: each row's sequence score Σ_t r_t written on its response tokens
    (advantages, returns), so the policy loss can standardise the scores per group itself.

    Shapes: token_level_rewards, response_mask [B, T] → ([B, T], [B, T]). ``index``: the rows' group ids (verl's
    ``uid``); when given, every id must occupy one contiguous run of rows — a reordering that splits a group
    (verl's ``trainer.balance_batch``) raises :class:`GroupLayoutError` naming the setting to change.
    """
    if index is not None:
        seen, last = set(), object()
        for uid in list(index):
            if uid != last:
                if uid in seen:
                    raise GroupLayoutError("uid: a group's rollouts are not contiguous (set trainer.balance_batch=False "
                                           "for algorithm.adv_estimator=tpo_score)")
                seen.add(uid)
                last = uid
    scores = token_level_rewards.sum(-1)
    adv = scores[:, None] * response_mask.to(scores.dtype)
    return adv, adv
