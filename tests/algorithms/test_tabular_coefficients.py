"""TPO paper Appendix B (docs/paper-map.md §3): exact population directions on the tabular bandit are all
β(p)·(e_y − π); at p = π(correct) = 0.1: β_TPO ≈ 0.730, β_DG = p/(1+p) ≈ 0.0909,
β_GRPO = √(p/(1−p)) = 1/3, β_PG = p, β_CE = 1. Uses the real loss functions."""
import math

import pytest
import torch

from algorithms import GroupBatch, group_to_trajectories
from algorithms.ce import CEParams, ce_loss
from algorithms.dg import DGParams, dg_loss
from algorithms.grpo import GRPOParams, grpo_loss
from algorithms.pg import PGParams, pg_loss
from algorithms.tpo import TPOParams, tpo_loss

D = torch.float64
A, Y, P = 10, 3, 0.1


def _context():
    g = torch.Generator().manual_seed(7)
    others = torch.rand(A - 1, generator=g, dtype=D) + 0.2
    pi = torch.cat([others[:Y], torch.tensor([0.0], dtype=D), others[Y:]])
    pi = pi / pi.sum() * (1 - P)
    pi[Y] = P
    z = pi.log().clone().requires_grad_(True)
    logp = torch.log_softmax(z, 0)
    batch = GroupBatch(
        logp=logp.reshape(1, A, 1),
        logp_old=logp.detach().reshape(1, A, 1),
        scores=torch.eye(A, dtype=D)[Y].reshape(1, A),
    )
    return z, pi, batch


def _beta(loss_fn, make_batch, params):
    z, pi, batch = _context()
    loss, _ = loss_fn(make_batch(batch, pi), params)
    (grad,) = torch.autograd.grad(loss, z)
    g = -grad
    e_y = torch.eye(A, dtype=D)[Y]
    beta = g[Y] / (1 - P)
    torch.testing.assert_close(g, beta * (e_y - pi), rtol=1e-9, atol=1e-12)  # exactly parallel
    return beta.item()


def _plain(batch, pi):
    return batch


def _weighted(batch, pi):
    return GroupBatch(logp=batch.logp, logp_old=batch.logp_old, scores=batch.scores, weights=pi.reshape(1, A))


def _weighted_traj(batch, pi):
    return group_to_trajectories(_weighted(batch, pi))


def test_tpo():
    lam = math.exp(10 / 3)
    beta = _beta(tpo_loss, _plain, TPOParams())
    assert beta == pytest.approx(P * (lam - 1) / (P * lam + 1 - P), rel=1e-9)
    assert beta == pytest.approx(0.730, abs=5e-4)


def test_dg():
    beta = _beta(dg_loss, _weighted_traj, DGParams(baseline="constant", baseline_value=0.0))
    assert beta == pytest.approx(P / (1 + P), rel=1e-9)
    assert beta == pytest.approx(0.0909, abs=1e-4)


def test_grpo():
    beta = _beta(grpo_loss, _weighted, GRPOParams(kl_beta=0.0))
    assert beta == pytest.approx(math.sqrt(P / (1 - P)), rel=1e-6)
    assert beta == pytest.approx(0.333, abs=5e-4)


@pytest.mark.parametrize("c", [0.0, 0.5, -2.0])
def test_pg_any_constant_baseline(c):
    assert _beta(pg_loss, _weighted_traj, PGParams(baseline="constant", baseline_value=c)) == pytest.approx(P, rel=1e-9)


def test_ce():
    assert _beta(ce_loss, _plain, CEParams()) == pytest.approx(1.0, rel=1e-12)


def test_ordering_matches_paper():
    betas = {
        "ce": _beta(ce_loss, _plain, CEParams()),
        "tpo": _beta(tpo_loss, _plain, TPOParams()),
        "grpo": _beta(grpo_loss, _weighted, GRPOParams(kl_beta=0.0)),
        "pg": _beta(pg_loss, _weighted_traj, PGParams(baseline="constant")),
        "dg": _beta(dg_loss, _weighted_traj, DGParams(baseline="constant")),
    }
    assert betas["ce"] > betas["tpo"] > betas["grpo"] > betas["pg"] > betas["dg"]
