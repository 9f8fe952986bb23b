import math

import pytest
import torch

from algorithms.dg import DGParams, delight_gate, dg_loss
from algorithms.pg import PGParams, pg_loss
from algorithms.shaping import advantage

from algo_testutils import grad_of


@pytest.mark.parametrize("baseline", ["batch_mean", "constant"])
def test_infinite_temperature_is_half_pg(make_traj_batch, baseline):
    b = make_traj_batch(weights=True)
    g_dg = grad_of(dg_loss, b, DGParams(eta=1e9, baseline=baseline))
    g_pg = grad_of(pg_loss, b, PGParams(baseline=baseline))
    torch.testing.assert_close(g_dg, 0.5 * g_pg)


def test_gradient_closed_form(make_traj_batch):
    b = make_traj_batch()
    m = b.token_mask()
    A = advantage(b.rewards, m, "batch_mean")
    gate = torch.sigmoid(A * (-b.logp.detach()) / 0.7)
    torch.testing.assert_close(grad_of(dg_loss, b, DGParams(eta=0.7)), -gate * A * m / b.logp.shape[0])


def test_surprisal_clip_changes_gate():
    A = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    logp = torch.tensor([[math.log(0.01), math.log(0.5), math.log(0.9)]], dtype=torch.float64)
    unclipped = delight_gate(A, logp, 1.0, None)
    clipped = delight_gate(A, logp, 1.0, 1.0)
    s = [-math.log(0.01), -math.log(0.5), -math.log(0.9)]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert unclipped[0].tolist() == pytest.approx([sig(a * si) for a, si in zip([1.0, -2.0, 0.5], s)])
    assert clipped[0].tolist() == pytest.approx([sig(1.0 * 1.0), sig(-2.0 * s[1]), sig(0.5 * s[2])])
    assert clipped[0, 0] < unclipped[0, 0]


def test_surprisal_clip_reaches_loss(make_traj_batch):
    b = make_traj_batch()
    _, d0 = dg_loss(b, DGParams())
    _, d1 = dg_loss(b, DGParams(surprisal_clip=0.05))
    assert d0["gate_mean"].item() != pytest.approx(d1["gate_mean"].item())


def test_gate_uses_detached_surprisal(make_traj_batch):
    """The gate is a constant: the gradient is linear in sg[w A]."""
    b = make_traj_batch()
    loss, d = dg_loss(b, DGParams())
    g = torch.autograd.grad(loss, b.logp)[0]
    A = advantage(b.rewards, b.token_mask(), "batch_mean")
    assert torch.all((g * -A) >= 0)  # sign follows A
    assert 0 < d["gate_mean"].item() < 1
