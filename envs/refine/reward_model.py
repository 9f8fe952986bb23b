"""Simulated annotators and the learned reward model R_φ of the tabular refinement task.

Annotations (per seed, from its own "annotations" stream): a context s ~ uniform, L actions drawn i.i.d.
from the annotation policy q(·|s) (the base policy π₀, or uniform), ranked by the annotator with a
Plackett–Luce draw of weights exp(β_ann·R*(s, a)) — sorting β_ann·R* + Gumbel noise (Luce 1959;
Plackett 1975). For L = 2 this is the Bradley–Terry rule P(A ≻ B) = σ(β_ann·(R*(A) − R*(B)))
(Bradley & Terry 1952).

R_φ is an [N, M] table fitted once per seed before RL by the (PL / BT) negative log-likelihood of the
annotations under the same link, P(A ≻ B) = σ(β_ann·(R_φ(A) − R_φ(B))) — β_ann fixes R_φ's units, so
R_φ estimates R* (up to a constant per context: the likelihood sees only differences) — plus a Gaussian
prior R_φ ~ N(0, 1/λ) (MAP; with R* ~ N(0, σ*²), λ = 1/σ*² is the matched prior):

    L(φ) = [Σ_i NLL_i(φ) + (λ/2)·Σ_{s,a} φ(s, a)²] / n            (n annotations)

With unlimited annotations (``annotations = 0``) R_φ minimises the expected pairwise loss instead,
E_{s, A, B ~ q}[−P*·log σ(β(φ_A − φ_B)) − (1 − P*)·log σ(β(φ_B − φ_A))], P* = σ(β(R*_A − R*_B)), whose
minimisers are exactly R* + c(s) for any β (a cross-entropy to a member of the model family).

The fit is full-batch L-BFGS (strong-Wolfe line search) in float64, one seed at a time, from φ = 0:
deterministic, and a seed's R_φ is the same alone or inside a batch of seeds. The BT/PL gradient sums to
zero over a context's actions, so without a prior each context's mean stays at its start, 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Annotations:
    """One seed's annotations: ``contexts`` [n] long, ``ranked`` [n, L] long (best first)."""

    contexts: Tensor
    ranked: Tensor


def simulate_annotations(gold: Tensor, q: Tensor, n: int, list_size: int, beta: float,
                         generator: torch.Generator) -> Annotations:
    """n ranked lists for one seed: gold R* [N, M], annotation policy q [N, M] (rows sum to 1).

    Contexts uniform, L = ``list_size`` actions i.i.d. from q(·|s), ranked by sorting β·R* + Gumbel
    (a Plackett–Luce sample; Bradley–Terry for L = 2). All draws from ``generator`` (CPU).
    """
    N = gold.shape[0]
    contexts = torch.randint(N, (n,), generator=generator)
    items = torch.multinomial(q[contexts].to(torch.float64), list_size, replacement=True, generator=generator)
    ranked = items.gather(1, plackett_luce_order(gold[contexts[:, None], items], beta, generator))
    return Annotations(contexts, ranked)


def plackett_luce_order(gold_values: Tensor, beta: float, generator: torch.Generator) -> Tensor:
    """The annotator's ranking of n lists of L items with gold rewards ``gold_values`` [n, L]: the positions
    [n, L] (long) of the items, best first — a Plackett–Luce draw with weights exp(β·R*), by sorting
    β·R* + Gumbel noise (drawn [n, L] in float64 from ``generator``, CPU). Shared by every scale."""
    n, L = gold_values.shape
    u = torch.rand(n, L, generator=generator, dtype=torch.float64).clamp(1e-300, 1.0)
    keys = beta * gold_values.detach().cpu().to(torch.float64) - torch.log(-torch.log(u))
    return keys.argsort(-1, descending=True)


def pl_nll_ranked(scores: Tensor) -> Tensor:
    """Σ_i −log P_PL(ranking_i | scores_i) for scores [n, L] already in ranked order (best first, on the
    logit scale, i.e. β·R_φ) → scalar. For L = 2: Σ_i softplus(−(s_winner − s_loser))."""
    tail = torch.logcumsumexp(scores.flip(-1), -1).flip(-1)                # log Σ_{j ≥ i} exp(s_j)
    return (tail - scores)[:, :-1].sum()


def pl_nll(phi: Tensor, ann: Annotations, beta: float) -> Tensor:
    """Σ_i −log P_PL(ranking_i | β·φ): phi [N, M] → scalar. For L = 2 it is the BT loss
    Σ_i softplus(−β(φ_winner − φ_loser))."""
    return pl_nll_ranked(beta * phi[ann.contexts[:, None], ann.ranked])    # [n, L], best first


def pair_weights(q: Tensor) -> Tensor:
    """Probability of each ordered annotated pair (s, a, b): (1/N)·q(a|s)·q(b|s), [N, M, M] (sums to 1)."""
    return q[:, :, None] * q[:, None, :] / q.shape[0]


def population_bt_nll(phi: Tensor, gold: Tensor, q: Tensor, beta: float) -> Tensor:
    """Expected BT loss per annotated pair under unlimited annotations (module doc): scalar."""
    w = pair_weights(q)
    p_star = torch.sigmoid(beta * (gold[:, :, None] - gold[:, None, :]))   # P(a ≻ b)
    d = beta * (phi[:, :, None] - phi[:, None, :])
    return (w * (p_star * torch.nn.functional.softplus(-d) + (1 - p_star) * torch.nn.functional.softplus(d))).sum()


def fit_one(objective, shape: tuple[int, int], steps: int) -> Tensor:
    """argmin of ``objective(phi)`` over an [N, M] float64 table by L-BFGS from 0 (≤ ``steps`` iterations)."""
    phi = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([phi], lr=1.0, max_iter=steps, history_size=20, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = objective(phi)
        loss.backward()
        return loss

    opt.step(closure)
    return phi.detach()


def fit_reward_model(gold: Tensor, q: Tensor, annotations: int, list_size: int, beta: float, l2: float,
                     steps: int, generators: list[torch.Generator]) -> Tensor:
    """R_φ [S, N, M] (float32, on ``gold``'s device) for every seed: gold R* and annotation policy q
    [S, N, M]; ``annotations`` lists per seed from ``generators[s]`` (0 = unlimited: the population loss,
    list_size must be 2, no prior). Objective and optimiser: module doc."""
    out = []
    for s, g in enumerate(generators):
        gold_s, q_s = gold[s].detach().cpu().to(torch.float64), q[s].detach().cpu().to(torch.float64)
        if annotations == 0:
            objective = lambda phi, gold_s=gold_s, q_s=q_s: population_bt_nll(phi, gold_s, q_s, beta)  # noqa: E731
        else:
            ann = simulate_annotations(gold_s, q_s, annotations, list_size, beta, g)
            objective = lambda phi, ann=ann: (  # noqa: E731
                pl_nll(phi, ann, beta) + 0.5 * l2 * phi.pow(2).sum()) / annotations
        out.append(fit_one(objective, tuple(gold_s.shape), steps))
    return torch.stack(out).to(device=gold.device, dtype=torch.float32)


def pairwise_accuracy(phi: Tensor, gold: Tensor, q: Tensor) -> Tensor:
    """Exact held-out pairwise accuracy of R_φ per seed: [S].

    Over pairs drawn as the annotations are (s uniform, A, B ~ q i.i.d.) with R*(A) ≠ R*(B), the
    probability that R_φ orders A, B as R* does (an R_φ tie counts ½): the accuracy on an unlimited
    held-out set. phi, gold, q: [S, N, M].
    """
    w = q[..., :, None] * q[..., None, :]
    better = (gold[..., :, None] > gold[..., None, :]).to(w.dtype)          # R*(a) > R*(b)
    dphi = phi[..., :, None] - phi[..., None, :]
    right = (dphi > 0).to(w.dtype) + 0.5 * (dphi == 0).to(w.dtype)
    num = (w * better * right).flatten(1).sum(-1)
    den = (w * better).flatten(1).sum(-1)
    return num / torch.where(den > 0, den, torch.ones_like(den))
