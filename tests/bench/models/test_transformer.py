"""Transformer policy: size, initialisation, causality, KV cache and functional (vmap) use."""
import math

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from bench.models import TransformerConfig, TransformerPolicy


def _model(vocab=2, horizon=10, seed=0, **cfg):
    return TransformerPolicy(vocab, horizon, TransformerConfig(**cfg), generator=torch.Generator().manual_seed(seed))


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_count_reference_size():
    # V=2, H=10: tok 2·64 + pos 20·64 + 2 × (LN 256 + qkvo 4·(64²+64) + FFN (64·256+256)+(256·64+64))
    #            + final LN 128 + head 64·2+2 = 128 + 1280 + 2·49,984 + 128 + 130 = 101,634 (≈101.6k)
    assert _count(_model()) == 101_634


@pytest.mark.parametrize("vocab, horizon, heads", [(4, 7, 4), (16, 10, 2), (2, 3, 1)])
def test_parameter_count_formula(vocab, horizon, heads):
    d, f = 64, 256
    per_block = 4 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d)
    expected = vocab * d + 2 * horizon * d + 2 * per_block + 2 * d + d * vocab + vocab
    assert _count(_model(vocab, horizon, n_heads=heads)) == expected


def test_heads_must_divide_width():
    with pytest.raises(ValueError):
        TransformerConfig(d_model=64, n_heads=3)


def test_init_statistics():
    m = _model(vocab=256, horizon=32)
    d = 64
    tok = m.tok_emb.weight
    assert tok.std().item() == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert m.pos_emb.std().item() == pytest.approx(0.02, rel=0.1)
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    for ln in [m.ln_f, m.blocks[0].ln1, m.blocks[1].ln2]:
        assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
        assert ln.eps == 1e-6
    fc1 = m.blocks[0].ffn.fc1.weight                              # [256, 64]: Var 1/64, truncated at ±2σ_raw
    assert fc1.var().item() == pytest.approx(1 / 64, rel=0.08)
    sigma_raw = math.sqrt(1 / 64) / 0.8796256610342398
    assert fc1.abs().max().item() <= 2 * sigma_raw + 1e-6
    fc2 = m.blocks[1].ffn.fc2.weight                              # [64, 256]: Var 1/256
    assert fc2.var().item() == pytest.approx(1 / 256, rel=0.08)


def test_init_is_seeded():
    a, b, c = _model(seed=1), _model(seed=1), _model(seed=2)
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), n
    assert not torch.equal(a.blocks[0].attn.q.weight, c.blocks[0].attn.q.weight)


def test_causal():
    m = _model(vocab=4, horizon=5)
    x = torch.randint(0, 4, (3, 10), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % 4
    lx, ly = m(x), m(y)
    assert torch.allclose(lx[:, :6], ly[:, :6], atol=1e-6)
    assert not torch.allclose(lx[:, 6:], ly[:, 6:], atol=1e-4)


def test_kv_cache_matches_full_forward():
    m = _model(vocab=3, horizon=6)
    x = torch.randint(0, 3, (4, 12), generator=torch.Generator().manual_seed(1))
    full = m.logits(x)
    logits, cache = m.prefill(x[:, :6])
    steps = [logits]
    for t in range(6, 12):
        lt, cache = m.decode(x[:, t:t + 1], cache)
        steps.append(lt)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    # a multi-token chunk after the prefix is also exact
    _, cache = m.prefill(x[:, :4])
    chunk, _ = m.decode(x[:, 4:9], cache)
    assert torch.allclose(chunk, full[:, 4:9], atol=1e-5)


def test_buffer_overflow_raises():
    m = _model(vocab=2, horizon=3)
    with pytest.raises(ValueError):
        m(torch.zeros(1, 7, dtype=torch.long))


def test_forward_leading_dims():
    m = _model(vocab=2, horizon=4)
    x = torch.randint(0, 2, (2, 3, 7), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(m(x), m(x.reshape(6, 7)).reshape(2, 3, 7, 2), atol=1e-6)


def test_vmap_over_stacked_parameters():
    models = [_model(vocab=2, horizon=4, seed=s) for s in range(3)]
    params, buffers = stack_module_state(models)
    base = _model(vocab=2, horizon=4, seed=99).to("meta")
    x = torch.randint(0, 2, (5, 7), generator=torch.Generator().manual_seed(0))

    def f(p, b):
        return functional_call(base, (p, b), (x,))

    out = vmap(f)(params, buffers)                                # [3, 5, 7, 2]
    for s, m in enumerate(models):
        assert torch.allclose(out[s], m(x), atol=1e-5)
    # gradients through vmap too
    loss = vmap(f)(params, buffers).logsumexp(-1).sum()
    (g,) = torch.autograd.grad(loss, [params["blocks.0.attn.q.weight"]])
    assert g.shape == (3, 64, 64) and torch.isfinite(g).all()


def test_parameter_roles_and_qkv_bias_views():
    m = _model(n_heads=4)
    roles, views = m.parameter_roles(), m.parameter_views()
    assert set(roles) == {n for n, _ in m.named_parameters()}
    qkv = {f"blocks.{i}.attn.{n}.bias" for i in range(2) for n in "qkv"}
    assert {n for n, r in roles.items() if r == "attention_bias"} == qkv == set(views)
    assert roles["blocks.0.attn.o.bias"] == roles["blocks.1.ffn.fc1.bias"] == roles["head.bias"] == "bias"
    assert all(v == (4, 16) for v in views.values())
    # the view [heads, head_dim] is the heads' layout: with W_q = 0, head h's query is row h of the view
    attn = m.blocks[0].attn
    with torch.no_grad():
        attn.q.weight.zero_()
        attn.q.bias.copy_(torch.arange(64, dtype=torch.float32))
    q = attn._heads(attn.q(torch.randn(1, 3, 64, generator=torch.Generator().manual_seed(0))))   # [1, h, T, d_h]
    assert torch.equal(q[0, :, 0], attn.q.bias.detach().view(*views["blocks.0.attn.q.bias"]))


def test_stacked_run_equals_each_seed_alone_and_checks_token_ids():
    from bench.families.sequence import stacked_init
    from bench.models.transformer import stacked_run

    cfg = TransformerConfig()
    params = stacked_init(3, 4, cfg, [torch.Generator().manual_seed(s) for s in range(3)], "cpu")
    tokens = torch.randint(0, 3, (3, 5, 6), generator=torch.Generator().manual_seed(0))
    logits, _ = stacked_run(params, cfg, tokens)
    for s in range(3):
        torch.testing.assert_close(logits[s], _model(3, 4, seed=s)(tokens[s]), atol=1e-5, rtol=1e-5)
    with pytest.raises(IndexError):   # an id ≥ V must not read the next seed's embedding table
        stacked_run(params, cfg, torch.full((3, 1, 2), 3))


def test_functional_call_with_one_tensor_under_two_names():
    m = _model()
    q = m.blocks[0].attn.q.bias
    x = torch.randint(0, 2, (2, 5), generator=torch.Generator().manual_seed(0))
    out = functional_call(m, {"blocks.0.attn.q.bias": q, "blocks.0.attn.k.bias": q}, (x,))
    assert out.shape == (2, 5, 2) and torch.isfinite(out).all()
