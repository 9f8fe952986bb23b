"""Simulated annotators and the R_φ fit (envs/refine/reward_model.py): BT recovers R* up to a constant
per context on noiseless, unlimited annotations; PL lists reduce to BT pairs; the exact held-out
accuracy; seeds are independent."""
from __future__ import annotations

import math

import torch

from envs.refine import reward_model as rm


def tables(seed: int, N: int = 4, M: int = 5, S: int = 1):
    g = torch.Generator().manual_seed(seed)
    gold = torch.randn(S, N, M, generator=g, dtype=torch.float64)
    q = torch.softmax(torch.randn(S, N, M, generator=g, dtype=torch.float64), -1)
    return gold, q


def centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def test_bt_recovers_gold_up_to_a_constant_on_noiseless_unlimited_annotations():
    """annotations = 0: the population BT loss (unlimited pairs); β = 8: nearly noiseless labels (a pair one
    gold unit apart is mislabelled with probability σ(−8) = 3e-4). As β → ∞ the labels carry only the gold
    order and the loss flattens: β = 30 still recovers the order exactly (accuracy 1), not the values."""
    gold, q = tables(0)
    q = 0.5 * q + 0.5 / q.shape[-1]   # every action annotated with probability ≥ 0.1
    phi = rm.fit_reward_model(gold.float(), q, 0, 2, 8.0, 0.0, 500, [torch.Generator().manual_seed(0)])
    assert torch.allclose(centred(phi.double()), centred(gold), atol=2e-3), (centred(phi) - centred(gold)).abs().max()
    assert torch.allclose(phi.double().mean(-1), torch.zeros(1, 4, dtype=torch.float64), atol=1e-6)  # mean stays 0
    for beta in (8.0, 30.0):
        phi = rm.fit_reward_model(gold.float(), q, 0, 2, beta, 0.0, 500, [torch.Generator().manual_seed(0)])
        assert float(rm.pairwise_accuracy(phi.double(), gold, q)[0]) == 1.0
    loose = rm.fit_reward_model(gold.float(), q, 0, 2, 1.0, 0.0, 3, [torch.Generator().manual_seed(0)])
    assert (centred(loose.double()) - centred(gold)).abs().max() > 0.05   # 3 iterations: not yet there


def test_many_sampled_annotations_approach_gold():
    gold, q = tables(1, N=3, M=4)
    gens = [torch.Generator().manual_seed(5)]
    few = rm.fit_reward_model(gold.float(), q, 200, 2, 2.0, 0.0, 300, gens)
    many = rm.fit_reward_model(gold.float(), q, 100_000, 2, 2.0, 0.0, 300, [torch.Generator().manual_seed(5)])
    err_few = (centred(few.double()) - centred(gold)).abs().max()
    err_many = (centred(many.double()) - centred(gold)).abs().max()
    assert err_many < 0.1 and err_many < err_few / 3


def test_pl_with_two_items_is_the_bt_loss():
    """Hand value: φ = (0, 1), β = 2, one pair with action 1 preferred: NLL = softplus(−2) = log(1 + e^{−2})."""
    phi = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    ann = rm.Annotations(torch.tensor([0]), torch.tensor([[1, 0]]))
    assert math.isclose(float(rm.pl_nll(phi, ann, 2.0)), math.log(1 + math.exp(-2.0)), rel_tol=1e-12)
    ann3 = rm.Annotations(torch.tensor([0]), torch.tensor([[1, 0, 0]]))   # PL: e²/(e² + 2)·1/2
    assert math.isclose(float(rm.pl_nll(phi, ann3, 2.0)), -math.log(math.exp(2) / (math.exp(2) + 2) / 2),
                        rel_tol=1e-12)


def test_simulated_rankings_follow_plackett_luce():
    """First place of a list over actions drawn from q: P(a first | items) = exp(βR*_a)/Σ exp(βR*)."""
    gold = torch.tensor([[0.0, 0.5, 1.5]], dtype=torch.float64)
    q = torch.tensor([[1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    ann = rm.simulate_annotations(gold, q, 60_000, 3, 1.0, torch.Generator().manual_seed(2))
    distinct = (ann.ranked.sort(-1).values == torch.tensor([0, 1, 2])).all(-1)
    first = ann.ranked[distinct, 0]
    freq = torch.bincount(first, minlength=3).double() / distinct.sum()
    assert torch.allclose(freq, torch.softmax(gold[0], 0), atol=0.015)
    pairs = rm.simulate_annotations(gold, q, 60_000, 2, 1.0, torch.Generator().manual_seed(3))
    mixed = pairs.ranked[(pairs.ranked.sort(-1).values == torch.tensor([0, 2])).all(-1)]
    assert abs(float((mixed[:, 0] == 2).double().mean()) - 1 / (1 + math.exp(-1.5))) < 0.015


def test_pairwise_accuracy_hand_example():
    """M = 3, q uniform, R* = (0, 1, 2), φ = (0, 2, 1): of the 3 ordered gold pairs (1>0, 2>0, 2>1) φ gets
    two right; φ tied on one pair counts ½."""
    gold = torch.tensor([[[0.0, 1.0, 2.0]]])
    q = torch.full((1, 1, 3), 1 / 3)
    assert math.isclose(float(rm.pairwise_accuracy(torch.tensor([[[0.0, 2.0, 1.0]]]), gold, q)[0]), 2 / 3, rel_tol=1e-6)
    assert math.isclose(float(rm.pairwise_accuracy(torch.tensor([[[0.0, 1.0, 1.0]]]), gold, q)[0]), 2.5 / 3,
                        rel_tol=1e-6)


def test_each_seed_fits_alone_as_in_a_batch():
    gold, q = tables(7, S=2)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (11, 12)]  # noqa: E731
    both = rm.fit_reward_model(gold.float(), q, 300, 2, 1.0, 0.1, 100, gens())
    alone = rm.fit_reward_model(gold[1:].float(), q[1:], 300, 2, 1.0, 0.1, 100, gens()[1:])
    assert torch.equal(both[1:], alone)
    assert not torch.equal(both[0], both[1])
