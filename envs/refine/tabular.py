"""Tabular refinement task: tables, sampling and exact metrics (every tensor has a leading seed axis S).

Notation: contexts s ∈ [0, N) uniform; base action A₁ ~ π₀(·|s); refiner state x = (s, A₁) with
probability p(x) = π₀(a₁|s)/N; refinement A₂ ~ π_θ(·|x); gate output A_f ~ F(·|x)
(:func:`envs.refine.gate.gate_distribution`); Δ_φ(x, b) = R_φ(s, b) − R_φ(s, a₁), Δ*(x, b) likewise for R*.

Metrics (:func:`evaluate`, exact sums over every s, a₁, a₂ — no sampling), each [S]:

* ``gold_value``   J = E[R*(S, A_f)], the gold value of what the gate deploys;
* ``lift``         J − E[R*(S, A₁)];
* ``best_response_lift``  E_s[max_b R*(s, b)] − E[R*(S, A₁)]: the lift of a refiner that always proposes
  the gold-best action, deployed by a gate with R_φ = R*, p = 1, T → ∞ (the closed-form ceiling);
* ``win_rate`` / ``tie_rate`` / ``loss_rate``  P(R*(A₂) >, =, < R*(A₁)) for the refiner's proposal A₂ (un-gated);
* ``harm_rate``    P(A_f ≠ A₁ ∧ R*(A_f) < R*(A₁)): the gate deployed a gold-worse refinement;
* ``acceptance_rate``  P(A_f ≠ A₁) (a proposal equal to A₁ changes nothing and does not count);
* ``proxy_lift`` / ``gold_refine_lift``  E[Δ_φ(X, A₂)] and E[Δ*(X, A₂)] of the un-gated proposal;
* ``proxy_gold_gap``  E[R_φ(A₂)] − E[R*(A₂)] measured from A₁, i.e. proxy_lift − gold_refine_lift. It differs
  from the raw E[R_φ(S, A₂)] − E[R*(S, A₂)] by E[R_φ(S, A₁)] − E[R*(S, A₁)], a constant of the seed (R_φ is
  identified only up to a constant per context), so its curve against KL has the same shape and starts at 0
  for a refiner that copies A₁: the over-optimisation curve (Gao, Schulman & Hilton 2023, §3);
* ``kl_ref``       E_x[KL(π_θ(·|x) ‖ π_ref(·|x))] in nats;
* ``copy_rate``    P(A₂ = A₁) (in the tabular scale the edit distance of a proposal is 1 − this).
"""
from __future__ import annotations

import torch
from torch import Tensor

from envs.refine.config import RefineTabularConfig
from envs.refine.gate import gate_distribution


def base_logprobs(cfg: RefineTabularConfig, generators: list[torch.Generator], device: str = "cpu") -> Tensor:
    """log π₀ [S, N, M]: log_softmax(g/τ₀), g ~ N(0, 1), seed s from ``generators[s]`` ("base" stream)."""
    g = torch.stack([torch.randn(cfg.n_contexts, cfg.n_actions, generator=gen) for gen in generators])
    return torch.log_softmax(g / cfg.base_temperature, -1).to(device)


def gold_reward(cfg: RefineTabularConfig, generators: list[torch.Generator], device: str = "cpu") -> Tensor:
    """R* [S, N, M] ~ N(0, gold_std²), seed s from ``generators[s]`` ("gold" stream)."""
    g = torch.stack([torch.randn(cfg.n_contexts, cfg.n_actions, generator=gen) for gen in generators])
    return (cfg.gold_std * g).to(device)


def annotation_policy(cfg: RefineTabularConfig, base_probs: Tensor) -> Tensor:
    """q(·|s) [S, N, M] that annotated actions are drawn from: π₀ (``"base"``) or uniform."""
    if cfg.annotation_policy == "base":
        return base_probs
    return torch.full_like(base_probs, 1.0 / cfg.n_actions)


def copy_logits(n_contexts: int, n_actions: int, bias: float, device: str = "cpu") -> Tensor:
    """[N, M, M] logits bias·1[a₂ = a₁] (a copy-biased refiner; uniform when bias = 0)."""
    eye = torch.eye(n_actions, device=device)
    return (bias * eye).expand(n_contexts, n_actions, n_actions).clone()


def init_refiner(cfg: RefineTabularConfig, generators: list[torch.Generator], device: str = "cpu") -> Tensor:
    """Initial refiner logits z [S, N, M, M]: copy_bias·1[a₂ = a₁] + init_std·N(0, 1) ("init" stream)."""
    N, M = cfg.n_contexts, cfg.n_actions
    noise = torch.stack([torch.randn(N, M, M, generator=g) for g in generators]).to(device)
    return copy_logits(N, M, cfg.copy_bias, device)[None] + cfg.init_std * noise


def reference_logprobs(cfg: RefineTabularConfig, initial: Tensor) -> Tensor:
    """log π_ref [S, N, M, M]: the initial refiner (``reference="initial"``) or the copy-biased
    softmax(reference_copy_bias·1[a₂ = a₁]) (``"copy"``)."""
    if cfg.reference == "initial":
        return torch.log_softmax(initial, -1)
    logits = copy_logits(cfg.n_contexts, cfg.n_actions, cfg.reference_copy_bias, str(initial.device))
    return torch.log_softmax(logits, -1).expand_as(initial).clone()


def state_probs(base_probs: Tensor) -> Tensor:
    """p(x) = π₀(a₁|s)/N [S, N, M]: the distribution of refiner states (sums to 1 per seed)."""
    return base_probs / base_probs.shape[1]


def deltas(reward: Tensor) -> Tensor:
    """Δ[s, a₁, b] = R(s, b) − R(s, a₁): [S, N, M] → [S, N, M, M]."""
    return reward[..., None, :] - reward[..., :, None]


def sample_states(base_probs: Tensor, n: int, generators: list[torch.Generator]) -> tuple[Tensor, Tensor]:
    """n states per seed: (s [S, n] uniform, a₁ [S, n] ~ π₀(·|s)), seed s from ``generators[s]`` (CPU),
    returned on ``base_probs``' device."""
    S, N, _ = base_probs.shape
    probs = base_probs.detach().cpu().to(torch.float64)
    ctx, a1 = [], []
    for i, g in enumerate(generators):
        c = torch.randint(N, (n,), generator=g)
        ctx.append(c)
        a1.append(torch.multinomial(probs[i, c], 1, generator=g)[:, 0])
    return torch.stack(ctx).to(base_probs.device), torch.stack(a1).to(base_probs.device)


def sample_rewrites(probs: Tensor, k: int, generators: list[torch.Generator]) -> Tensor:
    """k refinements i.i.d. per state: probs π_θ(·|x) [S, n, M] → [S, n, k] (seed s from ``generators[s]``)."""
    rows = probs.detach().cpu().to(torch.float64)
    draws = [torch.multinomial(rows[i], k, replacement=True, generator=g) for i, g in enumerate(generators)]
    return torch.stack(draws).to(probs.device)


def best_response_lift(gold: Tensor, base_probs: Tensor) -> Tensor:
    """E_s[max_b R*(s, b)] − E[R*(S, A₁)] per seed: [S] (module doc)."""
    base_value = (state_probs(base_probs) * gold).flatten(1).sum(-1)
    return gold.max(-1).values.mean(-1) - base_value


@torch.no_grad()
def evaluate(cfg: RefineTabularConfig, refiner_logp: Tensor, ref_logp: Tensor, base_probs: Tensor, gold: Tensor,
             proxy: Tensor) -> dict[str, Tensor]:
    """Exact metrics of the module doc, each [S].

    refiner_logp, ref_logp: log π_θ, log π_ref [S, N, M, M]; base_probs π₀ [S, N, M]; gold R*, proxy R_φ
    [S, N, M]. The gate uses cfg.gate_p, gate_T, gate_k, gate_rule and sees only R_φ.
    """
    f64 = torch.float64
    pi, logpi, logref = refiner_logp.exp().to(f64), refiner_logp.to(f64), ref_logp.to(f64)
    px = state_probs(base_probs).to(f64)                                    # [S, N, M]
    gold, proxy = gold.to(f64), proxy.to(f64)
    d_gold, d_proxy = deltas(gold), deltas(proxy)                            # [S, N, M(a₁), M(b)]
    S, N, M = px.shape
    a1 = torch.arange(M, device=px.device).expand(S, N, M)
    deployed = gate_distribution(pi, d_proxy, a1, cfg.gate_p, cfg.gate_T, cfg.gate_k, cfg.gate_rule)
    eye = torch.eye(M, dtype=f64, device=px.device)

    def expect(per_x: Tensor) -> Tensor:
        return (px * per_x).flatten(1).sum(-1)

    base_value = expect(gold)
    gold_value = expect((deployed * gold[..., None, :]).sum(-1))
    proxy_lift, gold_refine_lift = expect((pi * d_proxy).sum(-1)), expect((pi * d_gold).sum(-1))
    kl = torch.where(pi > 0, pi * (logpi - logref), torch.zeros_like(pi)).sum(-1)
    out = {
        "gold_value": gold_value,
        "lift": gold_value - base_value,
        "best_response_lift": best_response_lift(gold, base_probs.to(f64)),
        "win_rate": expect((pi * (d_gold > 0)).sum(-1)),
        "tie_rate": expect((pi * (d_gold == 0)).sum(-1)),
        "loss_rate": expect((pi * (d_gold < 0)).sum(-1)),
        "harm_rate": expect((deployed * (1 - eye) * (d_gold < 0)).sum(-1)),
        "acceptance_rate": expect((deployed * (1 - eye)).sum(-1)),
        "proxy_lift": proxy_lift,
        "gold_refine_lift": gold_refine_lift,
        "proxy_gold_gap": proxy_lift - gold_refine_lift,
        "kl_ref": expect(kl),
        "copy_rate": expect((pi * eye).sum(-1)),
    }
    return {k: v.to(torch.float32) for k, v in out.items()}
