"""The deployment gate: the reward model R_φ chooses between the base action A₁ and refinements.

Reading of the rule (the patent application US 2025/0265471 A1 describes a reward model that selects
either the first or the refined action; its exact rule is not public in full, so this is the suite's
reading, with Δ(b) = R_φ(S, b) − R_φ(S, A₁)):

* with probability 1 − p the refiner is not consulted and A₁ is deployed;
* otherwise K′ refinements are drawn i.i.d. from π_θ(·|S, A₁), and

  - ``rule="softmax"``: every refinement with Δ < 0 is rejected; the kept ones (each draw is its own
    candidate, so an action drawn twice counts twice) and A₁ itself (Δ = 0) form the candidate set, and
    one is deployed with probability ∝ exp(T·Δ). T → ∞ deploys an R_φ-best candidate (ties split
    evenly), T = 0 a uniform one among the kept;
  - ``rule="two_way"``: the R_φ-best of the K′ draws, A₂, is deployed with probability σ(T·Δ(A₂)) when
    Δ(A₂) ≥ 0 and A₁ otherwise (P(A₂) = σ(T·(R₂ − R₁)) when R₂ ≥ R₁). With K′ = 1 it equals the softmax
    rule (A₁ has weight e⁰ = 1, A₂ weight e^{TΔ}).

So the gate never deploys a refinement with Δ < 0. :func:`gate_distribution` gives the exact deployed
distribution; :func:`sample_gate` draws from the rule itself (used to check the exact form).

Exactness of the softmax rule. With w_b = exp(T·Δ_b)·1[Δ_b ≥ 0] and draws d₁..d_K′, the deployed action
is draw slot j with probability w_{d_j}/(1 + Σ_i w_{d_i}). By exchangeability of the draws,

    P(deploy refinement b) = K′·π(b)·w_b·E[1/(1 + w_b + W)],   W = Σ_{i=1}^{K′−1} w_{d_i},

and the expectation runs over the multinomial distribution of the other K′ − 1 draws, enumerated over
its C(M + K′ − 2, K′ − 1) count vectors (``RefineTabularConfig`` bounds that number), in log space so any
T ≥ 0 is stable. A₁ receives the rest of the mass.
"""
from __future__ import annotations

from functools import lru_cache
from math import lgamma

import torch
from torch import Tensor

from envs.refine.config import GATE_RULES

#: Leading states per chunk of the exact softmax gate (bounds the [chunk, Q, M] temporaries).
CHUNK_ELEMENTS = 4_000_000


@lru_cache(maxsize=32)
def count_vectors(n_actions: int, n_draws: int) -> tuple[Tensor, Tensor]:
    """All count vectors c ∈ ℕ^M with Σ c = n_draws, as ([Q, M] float counts, [Q] log multinomial
    coefficients log(n!/Π c_m!)); Q = C(M + n − 1, n). Q = 1 (the zero vector) when n_draws = 0."""
    rows: list[list[int]] = []

    def fill(prefix: list[int], left: int, slots: int) -> None:
        if slots == 1:
            rows.append(prefix + [left])
            return
        for c in range(left, -1, -1):
            fill(prefix + [c], left - c, slots - 1)

    fill([], n_draws, n_actions)
    counts = torch.tensor(rows, dtype=torch.float64)
    log_coef = torch.tensor([lgamma(n_draws + 1) - sum(lgamma(c + 1) for c in r) for r in rows], dtype=torch.float64)
    return counts, log_coef


def log_weights(delta: Tensor, T: float) -> Tensor:
    """log w = T·Δ where Δ ≥ 0, −inf where Δ < 0 (rejected); same shape as ``delta``."""
    kept = delta >= 0
    scaled = delta * T if T > 0 else torch.zeros_like(delta)
    return torch.where(kept, scaled, torch.full_like(delta, float("-inf")))


def refinement_pick_probs(probs: Tensor, delta: Tensor, T: float, gate_k: int, rule: str) -> Tensor:
    """P(the gate deploys a refinement equal to action b | the refiner is consulted): [..., M].

    probs: π_θ(·|x) [..., M]; delta: Δ_b = R_φ(s, b) − R_φ(s, a₁) [..., M] (Δ_{a₁} = 0); T ≥ 0; gate_k = K′.
    The remainder 1 − Σ_b is A₁'s own slot (softmax rule) or the rejection of A₂ (two-way rule).
    ValueError for an unknown rule.
    """
    if rule == "softmax":
        return _softmax_pick(probs, delta, T, gate_k)
    if rule == "two_way":
        return _two_way_pick(probs, delta, T, gate_k)
    raise ValueError(f"env.gate_rule={rule!r}; valid: {', '.join(GATE_RULES)}")


def _softmax_pick(probs: Tensor, delta: Tensor, T: float, gate_k: int) -> Tensor:
    shape, M = probs.shape, probs.shape[-1]
    p = probs.reshape(-1, M).to(torch.float64)
    lw = log_weights(delta.reshape(-1, M).to(torch.float64), T)
    counts, log_coef = count_vectors(M, gate_k - 1)
    counts, log_coef = counts.to(p.device), log_coef.to(p.device)
    chunk = max(1, CHUNK_ELEMENTS // (counts.shape[0] * M))
    out = []
    for lo in range(0, p.shape[0], chunk):
        pc, lwc = p[lo:lo + chunk], lw[lo:lo + chunk]
        logp = torch.log(pc)
        # log P(count vector c) = log coef + Σ_m c_m log π_m (0·log 0 := 0)
        term = torch.where(counts[None] > 0, counts[None] * logp[:, None, :], torch.zeros(1, dtype=p.dtype,
                                                                                           device=p.device))
        log_pc = log_coef[None] + term.sum(-1)                                          # [n, Q]
        log_cw = torch.where(counts[None] > 0, torch.log(counts)[None] + lwc[:, None, :],
                             torch.full((1,), float("-inf"), dtype=p.dtype, device=p.device))
        log_w_others = torch.logsumexp(log_cw, -1)                                       # [n, Q]: log W
        log_self = torch.logaddexp(torch.zeros_like(lwc), lwc)                           # log(1 + w_b)
        log_den = torch.logaddexp(log_self[:, None, :], log_w_others[..., None])        # [n, Q, M]
        share = torch.exp(log_pc[..., None] + lwc[:, None, :] - log_den).sum(1)          # E[w_b/(1 + w_b + W)]
        out.append(gate_k * pc * share)
    return torch.cat(out).reshape(shape).to(probs.dtype)


def _two_way_pick(probs: Tensor, delta: Tensor, T: float, gate_k: int) -> Tensor:
    """Best of K′ draws by Δ (exact ties split ∝ π), then accepted with σ(T·Δ) when Δ ≥ 0."""
    p, d = probs.to(torch.float64), delta.to(torch.float64)
    le = (d[..., None, :] <= d[..., :, None]).to(p.dtype)       # [.., b, d']: Δ_{d'} ≤ Δ_b
    lt = (d[..., None, :] < d[..., :, None]).to(p.dtype)
    F_le, F_lt = (le * p[..., None, :]).sum(-1), (lt * p[..., None, :]).sum(-1)
    tie_mass = F_le - F_lt
    best = torch.where(tie_mass > 0, p * (F_le ** gate_k - F_lt ** gate_k) / torch.where(tie_mass > 0, tie_mass,
                                                                                           torch.ones_like(tie_mass)),
                       torch.zeros_like(p))
    accept = torch.where(d >= 0, torch.sigmoid(d * T), torch.zeros_like(d))
    return (best * accept).to(probs.dtype)


def gate_distribution(probs: Tensor, delta: Tensor, a1: Tensor, p: float, T: float, gate_k: int,
                      rule: str = "softmax") -> Tensor:
    """Exact deployed distribution F(b | x) over the M actions: [..., M].

    probs π_θ(·|x) and delta Δ [..., M]; a1 [...] (long) the base action of each state (Δ_{a₁} = 0).
    F = (1 − p)·e_{a₁} + p·(P_refine + (1 − Σ P_refine)·e_{a₁}) with P_refine from
    :func:`refinement_pick_probs`. Every row sums to 1; F(b) = 0 wherever Δ_b < 0.
    """
    pick = refinement_pick_probs(probs, delta, T, gate_k, rule)
    onehot = torch.nn.functional.one_hot(a1, probs.shape[-1]).to(pick.dtype)
    rest = (1.0 - pick.sum(-1, keepdim=True)).clamp_min(0.0)
    return (1.0 - p) * onehot + p * (pick + rest * onehot)


def sample_gate(probs: Tensor, delta: Tensor, a1: Tensor, p: float, T: float, gate_k: int, rule: str,
                generator: torch.Generator) -> Tensor:
    """One deployed action per state by running the rule itself: [...] long.

    probs, delta [..., M]; a1 [...]; draws from ``generator`` (CPU). The softmax rule picks among A₁ and
    the kept draws by the Gumbel-max trick on log w; the two-way rule keeps the best draw (ties to the
    first drawn) and accepts it with probability σ(T·Δ) when Δ ≥ 0.
    """
    M = probs.shape[-1]
    flat_p, flat_d, flat_a1 = probs.reshape(-1, M), delta.reshape(-1, M), a1.reshape(-1)
    n = flat_p.shape[0]
    consult = torch.rand(n, generator=generator, dtype=torch.float64) < p
    draws = torch.multinomial(flat_p.to(torch.float64), gate_k, replacement=True, generator=generator)  # [n, K′]
    d_draw = flat_d.gather(1, draws)
    if rule == "softmax":
        cand = torch.cat([flat_a1[:, None], draws], 1)
        lw = torch.cat([torch.zeros(n, 1, dtype=torch.float64), log_weights(d_draw.to(torch.float64), T)], 1)
        u = torch.rand(lw.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300)
        chosen = cand.gather(1, (lw - torch.log(-torch.log(u))).argmax(1, keepdim=True))[:, 0]
    elif rule == "two_way":
        j = d_draw.argmax(1, keepdim=True)
        a2, d2 = draws.gather(1, j)[:, 0], d_draw.gather(1, j)[:, 0]
        accept = (d2 >= 0) & (torch.rand(n, generator=generator, dtype=torch.float64) < torch.sigmoid(d2 * T))
        chosen = torch.where(accept, a2, flat_a1)
    else:
        raise ValueError(f"env.gate_rule={rule!r}; valid: {', '.join(GATE_RULES)}")
    return torch.where(consult, chosen, flat_a1).reshape(a1.shape)


def gate_choice_probs(delta_draws: Tensor, p: float, T: float, rule: str = "softmax") -> Tensor:
    """The gate's choice among A₁ and K′ refinements already drawn, exactly over its own randomness: [..., 1 + K′].

    delta_draws: Δ of the K′ draws [..., K′] (R_φ units; a draw equal to A₁ has Δ = 0). Column 0 is A₁,
    column j ≥ 1 draw j. The rule of the module doc given the draws (the scales whose refinements cannot be
    enumerated, e.g. sequences, draw them and average this over states): with probability 1 − p A₁;
    otherwise ``"softmax"`` picks among A₁ (weight 1) and the draws with Δ ≥ 0 (weight exp(T·Δ)),
    ``"two_way"`` takes the R_φ-best draw (ties to the first drawn, as :func:`sample_gate`) with probability
    σ(T·Δ) when Δ ≥ 0. A draw with Δ < 0 always gets probability 0. Rows sum to 1 (float64).
    ValueError for an unknown rule.
    """
    d = delta_draws.to(torch.float64)
    zero = torch.zeros_like(d[..., :1])
    if rule == "softmax":
        pick = torch.softmax(torch.cat([zero, log_weights(d, T)], -1), -1)
    elif rule == "two_way":
        j = d.argmax(-1, keepdim=True)
        best = d.gather(-1, j)
        accept = torch.where(best >= 0, torch.sigmoid(best * T), torch.zeros_like(best))
        refine = torch.zeros_like(d).scatter(-1, j, accept)
        pick = torch.cat([1.0 - accept, refine], -1)
    else:
        raise ValueError(f"env.gate_rule={rule!r}; valid: {', '.join(GATE_RULES)}")
    keep_a1 = torch.cat([torch.ones_like(zero), torch.zeros_like(d)], -1)
    return (1.0 - p) * keep_a1 + p * pick
