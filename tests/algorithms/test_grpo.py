import math

import pytest
import torch

from algorithms import group_to_trajectories
from algorithms.batch import GroupBatch
from algorithms.grpo import GRPOParams, RLOOParams, grpo_loss, rloo_loss
from algorithms.pg import PGParams, pg_loss
from algorithms.shaping import grpo_advantage

from algo_testutils import grad_of


def _replace(b, **kw):
    fields = dict(logp=b.logp, logp_old=b.logp_old, scores=b.scores, mask=b.mask, weights=b.weights, logp_ref=b.logp_ref)
    fields.update(kw)
    return GroupBatch(**fields)


def test_ratio_one_no_kl_is_pg(make_group_batch):
    b = make_group_batch(G=3, K=4, T=3)
    G, K, _ = b.shape
    A = grpo_advantage(b.scores)
    g = grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0))
    torch.testing.assert_close(g, -(A / G)[..., None] * b.token_mask())
    # same as REINFORCE on the flattened trajectories with reward A (seq_sum averages over G·K, not G)
    t = group_to_trajectories(_replace(b, scores=A))
    g_pg = grad_of(pg_loss, t, PGParams(baseline="constant", baseline_value=0.0))
    torch.testing.assert_close(g, K * g_pg.reshape(b.shape))


def test_token_level_ratio_one_equals_sequence_level(make_group_batch):
    b = make_group_batch()
    torch.testing.assert_close(grad_of(grpo_loss, b, GRPOParams(ratio_level="token")), grad_of(grpo_loss, b, GRPOParams()))
    off = make_group_batch(at_snapshot=False)
    l_tok, _ = grpo_loss(off, GRPOParams(ratio_level="token"))
    l_seq, _ = grpo_loss(off, GRPOParams())
    assert not torch.isclose(l_tok, l_seq)


def test_first_epoch_kl_gradient_is_zero(make_group_batch):
    b = make_group_batch()
    torch.testing.assert_close(grad_of(grpo_loss, b, GRPOParams(kl_beta=0.5)), grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0)))
    off = make_group_batch(at_snapshot=False)
    diff = grad_of(grpo_loss, off, GRPOParams(kl_beta=0.5)) - grad_of(grpo_loss, off, GRPOParams(kl_beta=0.0))
    assert diff.abs().max() > 1e-4


def test_loss_value_against_reference(make_group_batch):
    b = make_group_batch(at_snapshot=False, weights=True)
    p = GRPOParams(kl_beta=0.1)
    A = grpo_advantage(b.scores, weights=b.weights)
    x = (b.seq_logp() - b.seq_logp_old()).detach().clamp(-20, 20)
    rho = x.exp()
    surr = torch.minimum(rho * A, rho.clamp(0.8, 1.2) * A)
    kl = torch.exp(-x) + x - 1
    expected = -(b.weights * (surr - 0.1 * kl)).sum(-1).mean()
    loss, d = grpo_loss(b, p)
    assert loss.item() == pytest.approx(expected.item())
    assert d["kl"].item() == pytest.approx(((b.weights * kl).sum() / b.weights.sum()).item())
    # Dr.GRPO-style constant normaliser
    loss_c, _ = grpo_loss(b, GRPOParams(kl_beta=0.1, aggregation="constant", agg_constant=50.0))
    assert loss_c.item() == pytest.approx(-(b.weights * (surr - 0.1 * kl)).sum().item() / 50.0)


def test_log_ratio_clamp():
    logp = torch.zeros(1, 2, 1, dtype=torch.float64, requires_grad=True)
    b = GroupBatch(logp=logp, logp_old=torch.tensor([[[-50.0], [0.0]]], dtype=torch.float64),
                   scores=torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    loss, d = grpo_loss(b, GRPOParams(kl_beta=0.0, clip_eps=1e9))
    # A = ±0.5/(0.5 + 1e-8); candidate 0 has log ρ = 50 → clamped to 20
    a = 0.5 / (0.5 + 1e-8)
    assert loss.item() == pytest.approx(math.exp(20) * a - a, rel=1e-12)
    assert torch.isfinite(loss)
    assert d["clip_frac"].item() == 0.0
    # the KL penalty acts on the clamped log-ratio too: k3(20) = e^-20 + 20 − 1 on candidate 0
    _, d_kl = grpo_loss(b, GRPOParams(kl_beta=0.04))
    assert d_kl["kl"].item() == pytest.approx((math.exp(-20) + 19.0) / 2)


def test_zero_variance_masking_equals_kept_groups_only(make_group_batch):
    b = make_group_batch(G=4, K=3, at_snapshot=False, binary=True)
    scores = b.scores.clone()
    scores[0] = 1.0
    scores[2] = 0.0
    scores[1] = torch.tensor([1.0, 0.0, 0.0], dtype=scores.dtype)
    scores[3] = torch.tensor([0.0, 1.0, 1.0], dtype=scores.dtype)
    b = _replace(b, scores=scores)
    p = GRPOParams(mask_zero_variance=True)
    loss, d = grpo_loss(b, p)
    keep = [1, 3]
    kept = GroupBatch(logp=b.logp[keep], logp_old=b.logp_old[keep], scores=b.scores[keep], mask=b.mask[keep])
    loss_kept, _ = grpo_loss(kept, GRPOParams())
    torch.testing.assert_close(loss, loss_kept)
    g = torch.autograd.grad(loss, b.logp)[0]
    g_kept = grad_of(grpo_loss, kept, GRPOParams(), wrt=b.logp)
    torch.testing.assert_close(g, g_kept)
    assert torch.all(g[[0, 2]] == 0)
    assert d["zero_var_frac"].item() == 0.5
    # unmasked: the zero-variance groups still count (and carry the KL term)
    loss_plain, _ = grpo_loss(b, GRPOParams())
    assert not torch.isclose(loss_plain, loss)


def test_zero_variance_masking_all_dropped_gives_zero_with_grad(make_group_batch):
    b = make_group_batch()
    b = _replace(b, scores=torch.ones_like(b.scores))
    loss, _ = grpo_loss(b, GRPOParams(mask_zero_variance=True))
    assert loss.item() == 0.0 and loss.requires_grad
    assert torch.all(torch.autograd.grad(loss, b.logp)[0] == 0)


def test_reference_kl(make_group_batch):
    b = make_group_batch(ref=True)
    with pytest.raises(ValueError, match="logp_ref"):
        grpo_loss(make_group_batch(), GRPOParams(kl_to="reference"))
    _, d = grpo_loss(b, GRPOParams(kl_to="reference"))
    x = (b.seq_logp() - b.seq_logp_ref()).detach()
    assert d["kl"].item() == pytest.approx((torch.exp(-x) + x - 1).mean().item())
    _, d_snap = grpo_loss(b, GRPOParams())
    assert d_snap["kl"].item() == 0.0
    # KL to a fixed reference has a gradient even at ratio 1
    diff = grad_of(grpo_loss, b, GRPOParams(kl_to="reference")) - grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0))
    assert diff.abs().max() > 1e-4


def test_diagnostics_success_fail(make_group_batch):
    b = make_group_batch(binary=True)
    b = _replace(b, scores=torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64))
    _, d = grpo_loss(b, GRPOParams())
    assert d["a_success"].item() == pytest.approx((math.sqrt(3) + 1.0 * 2) / 3, rel=1e-6)
    assert d["a_fail"].item() == pytest.approx((-1 / math.sqrt(3) * 3 - 1.0 * 2) / 5, rel=1e-6)
    for v in d.values():
        assert v.dim() == 0 and not v.requires_grad


def test_params_validate():
    for kw, field in [({"kl_to": "ref"}, "kl_to"), ({"ratio_level": "seq"}, "ratio_level"),
                      ({"aggregation": "constant"}, "agg_constant"), ({"aggregation": "x"}, "group_sum")]:
        with pytest.raises(ValueError, match=field):
            GRPOParams(**kw)


def test_rloo_hand_example_and_gradient():
    ell = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    b = GroupBatch(logp=ell[..., None], logp_old=ell.detach()[..., None], scores=s)
    A = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [3.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(grad_of(rloo_loss, b, RLOOParams(), wrt=ell), -A / 2)
    with pytest.raises(ValueError, match="K >= 2"):
        rloo_loss(GroupBatch(logp=ell[:, :1, None], logp_old=ell.detach()[:, :1, None], scores=s[:, :1]), RLOOParams())


# -- Dr. GRPO (Liu et al. 2025, arXiv 2503.20783): no std division, no length normalisation ----------------
DR_GRPO = GRPOParams(kl_beta=0.0, adv_scale="none", aggregation="constant", agg_constant=1.0)


def test_dr_grpo_hand_example():
    """Scores (1, 0) and (0.2, 0), ratio 1, β = 0: A = s − mean = (0.5, −0.5), (0.1, −0.1); the summed
    terms over a constant give −∂loss/∂ℓ = A exactly. GRPO's std division makes both groups ±1 instead."""
    ell = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[1.0, 0.0], [0.2, 0.0]], dtype=torch.float64)
    b = GroupBatch(logp=ell[..., None], logp_old=ell.detach()[..., None], scores=s)
    g = -grad_of(grpo_loss, b, DR_GRPO, wrt=ell)
    torch.testing.assert_close(g, torch.tensor([[0.5, -0.5], [0.1, -0.1]], dtype=torch.float64), rtol=1e-15, atol=1e-15)
    g_grpo = -grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0), wrt=ell)
    torch.testing.assert_close(g_grpo.abs(), torch.full((2, 2), 0.5, dtype=torch.float64), rtol=1e-6, atol=0)
    # the constant only rescales; with adv_scale="none" the group-sum GRPO has the same direction
    g_sum = -grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0, adv_scale="none"), wrt=ell)
    torch.testing.assert_close(g_sum, g / 2)


def test_dr_grpo_no_length_normalisation():
    """Token-level ratio: every real token of a candidate gets the same A, whatever the answer's length."""
    logp = torch.zeros(1, 2, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    b = GroupBatch(logp=logp, logp_old=logp.detach(), scores=torch.tensor([[1.0, 0.0]], dtype=torch.float64), mask=mask)
    g = -grad_of(grpo_loss, b, GRPOParams(kl_beta=0.0, adv_scale="none", aggregation="constant", agg_constant=1.0,
                                          ratio_level="token"))
    torch.testing.assert_close(g, torch.tensor([[[0.5] * 4, [-0.5, 0, 0, 0]]], dtype=torch.float64))


def test_adv_scale_validates():
    with pytest.raises(ValueError, match="adv_scale"):
        GRPOParams(adv_scale="mad")
    assert GRPOParams().adv_scale == "std"


def test_dr_grpo_config_uses_both_changes():
    from bench.cli import compose
    from bench.schema import to_settings

    p = to_settings(compose(["logger=none", "algorithm=dr_grpo"])).loss_params
    assert (p.adv_scale, p.aggregation, p.agg_constant) == ("none", "constant", 1.0)
    assert to_settings(compose(["logger=none", "algorithm=grpo"])).loss_params.adv_scale == "std"
