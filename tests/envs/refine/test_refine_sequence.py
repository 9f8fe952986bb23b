"""Sequence-scale refinement task (envs/refine/sequence.py) and the gate's choice among drawn refinements
(envs/refine/gate.py::gate_choice_probs): gold rewards, annotator ranking, pairwise accuracy, Monte-Carlo metrics,
and that the gate never deploys a draw with Δ < 0."""
from __future__ import annotations

import pytest
import torch

from envs.refine.gate import gate_choice_probs, gate_distribution
from envs.refine.sequence import (RefineSequenceConfig, edit_fraction, gate_metrics, gold_reward, pairwise_accuracy,
                                  rank_lists)
from envs.reversal import ReversalTask


@pytest.mark.parametrize("rule", ["softmax", "two_way"])
@pytest.mark.parametrize("T, p", [(0.0, 1.0), (1.5, 0.7), (1e6, 1.0)])
def test_gate_choice_rows_sum_to_one_and_never_pick_a_worse_draw(rule, T, p):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(50, 3, 5, generator=g, dtype=torch.float64)
    probs = gate_choice_probs(d, p, T, rule)
    assert probs.shape == (50, 3, 6)
    assert torch.allclose(probs.sum(-1), torch.ones(50, 3, dtype=torch.float64), atol=1e-12)
    assert float(probs[..., 1:][d < 0].abs().max()) == 0.0              # a draw with Δ < 0 is never deployed
    assert float(probs[..., 0].min()) >= 1 - p - 1e-12                    # A₁ keeps at least the 1 − p share
    assert float(probs[..., 1:].sum(-1).max()) > 0.1                     # and refinements with Δ ≥ 0 are deployed


def test_gate_choice_with_one_draw_is_the_two_way_rule():
    d = torch.tensor([[-0.3], [0.0], [0.4]], dtype=torch.float64)
    soft, two = gate_choice_probs(d, 0.8, 2.0, "softmax"), gate_choice_probs(d, 0.8, 2.0, "two_way")
    assert torch.allclose(soft, two, atol=1e-12)
    assert abs(float(soft[2, 1]) - 0.8 * float(torch.sigmoid(torch.tensor(0.8, dtype=torch.float64)))) < 1e-12
    with pytest.raises(ValueError, match="env.gate_rule='argmax'"):
        gate_choice_probs(d, 1.0, 1.0, "argmax")


@pytest.mark.parametrize("rule", ["softmax", "two_way"])
def test_gate_choice_averaged_over_draws_is_the_exact_tabular_gate(rule):
    """Drawing K′ actions from π and averaging the choice given the draws recovers the exact deployed
    distribution of the tabular gate (envs.refine.gate.gate_distribution)."""
    g = torch.Generator().manual_seed(3)
    M, K, n = 4, 3, 200_000
    probs = torch.softmax(torch.randn(M, generator=g, dtype=torch.float64), 0)
    r = torch.randn(M, generator=g, dtype=torch.float64)
    a1 = 1
    delta = r - r[a1]
    exact = gate_distribution(probs[None], delta[None], torch.tensor([a1]), 0.9, 1.3, K, rule)[0]
    draws = torch.multinomial(probs.expand(n, M), K, replacement=True, generator=g)
    choice = gate_choice_probs(delta[draws], 0.9, 1.3, rule)                          # [n, 1 + K]
    cand = torch.cat([torch.full((n, 1), a1), draws], 1)
    mc = torch.zeros(M, dtype=torch.float64).index_add_(0, cand.flatten(), choice.flatten()) / n
    assert torch.allclose(mc, exact, atol=4e-3), (mc, exact)


def test_gold_rewards_edit_fraction_and_ranking():
    task = ReversalTask(4, 3, "reverse_copy", "bag")
    x = torch.tensor([[0, 1, 2, 0]])
    y = task.targets(x)                                                                # [[0, 2, 1, 0]]
    answers = torch.stack([y, torch.tensor([[0, 2, 1, 1]]), torch.tensor([[1, 1, 1, 1]])], 1)   # [1, 3, 4]
    assert torch.allclose(gold_reward(task, x, answers, "dense"), torch.tensor([[1.0, 0.75, 0.25]]))
    assert torch.equal(gold_reward(task, x, answers, "sparse"), torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.allclose(edit_fraction(answers, y[:, None]), torch.tensor([[0.0, 0.25, 0.75]]))
    ranked = rank_lists(answers.flip(1), gold_reward(task, x, answers.flip(1), "dense"), 1e6,
                        torch.Generator().manual_seed(0))
    assert torch.equal(ranked, answers)                                               # β → ∞: sorted by R*
    with pytest.raises(ValueError, match="env.gold='soft'; valid: dense, sparse"):
        gold_reward(task, x, answers, "soft")


def test_pairwise_accuracy_counts_ties_half_and_skips_gold_ties():
    gold_a, gold_b = torch.tensor([1.0, 0.0, 0.5, 0.2]), torch.tensor([0.0, 1.0, 0.5, 0.1])
    proxy_a, proxy_b = torch.tensor([2.0, 3.0, 9.0, 1.0]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    # pairs 1 right, 2 wrong, 3 skipped (gold tie), 4 an R_φ tie (½) → 1.5 / 3
    assert abs(float(pairwise_accuracy(proxy_a, proxy_b, gold_a, gold_b)) - 0.5) < 1e-7
    assert float(pairwise_accuracy(proxy_a[2:3], proxy_b[2:3], gold_a[2:3], gold_b[2:3])) == 0.5


def test_gate_metrics_on_a_hand_instance():
    """One seed, two states, two draws each; T → ∞, p = 1: the gate deploys the R_φ-best draw with Δ ≥ 0."""
    cfg = RefineSequenceConfig(gate_T=1e6, gate_p=1.0, gate_k=2)
    gold_a1, proxy_a1 = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 0.0]])
    gold_a2 = torch.tensor([[[1.0, 0.0], [0.25, 0.75]]])
    proxy_a2 = torch.tensor([[[-1.0, 2.0], [-0.5, -0.1]]])    # state 1: draw 2 (gold-worse) wins; state 2: none kept
    same = torch.zeros(1, 2, 2, dtype=torch.bool)
    out = gate_metrics(cfg, gold_a1, proxy_a1, gold_a2, proxy_a2, same, torch.full((1, 2, 2), 0.5),
                       torch.tensor([[0.2, 0.4]]))
    assert abs(float(out["lift"]) - (-0.5 / 2)) < 1e-6          # state 1 deploys R* = 0 (−0.5), state 2 keeps A₁
    assert abs(float(out["harm_rate"]) - 0.5) < 1e-6 and abs(float(out["acceptance_rate"]) - 0.5) < 1e-6
    assert abs(float(out["gold_value"]) - 0.25) < 1e-6 and abs(float(out["best_response_lift"]) - 0.5) < 1e-6
    assert abs(float(out["proxy_gold_gap"]) - (0.1 - 0.0)) < 1e-6   # proxy lift 0.1, gold refine lift 0
    assert abs(float(out["win_rate"]) - 0.5) < 1e-6 and abs(float(out["kl_ref"]) - 0.3) < 1e-6
    assert float(out["copy_rate"]) == 0.0 and abs(float(out["edit_distance"]) - 0.5) < 1e-6


@pytest.mark.parametrize("kwargs, message", [
    ({"gold": "soft"}, "env.gold='soft'; valid: dense, sparse"),
    ({"gate_rule": "argmax"}, "env.gate_rule='argmax'; valid: softmax, two_way"),
    ({"logic": "mirror"}, "env.logic='mirror'; valid: copy, flip, reverse_copy, reverse_flip"),
])
def test_bad_settings_give_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        RefineSequenceConfig(**kwargs)
    assert str(err.value) == message
