"""Offline losses (BC, TD3+BC, IQL) and their shared critic pieces: hand-computed values on tiny inputs,
the TD target's terminal handling, target smoothing and clipping, λ's scale invariance, expectile
asymmetry, the AWR cap, where gradient flows, and equality under torch.func.vmap over seeds."""
from __future__ import annotations

import math

import pytest
import torch

from algorithms import ALGORITHMS, TransitionBatch
from algorithms.offline import (BCParams, IQLParams, OfflineNets, TD3BCParams, action_mse, awr_weights, bc_loss,
                                clipped_double_q, expectile_loss, iql_actor_loss, iql_critic_loss, iql_value_loss,
                                smoothed_target_action, td3_bc_actor_loss, td3_bc_critic_loss, td_target,
                                twin_q_loss)
from tests.algorithms.offline_testutils import assert_vmap_equals_per_seed_loop

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def leaf(x):
    return torch.tensor(x, dtype=D, requires_grad=True)


def tiny_batch(N=2, O=1, A=1, rewards=(1.0, 0.5), terminals=(0.0, 1.0), noise=None):
    return TransitionBatch(observations=torch.zeros(N, O, dtype=D), actions=torch.zeros(N, A, dtype=D),
                           rewards=t(list(rewards)), next_observations=torch.ones(N, O, dtype=D),
                           terminals=t(list(terminals)), noise=noise)


# -- shared critic pieces -----------------------------------------------------------------------------
def test_td_target_does_not_bootstrap_at_terminals():
    nxt = leaf([10.0, 1e6])
    y = td_target(t([1.0, 2.0]), t([0.0, 1.0]), nxt, 0.9)
    assert y.tolist() == [1.0 + 0.9 * 10.0, 2.0]
    assert not y.requires_grad


def test_clipped_double_q_is_the_min_over_critics():
    assert clipped_double_q(t([[1.0, 5.0, -2.0], [3.0, 2.0, -1.0]])).tolist() == [1.0, 2.0, -2.0]


def test_twin_q_loss_sums_critics_and_means_transitions():
    q = leaf([[1.0, 2.0], [0.0, 4.0]])
    y = leaf([1.0, 3.0])
    loss = twin_q_loss(q, y)
    assert loss.item() == pytest.approx(0.5 * (0 + 1) + 0.5 * (1 + 1))
    gq, gy = torch.autograd.grad(loss, (q, y), allow_unused=True)
    torch.testing.assert_close(gq, (q.detach() - y.detach()) * 2 / 2)   # 2(q − y)/N
    assert gy is None                                                    # no gradient through the target


def test_expectile_loss_hand_value_and_asymmetry():
    u = t([2.0, -1.0])
    assert expectile_loss(u, 0.7).item() == pytest.approx((0.7 * 4 + 0.3 * 1) / 2)
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * u.pow(2).mean().item())   # τ = 0.5: half the MSE
    assert expectile_loss(u, 0.9).item() == pytest.approx(expectile_loss(-u, 0.1).item())  # L^τ(u) = L^{1−τ}(−u)
    assert expectile_loss(t([1.0]), 0.7) > expectile_loss(t([-1.0]), 0.7)                # positive residuals weigh τ


def test_target_smoothing_clips_noise_and_actions():
    pi = t([[0.1], [0.1], [0.9], [0.1], [-0.95]])
    eps = t([[1e6], [-1e6], [1e6], [0.5], [-0.4]])
    a = smoothed_target_action(pi, eps, policy_noise=0.2, noise_clip=0.5)
    torch.testing.assert_close(a, t([[0.6], [-0.4], [1.0], [0.2], [-1.0]]))  # ±c, clamp to 1, σε, clamp to −1
    assert a.abs().max() <= 1.0


def test_action_mse_means_over_action_dimensions():
    pred, act = t([[1.0, 0.0], [0.0, 0.0]]), t([[0.0, 0.0], [0.0, -1.0]])
    assert action_mse(pred, act).item() == pytest.approx(2 / 4)   # (1 + 1)/(N·A)


# -- BC ----------------------------------------------------------------------------------------------
def test_bc_loss_value_and_gradient():
    theta = leaf([[0.5, -0.5], [0.0, 1.0]])
    batch = TransitionBatch(observations=torch.zeros(2, 3, dtype=D), actions=t([[0.0, 0.5], [1.0, 1.0]]),
                            rewards=torch.zeros(2, dtype=D), next_observations=torch.zeros(2, 3, dtype=D),
                            terminals=torch.zeros(2, dtype=D))
    loss, d = bc_loss(batch, OfflineNets(actor=lambda s: theta), BCParams())
    assert loss.item() == pytest.approx((0.25 + 1.0 + 1.0 + 0.0) / 4)
    assert d["bc_mse"].item() == loss.item() and not d["bc_mse"].requires_grad
    (g,) = torch.autograd.grad(loss, theta)
    torch.testing.assert_close(g, 2 * (theta.detach() - batch.actions) / 4)


# -- TD3+BC --------------------------------------------------------------------------------------------
def test_td3_bc_critic_loss_hand_value():
    seen = {}

    def critic_target(s, a):
        seen["a"] = a
        return torch.stack([2 * a[:, 0], 3 * a[:, 0] + 1])

    q = leaf([[3.0, 0.5], [2.0, 1.0]])
    nets = OfflineNets(actor_target=lambda s: t([[0.9], [-0.2]]), critic_target=critic_target,
                       critic=lambda s, a: q)
    batch = tiny_batch(noise=t([[10.0], [0.5]]))
    loss, d = td3_bc_critic_loss(batch, nets, TD3BCParams())
    # σε = [2.0, 0.1] → clip(·, ±0.5) = [0.5, 0.1]; a′ = clip([1.4, −0.1], ±1) = [1.0, −0.1]
    torch.testing.assert_close(seen["a"], t([[1.0], [-0.1]]))
    # min Q′ = [min(2, 4), min(−0.2, 0.7)] = [2, −0.2]; y = [1 + 0.99·2, 0.5 (terminal)]
    y = [2.98, 0.5]
    expected = ((3.0 - y[0]) ** 2 + (0.5 - y[1]) ** 2) / 2 + ((2.0 - y[0]) ** 2 + (1.0 - y[1]) ** 2) / 2
    assert loss.item() == pytest.approx(expected)
    assert d["target_mean"].item() == pytest.approx(sum(y) / 2)
    assert d["q_mean"].item() == pytest.approx(6.5 / 4)


def _td3_actor_setup(scale):
    theta = leaf([[0.2], [-0.4]])
    nets = OfflineNets(actor=lambda s: theta,
                       critic=lambda s, a: scale * torch.stack([2 * a[:, 0] + 1, -a[:, 0]]))
    return theta, nets


def test_td3_bc_actor_loss_hand_value_and_detached_lambda():
    theta, nets = _td3_actor_setup(1.0)
    loss, d = td3_bc_actor_loss(tiny_batch(), nets, TD3BCParams())
    # Q1(s, π(s)) = 2θ + 1 = [1.4, 0.2]; λ = 2.5 / 0.8; BC = mean(0.04, 0.16) = 0.1
    assert d["lambda"].item() == pytest.approx(2.5 / 0.8)
    assert loss.item() == pytest.approx(-2.5 / 0.8 * 0.8 + 0.1)
    (g,) = torch.autograd.grad(loss, theta)
    # λ constant: −λ·2/N + 2(θ − a)/(N·A); a λ with gradient would cancel the Q term (mean Q / mean|Q| ≡ 1)
    torch.testing.assert_close(g, -3.125 * 2 / 2 + 2 * theta.detach() / 2)


def test_td3_bc_lambda_makes_the_actor_gradient_q_scale_free():
    grads = []
    for scale in (1.0, 10.0):
        theta, nets = _td3_actor_setup(scale)
        loss, d = td3_bc_actor_loss(tiny_batch(), nets, TD3BCParams())
        grads.append(torch.autograd.grad(loss, theta)[0])
        assert d["lambda"].item() == pytest.approx(2.5 / (0.8 * scale))
    torch.testing.assert_close(grads[0], grads[1])
    theta, nets = _td3_actor_setup(10.0)   # without the normalisation (α fixed) the Q term would scale by 10
    assert not torch.allclose(grads[0], torch.autograd.grad(-10 * nets.critic(None, theta)[0].mean(), theta)[0])


def test_td3_bc_critic_needs_noise_of_action_shape():
    nets = OfflineNets(actor_target=lambda s: torch.zeros(2, 1, dtype=D),
                       critic=lambda s, a: torch.zeros(2, 2, dtype=D),
                       critic_target=lambda s, a: torch.zeros(2, 2, dtype=D))
    with pytest.raises(ValueError, match=r"^noise: td3_bc_critic_loss needs batch.noise of shape \(2, 1\).*got None$"):
        td3_bc_critic_loss(tiny_batch(), nets, TD3BCParams())
    with pytest.raises(ValueError, match=r"got \(2, 3\)$"):
        td3_bc_critic_loss(tiny_batch(noise=torch.zeros(2, 3, dtype=D)), nets, TD3BCParams())


def test_missing_network_is_named():
    with pytest.raises(ValueError, match=r"^nets.critic_target: iql_value_loss needs nets.critic_target, got None$"):
        iql_value_loss(tiny_batch(), OfflineNets(value=lambda s: torch.zeros(2, dtype=D)), IQLParams())


# -- IQL -----------------------------------------------------------------------------------------------
def test_iql_value_loss_hand_value_and_gradient():
    v = leaf([0.5, 1.0])
    nets = OfflineNets(critic_target=lambda s, a: t([[1.0, 3.0], [2.0, 0.0]]), value=lambda s: v)
    loss, d = iql_value_loss(tiny_batch(), nets, IQLParams())
    # u = min Q̂ − V = [1, 0] − [0.5, 1] = [0.5, −1]
    assert loss.item() == pytest.approx((0.7 * 0.25 + 0.3 * 1.0) / 2)
    (g,) = torch.autograd.grad(loss, v)
    torch.testing.assert_close(g, t([-2 * 0.7 * 0.5 / 2, -2 * 0.3 * -1.0 / 2]))
    assert d["adv_mean"].item() == pytest.approx(-0.25) and d["value_mean"].item() == pytest.approx(0.75)


def test_iql_actor_awr_weights_are_capped_at_100():
    adv = t([0.0, 1.0, 10.0, 1000.0])          # exp(3·1000) overflows to inf before the cap
    w = awr_weights(adv, beta=3.0, max_weight=100.0)
    torch.testing.assert_close(w, t([1.0, math.exp(3.0), 100.0, 100.0]))
    lp = leaf([-1.0, -2.0, -0.5, -3.0])
    nets = OfflineNets(actor_log_prob=lambda s, a: lp, critic_target=lambda s, a: torch.stack([adv, adv + 1]),
                       value=lambda s: torch.zeros(4, dtype=D))
    batch = tiny_batch(N=4, rewards=(0.0,) * 4, terminals=(0.0,) * 4)
    loss, d = iql_actor_loss(batch, nets, IQLParams())
    assert loss.item() == pytest.approx(-(w * lp.detach()).mean().item())
    (g,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(g, -w / 4)
    assert torch.isfinite(g).all()
    assert d["weight_capped"].item() == 0.5 and d["weight_mean"].item() == pytest.approx(w.mean().item())


def test_iql_critic_loss_hand_value():
    q = leaf([[3.0, 1.0], [2.8, 0.0]])
    nets = OfflineNets(critic=lambda s, a: q, value=lambda s: t([2.0, 5.0]))
    loss, d = iql_critic_loss(tiny_batch(rewards=(1.0, 1.0)), nets, IQLParams(discount=0.9))
    # y = [1 + 0.9·2, 1 (terminal)] = [2.8, 1]
    assert loss.item() == pytest.approx((0.04 + 0.0) / 2 + (0.0 + 1.0) / 2)
    assert d["target_mean"].item() == pytest.approx(1.9)


# -- parametric nets: gradient ownership and vmap over seeds ---------------------------------------------
O, A, C, N = 3, 2, 2, 5
NETS = ("actor", "actor_target", "critic", "critic_target", "value")


def init_params(gen, S=()):
    def r(*shape):
        return 0.5 * torch.randn((*S, *shape), generator=gen, dtype=D)

    actor = lambda: {"W": r(O, A), "b": r(A), "log_std": r(A)}   # noqa: E731
    critic = lambda: {"W": r(C, O + A), "b": r(C), "k": r(C)}    # noqa: E731
    return {"actor": actor(), "actor_target": actor(), "critic": critic(), "critic_target": critic(),
            "value": {"w": r(O), "b": r()}}


def make_nets(p):
    """Closures over one seed's parameters: tanh-linear actor (+ Gaussian log-prob), twin critics with a
    quadratic action term, linear V."""
    def actor_of(q):
        return lambda s: torch.tanh(s @ q["W"] + q["b"])

    def log_prob(s, a):
        mean, log_std = actor_of(p["actor"])(s), p["actor"]["log_std"]
        z = (a - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def critic_of(q):
        return lambda s, a: (torch.cat([s, a], -1) @ q["W"].T + q["b"]).T - q["k"][:, None] * a.pow(2).sum(-1)

    return OfflineNets(actor=actor_of(p["actor"]), actor_target=actor_of(p["actor_target"]), actor_log_prob=log_prob,
                       critic=critic_of(p["critic"]), critic_target=critic_of(p["critic_target"]),
                       value=lambda s: s @ p["value"]["w"] + p["value"]["b"])


def make_batch(gen, S=()):
    return {"observations": torch.randn(*S, N, O, generator=gen, dtype=D),
            "actions": torch.rand(*S, N, A, generator=gen, dtype=D) * 2 - 1,
            "rewards": torch.randn(*S, N, generator=gen, dtype=D),
            "next_observations": torch.randn(*S, N, O, generator=gen, dtype=D),
            "terminals": (torch.rand(*S, N, generator=gen) < 0.3).to(D),
            "noise": torch.randn(*S, N, A, generator=gen, dtype=D) * 3}


PHASES = [(name, i, phase) for name in ("bc", "td3_bc", "iql") for i, phase in enumerate(ALGORITHMS[name].phases)]
PHASE_IDS = [f"{name}-{phase.network}" for name, _, phase in PHASES]
#: networks a phase reads whose gradient the loss itself must stop (targets, weights, λ)
STOPPED = {("td3_bc", "critic"): ("actor_target", "critic_target", "actor"),
           ("iql", "value"): ("critic_target",), ("iql", "actor"): ("critic_target", "value"),
           ("iql", "critic"): ("value",)}


def _loss(name, phase, p, b):
    spec = ALGORITHMS[name]
    batch = TransitionBatch(**{k: v for k, v in b.items() if k != "noise" or spec.noise})
    return phase.loss(batch, make_nets(p), spec.params())


@pytest.mark.parametrize("name, i, phase", PHASES, ids=PHASE_IDS)
def test_gradient_reaches_the_phase_network_and_stops_at_targets(name, i, phase):
    gen = torch.Generator().manual_seed(7 + i)
    p = init_params(gen)
    for net in p.values():
        for v in net.values():
            v.requires_grad_(True)
    loss, diags = _loss(name, phase, p, make_batch(gen))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert diags and all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in diags.values())
    flat = [(net, k, v) for net in NETS for k, v in p[net].items()]
    grads = torch.autograd.grad(loss, [v for _, _, v in flat], allow_unused=True)
    owned = {(n, k): g for (n, k, _), g in zip(flat, grads) if n == phase.network}
    assert any(g is not None and g.abs().sum() > 0 for g in owned.values()), phase.network
    for (n, k, _), g in zip(flat, grads):
        if n in STOPPED.get((name, phase.network), ()):
            assert g is None or torch.all(g == 0), (n, k)


@pytest.mark.parametrize("name, i, phase", PHASES, ids=PHASE_IDS)
def test_vmap_over_seeds_equals_a_per_seed_loop(name, i, phase):
    """Each phase under torch.func.vmap over 3 stacked seeds (parameters and minibatches), value and the
    gradient w.r.t. the phase's network (torch.func.grad, the other networks constant), equals a python
    loop over the seeds with autograd."""
    S = 3
    gen = torch.Generator().manual_seed(100 + i)
    p, b = init_params(gen, (S,)), make_batch(gen, (S,))
    own = phase.network

    assert_vmap_equals_per_seed_loop(lambda ps, batch: _loss(name, phase, ps, batch), p, b, own, S)


# -- params ----------------------------------------------------------------------------------------------
def test_paper_defaults():
    assert TD3BCParams() == TD3BCParams(discount=0.99, tau=0.005, actor_every=2, alpha=2.5, policy_noise=0.2,
                                        noise_clip=0.5)
    assert IQLParams() == IQLParams(discount=0.99, tau=0.005, actor_every=1, expectile=0.7, beta=3.0,
                                    max_weight=100.0)
    assert BCParams() == BCParams(discount=0.99, tau=0.005, actor_every=1)


@pytest.mark.parametrize("cls, field, bad, msg", [
    (TD3BCParams, "discount", 1.5, "must be >= 0 and <= 1, got 1.5"),
    (TD3BCParams, "alpha", -1.0, "must be >= 0, got -1.0"),
    (TD3BCParams, "actor_every", 0, "must be >= 1, got 0"),
    (TD3BCParams, "actor_every", 1.5, "must be an int, got 1.5"),
    (IQLParams, "expectile", 1.0, "must be > 0 and < 1, got 1.0"),
    (IQLParams, "max_weight", 0.0, "must be > 0, got 0.0"),
    (IQLParams, "tau", float("nan"), "must be >= 0 and <= 1, got nan"),
    (BCParams, "tau", -0.1, "must be >= 0 and <= 1, got -0.1"),
])
def test_params_reject_out_of_range_values_in_one_line(cls, field, bad, msg):
    with pytest.raises(ValueError) as e:
        cls(**{field: bad})
    assert str(e.value) == f"{field}: {msg}"
