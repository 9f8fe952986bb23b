"""The deployment gate (envs/refine/gate.py): the exact deployed distribution equals the rule run by
sampling, never puts mass on a refinement with Δ < 0, and has the stated limits."""
from __future__ import annotations

from math import comb

import pytest
import torch

from envs.refine.gate import count_vectors, gate_distribution, refinement_pick_probs, sample_gate


def instance(seed: int, n: int = 4, M: int = 5):
    """π_θ(·|x) [n, M], Δ [n, M] with Δ_{a1} = 0, a1 [n]."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, M, generator=g, dtype=torch.float64), -1)
    r = torch.randn(n, M, generator=g, dtype=torch.float64)
    a1 = torch.randint(M, (n,), generator=g)
    return probs, r - r.gather(1, a1[:, None]), a1


@pytest.mark.parametrize("M, draws", [(2, 0), (3, 2), (5, 3), (8, 3)])
def test_count_vectors_enumerate_the_multinomial(M, draws):
    counts, log_coef = count_vectors(M, draws)
    assert counts.shape == (comb(M + draws - 1, draws), M)
    assert torch.all(counts.sum(-1) == draws) and len({tuple(r.tolist()) for r in counts}) == counts.shape[0]
    p = torch.softmax(torch.arange(M, dtype=torch.float64), 0)
    prob = (log_coef + (counts * p.log()).sum(-1)).exp()
    assert abs(float(prob.sum()) - 1.0) < 1e-12


@pytest.mark.parametrize("rule", ["softmax", "two_way"])
@pytest.mark.parametrize("gate_k, T, p", [(1, 2.0, 1.0), (3, 0.0, 0.7), (3, 1.5, 1.0), (4, 1e6, 0.9)])
def test_exact_distribution_matches_running_the_rule(rule, gate_k, T, p):
    probs, delta, a1 = instance(0)
    exact = gate_distribution(probs, delta, a1, p, T, gate_k, rule)
    assert torch.allclose(exact.sum(-1), torch.ones(4, dtype=exact.dtype), atol=1e-12)
    n = 40_000
    g = torch.Generator().manual_seed(1)
    out = sample_gate(probs[:, None].expand(4, n, 5), delta[:, None].expand(4, n, 5), a1[:, None].expand(4, n),
                      p, T, gate_k, rule, g)
    freq = torch.nn.functional.one_hot(out, 5).double().mean(1)
    # binomial s.e. ≤ 0.0025 at n = 40,000: 5 s.e.
    assert (freq - exact).abs().max() < 0.0125, (freq, exact)


@pytest.mark.parametrize("rule", ["softmax", "two_way"])
def test_the_gate_never_deploys_a_refinement_with_negative_delta(rule):
    for seed in range(20):
        probs, delta, a1 = instance(seed, n=6, M=6)
        for gate_k in (1, 2, 4):
            for T in (0.0, 0.3, 5.0, 1e6):
                for p in (0.3, 1.0):
                    F = gate_distribution(probs, delta, a1, p, T, gate_k, rule)
                    assert float(F[delta < 0].abs().max()) == 0.0
                    assert float(F.min()) >= 0.0
        drawn = sample_gate(probs[:, None].expand(6, 2000, 6), delta[:, None].expand(6, 2000, 6),
                            a1[:, None].expand(6, 2000), 1.0, 1.0, 3, rule, torch.Generator().manual_seed(seed))
        assert bool((delta.gather(1, drawn) >= 0).all())


def test_two_way_with_one_draw_is_the_softmax_rule():
    """K′ = 1: A₁ has weight e⁰ and the draw e^{TΔ}, so P(A₂) = σ(T·Δ) when Δ ≥ 0."""
    probs, delta, a1 = instance(3)
    for T in (0.0, 0.5, 4.0):
        soft = gate_distribution(probs, delta, a1, 1.0, T, 1, "softmax")
        two = gate_distribution(probs, delta, a1, 1.0, T, 1, "two_way")
        assert torch.allclose(soft, two, atol=1e-12)
        hand = probs * torch.sigmoid(T * delta) * (delta >= 0)
        pick = refinement_pick_probs(probs, delta, T, 1, "softmax")
        assert torch.allclose(pick, hand, atol=1e-12)


def test_limits_p_zero_and_argmax():
    probs, delta, a1 = instance(4)
    onehot = torch.nn.functional.one_hot(a1, 5).double()
    assert torch.allclose(gate_distribution(probs, delta, a1, 0.0, 3.0, 4), onehot)
    # T → ∞ with a refiner that proposes the R_φ-best action surely: that action is deployed
    best = delta.argmax(-1)
    sure = torch.nn.functional.one_hot(best, 5).double() * (1 - 1e-12) + 1e-12 / 5
    F = gate_distribution(sure, delta, a1, 1.0, 1e6, 3)
    assert torch.allclose(F, torch.nn.functional.one_hot(best, 5).double(), atol=1e-9)


def test_hand_example_two_actions():
    """M = 2, a1 = 0, Δ = (0, 1), π = (½, ½), K′ = 2, T = log 3 (w = 3). Draws: (1,1) w.p. ¼ → the slot
    split 1 : 3 : 3, each refinement 3/7; (0,1) or (1,0) w.p. ½ → weights 1 : 1 : 3 → refinement 3/5;
    (0,0) w.p. ¼ → 0. P(deploy 1) = ¼·6/7 + ½·3/5 = 3/14 + 3/10 = 18/35."""
    probs = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    delta = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    F = gate_distribution(probs, delta, torch.tensor([0]), 1.0, float(torch.log(torch.tensor(3.0))), 2)
    assert torch.allclose(F, torch.tensor([[17 / 35, 18 / 35]], dtype=torch.float64), atol=1e-12)
