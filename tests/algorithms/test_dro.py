import math

import pytest
import torch

from algorithms.batch import TrajectoryBatch
from algorithms.dro import DROVParams, KTOParams, dro_v_loss, kto_loss

D = torch.float64
C, NA = 3, 4
ACTIONS = torch.tensor([0, 2, 1])
R = torch.tensor([-0.5, 0.3, 1.0], dtype=D)
LOGP_REF = torch.full((C, 1), -math.log(NA), dtype=D)  # uniform reference


def _batch(z, v, r=R):
    """One single-token trajectory per context: the chosen action's log-prob under softmax(z)."""
    logp = torch.log_softmax(z, -1).gather(1, ACTIONS[:, None])
    return TrajectoryBatch(logp=logp, logp_old=logp.detach(), rewards=r[:, None].clone(), values=v,
                           logp_ref=LOGP_REF, scores=r)


def _ell(z):
    return (torch.log_softmax(z, -1).gather(1, ACTIONS[:, None]) - LOGP_REF).squeeze(1).detach()


def _fit(params, z, v, fit_policy, fit_value, steps=3000):
    opt = torch.optim.Adam([t for t, on in ((z, fit_policy), (v, fit_value)) if on], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = dro_v_loss(_batch(z, v), params)
        loss.backward()
        opt.step()


def test_gradients_closed_form():
    z = torch.randn(C, NA, dtype=D, requires_grad=True)
    v = torch.randn(C, dtype=D, requires_grad=True)
    b = _batch(z, v)
    loss, _ = dro_v_loss(b, DROVParams(tau=0.7, value_coef=2.0))
    g_logp, g_v = torch.autograd.grad(loss, [b.logp, v])
    ell = _ell(z)
    torch.testing.assert_close(g_logp[:, 0], (-(R - v.detach()) + 0.7 * ell) / C)
    torch.testing.assert_close(g_v, -2.0 * (R - v.detach() - 0.7 * ell) / C)


def test_value_part_optimum_zeroes_residual():
    z = torch.randn(C, NA, dtype=D)  # fixed policy
    v = torch.zeros(C, dtype=D, requires_grad=True)
    _fit(DROVParams(tau=0.5), z, v, fit_policy=False, fit_value=True)
    torch.testing.assert_close(v.detach(), R - 0.5 * _ell(z), atol=1e-6, rtol=0)


def test_policy_part_stationary_point_is_tau_ell_equals_r_minus_v():
    z = torch.zeros(C, NA, dtype=D, requires_grad=True)
    v = torch.tensor([0.1, -0.2, 0.0], dtype=D)  # fixed value
    _fit(DROVParams(tau=1.0), z, v, fit_policy=True, fit_value=False)
    torch.testing.assert_close(1.0 * _ell(z), R - v, atol=1e-5, rtol=0)


def test_joint_fit_reaches_zero_residual():
    z = torch.zeros(C, NA, dtype=D, requires_grad=True)
    v = torch.zeros(C, dtype=D, requires_grad=True)
    _fit(DROVParams(tau=2.0), z, v, fit_policy=True, fit_value=True)
    _, d = dro_v_loss(_batch(z, v), DROVParams(tau=2.0))
    assert d["residual_abs"].item() < 1e-5
    assert d["residual_abs"].dim() == 0 and not d["residual_abs"].requires_grad


def test_dro_needs_values_and_reference():
    b = TrajectoryBatch(logp=torch.zeros(2, 1), logp_old=torch.zeros(2, 1), rewards=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="values"):
        dro_v_loss(b, DROVParams())
    with pytest.raises(ValueError, match="logp_ref"):
        kto_loss(b, KTOParams())
    with pytest.raises(ValueError, match="reference"):
        DROVParams(reference="base")


def test_kto_signs_and_value():
    logp = torch.randn(4, 2, dtype=D, requires_grad=True)
    ref = logp.detach() + 0.3 * torch.randn(4, 2, dtype=D)
    s = torch.tensor([1.0, -1.0, 2.0, -0.5], dtype=D)
    b = TrajectoryBatch(logp=logp, logp_old=logp.detach(), rewards=torch.zeros(4, 2, dtype=D), logp_ref=ref, scores=s)
    loss, d = kto_loss(b, KTOParams(beta=0.5))
    (g,) = torch.autograd.grad(loss, logp)
    g_seq = g.sum(-1)  # d loss / d ℓ_n
    assert torch.all(g_seq[s > 0] < 0) and torch.all(g_seq[s <= 0] > 0)
    ell = (logp.detach() - ref).sum(-1)
    z0 = max(ell.mean().item(), 0.0)
    sig = torch.sigmoid
    per = torch.where(s > 0, 1 - sig(0.5 * (ell - z0)), 1 - sig(0.5 * (z0 - ell)))
    assert loss.item() == pytest.approx(per.mean().item())
    assert d["z0"].item() == pytest.approx(z0)
    # at the reference: ℓ = 0, z0 = 0 → every term 1 − σ(0) = ½
    at_ref = TrajectoryBatch(logp=ref, logp_old=ref, rewards=torch.zeros(4, 2, dtype=D), logp_ref=ref, scores=s)
    assert kto_loss(at_ref, KTOParams())[0].item() == pytest.approx(0.5)


def test_kto_weights_reach_the_loss():
    ref = torch.zeros(2, 1, dtype=D)
    logp = torch.tensor([[0.4], [0.4]], dtype=D)
    s = torch.tensor([1.0, -1.0], dtype=D)
    b = TrajectoryBatch(logp=logp, logp_old=logp, rewards=torch.zeros(2, 1, dtype=D), logp_ref=ref, scores=s)
    base, _ = kto_loss(b, KTOParams())
    heavier, _ = kto_loss(b, KTOParams(undesirable_weight=3.0))
    assert heavier.item() == pytest.approx(base.item() + (1 - torch.sigmoid(torch.tensor(0.0))).item())


def test_kto_reference_point_is_clamped_at_zero():
    ref = torch.zeros(2, 1, dtype=D)
    logp = torch.tensor([[-1.0], [-3.0]], dtype=D)  # mean ℓ = −2 < 0 → z0 = 0
    s = torch.tensor([1.0, -1.0], dtype=D)
    b = TrajectoryBatch(logp=logp, logp_old=logp, rewards=torch.zeros(2, 1, dtype=D), logp_ref=ref, scores=s)
    loss, d = kto_loss(b, KTOParams(beta=1.0))
    assert d["z0"].item() == 0.0
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert loss.item() == pytest.approx(((1 - sig(-1.0)) + (1 - sig(3.0))) / 2)
