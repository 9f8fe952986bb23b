"""Zero-variance groups (docs/paper-map.md §1, §7): equal scores that fp32 cannot represent exactly
(k/H of the reversal tasks) give exactly zero signal and exactly zero gradient in every
normalisation of the library; the reference implementation's formulas stay reachable with
``zero_var_rtol=None``; groups with a real spread are untouched."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from algorithms import GroupBatch, TrajectoryBatch
from algorithms.dro import DROVParams, KTOParams, kto_loss, normalise_scores
from algorithms.grpo import GRPOParams, RLOOParams, grpo_loss, rloo_loss
from algorithms.pg import PGParams, pg_loss
from algorithms.shaping import (advantage, flat_groups, grpo_advantage, leave_one_out_advantage, spread_and_scale,
                                standardise_scores, zero_variance_groups)
from algorithms.tpo import GroupPGParams, TPOParams, group_pg_loss, tpo_loss

F = torch.float32
HS = (3, 5, 6, 7, 9, 10, 12)
KS = (2, 3, 5, 8, 13, 32)


def _bag_scores(H: int, K: int, k: int, seed: int) -> torch.Tensor:
    """[K] fp32 scores mean_t c_t of K answers with exactly k of H tokens correct, at random positions
    (the bag score of the reversal task; sequential scores with k leading correct tokens are the same k/H)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.zeros(K, H, dtype=F)
    for j in range(K):
        c[j, torch.randperm(H, generator=g)[:k]] = 1.0
    return c.mean(-1)


def _grid():
    for H, K in itertools.product(HS, KS):
        for k in range(H + 1):
            yield H, K, k


#: every (H, K, number correct) of the grid as (H, K, k, fp32 scores [K]); 350 groups
GROUPS = [(H, K, k, _bag_scores(H, K, k, seed=1000 * H + 10 * K + k)) for H, K, k in _grid()]


def test_the_bug_is_real_without_the_test():
    """The brief's example: 8 candidates all scoring 0.6 in fp32 — the reference GRPO formula gives +0.86."""
    s = torch.full((1, 8), 0.6, dtype=F)
    assert grpo_advantage(s, rtol=None)[0, 0].item() == pytest.approx(0.8563, abs=1e-3)
    assert torch.equal(grpo_advantage(s), torch.zeros_like(s))
    # across the grid the plain formula leaks an O(1) advantage in many groups
    leaks = sum(bool(grpo_advantage(s, rtol=None).abs().max() > 0.1) for *_, s in GROUPS)
    assert leaks > len(GROUPS) // 10


def test_bag_scores_are_bitwise_equal_within_a_group():
    for H, K, k, s in GROUPS:
        assert torch.all(s == s[0]) and s[0].item() == pytest.approx(k / H, rel=1e-6)


def test_every_normalisation_gives_exactly_zero_on_equal_scores():
    zero_frac = []
    for H, K, k, s in GROUPS:
        s2 = s[None]
        outs = {
            "standardise": standardise_scores(s2),
            "grpo_std": grpo_advantage(s2),
            "grpo_none": grpo_advantage(s2, scale="none"),
            "grpo_weighted": grpo_advantage(s2, weights=torch.rand(1, K, generator=torch.Generator().manual_seed(K))),
            "rloo": leave_one_out_advantage(s2),
            "dro_kto": normalise_scores(s2, DROVParams()),
            # batch-mean baseline: K single trajectories of H tokens, reward k/H on every token
            "batch_mean": advantage(s[:, None].expand(K, H).contiguous(), torch.ones(K, H, dtype=F), "batch_mean"),
        }
        for name, out in outs.items():
            assert torch.all(out == 0), (name, H, K, k, out)
        assert bool(zero_variance_groups(s2)[0])
        zero_frac.append(bool(zero_variance_groups(s2, rtol=None)[0]))
    assert all(zero_frac)  # the reference std ≤ 1e-6 rule agrees that these groups have no variance


def _group_batch(s: torch.Tensor, T: int = 1, seed: int = 0):
    """One group [1, K, T] at the snapshot (logp == logp_old bitwise), logp a leaf."""
    g = torch.Generator().manual_seed(seed)
    K = s.shape[-1]
    logp = (-torch.rand(1, K, T, generator=g, dtype=F) * 3.0).requires_grad_(True)
    return GroupBatch(logp=logp, logp_old=logp.detach().clone(), scores=s[None])


@pytest.mark.parametrize("loss_fn, params", [
    (grpo_loss, GRPOParams(kl_beta=0.0)),
    (grpo_loss, GRPOParams()),                              # β = 0.04: the k3 gradient is 0 at ratio 1 too
    (grpo_loss, GRPOParams(kl_beta=0.0, adv_scale="none")),
    (grpo_loss, GRPOParams(kl_beta=0.0, ratio_level="token")),
    (tpo_loss, TPOParams()),
    (tpo_loss, TPOParams(eta=0.25)),
    (group_pg_loss, GroupPGParams()),
    (rloo_loss, RLOOParams()),
], ids=["grpo_nokl", "grpo", "dr_grpo", "grpo_token", "tpo", "tpo_eta", "group_pg", "rloo"])
def test_group_losses_have_exactly_zero_gradient_on_equal_scores(loss_fn, params):
    for i, (H, K, k, s) in enumerate(GROUPS):
        for T in (1, 3):
            b = _group_batch(s, T=T, seed=i)
            loss, _ = loss_fn(b, params)
            (g,) = torch.autograd.grad(loss, b.logp)
            assert torch.all(g == 0), (H, K, k, T, g.abs().max().item())


def test_reference_rule_leaves_a_gradient_on_equal_scores():
    """zero_var_rtol=None keeps the reference implementation's plain formulas (and their leak)."""
    s = torch.full((8,), 0.6, dtype=F)
    b = _group_batch(s)
    loss, _ = grpo_loss(b, GRPOParams(kl_beta=0.0, zero_var_rtol=None))
    (g,) = torch.autograd.grad(loss, b.logp)
    assert torch.all(g < -0.1)  # A ≈ +0.86 for every candidate: every log-prob pushed up
    assert torch.all(leave_one_out_advantage(s, rtol=None) != 0)
    u = standardise_scores(s, rtol=None)
    assert torch.all(u != 0) and u.abs().max() < 1e-6  # u = c (sd ≤ 1e-6): a residue, not O(1)


def test_pg_batch_mean_equal_rewards_exactly_zero_gradient():
    H, N = 7, 10
    r = torch.full((N, H), 3 / 7, dtype=F)
    logp = (-torch.rand(N, H, generator=torch.Generator().manual_seed(0), dtype=F)).requires_grad_(True)
    b = TrajectoryBatch(logp=logp, logp_old=logp.detach(), rewards=r)
    assert torch.all(advantage(r, torch.ones_like(r), "batch_mean", rtol=None) != 0)  # the residue exists
    loss, _ = pg_loss(b, PGParams())
    assert torch.all(torch.autograd.grad(loss, logp)[0] == 0)


def test_kto_equal_scores_are_all_undesirable():
    """A batch of equal scores normalises to exactly 0: none is 'desirable' (score > 0) by rounding."""
    r = torch.full((8,), 0.6, dtype=F)
    assert torch.all(normalise_scores(r, KTOParams()) == 0)
    assert (normalise_scores(r, KTOParams(zero_var_rtol=None)) > 0).all()  # the residue's sign decides otherwise
    logp = torch.zeros(8, 2, dtype=F, requires_grad=True)
    b = TrajectoryBatch(logp=logp, logp_old=logp.detach(), rewards=torch.zeros(8, 2, dtype=F),
                        logp_ref=torch.zeros(8, 2, dtype=F), scores=normalise_scores(r, KTOParams()))
    _, d = kto_loss(b, KTOParams())
    assert d["desirable_frac"].item() == 0.0


def test_near_equal_scores_within_rtol_are_flat():
    """Per-arm means Σ/n of equal values differ by a few ulps; the relative tolerance absorbs them."""
    x = torch.tensor(0.1, dtype=F) - 0.5
    means = torch.stack([(x.repeat(n).sum() / n) for n in range(1, 40)])
    assert means.unique().numel() > 1, "the fixture must actually contain near-equal values"
    assert bool(zero_variance_groups(means))
    assert torch.all(standardise_scores(means) == 0) and torch.all(grpo_advantage(means) == 0)
    assert not bool(zero_variance_groups(means, rtol=0.0))  # rtol = 0: only bitwise-equal scores


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_groups_with_a_real_spread_are_untouched(dtype):
    """Scores one step 1/H apart, one-hot groups with extreme π weights: identical (bitwise) to the
    reference formulas — the tabular tables' exact updates (weights = π) do not move."""
    g = torch.Generator().manual_seed(3)
    for H, K in itertools.product(HS, KS):
        k = torch.randint(0, H + 1, (4, K), generator=g)
        k[:, 0] = (k[:, 1] + 1) % (H + 1)  # at least two distinct scores per group
        s = (k.to(dtype) / H)
        for f in (standardise_scores, grpo_advantage, leave_one_out_advantage):
            assert torch.equal(f(s), f(s, rtol=None)), f.__name__
    for p in (0.5, 0.1, 1e-6, 1e-12, 1 - 1e-9):
        pi = torch.tensor([p] + [(1 - p) / 9] * 9, dtype=dtype)
        s = torch.eye(10, dtype=dtype)[0]
        a, a_ref = grpo_advantage(s, weights=pi), grpo_advantage(s, weights=pi, rtol=None)
        assert torch.equal(a, a_ref)
        if dtype == torch.float64:  # the exact population value (1 − p)/(σ + ε), σ = √(p(1 − p))
            assert a[0].item() == pytest.approx((1 - p) / (math.sqrt(p * (1 - p)) + 1e-8), rel=1e-6)


def test_spread_ignores_dead_candidates_and_handles_edge_groups():
    s = torch.tensor([[0.3, 0.3, 9.0], [0.0, 0.0, 0.0], [1.0, float("nan"), 1.0], [5.0, 6.0, 7.0]])
    live = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    flat = flat_groups(s, 1e-5, weights=live)[:, 0]
    # dead candidate ignored; all-zero group flat (0 ≤ 0, no absolute floor needed); NaN never flat;
    # a group with no live candidate is flat (nothing to normalise)
    assert flat.tolist() == [True, True, False, True]
    spread, scale = spread_and_scale(s[:1], live[:1] > 0)
    assert spread.item() == 0.0 and scale.item() == pytest.approx(0.3)
    assert not flat_groups(s, None).any()
    with pytest.raises(ValueError, match="zero_var_rtol"):
        flat_groups(s, -1.0)


@pytest.mark.parametrize("cls", [TPOParams, GroupPGParams, GRPOParams, RLOOParams, PGParams, DROVParams, KTOParams])
def test_zero_var_rtol_is_a_validated_param(cls):
    assert cls().zero_var_rtol == 1e-5 and cls(zero_var_rtol=None).zero_var_rtol is None
    with pytest.raises(ValueError, match="zero_var_rtol"):
        cls(zero_var_rtol=-1e-3)
