"""The maths of the generative offline policies on tiny float64 tensors: noise schedules and time draws, VE
noising and GTP's score approximation, the flow map's boundary, DDPM's forward moments and the reverse chain,
the flow-matching target, the consistency boundary, Diffusion-QL's Q term, GTP's advantage weights,
GTP with η = 0 = GTP-BC, TPO-offline's reduction to BC under equal scores, the samplers' range."""
from __future__ import annotations

import math

import pytest
import torch

from algorithms import ALGORITHMS, TransitionBatch
from algorithms.offline import (DiffusionBCParams, GTPBCParams, GTPParams, OfflineNets, TPOOfflineParams,
                                gtp_bc_generator_loss, gtp_generator_loss, tpo_offline_generator_loss)
from algorithms.offline import generative as G
from algorithms.offline.diffusion import ddpm_terms
from algorithms.offline.flow import flow_matching_terms
from algorithms.offline import gtp as gtp_mod
from algorithms.offline.gtp import gtp_terms, gtp_times
from algorithms.offline.tpo_offline import generative_chain, generative_terms, tpo_offline_noise
from algorithms.shaping import standardise_scores

D = torch.float64
O, A, N = 3, 2, 5


def rand(gen, *shape, scale=1.0):
    return scale * torch.randn(*shape, generator=gen, dtype=D)


def closure_gen(gen, scale=3.0):
    """A small deterministic generator (s, x, t, τ) → [N, A] with its own random weights."""
    Ws, Wx, wt, wtau, b = rand(gen, O, A), rand(gen, A, A), rand(gen, A), rand(gen, A), rand(gen, A)
    return lambda s, x, t, tau: scale * torch.tanh(s @ Ws + x @ Wx + torch.tanh(0.1 * t)[:, None] * wt
                                                   + torch.tanh(0.1 * tau)[:, None] * wtau + b)


def batch_of(gen, blocks, n=N):
    return TransitionBatch(observations=rand(gen, n, O), actions=torch.rand(n, A, generator=gen, dtype=D) * 2 - 1,
                           rewards=rand(gen, n), next_observations=rand(gen, n, O),
                           terminals=torch.zeros(n, dtype=D), noise=rand(gen, n, blocks * A))


# -- randomness ------------------------------------------------------------------------------------------------
def test_uniform_from_normal_is_the_normal_cdf():
    z = torch.tensor([-40.0, -1.0, 0.0, 1.0, 40.0], dtype=D)
    u = G.uniform_from_normal(z)
    assert u[2].item() == 0.5 and u[0].item() == 0.0 and u[-1].item() == 1.0
    assert u[3].item() == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))))
    gen = torch.Generator().manual_seed(0)   # Φ(z) of standard normals is uniform: mean ½, variance 1/12
    u = G.uniform_from_normal(torch.randn(200_000, generator=gen, dtype=D))
    assert abs(u.mean().item() - 0.5) < 3e-3 and abs(u.var().item() - 1 / 12) < 2e-3


def test_noise_blocks_split_columns_and_name_the_needed_shape():
    gen = torch.Generator().manual_seed(1)
    b = batch_of(gen, 3)
    blocks = G.noise_blocks(b, 2, "some_loss")
    assert torch.equal(blocks[1], b.noise[:, A:2 * A])
    with pytest.raises(ValueError) as e:
        G.noise_blocks(b, 4, "some_loss")
    assert str(e.value) == (f"noise: some_loss needs batch.noise of shape ({N}, {4 * A}) (4 blocks of N(0, 1) draws "
                            f"per action dimension), got ({N}, {3 * A})")


def test_sampler_noise_shapes():
    z = torch.zeros(N, A)
    assert G.sampler_noise(z, 4) == (z, None)
    z3 = torch.arange(N * 3 * A, dtype=D).reshape(N, 3, A)
    first, rest = G.sampler_noise(z3, 2)
    assert torch.equal(first, z3[:, 0]) and torch.equal(rest[1], z3[:, 2])
    with pytest.raises(ValueError, match=r"^z: expected shape \[N, A\] .* or \[N, 5, A\] .*got \(5, 3, 2\)$"):
        G.sampler_noise(z3, 4)


# -- DDPM -------------------------------------------------------------------------------------------------------
def test_vp_alpha_bar_closed_form_is_the_cumulative_product_of_the_vp_schedule():
    T, bmin, bmax = 5, 0.1, 10.0
    prod = 1.0
    for k in range(1, T + 1):   # Diffusion-QL's vp_beta_schedule: α_k = exp(−β_min/T − ½(β_max − β_min)(2k − 1)/T²)
        prod *= math.exp(-bmin / T - 0.5 * (bmax - bmin) * (2 * k - 1) / T ** 2)
        assert G.vp_alpha_bar(k, T, bmin, bmax) == pytest.approx(prod, rel=1e-12)
        assert G.vp_alpha_bar(torch.tensor([float(k)], dtype=D), T, bmin, bmax).item() == pytest.approx(prod, rel=1e-12)
    assert G.vp_alpha_bar(0, T, bmin, bmax) == 1.0


def test_ddpm_index_is_uniform_over_the_steps():
    u = torch.tensor([0.0, 0.199, 0.2, 0.999, 1.0], dtype=D)
    assert G.ddpm_index(u, 5).tolist() == [0.0, 0.0, 1.0, 4.0, 4.0]


def test_ddpm_forward_noising_moments():
    gen = torch.Generator().manual_seed(2)
    a = torch.tensor([[0.7, -0.3]], dtype=D).expand(200_000, A)
    ab = torch.full((200_000,), G.vp_alpha_bar(2, 5, 0.1, 10.0), dtype=D)
    x = G.ddpm_noising(a, torch.randn(200_000, A, generator=gen, dtype=D), ab)
    torch.testing.assert_close(x.mean(0), math.sqrt(ab[0]) * a[0], atol=6e-3, rtol=0)
    torch.testing.assert_close(x.var(0), (1 - ab[0]).expand(A), atol=6e-3, rtol=0)


def test_ddpm_terms_vanish_for_the_true_noise_and_read_the_index_as_time():
    gen = torch.Generator().manual_seed(3)
    s, a, eps = rand(gen, N, O), torch.rand(N, A, generator=gen, dtype=D) * 2 - 1, rand(gen, N, A)
    seen = {}

    def oracle(obs, x, t, tau):
        seen.update(x=x, t=t, tau=tau)
        return eps

    u = torch.tensor([0.0, 0.3, 0.5, 0.75, 1.0], dtype=D)
    p = DiffusionBCParams()
    assert torch.equal(ddpm_terms(oracle, s, a, u, eps, p), torch.zeros(N, dtype=D))
    assert seen["t"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and torch.equal(seen["tau"], torch.zeros(N, dtype=D))
    ab = G.vp_alpha_bar(seen["t"] + 1, 5, 0.1, 10.0)
    torch.testing.assert_close(seen["x"], ab.sqrt()[:, None] * a + (1 - ab).sqrt()[:, None] * eps)
    torch.testing.assert_close(ddpm_terms(lambda *_: eps + 1.0, s, a, u, eps, p), torch.ones(N, dtype=D))


def test_ddpm_reverse_chain_with_an_oracle_denoiser_returns_the_action():
    """ε̂ = (x − √ᾱ_i·a)/√(1 − ᾱ_i) makes every x̂₀ = a; the chain must then end at a for any x_T, with or
    without injected noise (the last step has ᾱ_{−1} = 1 and no injection)."""
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(N, A, generator=gen, dtype=D) * 2 - 1
    T = 5

    def oracle(obs, x, t, tau):
        ab = G.vp_alpha_bar(t + 1, T, 0.1, 10.0)[:, None]
        return (x - ab.sqrt() * a) / (1 - ab).sqrt()

    for injected in (None, [rand(gen, N, A) for _ in range(T - 1)]):
        out = G.ddpm_sample(oracle, rand(gen, N, O), rand(gen, N, A), T, 0.1, 10.0, injected=injected)
        torch.testing.assert_close(out, a)


# -- flow matching -----------------------------------------------------------------------------------------------
def test_flow_path_endpoints_velocity_and_loss():
    gen = torch.Generator().manual_seed(5)
    a, z, s = rand(gen, N, A), rand(gen, N, A), rand(gen, N, O)
    torch.testing.assert_close(G.flow_path(a, z, torch.zeros(N, dtype=D)), z)
    torch.testing.assert_close(G.flow_path(a, z, torch.ones(N, dtype=D)), a)
    t, h = torch.full((N,), 0.3, dtype=D), 1e-6
    torch.testing.assert_close((G.flow_path(a, z, t + h) - G.flow_path(a, z, t - h)) / (2 * h), a - z)
    assert torch.equal(flow_matching_terms(lambda *_: a - z, s, a, t, z), torch.zeros(N, dtype=D))
    torch.testing.assert_close(flow_matching_terms(lambda *_: torch.zeros_like(a), s, a, t, z), (a - z).pow(2).mean(-1))


def test_flow_euler_sampler_integrates_a_constant_field_exactly():
    z = torch.tensor([[0.1, -0.2]], dtype=D)
    out = G.flow_euler_sample(lambda s, x, t, tau: torch.full_like(x, 0.5), torch.zeros(1, O, dtype=D), z, 10)
    torch.testing.assert_close(out, z + 0.5)


# -- VE noising, the flow map, GTP ------------------------------------------------------------------------------
def test_ve_noising_and_the_score_approximation_give_the_teacher_point():
    gen = torch.Generator().manual_seed(6)
    a, z = rand(gen, N, A), rand(gen, N, A)
    t = torch.tensor([80.0, 3.0, 0.5, 0.01, 0.002], dtype=D)
    u = t * torch.tensor([0.9, 0.5, 0.1, 1.0, 0.0], dtype=D)
    x_t = G.ve_noising(a, z, t)
    torch.testing.assert_close(x_t, a + t[:, None] * z)
    torch.testing.assert_close(G.score_approx_point(x_t, a, t, u), a + u[:, None] * z)


@pytest.mark.parametrize("preconditioning", ["edm", "none"])
def test_the_flow_map_at_tau_equal_t_is_the_identity_and_at_zero_is_phi(preconditioning):
    gen = torch.Generator().manual_seed(7)
    g, s, x = closure_gen(gen), rand(gen, N, O), rand(gen, N, A, scale=5.0)
    t = torch.tensor([80.0, 10.0, 1.0, 0.1, 0.002], dtype=D)
    kw = dict(t_min=0.002, sigma_data=0.5, preconditioning=preconditioning)
    assert torch.equal(G.gtp_flow_map(g, s, x, t, t, **kw), x)
    zero = torch.zeros(N, dtype=D)
    torch.testing.assert_close(G.gtp_flow_map(g, s, x, t, zero, **kw), G.gtp_phi(g, s, x, t, zero, **kw))
    half = G.gtp_flow_map(g, s, x, t, t / 2, **kw)   # linear in τ/t between φ and x_t
    torch.testing.assert_close(half, 0.5 * G.gtp_phi(g, s, x, t, t / 2, **kw) + 0.5 * x)


def test_edm_scalings_and_the_consistency_boundary():
    t = torch.tensor([0.002, 1.0, 80.0], dtype=D)
    c_skip, c_out, c_in = G.edm_scalings(t, 0.5, t_min=0.002)
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0
    assert c_skip[1].item() == pytest.approx(0.25 / ((1 - 0.002) ** 2 + 0.25))
    assert c_in[2].item() == pytest.approx(1 / math.sqrt(0.25 + 6400))
    gen = torch.Generator().manual_seed(8)
    x = rand(gen, 3, A)
    f = G.consistency_fn(closure_gen(gen), rand(gen, 3, O), x, torch.full((3,), 0.002, dtype=D), t_min=0.002,
                         sigma_data=0.5)
    assert torch.equal(f, x)   # f(x, ε) = x exactly


@pytest.mark.parametrize("time_sampling", ["lognormal", "karras"])
def test_gtp_time_draws_are_ordered_floored_and_close(time_sampling):
    z = torch.tensor([-40.0, -3.0, 0.0, 1.0, 8.0, 40.0], dtype=D)
    zz = torch.cartesian_prod(z, z, z)
    p = GTPBCParams(time_sampling=time_sampling)
    t, u, tau = gtp_times(zz[:, 0], G.uniform_from_normal(zz[:, 1]), G.uniform_from_normal(zz[:, 2]), p)
    assert torch.all(t >= u) and torch.all(u >= tau) and torch.all(tau >= 0) and torch.all(t >= 0.002)
    assert t.max().item() == 80.0 and t.min().item() == 0.002 and tau.min().item() == 0.0
    r = lambda x: (x / 80.0) ** (1 / 7)   # noqa: E731  the grid coordinate
    assert torch.all(r(t) - r(u) <= 0.05 + 1e-12)   # the teacher stays within Δ of t
    half = torch.tensor([0.0], dtype=D)   # z₁ = 0: the log-normal's median e^{P_mean}, the grid's midpoint 80·½^ρ
    expected = math.exp(-1.2) if time_sampling == "lognormal" else 80 * 0.5 ** 7
    assert gtp_times(half, half + 0.5, half + 0.5, p)[0].item() == pytest.approx(expected)


def test_gtp_lognormal_times_follow_edm():
    gen = torch.Generator().manual_seed(15)
    z1 = torch.randn(100_000, generator=gen, dtype=D)
    t, _, _ = gtp_times(z1, torch.rand(100_000, dtype=D), torch.rand(100_000, dtype=D), GTPBCParams())
    assert abs(t.log().mean().item() + 1.2) < 0.02 and abs(t.log().std().item() - 1.2) < 0.02


def test_edm_weight_gives_unit_weight_to_the_network():
    t = torch.tensor([0.01, 0.3, 5.0, 80.0], dtype=D)
    _, c_out, _ = G.edm_scalings(t, 0.5)
    torch.testing.assert_close(G.edm_weight(t, 0.5) * c_out.pow(2), torch.ones(4, dtype=D))


def test_gtp_terms_feed_the_teacher_the_score_approximation_point():
    gen = torch.Generator().manual_seed(9)
    b = batch_of(gen, 4)
    blocks = G.noise_blocks(b, 4, "test")
    seen = {}

    def teacher(s, x, t, tau):
        seen.update(x=x, t=t, tau=tau)
        return torch.zeros_like(x)

    p = GTPBCParams(preconditioning="none", flow_weighting="none")
    g = closure_gen(gen)
    cons, flow = gtp_terms(g, teacher, b.observations, b.actions, blocks, p)
    t, u, tau = gtp_times(blocks[0][:, 0], G.scalar_draw(blocks[1]), G.scalar_draw(blocks[2]), p)
    torch.testing.assert_close(seen["x"], b.actions + u[:, None] * blocks[3])
    torch.testing.assert_close(seen["t"], G.ve_time_feature(u, p.t_min))
    torch.testing.assert_close(seen["tau"], G.ve_time_feature(tau, p.t_min))
    assert cons.shape == flow.shape == (N,) and torch.all(cons >= 0)
    phi_inst = g(b.observations, b.actions + t[:, None] * blocks[3], G.ve_time_feature(t, p.t_min),
                 G.ve_time_feature(t, p.t_min))   # "none": φ is the raw network, evaluated at τ = t
    torch.testing.assert_close(flow, (phi_inst - b.actions).pow(2).mean(-1))
    p_edm = GTPBCParams(preconditioning="none")
    torch.testing.assert_close(gtp_terms(g, teacher, b.observations, b.actions, blocks, p_edm)[1],
                               flow * G.edm_weight(t, 0.5))


def test_ode_teacher_point_with_an_oracle_denoiser_lands_on_the_score_approximation_point():
    """With the denoiser D(x, t) = a (the data point itself, the field the score approximation uses), Euler steps of
    dx/dt = (x − D)/t follow the straight VE path exactly: the ODE-solved teacher point equals a + u·z."""
    gen = torch.Generator().manual_seed(12)
    a, z = rand(gen, N, A), rand(gen, N, A)
    t = torch.tensor([0.5, 1.0, 3.0, 10.0, 0.01], dtype=D)
    u = t * torch.tensor([0.9, 0.5, 0.1, 1.0, 0.0], dtype=D)
    oracle = lambda s, x, tt, tau: a   # noqa: E731 - φ("none") = the raw network = the data point
    p = GTPBCParams(preconditioning="none", teacher_point="ode", ode_steps=3)
    x_u = gtp_mod.ode_teacher_point(oracle, rand(gen, N, O), G.ve_noising(a, z, t), t, u, p)
    torch.testing.assert_close(x_u, a + u[:, None] * z)


def test_gtp_ode_teacher_and_shortcut_ablations_change_only_the_consistency_target():
    gen = torch.Generator().manual_seed(13)
    b = batch_of(gen, 4)
    blocks = G.noise_blocks(b, 4, "test")
    g, teacher = closure_gen(gen), closure_gen(gen)
    base = GTPBCParams(preconditioning="none", flow_weighting="none")
    cons0, flow0 = gtp_terms(g, teacher, b.observations, b.actions, blocks, base)
    variants = {"ode": GTPBCParams(preconditioning="none", flow_weighting="none", teacher_point="ode"),
                "shortcut": GTPBCParams(preconditioning="none", flow_weighting="none", consistency_target="shortcut")}
    t, u, tau = gtp_times(blocks[0][:, 0], G.scalar_draw(blocks[1]), G.scalar_draw(blocks[2]), base)
    kw = dict(t_min=base.t_min, sigma_data=base.sigma_data, preconditioning="none")
    student = G.gtp_flow_map(g, b.observations, G.ve_noising(b.actions, blocks[3], t), t, tau, **kw)
    for name, p in variants.items():
        cons, flow = gtp_terms(g, teacher, b.observations, b.actions, blocks, p)
        torch.testing.assert_close(flow, flow0)        # the instantaneous flow loss is untouched
        assert not torch.allclose(cons, cons0), name    # the target moved
        a_t = G.ve_noising(b.actions, blocks[3], t)
        if name == "ode":
            x_u = gtp_mod.ode_teacher_point(teacher, b.observations, a_t, t, u, p)
            target = G.gtp_flow_map(teacher, b.observations, x_u, u, tau, **kw)
        else:   # no teacher: two steps of the online map
            target = G.gtp_flow_map(g, b.observations, G.gtp_flow_map(g, b.observations, a_t, t, u, **kw), u, tau, **kw)
        torch.testing.assert_close(cons, (student - target).pow(2).mean(-1))


@pytest.mark.parametrize("field,value", [("teacher_point", "exact"), ("consistency_target", "none")])
def test_gtp_ablation_choices_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        GTPBCParams(**{field: value})


def test_gtp_sampling_grid():
    grid = G.gtp_time_grid(80.0, 7.0, 5, 0.002)
    assert grid[0] == 80.0 and grid[-1] == 0.0 and len(grid) == 6
    assert all(x > y for x, y in zip(grid, grid[1:]))
    assert G.gtp_time_grid(80.0, 7.0, 2, 0.002) == [80.0, 80.0 * 0.5 ** 7, 0.0]


def test_gtp_with_eta_zero_equals_gtp_bc_exactly():
    gen = torch.Generator().manual_seed(10)
    b = batch_of(gen, 5)
    W = rand(gen, A, A).requires_grad_(True)
    teacher = closure_gen(gen)
    base = closure_gen(gen)
    nets = OfflineNets(generator=lambda s, x, t, tau: base(s, x, t, tau) + x @ W, generator_target=teacher,
                       critic=lambda s, a: torch.stack([a.sum(-1) * 3.0, a[:, 0] - 1.0]))
    loss_g, d_g = gtp_generator_loss(b, nets, GTPParams(eta=0.0))
    loss_b, d_b = gtp_bc_generator_loss(b, nets, GTPBCParams())
    assert torch.equal(loss_g, loss_b)
    assert d_g["weight_mean"].item() == 1.0
    assert torch.equal(torch.autograd.grad(loss_g, W)[0], torch.autograd.grad(loss_b, W)[0])
    loss_1, d_1 = gtp_generator_loss(b, nets, GTPParams(eta=1.0))   # η > 0 moves the loss (the test can fail)
    assert d_1["weight_mean"].item() > 1.0 and not torch.equal(loss_1, loss_b)


def test_advantage_weights():
    adv = torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=D)
    sd = adv.std(unbiased=False).item()
    w = G.advantage_weights(adv, 2.0, 1e-6, 20.0)   # exp(2·3/sd) ≈ 28 is capped at 20
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, math.exp(2 / (sd + 1e-6)), 20.0], dtype=D))
    assert torch.equal(G.advantage_weights(adv, 0.0, 1e-6, 100.0), torch.ones(4, dtype=D))
    assert torch.equal(G.advantage_weights(torch.zeros(3, dtype=D), 1.0, 1e-6, 100.0), torch.ones(3, dtype=D))


def test_normalised_q_term_is_the_expected_coin_and_scale_free():
    q = torch.tensor([[1.0, 3.0], [-2.0, 4.0]], dtype=D, requires_grad=True)
    v = G.normalised_q_term(q)
    assert v.item() == pytest.approx(0.5 * (2.0 / 3.0 + 1.0 / 2.0))
    g = torch.autograd.grad(v, q)[0]   # denominators detached: ∂/∂Q₁ = 1/(2N·mean|Q₂|), ∂/∂Q₂ = 1/(2N·mean|Q₁|)
    torch.testing.assert_close(g, torch.tensor([[1 / 12, 1 / 12], [1 / 8, 1 / 8]], dtype=D))
    assert G.normalised_q_term(10 * q).item() == pytest.approx(v.item())


# -- TPO-offline -----------------------------------------------------------------------------------------------
def _tpo_setup(generative, gen, critic):
    p = TPOOfflineParams(generative=generative, n_candidates=3, n_timesteps=3, flow_steps=3, sample_steps=2)
    b = batch_of(gen, tpo_offline_noise(p))
    nets = OfflineNets(generator=closure_gen(gen, 1.0), generator_target=closure_gen(gen, 1.0), critic=critic)
    return p, b, nets


def _candidates_and_terms(p, b, nets):
    blocks = G.noise_blocks(b, tpo_offline_noise(p), "test")
    g, c = (4 if p.generative == "gtp" else 2), (p.n_timesteps if p.generative == "diffusion" else 1)
    s = b.observations
    cands = [generative_chain(nets.generator, s, blocks[g + k * c:g + (k + 1) * c], p) for k in range(p.n_candidates)]
    terms = torch.stack([generative_terms(nets, s, a, blocks[:g], p, "test") for a in cands], 1)
    bc = generative_terms(nets, s, b.actions, blocks[:g], p, "test").mean()
    return cands, terms, bc


@pytest.mark.parametrize("generative", ["flow", "diffusion", "gtp"])
def test_tpo_offline_with_equal_scores_is_generative_bc_on_the_samples(generative):
    gen = torch.Generator().manual_seed(11)
    p, b, nets = _tpo_setup(generative, gen, lambda s, a: torch.stack([s.sum(-1), s.sum(-1) + 1.0]))   # Q ⟂ a
    loss, d = tpo_offline_generator_loss(b, nets, p)
    _, terms, bc = _candidates_and_terms(p, b, nets)
    torch.testing.assert_close(loss, terms.mean() + p.bc_weight * bc)
    assert d["flat_fraction"].item() == 1.0 and d["q_max_mean"].item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("generative", ["flow", "gtp"])
def test_tpo_offline_weights_candidates_by_softmax_of_standardised_scores(generative):
    gen = torch.Generator().manual_seed(12)
    target = torch.tensor([0.3, -0.5], dtype=D)
    critic = lambda s, a: torch.stack([-(a - target).pow(2).sum(-1), -(a - target).pow(2).sum(-1) + 0.1])  # noqa: E731
    p, b, nets = _tpo_setup(generative, gen, critic)
    p = TPOOfflineParams(**{**p.__dict__, "eta": 0.5, "bc_weight": 0.25})
    loss, d = tpo_offline_generator_loss(b, nets, p)
    cands, terms, bc = _candidates_and_terms(p, b, nets)
    scores = torch.stack([-(a - target).pow(2).sum(-1) for a in cands], 1)
    q = torch.softmax(standardise_scores(scores) / 0.5, -1)
    torch.testing.assert_close(loss, (q * terms).sum(-1).mean() + 0.25 * bc)
    assert d["q_max_mean"].item() > 1 / 3 and d["flat_fraction"].item() == 0.0


# -- samplers ------------------------------------------------------------------------------------------------------
GENERATIVE = ["ddpm_bc", "diffusion_ql", "consistency_bc", "consistency_ac", "flow_bc", "fql", "gtp_bc", "gtp",
              "tpo_offline"]


@pytest.mark.parametrize("name", GENERATIVE)
def test_samplers_return_actions_in_the_unit_box(name):
    gen = torch.Generator().manual_seed(13)
    spec = ALGORITHMS[name]
    params = spec.params()
    big = closure_gen(gen, scale=50.0)
    nets = OfflineNets(generator=big, one_step=lambda s, z: torch.tanh(50 * (s[:, :A] + z)))
    s = rand(gen, N, O)
    outs = [spec.sampler(nets, s, torch.zeros(N, A, dtype=D), params),
            spec.sampler(nets, s, rand(gen, N, A, scale=3.0), params)]
    for out in outs:
        assert out.shape == (N, A) and out.dtype == D and out.abs().max() <= 1.0
    assert torch.equal(outs[0], spec.sampler(nets, s, torch.zeros(N, A, dtype=D), params))   # deterministic at z = 0


@pytest.mark.parametrize("name, injections", [("ddpm_bc", 4), ("consistency_ac", 1)])
def test_ancestral_samplers_take_injected_noise(name, injections):
    """z [N, B, A] injects fresh noise; z [N, A] is the chain with no injection (DDPM: the posterior means)
    or re-noised with z itself (consistency: every input stays at its noise level)."""
    gen = torch.Generator().manual_seed(14)
    spec = ALGORITHMS[name]
    nets = OfflineNets(generator=closure_gen(gen, 1.0))
    s, z = rand(gen, N, O), rand(gen, N, 1 + injections, A)
    det = spec.sampler(nets, s, z[:, 0], spec.params())
    anc = spec.sampler(nets, s, z, spec.params())
    assert anc.shape == (N, A) and anc.abs().max() <= 1.0 and not torch.allclose(det, anc)
    same = z[:, :1].expand(N, 1 + injections, A) if name == "consistency_ac" else torch.cat([z[:, :1], 0 * z[:, 1:]], 1)
    assert torch.equal(spec.sampler(nets, s, same, spec.params()), det)
