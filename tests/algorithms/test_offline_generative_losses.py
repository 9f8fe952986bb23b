"""Every phase loss of the generative offline policies: its spec (phases, nets, targets, noise blocks, sampler),
where gradient flows (the phase's network, never a target), equality under torch.func.vmap over 3 stacked seeds
with a per-seed loop, a smoke run on the real generator network, and one-line errors for bad params and noise."""
from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from algorithms import ALGORITHMS, TransitionBatch
from algorithms.offline import (ConsistencyBCParams, DiffusionQLParams, FQLParams, GTPBCParams, GTPParams,
                                OfflineNets, TPOOfflineParams, ddpm_bc_loss)
from bench.models.generative import generator, init_generator, init_one_step_actor, one_step_actor
from bench.models.offline import ensemble_mlp, init_mlp
from bench.seeding import generators
from tests.algorithms.offline_testutils import assert_vmap_equals_per_seed_loop

D = torch.float64
O, A, C, N = 3, 2, 2, 4

#: name → (phases as (network, loss name, every), nets, targets, noise blocks at the defaults)
SPECS = {
    "ddpm_bc": ((("generator", "ddpm_bc_loss", None),), ("generator",), (), 2),
    "diffusion_ql": ((("critic", "diffusion_ql_critic_loss", None), ("generator", "diffusion_ql_generator_loss", None)),
                     ("generator", "critic"), ("critic", "generator"), 12),
    "consistency_bc": ((("generator", "consistency_bc_loss", None),), ("generator",), ("generator",), 2),
    "consistency_ac": ((("critic", "consistency_ac_critic_loss", None),
                        ("generator", "consistency_ac_generator_loss", None)),
                       ("generator", "critic"), ("critic", "generator"), 6),
    "flow_bc": ((("generator", "flow_bc_loss", None),), ("generator",), (), 2),
    "fql": ((("critic", "fql_critic_loss", None), ("generator", "fql_generator_loss", None),
             ("actor", "fql_actor_loss", None)), ("generator", "one_step_actor", "critic"), ("critic",), 4),
    "gtp_bc": ((("generator", "gtp_bc_generator_loss", None),), ("generator",), ("generator",), 4),
    "gtp": ((("critic", "gtp_critic_loss", None), ("generator", "gtp_generator_loss", None)),
            ("generator", "critic"), ("critic", "generator"), 5),
    "tpo_offline": ((("critic", "tpo_offline_critic_loss", None), ("generator", "tpo_offline_generator_loss", None)),
                    ("generator", "critic"), ("critic", "generator"), 13),
}
#: small settings so that every chain stays short in the tests
SMALL = {"ddpm_bc": dict(n_timesteps=3), "diffusion_ql": dict(n_timesteps=3), "consistency_bc": dict(n_grid=8),
         "consistency_ac": dict(n_grid=8), "flow_bc": dict(flow_steps=3), "fql": dict(flow_steps=3),
         "gtp_bc": dict(sample_steps=2), "gtp": dict(sample_steps=2)}
#: tpo_offline runs with each generative loss
VARIANTS = [(name, {}) for name in SPECS if name != "tpo_offline"] + [
    ("tpo_offline", dict(generative=g, n_candidates=3, n_timesteps=3, flow_steps=3, sample_steps=2))
    for g in ("flow", "diffusion", "gtp")]
PHASES = [(name, kw, phase) for name, kw in VARIANTS for phase in ALGORITHMS[name].phases]
PHASE_IDS = [f"{name}-{kw.get('generative', '')}-{phase.network}".replace("--", "-") for name, kw, phase in PHASES]
NETS = ("generator", "generator_target", "critic", "critic_target", "actor")
#: per (algorithm, phase network): networks the loss itself must stop (targets, teachers, weights, frozen samples)
STOPPED = {"critic": ("generator", "generator_target", "critic_target", "actor"),
           "generator": ("generator_target", "critic_target"),
           "actor": ("generator", "critic_target")}
STOPPED_EXTRA = {("gtp", "generator"): ("critic",), ("tpo_offline", "generator"): ("critic",)}


def params_of(name, kw):
    return ALGORITHMS[name].params(**{**SMALL.get(name, {}), **kw})


# -- specs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_declares_phases_nets_targets_noise_and_sampler(name):
    spec = ALGORITHMS[name]
    phases, nets, targets, noise = SPECS[name]
    assert spec.batch == "transition" and spec.loss is None and spec.epochs == 1
    assert tuple((p.network, p.loss.__name__, p.every) for p in spec.phases) == phases
    assert (spec.nets, spec.targets, spec.noise) == (nets, targets, noise)
    assert spec.noise_blocks(spec.params()) == noise and callable(spec.sampler)
    for f in ("discount", "tau", "actor_every"):
        assert hasattr(spec.params(), f)


def test_noise_blocks_follow_the_params():
    assert ALGORITHMS["diffusion_ql"].noise_blocks(DiffusionQLParams(n_timesteps=3)) == 8
    assert ALGORITHMS["consistency_ac"].noise_blocks(ALGORITHMS["consistency_ac"].params(sample_steps=4)) == 10
    tpo = ALGORITHMS["tpo_offline"]
    assert tpo.noise_blocks(TPOOfflineParams(generative="flow", n_candidates=4)) == 2 + 5
    assert tpo.noise_blocks(TPOOfflineParams(generative="diffusion", n_candidates=4, n_timesteps=3)) == 2 + 5 * 3
    assert ALGORITHMS["td3_bc"].noise_blocks(ALGORITHMS["td3_bc"].params()) == 1   # no noise_of: the constant


# -- closure networks with per-seed parameters -------------------------------------------------------------------
def init_params(gen, S=()):
    def r(*shape):
        return 0.5 * torch.randn((*S, *shape), generator=gen, dtype=D)

    g = lambda: {"Ws": r(O, A), "Wx": r(A, A), "wt": r(A), "wtau": r(A), "b": r(A)}   # noqa: E731
    critic = lambda: {"W": r(C, O + A), "b": r(C), "k": r(C)}                          # noqa: E731
    return {"generator": g(), "generator_target": g(), "critic": critic(), "critic_target": critic(),
            "actor": {"Ws": r(O, A), "Wz": r(A, A), "b": r(A)}}


def make_nets(p):
    def gen_of(q):
        return lambda s, x, t, tau: 2.0 * torch.tanh(s @ q["Ws"] + x @ q["Wx"] + torch.tanh(0.1 * t)[:, None] * q["wt"]
                                                     + torch.tanh(0.1 * tau)[:, None] * q["wtau"] + q["b"])

    def critic_of(q):
        return lambda s, a: (torch.cat([s, a], -1) @ q["W"].T + q["b"]).T - q["k"][:, None] * a.pow(2).sum(-1)

    act = p["actor"]
    return OfflineNets(generator=gen_of(p["generator"]), generator_target=gen_of(p["generator_target"]),
                       critic=critic_of(p["critic"]), critic_target=critic_of(p["critic_target"]),
                       one_step=lambda s, z: torch.tanh(s @ act["Ws"] + z @ act["Wz"] + act["b"]))


def make_batch(gen, blocks, S=()):
    return {"observations": torch.randn(*S, N, O, generator=gen, dtype=D),
            "actions": torch.rand(*S, N, A, generator=gen, dtype=D) * 2 - 1,
            "rewards": torch.randn(*S, N, generator=gen, dtype=D),
            "next_observations": torch.randn(*S, N, O, generator=gen, dtype=D),
            "terminals": (torch.rand(*S, N, generator=gen) < 0.3).to(D),
            "noise": torch.randn(*S, N, blocks * A, generator=gen, dtype=D)}


def _loss(phase, params, p, b):
    return phase.loss(TransitionBatch(**b), make_nets(p), params)


@pytest.mark.parametrize("name, kw, phase", PHASES, ids=PHASE_IDS)
def test_gradient_reaches_the_phase_network_and_stops_at_targets(name, kw, phase):
    gen = torch.Generator().manual_seed(7)
    params = params_of(name, kw)
    p = init_params(gen)
    for net in p.values():
        for v in net.values():
            v.requires_grad_(True)
    loss, diags = _loss(phase, params, p, make_batch(gen, ALGORITHMS[name].noise_blocks(params)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert diags and all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in diags.values())
    flat = [(net, k, v) for net in NETS for k, v in p[net].items()]
    grads = torch.autograd.grad(loss, [v for _, _, v in flat], allow_unused=True)
    owned = [g for (n, _, _), g in zip(flat, grads) if n == phase.network]
    assert any(g is not None and g.abs().sum() > 0 for g in owned), phase.network
    stopped = STOPPED[phase.network] + STOPPED_EXTRA.get((name, phase.network), ())
    for (n, k, _), g in zip(flat, grads):
        if n in stopped:
            assert g is None or torch.all(g == 0), (n, k)


@pytest.mark.parametrize("name, kw, phase", PHASES, ids=PHASE_IDS)
def test_vmap_over_seeds_equals_a_per_seed_loop(name, kw, phase):
    """Each phase under torch.func.vmap (randomness="error") over 3 stacked seeds: value, diagnostics and the
    gradient w.r.t. the phase's network equal a python loop over the seeds with autograd."""
    S = 3
    gen = torch.Generator().manual_seed(100)
    params = params_of(name, kw)
    p, b = init_params(gen, (S,)), make_batch(gen, ALGORITHMS[name].noise_blocks(params), (S,))
    own = phase.network

    assert_vmap_equals_per_seed_loop(lambda ps, batch: _loss(phase, params, ps, batch), p, b, own, S)


VARIANT_IDS = [f"{n}-{kw.get('generative', '')}".rstrip("-") for n, kw in VARIANTS]


@pytest.mark.parametrize("name, kw", VARIANTS, ids=VARIANT_IDS)
def test_smoke_on_the_generator_network(name, kw):
    """Each phase on the real generator / MLP critic / one-step actor (tiny widths, float32): finite loss, a
    non-zero gradient on the phase's parameters, none on the target copies; the sampler acts in [−1, 1]."""
    spec, params = ALGORITHMS[name], params_of(name, kw)
    seeds = generators([0], "init")
    g = [p[0].detach().requires_grad_(True) for p in init_generator(O, A, seeds, hidden=(16, 16), time_dim=4)]
    gt = [p.detach().clone().requires_grad_(True) for p in g]
    c = [p[0].detach().requires_grad_(True) for p in init_mlp([O + A, 16, 1], seeds, ensemble=2)]
    ct = [p.detach().clone().requires_grad_(True) for p in c]
    a = [p[0].detach().requires_grad_(True) for p in init_one_step_actor(O, A, seeds, hidden=(16,))]
    nets = OfflineNets(generator=lambda s, x, t, tau: generator(g, s, x, t, tau),
                       generator_target=lambda s, x, t, tau: generator(gt, s, x, t, tau),
                       critic=lambda s, u: ensemble_mlp(c, torch.cat([s, u], -1))[..., 0],
                       critic_target=lambda s, u: ensemble_mlp(ct, torch.cat([s, u], -1))[..., 0],
                       one_step=lambda s, z: one_step_actor(a, s, z))
    owned = {"generator": g, "critic": c, "actor": a}
    gen = torch.Generator().manual_seed(3)
    b = TransitionBatch(**{k: v.float() for k, v in make_batch(gen, spec.noise_blocks(params)).items()})
    for phase in spec.phases:
        loss, _ = phase.loss(b, nets, params)
        assert torch.isfinite(loss)
        grads = torch.autograd.grad(loss, owned[phase.network] + gt + ct, allow_unused=True)
        k = len(owned[phase.network])
        assert any(x is not None and x.abs().sum() > 0 for x in grads[:k])
        assert all(x is None or torch.all(x == 0) for x in grads[k:])
    act = spec.sampler(nets, b.observations, torch.zeros(N, A), params)
    assert act.shape == (N, A) and torch.isfinite(act).all() and act.abs().max() <= 1.0


# -- bad input ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kw, msg", [
    (TPOOfflineParams, dict(generative="vae"), "generative: expected one of flow, diffusion, gtp, got 'vae'"),
    (TPOOfflineParams, dict(n_candidates=1), "n_candidates: must be >= 2, got 1"),
    (TPOOfflineParams, dict(eta=0.0), "eta: must be > 0, got 0.0"),
    (GTPBCParams, dict(preconditioning="vp"), "preconditioning: expected one of edm, none, got 'vp'"),
    (GTPBCParams, dict(time_sampling="uniform"), "time_sampling: expected one of lognormal, karras, got 'uniform'"),
    (TPOOfflineParams, dict(flow_weighting="snr"), "flow_weighting: expected one of edm, none, got 'snr'"),
    (GTPParams, dict(teacher_gap=0.0), "teacher_gap: must be > 0 and <= 1, got 0.0"),
    (GTPParams, dict(t_max=0.001), "t_max: must be > t_min = 0.002, got 0.001"),
    (GTPParams, dict(eta=-1.0), "eta: must be >= 0, got -1.0"),
    (DiffusionQLParams, dict(beta_max=0.05), "beta_max: must be > beta_min = 0.1, got 0.05"),
    (DiffusionQLParams, dict(n_timesteps=0), "n_timesteps: must be >= 1, got 0"),
    (ConsistencyBCParams, dict(n_grid=1), "n_grid: must be >= 2, got 1"),
    (FQLParams, dict(alpha=-1.0), "alpha: must be >= 0, got -1.0"),
])
def test_params_reject_bad_values_in_one_line(cls, kw, msg):
    with pytest.raises(ValueError) as e:
        cls(**kw)
    assert str(e.value) == msg


def test_missing_noise_and_network_are_named():
    gen = torch.Generator().manual_seed(0)
    b = make_batch(gen, 1)
    nets = make_nets(init_params(gen))
    params = ALGORITHMS["ddpm_bc"].params()
    with pytest.raises(ValueError, match=r"^noise: ddpm_bc_loss needs batch.noise of shape \(4, 4\) .*got \(4, 2\)$"):
        ddpm_bc_loss(TransitionBatch(**b), nets, params)
    with pytest.raises(ValueError, match=r"^nets.generator: ddpm_bc_loss needs nets.generator, got None$"):
        ddpm_bc_loss(TransitionBatch(**make_batch(gen, 2)), OfflineNets(), params)


@pytest.mark.parametrize("name, kw", VARIANTS, ids=VARIANT_IDS)
def test_sampler_under_vmap_over_seeds_equals_a_per_seed_loop(name, kw):
    """Evaluation calls the sampler per seed inside torch.func.vmap (randomness="error")."""
    S = 3
    gen = torch.Generator().manual_seed(200)
    spec, params = ALGORITHMS[name], params_of(name, kw)
    p = init_params(gen, (S,))
    obs, z = torch.randn(S, N, O, generator=gen, dtype=D), torch.randn(S, N, A, generator=gen, dtype=D)
    out = vmap(lambda q, s, e: spec.sampler(make_nets(q), s, e, params), randomness="error")(p, obs, z)
    for s in range(S):
        ref = spec.sampler(make_nets({k: {n: v[s] for n, v in q.items()} for k, q in p.items()}), obs[s], z[s], params)
        torch.testing.assert_close(out[s], ref)
