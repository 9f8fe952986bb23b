"""Parts shared by the refinement family's scales (:mod:`bench.families.refine` — tabular,
:mod:`bench.families.refine_sequence` — token reversal, :mod:`bench.families.refine_llm` — answer revision).

Every scale trains a refiner π_θ(A₂|S, A₁) by the registry losses on the learned reward R_φ and logs the same
metric names (:data:`EVAL_METRICS`, :func:`reward_model_metrics`); what goes into ``logp_ref``
(:func:`refine_reference_kind`) and which scores a single-rewrite loss reads (:func:`single_scores`) are the
same rule at every scale; the network scales fit R_φ by the same loop (:func:`fit_ranked_lists`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor

from bench import metrics as M
from bench.families.sequence import reference_kind
from bench.schema import ConfigError
from bench.seeding import stream_seed
from envs.refine.reward_model import pl_nll_ranked

#: metric key of the scales' evaluate functions (envs.refine.tabular.evaluate, envs.refine.sequence.gate_metrics)
#: → metric name
EVAL_METRICS: dict[str, str] = {
    "gold_value": M.REFINE_GOLD_VALUE, "lift": M.REFINE_LIFT, "best_response_lift": M.REFINE_BEST_RESPONSE_LIFT,
    "win_rate": M.REFINE_WIN, "tie_rate": M.REFINE_TIE, "loss_rate": M.REFINE_LOSS, "harm_rate": M.REFINE_HARM,
    "acceptance_rate": M.REFINE_ACCEPT, "proxy_lift": M.REFINE_PROXY_LIFT,
    "gold_refine_lift": M.REFINE_GOLD_REFINE_LIFT, "proxy_gold_gap": M.REFINE_GAP, "kl_ref": M.REFINE_KL_REF,
    "copy_rate": M.REFINE_COPY, "edit_distance": M.REFINE_EDIT_DISTANCE,
}


def refine_reference_kind(loss: str, params: Any) -> Optional[str]:
    """Which policy goes into ``logp_ref``: None, "snapshot" or "reference" (the reference refiner,
    ``env.reference``): :func:`bench.families.sequence.reference_kind`, with its fixed policy read as the reference
    refiner, and KTO's reference point also the reference refiner (its label compares the rewrite with A₁)."""
    kind = "initial" if loss == "kto" else reference_kind(loss, params)
    return {"snapshot": "snapshot", "initial": "reference"}.get(kind)


def single_scores(loss: str, reward: Tensor, delta: Tensor) -> Optional[Tensor]:
    """The ``scores`` of a single-rewrite batch: DRO-V reads R_φ(S, A₂) (raw: its V(x) lives in R_φ units), KTO
    Δ = R_φ(S, A₂) − R_φ(S, A₁) (its desirable label is then 1[Δ > 0]); other losses none (None)."""
    return reward if loss == "dro_v" else delta if loss == "kto" else None


def check_batch(env: str, batch_kind: str, candidates: str, valid: Iterable[tuple[str, str]], k: Optional[int] = None,
                algorithm: str = "") -> None:
    """ConfigError (one line) unless (batch kind, candidates) is one of the scale's builders ``valid``, and, for a
    group loss given the env's ``k``, unless K ≥ 2 rewrites form a group."""
    valid = tuple(valid)
    if (batch_kind, candidates) not in valid:
        choices = ", ".join(f"{k}/{c}" for k, c in valid)
        raise ConfigError(f"algorithm.candidates={candidates!r}: env={env} has no batch for {batch_kind} losses "
                          f"with it; valid (batch kind/candidates): {choices}")
    if k is not None and batch_kind == "group" and k < 2:
        raise ConfigError(f"env.k={k}: must be >= 2 for algorithm={algorithm} (K rewrites per state form a group; a "
                          "group of one gives no gradient)")


def fit_ranked_lists(ranked_scores: Callable[[Tensor], Tensor], params: Iterable[Tensor], n_lists: int, cfg: Any,
                     seed: int) -> dict[str, float]:
    """Fit R_φ in place by the Plackett–Luce / Bradley–Terry NLL (:func:`envs.refine.reward_model.pl_nll_ranked`) on
    ``n_lists`` annotated lists: ``ranked_scores(idx)`` gives R_φ of lists ``idx`` [b] as [b, L], items best first.
    AdamW(``cfg.rm_lr``, weight decay ``cfg.rm_l2``) on ``params``, ``cfg.rm_steps`` steps of min(``cfg.rm_batch``,
    n) lists drawn without replacement from stream "rm_fit"; logits β_ann·R_φ. Returns {"rm_loss": last NLL per
    list}. Shared by the scales whose R_φ is a network."""
    order = torch.Generator().manual_seed(stream_seed(seed, "rm_fit"))
    opt = torch.optim.AdamW(params, lr=cfg.rm_lr, weight_decay=cfg.rm_l2)
    b = min(cfg.rm_batch, n_lists)
    last = 0.0
    for _ in range(cfg.rm_steps):
        idx = torch.randperm(n_lists, generator=order)[:b]
        loss = pl_nll_ranked(cfg.annotator_beta * ranked_scores(idx)) / b
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach())
    return {"rm_loss": last}


def reward_model_metrics(cfg: Any, lift: Tensor, rm_accuracy: Tensor) -> dict[str, Tensor]:
    """``eval/rm_accuracy`` and, for a fitted R_φ with a finite budget, ``eval/lift_per_annotation``
    (lift / ``env.annotations``); each [S]."""
    out = {M.REFINE_RM_ACCURACY: rm_accuracy}
    if cfg.reward_model == "fitted" and cfg.annotations > 0:
        out[M.REFINE_LIFT_PER_ANNOTATION] = lift / cfg.annotations
    return out
