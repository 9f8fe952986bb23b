import pytest
import torch

from algorithms.batch import GroupBatch
from algorithms.ce import CEParams, ce_loss


def test_target_normalised_over_candidates():
    ell = torch.tensor([[0.3, -0.2, 0.0]], dtype=torch.float64, requires_grad=True)
    b = GroupBatch(logp=ell[..., None], logp_old=ell.detach()[..., None], scores=torch.tensor([[0.0, 2.0, 2.0]], dtype=torch.float64))
    loss, d = ce_loss(b, CEParams())
    lsm = torch.log_softmax(ell.detach(), -1)[0]
    assert loss.item() == pytest.approx(-(0.5 * lsm[1] + 0.5 * lsm[2]).item())
    (g,) = torch.autograd.grad(loss, ell)
    torch.testing.assert_close(g[0], torch.softmax(ell.detach(), -1)[0] - torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))
    assert d["p_target"].item() == pytest.approx(lsm[1:].exp().sum().item() / 2)


def test_all_zero_scores_contribute_nothing():
    ell = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    loss, _ = ce_loss(GroupBatch(logp=ell[..., None], logp_old=ell.detach()[..., None], scores=s), CEParams())
    assert loss.item() == pytest.approx(-torch.log_softmax(ell.detach()[0], -1)[0].item() / 2)
