"""Refinement at the sequence scale: the token reversal task (:mod:`envs.reversal`).

Context S = a prompt x ∈ [0, V)^H (uniform); base answer A₁ ~ π₀(·|x), a frozen, partially trained reversal
transformer; refinement A₂ ~ π_θ(·|x, A₁), a transformer reading x and A₁; gold reward R*(x, A) on the target
y = logic(x) (:func:`gold_reward`):

* ``gold="dense"``   R* = (1/H)·Σ_t 1[A_t = y_t], the fraction of positions correct;
* ``gold="sparse"``  R* = Π_t 1[A_t = y_t], exact match.

Either way max_A R*(x, A) = 1 (A = y), so the best-response lift — a refiner that always proposes y, deployed
by a gate with R_φ = R*, p = 1, T → ∞ — is 1 − E[R*(S, A₁)].

Annotations (:func:`rank_lists`): a prompt x, L answers drawn from the annotation policy (π₀, or uniform
sequences), ranked by the Plackett–Luce draw of :func:`envs.refine.reward_model.plackett_luce_order`
(Bradley–Terry for L = 2). R_φ(x, A) is a small transformer fitted by the same (PL / BT) negative
log-likelihood (:func:`envs.refine.reward_model.pl_nll_ranked`); the harness holds the networks
(:mod:`bench.families.refine_sequence`).

Metrics (:func:`gate_metrics`) are Monte-Carlo estimates over held-out states x = (S, A₁) with K′ refinements
drawn per state; the gate's own choice among A₁ and the draws is taken exactly given the draws
(:func:`envs.refine.gate.gate_choice_probs`), so it never deploys a draw with Δ < 0. The names and meanings
are the tabular scale's (:mod:`envs.refine.tabular`), with the un-gated proposal A₂ averaged over the K′
draws, the KL to the reference estimated by samples, and ``edit_distance`` the mean fraction of A₂'s tokens
that differ from A₁ (Hamming distance / H: both have length H, so this bounds the Levenshtein distance / H).

Imports torch only; every function works on any leading shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from envs.refine.config import ANNOTATION_POLICIES, GATE_RULES, REFERENCES, REWARD_MODELS, VALUE_INITS, check_choice
from envs.refine.gate import gate_choice_probs
from envs.refine.reward_model import plackett_luce_order
from envs.reversal import LOGICS, ReversalTask

GOLD_REWARDS = ("dense", "sparse")      # RefineSequenceConfig.gold


@dataclass(frozen=True)
class RefineSequenceConfig:
    """Sequence-scale refinement task (token reversal; module doc).

    π₀: a :class:`bench.models.transformer.TransformerPolicy` (architecture of ``model=``) trained by token
    cross-entropy on the target until its sampled token accuracy reaches ``base_accuracy`` (or
    ``base_max_steps``), cached by the hash of these settings and the seed. The refiner: a transformer over the
    buffer [x, A₁, A₂] whose logits at answer position t get ``copy_bias``·1[v = A₁_t] (0: from scratch).
    R_φ: a transformer of the same architecture with a scalar head, fitted on ``annotations`` lists.
    """

    name: str = "refine_sequence"
    horizon: int = field(default=6, metadata={"ge": 1, "le": 64})      # H, prompt and answer length
    vocab: int = field(default=4, metadata={"ge": 2})                  # V tokens
    logic: str = field(default="reverse_copy", metadata={"choices": tuple(LOGICS)})
    gold: str = field(default="dense", metadata={"choices": GOLD_REWARDS})   # R*: fraction correct / exact match
    # -- frozen base policy π₀ (trained once per seed, cached) -------------------------------------------
    base_accuracy: float = field(default=0.6, metadata={"gt": 0, "le": 1})   # target sampled token accuracy
    base_max_steps: int = field(default=2000, metadata={"ge": 0})            # cap on its training steps
    base_lr: float = field(default=1e-3, metadata={"gt": 0})                 # Adam lr of its training
    base_batch: int = field(default=64, metadata={"ge": 1})                  # prompts per training step
    base_eval_every: int = field(default=5, metadata={"ge": 1})             # accuracy checked every n steps
    base_eval_prompts: int = field(default=512, metadata={"ge": 1})          # held-out prompts of that check
    # -- refiner and reference -------------------------------------------------------------------------
    copy_bias: float = field(default=4.0, metadata={"ge": 0})                # logit bonus of A₂_t = A₁_t
    # π_ref of the KL terms and of eval/kl_ref: the initial refiner, or the copy policy
    # softmax(reference_copy_bias·1[v = A₁_t]) per token
    reference: str = field(default="initial", metadata={"choices": REFERENCES})
    reference_copy_bias: float = field(default=4.0, metadata={"ge": 0})
    # -- simulated annotations and R_φ ------------------------------------------------------------------
    reward_model: str = field(default="fitted", metadata={"choices": REWARD_MODELS})
    annotations: int = field(default=1000, metadata={"ge": 1})               # annotated lists per seed
    list_size: int = field(default=2, metadata={"ge": 2})                    # 2: BT pairs; > 2: PL lists
    annotator_beta: float = field(default=10.0, metadata={"gt": 0})          # β_ann (R* in [0, 1])
    annotation_policy: str = field(default="base", metadata={"choices": ANNOTATION_POLICIES})
    rm_steps: int = field(default=300, metadata={"ge": 1})                   # Adam steps of the R_φ fit
    rm_lr: float = field(default=3e-3, metadata={"gt": 0})
    rm_batch: int = field(default=256, metadata={"ge": 1})                   # annotated lists per fit step
    rm_l2: float = field(default=0.01, metadata={"ge": 0})                   # AdamW decoupled weight decay
    rm_heldout: int = field(default=2000, metadata={"ge": 1})                # held-out pairs of eval/rm_accuracy
    # -- rollouts ----------------------------------------------------------------------------------------
    batch_size: int = field(default=16, metadata={"ge": 1})                  # B states (S, A₁) per step
    k: int = field(default=4, metadata={"ge": 1})                            # K rewrites per state
    keep_candidate: bool = False       # group losses: add A₁ itself as candidate K + 1 (Δ = 0)
    value_init: str = field(default="reward_model", metadata={"choices": VALUE_INITS})
    # -- deployment gate (envs.refine.gate) ---------------------------------------------------------------
    gate_p: float = field(default=1.0, metadata={"ge": 0, "le": 1})
    gate_T: float = field(default=10.0, metadata={"ge": 0, "le": 1e9})
    gate_k: int = field(default=4, metadata={"ge": 1})                       # K′ refinements per state
    gate_rule: str = field(default="softmax", metadata={"choices": GATE_RULES})
    eval_every: int = field(default=10, metadata={"ge": 1})
    eval_prompts: int = field(default=256, metadata={"ge": 1})               # held-out states per evaluation

    def __post_init__(self) -> None:
        for name, choices in (("gold", GOLD_REWARDS), ("logic", tuple(LOGICS)), ("reference", REFERENCES),
                              ("reward_model", REWARD_MODELS), ("annotation_policy", ANNOTATION_POLICIES),
                              ("value_init", VALUE_INITS), ("gate_rule", GATE_RULES)):
            check_choice(name, getattr(self, name), choices)

    def task(self) -> ReversalTask:
        """The reversal task of π₀'s training (per-token targets; the reward name is unused here)."""
        return ReversalTask(self.horizon, self.vocab, self.logic, "bag")


def gold_reward(task: ReversalTask, prompts: Tensor, answers: Tensor, gold: str) -> Tensor:
    """R*(x, A) [...]: prompts [n, H], answers [n, H] or [n, K, H] (module doc); ValueError for an unknown
    ``gold``."""
    check_choice("gold", gold, GOLD_REWARDS)
    c = task.correct(prompts, answers)
    return c.mean(-1) if gold == "dense" else c.prod(-1)


def edit_fraction(a2: Tensor, a1: Tensor) -> Tensor:
    """Fraction of positions where A₂ differs from A₁ [...]: a2 [..., H], a1 broadcastable to it."""
    return (a2 != a1).to(torch.get_default_dtype()).mean(-1)


def rank_lists(items: Tensor, gold_values: Tensor, beta: float, generator: torch.Generator) -> Tensor:
    """The annotator's ranking of n lists of L answers: items [n, L, H], gold R* [n, L] → items best first
    [n, L, H] (Plackett–Luce with weights exp(β·R*): :func:`envs.refine.reward_model.plackett_luce_order`)."""
    order = plackett_luce_order(gold_values, beta, generator).to(items.device)
    return items.gather(1, order[..., None].expand_as(items))


def pairwise_accuracy(proxy_a: Tensor, proxy_b: Tensor, gold_a: Tensor, gold_b: Tensor) -> Tensor:
    """Held-out pairwise accuracy of R_φ [...]: over the last axis (pairs), among pairs with R*(a) ≠ R*(b), the
    share that R_φ orders as R* does (an R_φ tie counts ½); 0.5 when no pair has unequal gold rewards."""
    unequal = (gold_a != gold_b).to(proxy_a.dtype)
    agree = torch.sign(proxy_a - proxy_b) * torch.sign(gold_a - gold_b)
    right = (agree > 0).to(proxy_a.dtype) + 0.5 * (agree == 0).to(proxy_a.dtype)
    den = unequal.sum(-1)
    return torch.where(den > 0, (right * unequal).sum(-1) / den.clamp_min(1), torch.full_like(den, 0.5))


@torch.no_grad()
def gate_metrics(cfg: RefineSequenceConfig, gold_a1: Tensor, proxy_a1: Tensor, gold_a2: Tensor, proxy_a2: Tensor,
                 same: Tensor, edit: Tensor, kl: Tensor) -> dict[str, Tensor]:
    """Monte-Carlo metrics of the module doc, each [S] (means over the n states of each seed).

    gold_a1, proxy_a1: R*(x, A₁), R_φ(x, A₁) [S, n]; gold_a2, proxy_a2: of the K′ draws [S, n, K′]; same: draw
    equal to A₁ [S, n, K′] (bool); edit: :func:`edit_fraction` of the draws [S, n, K′]; kl: a per-state estimate
    of KL(π_θ(·|x) ‖ π_ref(·|x)) in nats [S, n]. The gate reads only R_φ (cfg.gate_p, gate_T, gate_rule).
    """
    f64 = torch.float64
    gold_a1, proxy_a1, gold_a2, proxy_a2 = (t.to(f64) for t in (gold_a1, proxy_a1, gold_a2, proxy_a2))
    d_gold, d_proxy = gold_a2 - gold_a1[..., None], proxy_a2 - proxy_a1[..., None]
    choice = gate_choice_probs(d_proxy, cfg.gate_p, cfg.gate_T, cfg.gate_rule)       # [S, n, 1 + K′]
    pick = choice[..., 1:]                                                            # mass on each draw
    changed = (~same).to(f64)
    mean = lambda t: t.flatten(1).mean(-1)  # noqa: E731
    lift = mean((pick * d_gold).sum(-1))
    proxy_lift, gold_refine_lift = mean(d_proxy), mean(d_gold)
    out = {
        "gold_value": mean(gold_a1) + lift,
        "lift": lift,
        "best_response_lift": 1.0 - mean(gold_a1),
        "win_rate": mean((d_gold > 0).to(f64)),
        "tie_rate": mean((d_gold == 0).to(f64)),
        "loss_rate": mean((d_gold < 0).to(f64)),
        "harm_rate": mean((pick * changed * (d_gold < 0).to(f64)).sum(-1)),
        "acceptance_rate": mean((pick * changed).sum(-1)),
        "proxy_lift": proxy_lift,
        "gold_refine_lift": gold_refine_lift,
        "proxy_gold_gap": proxy_lift - gold_refine_lift,
        "kl_ref": mean(kl.to(f64)),
        "copy_rate": mean(same.to(f64)),
        "edit_distance": mean(edit.to(f64)),
    }
    return {k: v.to(torch.float32) for k, v in out.items()}
