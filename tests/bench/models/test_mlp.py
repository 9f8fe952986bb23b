"""The stacked-seed MLP: LeCun-normal init, per-seed independence, exact per-seed outputs and gradients."""
from __future__ import annotations

import math

import torch

from bench.models.mlp import StackedMlp, init_stacked_mlp, mlp_forward
from bench.seeding import generators

SIZES = (784, 50, 50, 10)


def test_init_shapes_lecun_variance_truncation_and_zero_biases():
    params = init_stacked_mlp(SIZES, generators([0, 1], "init"))
    assert [tuple(p.shape) for p in params] == [(2, 784, 50), (2, 50), (2, 50, 50), (2, 50), (2, 50, 10), (2, 10)]
    for w, b in zip(params[0::2], params[1::2]):
        fan_in = w.shape[1]
        assert torch.all(b == 0)
        var = float(w.detach().var())
        assert abs(var * fan_in - 1.0) < 0.1, var * fan_in          # Var = 1/fan_in
        sigma = math.sqrt(1.0 / fan_in) / 0.87962566103423978       # σ of the untruncated normal
        assert float(w.detach().abs().max()) <= 2 * sigma + 1e-6    # truncated at ±2σ
    assert all(p.requires_grad and p.is_leaf for p in params)


def test_a_seed_draws_the_same_weights_whoever_shares_the_batch():
    batched = init_stacked_mlp(SIZES, generators([0, 1, 2], "init"))
    alone = init_stacked_mlp(SIZES, generators([1], "init"))
    for pb, pa in zip(batched, alone):
        assert torch.equal(pb[1], pa[0])
    assert not torch.equal(batched[0][0], batched[0][1])


def test_forward_and_gradient_per_seed_equal_the_plain_network():
    torch.manual_seed(0)
    net = StackedMlp(SIZES, generators([3, 4, 5], "init"))
    x = torch.rand(3, 7, 784)
    y = torch.randint(10, (3, 7))
    out = net(x)
    loss = torch.nn.functional.cross_entropy(out.reshape(-1, 10), y.reshape(-1), reduction="none").reshape(3, 7).mean(-1)
    loss.sum().backward()
    for s in range(3):
        w1, b1, w2, b2, w3, b3 = [p.detach()[s].clone().requires_grad_(True) for p in net.params]
        h = torch.relu(x[s] @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        ref = h @ w3 + b3
        assert torch.allclose(out[s], ref, atol=1e-5)
        torch.nn.functional.cross_entropy(ref, y[s]).backward()
        for p, q in zip(net.params, (w1, b1, w2, b2, w3, b3)):
            assert torch.allclose(p.grad[s], q.grad, atol=1e-6)


def test_shared_inputs_broadcast_over_seeds():
    net = StackedMlp((4, 3, 2), generators([0, 1], "init"))
    x = torch.rand(5, 4)
    assert torch.allclose(net(x), mlp_forward(net.params, x.expand(2, 5, 4)))
    assert net.n_params == 4 * 3 + 3 + 3 * 2 + 2
