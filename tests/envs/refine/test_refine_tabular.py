"""Exact metrics of the tabular refinement task (envs/refine/tabular.py): the closed-form best-response lift,
a hand-computed two-action example, and the settings' one-line refusals."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from envs.refine import tabular as rt
from envs.refine.config import RefineTabularConfig


def problem(seed: int, N: int = 6, M: int = 5, S: int = 2):
    cfg = RefineTabularConfig(n_contexts=N, n_actions=M)
    base = rt.base_logprobs(cfg, [torch.Generator().manual_seed(seed + s) for s in range(S)]).exp()
    gold = rt.gold_reward(cfg, [torch.Generator().manual_seed(100 + seed + s) for s in range(S)])
    return cfg, base, gold


@pytest.mark.parametrize("rule, gate_k", [("softmax", 1), ("softmax", 4), ("two_way", 1), ("two_way", 3)])
def test_optimal_refiner_with_gold_reward_model_reaches_the_best_response_lift(rule, gate_k):
    """R_φ = R*, p = 1, T → ∞ (1e6) and a refiner proposing argmax_b R*(s, b) from every A₁: the gate deploys
    the gold-best action, so lift = E_s[max_b R*(s, b)] − E[R*(S, A₁)] (closed form, computed here by hand)."""
    cfg, base, gold = problem(0)
    cfg = dataclasses.replace(cfg, gate_p=1.0, gate_T=1e6, gate_k=gate_k, gate_rule=rule)
    S, N, M = gold.shape
    best = gold.argmax(-1)                                                     # [S, N]
    logits = 60.0 * torch.nn.functional.one_hot(best, M).float()[:, :, None, :].expand(S, N, M, M)
    logp = torch.log_softmax(logits, -1)
    out = rt.evaluate(cfg, logp, logp, base, gold, gold)
    by_hand = gold.max(-1).values.mean(-1) - (base * gold).sum(-1).mean(-1)
    assert torch.allclose(out["lift"], by_hand, atol=1e-5)
    assert torch.allclose(out["best_response_lift"], by_hand, atol=1e-5)
    assert float(out["harm_rate"].abs().max()) < 1e-6 and float(out["proxy_gold_gap"].abs().max()) < 1e-5
    assert float(out["kl_ref"].abs().max()) < 1e-6                             # π_ref = π_θ here
    # a softer gate or one consulted less often deploys less of the best response
    soft = rt.evaluate(dataclasses.replace(cfg, gate_T=1.0), logp, logp, base, gold, gold)
    half = rt.evaluate(dataclasses.replace(cfg, gate_p=0.5), logp, logp, base, gold, gold)
    assert bool((soft["lift"] < by_hand - 1e-3).all()) and torch.allclose(half["lift"], by_hand / 2, atol=1e-5)


def test_copy_refiner_changes_nothing_and_gold_gate_never_harms():
    cfg, base, gold = problem(1)
    S, N, M = gold.shape
    copy = torch.log_softmax(rt.copy_logits(N, M, 80.0)[None].expand(S, N, M, M), -1)
    out = rt.evaluate(cfg, copy, copy, base, gold, gold + 0.3 * torch.randn(gold.shape, generator=torch.Generator()
                                                                               .manual_seed(3)))
    for k, v in (("lift", 0.0), ("harm_rate", 0.0), ("acceptance_rate", 0.0), ("copy_rate", 1.0), ("tie_rate", 1.0)):
        assert torch.allclose(out[k], torch.full((S,), v), atol=1e-5), k
    uniform = torch.full((S, N, M, M), -math.log(M))
    gold_gate = rt.evaluate(cfg, uniform, uniform, base, gold, gold)
    assert float(gold_gate["harm_rate"].abs().max()) < 1e-7 and bool((gold_gate["lift"] > 0).all())


def test_hand_example_two_actions():
    """N = 1, M = 2, π₀ = (½, ½), R* = (0, 1), a wrong R_φ = (0, −1), refiner π_θ(·|a₁) = (0.2, 0.8) for both
    a₁, gate p = 1, K′ = 1, T = 0 (a kept refinement is deployed with probability ½).
    a₁ = 0: Δ_φ(1) = −1, rejected → deploy 0.  a₁ = 1: Δ_φ(0) = +1, drawn w.p. 0.2, accepted w.p. ½ → 0.1.
    J = ½·0 + ½·0.9 = 0.45, lift = −0.05; harm = ½·0.1 = 0.05 = acceptance; win = ½·0.8, loss = ½·0.2;
    proxy lift = ½(−0.8) + ½(0.2) = −0.3, gold lift = ½(0.8) + ½(−0.2) = 0.3, gap = −0.6;
    copy rate = ½(0.2) + ½(0.8) = 0.5; KL to uniform = 0.2 ln 0.4 + 0.8 ln 1.6."""
    cfg = RefineTabularConfig(n_contexts=1, n_actions=2, gate_p=1.0, gate_T=0.0, gate_k=1, gate_rule="softmax")
    base = torch.tensor([[[0.5, 0.5]]])
    gold, proxy = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0.0, -1.0]]])
    logp = torch.log(torch.tensor([0.2, 0.8])).expand(1, 1, 2, 2)
    out = rt.evaluate(cfg, logp, torch.full((1, 1, 2, 2), -math.log(2)), base, gold, proxy)
    kl = 0.2 * math.log(0.4) + 0.8 * math.log(1.6)
    expected = {"gold_value": 0.45, "lift": -0.05, "harm_rate": 0.05, "acceptance_rate": 0.05, "win_rate": 0.4,
                "loss_rate": 0.1, "tie_rate": 0.5, "proxy_lift": -0.3, "gold_refine_lift": 0.3,
                "proxy_gold_gap": -0.6, "copy_rate": 0.5, "kl_ref": kl, "best_response_lift": 0.5}
    for k, v in expected.items():
        assert math.isclose(float(out[k][0]), v, abs_tol=1e-6), (k, float(out[k][0]), v)
    two_way = rt.evaluate(dataclasses.replace(cfg, gate_rule="two_way"), logp, logp, base, gold, proxy)
    assert math.isclose(float(two_way["harm_rate"][0]), 0.05, abs_tol=1e-6)   # K′ = 1: the same rule


def test_tables_and_reference():
    cfg = RefineTabularConfig(n_contexts=3, n_actions=4, copy_bias=1.5, reference="copy", reference_copy_bias=0.0)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (0, 1)]  # noqa: E731
    z = rt.init_refiner(cfg, gens())
    p = torch.softmax(z, -1)
    assert torch.allclose(p.diagonal(dim1=-2, dim2=-1), torch.full((2, 3, 4), math.exp(1.5) / (math.exp(1.5) + 3)))
    assert torch.allclose(rt.reference_logprobs(cfg, z), torch.full((2, 3, 4, 4), -math.log(4)))
    initial = dataclasses.replace(cfg, reference="initial")
    assert torch.allclose(rt.reference_logprobs(initial, z), torch.log_softmax(z, -1))
    base = rt.base_logprobs(cfg, gens()).exp()
    assert torch.allclose(base.sum(-1), torch.ones(2, 3)) and not torch.equal(base[0], base[1])
    assert torch.allclose(rt.state_probs(base).flatten(1).sum(-1), torch.ones(2))
    s, a1 = rt.sample_states(base, 5, gens())
    assert s.shape == a1.shape == (2, 5) and int(s.max()) < 3 and int(a1.max()) < 4
    s1, _ = rt.sample_states(base[1:], 5, gens()[1:])
    assert torch.equal(s[1:], s1)   # a seed draws the same alone


@pytest.mark.parametrize("kwargs, message", [
    ({"gate_rule": "nope"}, "env.gate_rule='nope'; valid: softmax, two_way"),
    ({"annotations": 0, "list_size": 3}, "env.list_size=3: unlimited annotations (env.annotations=0)"),
    ({"n_actions": 20, "gate_k": 8}, "env.gate_k=8: the exact softmax gate enumerates"),
])
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        RefineTabularConfig(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
