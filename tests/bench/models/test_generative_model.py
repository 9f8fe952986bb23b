"""The generative policy network: layout and init of the stacked parameters, per-seed independence, the time
embeddings, exact per-seed outputs and gradients under vmap, FQL's one-step policy."""
from __future__ import annotations

import math

import pytest
import torch
from torch.func import vmap

from bench.models.generative import (N_EMBED, generator, init_generator, init_one_step_actor, one_step_actor,
                                     sinusoidal_embedding)
from bench.seeding import generators

O, A = 3, 2


def test_layout_shapes_and_init_bounds():
    params = init_generator(O, A, generators([0, 1], "init_generator"), hidden=(8, 8, 8), time_dim=6)
    shapes = [tuple(p.shape) for p in params]
    emb = [(2, 6, 12), (2, 12), (2, 12, 6), (2, 6)]
    assert shapes == emb + emb + [(2, O + A + 12, 8), (2, 8), (2, 8, 8), (2, 8), (2, 8, 8), (2, 8), (2, 8, A), (2, A)]
    for w, b in zip(params[0::2], params[1::2]):   # nn.Linear default: U(±1/√fan_in) for W and b
        bound = 1 / math.sqrt(w.shape[1])
        assert w.abs().max() <= bound and b.abs().max() <= bound
    assert all(p.requires_grad and p.is_leaf for p in params)


def test_default_is_the_diffusion_ql_backbone():
    params = init_generator(O, A, generators([0], "g"))
    trunk = params[N_EMBED:]
    assert [tuple(w.shape[1:]) for w in trunk[0::2]] == [(O + A + 32, 256), (256, 256), (256, 256), (256, A)]
    assert tuple(params[0].shape[1:]) == (16, 32)


def test_a_seed_draws_the_same_weights_whoever_shares_the_batch():
    batched = init_generator(O, A, generators([0, 1, 2], "g"), hidden=(4,))
    alone = init_generator(O, A, generators([1], "g"), hidden=(4,))
    for pb, pa in zip(batched, alone):
        assert torch.equal(pb[1], pa[0])
    assert not torch.equal(batched[0][0], batched[0][1])


def test_sinusoidal_embedding_values():
    e = sinusoidal_embedding(torch.tensor([0.0, 2.0], dtype=torch.float64), 8)
    torch.testing.assert_close(e[0], torch.tensor([0.0] * 4 + [1.0] * 4, dtype=torch.float64))
    freqs = [10000 ** (-k / 3) for k in range(4)]   # 1 … 1/10000
    torch.testing.assert_close(e[1, :4], torch.tensor([math.sin(2 * f) for f in freqs], dtype=torch.float64))


@pytest.mark.parametrize("bad, msg", [(dict(time_dim=5), "time_dim: must be an even number >= 4, got 5"),
                                      (dict(time_dim=2), "time_dim: must be an even number >= 4, got 2"),
                                      (dict(hidden=()), "hidden: must be a non-empty list of widths >= 1, got []")])
def test_bad_widths_are_one_line_errors(bad, msg):
    with pytest.raises(ValueError) as e:
        init_generator(O, A, generators([0], "g"), **bad)
    assert str(e.value) == msg


def test_t_and_tau_both_reach_the_output():
    gen = torch.Generator().manual_seed(0)
    params = [p[0].detach() for p in init_generator(O, A, generators([3], "g"), hidden=(16, 16))]
    s, x = torch.randn(4, O, generator=gen), torch.randn(4, A, generator=gen)
    t, tau = torch.full((4,), 2.0), torch.zeros(4)
    base = generator(params, s, x, t, tau)
    assert base.shape == (4, A)
    assert not torch.allclose(base, generator(params, s, x, t + 1.0, tau))
    assert not torch.allclose(base, generator(params, s, x, t, tau + 1.0))


def test_vmap_forward_and_gradient_equal_the_per_seed_network():
    gen = torch.Generator().manual_seed(1)
    params = init_generator(O, A, generators([4, 5, 6], "g"), hidden=(8, 8))
    s, x = torch.randn(3, 5, O, generator=gen), torch.randn(3, 5, A, generator=gen)
    t, tau = torch.rand(3, 5, generator=gen) * 10, torch.rand(3, 5, generator=gen)
    out = vmap(generator, randomness="error")(params, s, x, t, tau)
    out.pow(2).sum().backward()
    for k in range(3):
        ps = [p.detach()[k].clone().requires_grad_(True) for p in params]
        ref = generator(ps, s[k], x[k], t[k], tau[k])
        torch.testing.assert_close(out[k], ref)
        ref.pow(2).sum().backward()
        for p, q in zip(params, ps):
            torch.testing.assert_close(p.grad[k], q.grad)


def test_one_step_actor_is_a_tanh_mlp_on_state_and_noise():
    params = [p[0].detach() for p in init_one_step_actor(O, A, generators([0], "init_actor"), hidden=(8,))]
    assert tuple(params[0].shape) == (O + A, 8)
    s, z = torch.randn(7, O) * 100, torch.randn(7, A) * 100
    a = one_step_actor(params, s, z)
    assert a.shape == (7, A) and a.abs().max() <= 1.0
    assert not torch.allclose(a, one_step_actor(params, s, z + 1.0))
