"""Padding never leaks: a masked position holding −inf, NaN or an extreme log-prob (difference) leaves
every loss and its gradient finite, and contributes exactly 0 — the same loss and gradient as with an
ordinary value there (no inf·0 = NaN). Real tokens with an extreme log-ratio are clamped (PPO, GRPO)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from algorithms import ALGORITHMS, GroupBatch, TrajectoryBatch
from algorithms.ppo import PPOParams, ppo_loss

D = torch.float64


def _traj(poison: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    N, T = 4, 5
    logp = -torch.rand(N, T, generator=g, dtype=D) * 2
    old = logp - 0.1 * torch.randn(N, T, generator=g, dtype=D)
    ref = logp - 0.2 * torch.randn(N, T, generator=g, dtype=D)
    mask = torch.ones(N, T, dtype=D)
    mask[0, 3:] = 0.0
    mask[2, 4] = 0.0
    rewards = torch.randn(N, T, generator=g, dtype=D)
    pad = mask == 0
    logp = logp.masked_fill(pad, poison).requires_grad_(True)
    return TrajectoryBatch(logp=logp, logp_old=old.masked_fill(pad, -poison if math.isfinite(poison) else poison),
                           rewards=rewards.masked_fill(pad, poison), mask=mask,
                           values=torch.randn(N, generator=g, dtype=D).requires_grad_(True),
                           logp_ref=ref.masked_fill(pad, poison), scores=torch.randn(N, generator=g, dtype=D))


def _group(poison: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    G, K, T = 2, 3, 4
    logp = -torch.rand(G, K, T, generator=g, dtype=D) * 2
    old = logp - 0.1 * torch.randn(G, K, T, generator=g, dtype=D)
    mask = torch.ones(G, K, T, dtype=D)
    mask[0, 1, 2:] = 0.0
    mask[1, 2, 1:] = 0.0
    pad = mask == 0
    logp = logp.masked_fill(pad, poison).requires_grad_(True)
    return GroupBatch(logp=logp, logp_old=old.masked_fill(pad, -poison if math.isfinite(poison) else poison),
                      scores=torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.25, 1.0]], dtype=D), mask=mask,
                      logp_ref=old.masked_fill(pad, poison))


def _extra(name):
    if name == "grpo":
        return {"ratio_level": "token"}
    if name in ("pg", "dg", "ppo"):
        return {"baseline": "batch_mean"}
    return {}


@pytest.mark.parametrize("name", sorted(k for k, s in ALGORITHMS.items() if s.loss is not None))   # masks: on-policy
@pytest.mark.parametrize("poison", [-math.inf, math.nan, -1e30, 1e4])
def test_padding_contributes_exactly_zero(name, poison):
    spec = ALGORITHMS[name]
    make = _group if spec.batch == "group" else _traj
    params = spec.params(**_extra(name))
    clean, bad = make(0.0), make(poison)
    loss_c, d_c = spec.loss(clean, params)
    loss_b, d_b = spec.loss(bad, params)
    assert torch.isfinite(loss_b), (name, poison)
    assert loss_b.item() == loss_c.item()
    (g_c,) = torch.autograd.grad(loss_c, clean.logp)
    (g_b,) = torch.autograd.grad(loss_b, bad.logp)
    assert torch.isfinite(g_b).all()
    assert torch.equal(g_b, g_c)
    assert torch.all(g_b[clean.mask == 0] == 0)
    for k in d_c:
        assert torch.isfinite(d_b[k]) and d_b[k].item() == d_c[k].item(), k


def test_ppo_masked_extreme_log_ratio_and_real_token_clamp():
    """PPO: a masked position with log ρ = +1000 (e^1000 = inf) is not read; a real one is clamped to ±20."""
    logp = torch.zeros(2, 3, dtype=D, requires_grad=True)
    old = torch.tensor([[0.0, 0.0, -1000.0], [0.0, -50.0, 0.0]], dtype=D)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=D)
    rewards = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], dtype=D)
    b = TrajectoryBatch(logp=logp, logp_old=old, rewards=rewards, mask=mask)
    p = PPOParams(baseline="constant", clip_eps=0.2)
    loss, d = ppo_loss(b, p)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and all(torch.isfinite(v) for v in d.values())
    assert g[0, 2].item() == 0.0
    # row 0: two tokens at ρ = 1, A = 1; row 1: ρ = 1, e^20 (clamped, A = −1 → unclipped branch), 1
    expected = -((1.0 + 1.0) + (-1.0 - math.exp(20) - 1.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # beyond the clamp the log-ratio carries no gradient
    assert g[1, 1].item() == 0.0
    # unclamped (the TPO paper's PPO): the real extreme token overflows nothing at 50, but e^50 enters
    loss_none, _ = ppo_loss(b, PPOParams(baseline="constant", log_ratio_clamp=None))
    assert loss_none.item() == pytest.approx(-((2.0) + (-2.0 - math.exp(50))) / 2, rel=1e-12)


@pytest.mark.parametrize("name", sorted(k for k, s in ALGORITHMS.items() if s.loss is not None))
def test_no_mask_equals_an_all_ones_mask(name):
    """A batch without a mask (no padding: the losses skip their masking operators) gives the loss, gradient
    and diagnostics of the same batch with an all-ones mask, bit for bit."""
    spec = ALGORITHMS[name]
    make = _group if spec.batch == "group" else _traj
    params = spec.params(**_extra(name))
    base = make(0.0, seed=3)
    ones = dataclasses.replace(base, mask=torch.ones_like(base.mask), logp=base.logp.detach().clone().requires_grad_())
    none = dataclasses.replace(base, mask=None, logp=base.logp.detach().clone().requires_grad_())
    loss_1, d_1 = spec.loss(ones, params)
    loss_0, d_0 = spec.loss(none, params)
    assert torch.equal(loss_1, loss_0), name
    (g_1,) = torch.autograd.grad(loss_1, ones.logp)
    (g_0,) = torch.autograd.grad(loss_0, none.logp)
    assert torch.equal(g_1, g_0), name
    assert d_1.keys() == d_0.keys()
    for k in d_1:
        assert torch.equal(d_1[k], d_0[k]), (name, k)
