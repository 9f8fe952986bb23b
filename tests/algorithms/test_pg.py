import pytest
import torch

from algorithms.aggregate import AGGREGATIONS
from algorithms.pg import PGParams, pg_loss
from algorithms.shaping import advantage

from algo_testutils import grad_of


def test_gradient_closed_form_seq_sum(make_traj_batch):
    b = make_traj_batch(weights=True)
    A = advantage(b.rewards, b.token_mask(), "batch_mean", weights=b.weights)
    w = b.weights
    expected = -A * b.token_mask() * (w / w.sum())[:, None]
    torch.testing.assert_close(grad_of(pg_loss, b, PGParams()), expected)


def test_batch_mean_baseline_centres_advantage(make_traj_batch):
    b = make_traj_batch()
    _, d = pg_loss(b, PGParams())
    m = b.token_mask()
    A = advantage(b.rewards, m, "batch_mean")
    torch.testing.assert_close((A * m).sum(0), torch.zeros(A.shape[1], dtype=A.dtype), atol=1e-12, rtol=0)
    assert d["adv_mean"].abs().item() < 1e-12
    assert d["adv_abs"].item() > 0


@pytest.mark.parametrize("mode", [m for m in AGGREGATIONS if m not in ("group_sum", "constant")])
def test_aggregation_reaches_the_loss(make_traj_batch, mode):
    b = make_traj_batch()
    loss_mode, _ = pg_loss(b, PGParams(aggregation=mode))
    loss_default, _ = pg_loss(b, PGParams())
    assert (mode == "seq_sum") == bool(torch.isclose(loss_mode, loss_default))


def test_learned_baseline_adds_value_regression(make_traj_batch):
    b = make_traj_batch(values=True)
    params = PGParams(baseline="learned", value_coef=0.5)
    loss, _ = pg_loss(b, params)
    (gv,) = torch.autograd.grad(loss, b.values)
    r = b.seq_scores()
    torch.testing.assert_close(gv, -0.5 * (r - b.values.detach()) / b.values.shape[0])
    # the policy term uses sg[V]: gradient w.r.t. logp is the PG gradient with A = r_t − V
    A = b.rewards - b.values.detach()[:, None]
    torch.testing.assert_close(grad_of(pg_loss, b, params), -A * b.token_mask() / b.logp.shape[0])


def test_expected_baseline(make_traj_batch):
    b = make_traj_batch(baseline=True)
    A = b.rewards - b.baseline
    torch.testing.assert_close(grad_of(pg_loss, b, PGParams(baseline="expected")), -A * b.token_mask() / b.logp.shape[0])


def test_params_validate():
    with pytest.raises(ValueError, match="batch_mean"):
        PGParams(baseline="mean")
    with pytest.raises(ValueError, match="token_mean"):
        PGParams(aggregation="sum")
