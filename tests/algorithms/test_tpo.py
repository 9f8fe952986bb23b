import math

import pytest
import torch

from algorithms.batch import GroupBatch
from algorithms.tpo import GroupPGParams, TPOParams, group_pg_loss, tpo_log_target, tpo_loss

from algo_testutils import grad_of

D = torch.float64


def _u(s):
    c = s - s.mean(-1, keepdim=True)
    sd = c.pow(2).mean(-1, keepdim=True).sqrt()
    return torch.where(sd > 1e-6, c / sd, c)


def _leaf_batch(G=4, K=5, seed=0, scores=None, at_snapshot=False):
    g = torch.Generator().manual_seed(seed)
    ell = torch.randn(G, K, generator=g, dtype=D).requires_grad_(True)
    old = ell.detach() if at_snapshot else torch.randn(G, K, generator=g, dtype=D)
    s = torch.randn(G, K, generator=g, dtype=D) if scores is None else scores
    return ell, GroupBatch(logp=ell[..., None], logp_old=old[..., None], scores=s)


@pytest.mark.parametrize("eta,anchor", [(1.0, True), (0.5, True), (2.0, False)])
def test_gradient_is_p_minus_q_over_G(eta, anchor):
    ell, b = _leaf_batch()
    G = ell.shape[0]
    g = grad_of(tpo_loss, b, TPOParams(eta=eta, anchor=anchor), wrt=ell)
    logits = _u(b.scores) / eta + (b.logp_old[..., 0] if anchor else 0.0)
    q = torch.softmax(logits, -1)
    torch.testing.assert_close(g, (torch.softmax(ell.detach(), -1) - q) / G)


def test_gradient_per_token_with_padding():
    g = torch.Generator().manual_seed(1)
    G, K, T = 2, 3, 4
    logp = -torch.rand(G, K, T, generator=g, dtype=D).requires_grad_(True)
    mask = (torch.arange(T) < torch.randint(1, T + 1, (G, K, 1), generator=g)).to(D)
    b = GroupBatch(logp=logp, logp_old=logp.detach() * 0.5, scores=torch.randn(G, K, generator=g, dtype=D), mask=mask)
    q = torch.softmax(b.seq_logp_old() + _u(b.scores), -1)
    p = torch.softmax(b.seq_logp().detach(), -1)
    torch.testing.assert_close(grad_of(tpo_loss, b, TPOParams()), ((p - q) / G)[..., None] * mask)


def test_equal_scores_at_snapshot_give_zero_gradient():
    ell, b = _leaf_batch(scores=torch.full((4, 5), 0.7, dtype=D), at_snapshot=True)
    g = grad_of(tpo_loss, b, TPOParams(), wrt=ell)
    torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-15, rtol=0)
    # away from the snapshot the same scores pull p back towards π_old: non-zero
    ell2, b2 = _leaf_batch(scores=torch.full((4, 5), 0.7, dtype=D))
    assert grad_of(tpo_loss, b2, TPOParams(), wrt=ell2).abs().max() > 1e-3


def test_three_candidate_hand_example():
    pi_old = [0.5, 0.3, 0.2]
    u = [math.sqrt(1.5), 0.0, -math.sqrt(1.5)]  # scores (2, 1, 0): c = (1, 0, -1), sd = sqrt(2/3)
    unnorm = [p * math.exp(ui) for p, ui in zip(pi_old, u)]
    q_hand = [x / sum(unnorm) for x in unnorm]
    old = torch.tensor(pi_old, dtype=D).log().reshape(1, 3, 1)
    ell = torch.tensor([0.2, 0.1, -0.4], dtype=D)
    b = GroupBatch(logp=ell.reshape(1, 3, 1), logp_old=old, scores=torch.tensor([[2.0, 1.0, 0.0]], dtype=D))
    q = tpo_log_target(b, TPOParams()).exp()[0]
    assert q.tolist() == pytest.approx(q_hand, rel=1e-12)
    # by hand: (0.5·e^1.2247, 0.3, 0.2·e^-1.2247) = (1.7017, 0.3, 0.0588), sum 2.0605
    assert q.tolist() == pytest.approx([0.8259, 0.1456, 0.0285], abs=1e-4)
    loss, _ = tpo_loss(b, TPOParams())
    assert loss.item() == pytest.approx(-sum(qi * lp for qi, lp in zip(q_hand, torch.log_softmax(ell, 0).tolist())))


def test_no_anchor_target_is_softmax_u_over_eta():
    _, b = _leaf_batch()
    q = tpo_log_target(b, TPOParams(anchor=False, eta=0.25)).exp()
    torch.testing.assert_close(q, torch.softmax(_u(b.scores) / 0.25, -1))


def test_zero_weight_candidates_are_excluded():
    ell, b = _leaf_batch(G=2, K=5, seed=3)
    w = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]], dtype=D)
    keep = [0, 2, 3]
    full = GroupBatch(logp=b.logp, logp_old=b.logp_old, scores=b.scores, weights=w)
    loss_w, _ = tpo_loss(full, TPOParams())
    # reference: group 0 restricted to its live candidates, group 1 as is
    l0, _ = tpo_loss(GroupBatch(logp=b.logp[:1, keep], logp_old=b.logp_old[:1, keep], scores=b.scores[:1, keep]), TPOParams())
    l1, _ = tpo_loss(GroupBatch(logp=b.logp[1:], logp_old=b.logp_old[1:], scores=b.scores[1:]), TPOParams())
    torch.testing.assert_close(loss_w, (l0 + l1) / 2)
    (g,) = torch.autograd.grad(loss_w, ell)
    assert torch.all(g[0, [1, 4]] == 0)
    # non-zero weights other than 0 do not matter
    loss_w2, _ = tpo_loss(GroupBatch(logp=b.logp, logp_old=b.logp_old, scores=b.scores, weights=w * 3.7), TPOParams())
    torch.testing.assert_close(loss_w2, loss_w)


def test_diagnostics():
    ell = torch.zeros(2, 4, dtype=D, requires_grad=True)
    s = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=D)
    b = GroupBatch(logp=ell[..., None], logp_old=ell.detach()[..., None], scores=s)
    _, d = tpo_loss(b, TPOParams())
    u = _u(s[:1])[0]
    q0 = torch.softmax(u, 0)
    assert d["q_success"].item() == pytest.approx(q0[0].item())
    assert d["q_fail"].item() == pytest.approx(q0[1].item())
    assert d["zero_var_frac"].item() == 0.5
    ent = (-(q0 * q0.log()).sum().item() + math.log(4)) / 2
    assert d["target_entropy"].item() == pytest.approx(ent)
    assert d["kl_q_p"].item() == pytest.approx((q0 * (q0.log() - math.log(0.25))).sum().item() / 2)
    for v in d.values():
        assert v.dim() == 0 and not v.requires_grad


def test_group_pg_gradient():
    ell, b = _leaf_batch(G=3, K=4, seed=5)
    g = grad_of(group_pg_loss, b, GroupPGParams(eta=0.5), wrt=ell)
    torch.testing.assert_close(g, -_u(b.scores) / 0.5 / 3)
    w = torch.rand(3, 4, dtype=D) + 0.1
    bw = GroupBatch(logp=b.logp, logp_old=b.logp_old, scores=b.scores, weights=w)
    torch.testing.assert_close(grad_of(group_pg_loss, bw, GroupPGParams(), wrt=ell), -w * _u(b.scores) / 3)


def test_params_validate():
    with pytest.raises(ValueError, match="eta"):
        TPOParams(eta=0.0)
    with pytest.raises(ValueError, match="eta"):
        GroupPGParams(eta=-1.0)


def test_kl_penalty_to_the_reference_adds_beta_times_the_token_mean_k3():
    g = torch.Generator().manual_seed(5)
    G, K, T = 3, 4, 6
    logp = (-torch.rand(G, K, T, generator=g, dtype=torch.float64) * 2).requires_grad_()
    ref = -torch.rand(G, K, T, generator=g, dtype=torch.float64) * 2
    mask = (torch.rand(G, K, T, generator=g) > 0.3).to(torch.float64)
    mask[..., 0] = 1.0
    scores = torch.rand(G, K, generator=g, dtype=torch.float64)
    batch = GroupBatch(logp=logp, logp_old=logp.detach(), scores=scores, mask=mask, logp_ref=ref)
    base, _ = tpo_loss(batch, TPOParams())
    with_kl, diags = tpo_loss(batch, TPOParams(kl_beta=0.5))
    d = ref - logp.detach()
    k3 = ((torch.exp(d) - d - 1) * mask).sum() / mask.sum()
    torch.testing.assert_close(with_kl - base, 0.5 * k3)
    torch.testing.assert_close(diags["kl_penalty"], k3)
    with pytest.raises(ValueError, match="logp_ref"):
        tpo_loss(GroupBatch(logp=logp, logp_old=logp.detach(), scores=scores, mask=mask), TPOParams(kl_beta=0.1))
