import math

import pytest
import torch

from algorithms.kl import kl_k3
from algorithms.pg import PGParams, pg_loss
from algorithms.ppo import PPOParams, clipped_surrogate, ppo_loss

from algo_testutils import grad_of


@pytest.mark.parametrize("aggregation", ["seq_sum", "token_mean", "seq_mean_token_mean"])
@pytest.mark.parametrize("baseline", ["batch_mean", "constant"])
def test_ratio_one_equals_pg(make_traj_batch, aggregation, baseline):
    b = make_traj_batch(weights=True)
    g_ppo = grad_of(ppo_loss, b, PPOParams(aggregation=aggregation, baseline=baseline, baseline_value=0.3))
    g_pg = grad_of(pg_loss, b, PGParams(aggregation=aggregation, baseline=baseline, baseline_value=0.3))
    torch.testing.assert_close(g_ppo, g_pg)


@pytest.mark.parametrize("clip_eps", [0.0, 0.2])
def test_clipped_surrogate_is_the_minimum_form_bit_for_bit(clip_eps):
    """The selection form gives the value and gradient of min(ρA, clip(ρ)A) exactly: random ratios, ratio 1
    (the first epoch: every term a tie), ratios on the clip bounds, and A = 0."""
    gen = torch.Generator().manual_seed(0)
    lo, hi = 1.0 - clip_eps, 1.0 + clip_eps
    log_ratio = torch.cat([0.3 * torch.randn(400, generator=gen), torch.zeros(50),
                           torch.tensor([lo, hi, lo, hi]).clamp_min(1e-3).log()])
    adv = torch.cat([torch.randn(450, generator=gen), torch.tensor([1.0, -1.0, -1.0, 1.0])])
    adv[::17] = 0.0
    grads = []
    for form in ("selection", "minimum"):
        x = log_ratio.clone().requires_grad_(True)
        if form == "selection":
            surr, ratio = clipped_surrogate(x, adv, clip_eps)
        else:
            ratio = x.exp()
            surr = torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
        surr.sum().backward()
        grads.append((surr.detach(), ratio.detach(), x.grad))
    for got, want in zip(*grads):
        assert torch.equal(got, want)


def test_clipping_off_snapshot(make_traj_batch):
    b = make_traj_batch(at_snapshot=False)
    loss, d = ppo_loss(b, PPOParams())
    ratio = torch.exp(b.logp.detach() - b.logp_old)
    m = b.token_mask()
    # reference implementation of −mean_B Σ_t min(ρA, clip(ρ)A)
    A = b.rewards - (b.rewards * m).sum(0) / m.sum(0).clamp_min(1)
    surr = torch.minimum(ratio * A, ratio.clamp(0.8, 1.2) * A)
    assert loss.item() == pytest.approx(-((surr * m).sum(-1)).mean().item())
    outside = ((ratio - 1).abs() > 0.2).to(m.dtype)
    assert d["clip_frac"].item() == pytest.approx(((outside * m).sum() / m.sum()).item())
    assert 0 < d["clip_frac"].item() < 1
    k3 = kl_k3(b.logp.detach(), b.logp_old)
    assert d["approx_kl"].item() == pytest.approx(((k3 * m).sum() / m.sum()).item())
    # clipped tokens whose clip is active carry no gradient
    g = grad_of(ppo_loss, b, PPOParams())
    dead = ((ratio > 1.2) & (A > 0)) | ((ratio < 0.8) & (A < 0))
    assert dead.any() and torch.all(g[dead] == 0)


def test_log_ratio_clamp_default_20_and_none_is_unclamped(make_traj_batch):
    b = make_traj_batch()
    big = type(b)(logp=b.logp, logp_old=b.logp_old - 30.0, rewards=-torch.ones_like(b.rewards), mask=b.mask)
    n_tokens = b.token_mask().sum(-1).mean().item()
    loss, d = ppo_loss(big, PPOParams(baseline="constant"))
    # ρ = e^{clip(30, ±20)} on A = −1 enters unclipped by ε (negative advantage): loss = mean_n Σ_t e^20
    assert loss.item() == pytest.approx(math.exp(20) * n_tokens, rel=1e-12)
    assert d["approx_kl"].item() == pytest.approx(math.exp(-20) + 19.0, rel=1e-12)
    loss_none, _ = ppo_loss(big, PPOParams(baseline="constant", log_ratio_clamp=None))
    assert loss_none.item() == pytest.approx(math.exp(30) * n_tokens, rel=1e-12)  # the TPO paper's unclamped ratio
    with pytest.raises(ValueError, match="log_ratio_clamp"):
        PPOParams(log_ratio_clamp=0.0)


def test_value_loss_only_when_enabled(make_traj_batch):
    b = make_traj_batch(values=True)
    l0, _ = ppo_loss(b, PPOParams())
    l1, _ = ppo_loss(b, PPOParams(value_coef=2.0))
    expected = 2.0 * 0.5 * ((b.seq_scores() - b.values.detach()) ** 2).mean()
    torch.testing.assert_close(l1 - l0, expected)
