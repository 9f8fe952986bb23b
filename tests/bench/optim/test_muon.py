"""Muon, AdamW-Nesterov and the named parameter splits."""
import math

import pytest
import torch

from bench.models import TransformerPolicy
from bench.optim import NS_COEFFS, AdamWNesterov, Muon, SPLITS, build_optimizer, muon_scale, newton_schulz


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- Newton–Schulz


@pytest.mark.parametrize("shape", [(32, 128), (128, 32), (64, 64)])
def test_newton_schulz_singular_values_in_band(shape):
    g = _randn(*shape)
    if shape[0] == shape[1]:  # a square Gaussian has near-zero σ_min; use a condition number of 100
        u, _, vh = torch.linalg.svd(g)
        g = u @ torch.diag(torch.logspace(0, -2, shape[0], dtype=g.dtype)) @ vh
    s = torch.linalg.svdvals(newton_schulz(g))
    assert s.min() > 0.6 and s.max() < 1.25, (s.min(), s.max())  # quintic's band ≈ [0.68, 1.2]
    # close to the polar factor U Vᵀ in direction
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    cos = (newton_schulz(g) * polar).sum() / (newton_schulz(g).norm() * polar.norm())
    assert cos > 0.98


def test_newton_schulz_batched_equals_per_matrix():
    g = _randn(3, 8, 20)
    out = newton_schulz(g)
    for i in range(3):
        assert torch.allclose(out[i], newton_schulz(g[i]), atol=1e-12)


def _ns_reference(u, steps=5, coeffs=NS_COEFFS, eps=1e-7):
    """Independent reference: NS is an odd matrix polynomial, so it acts on singular values only."""
    a, b, c = coeffs
    U, s, Vh = torch.linalg.svd(u, full_matrices=False)
    s = s / (torch.linalg.norm(u) + eps)
    for _ in range(steps):
        s = a * s + b * s ** 3 + c * s ** 5
    return U @ torch.diag(s) @ Vh


@pytest.mark.parametrize("shape, layout, scale", [
    ((3, 5), "out_in", 1.0),                 # fan_out 3 < fan_in 5
    ((5, 3), "out_in", math.sqrt(5 / 3)),    # tall: transposed inside NS, scaled up
    ((5, 3), "in_out", 1.0),                 # embedding layout: fan_out = cols
])
def test_muon_two_steps_match_hand_computation(shape, layout, scale):
    assert muon_scale(shape, layout) == pytest.approx(scale)
    w0, g1, g2 = _randn(*shape, seed=1), _randn(*shape, seed=2), _randn(*shape, seed=3)
    p = torch.nn.Parameter(w0.clone())
    opt = Muon([p], lr=0.1, momentum=0.9, layout=layout)
    mu, lr = 0.9, 0.1
    m = torch.zeros_like(w0)
    w = w0.clone()
    for g in (g1, g2):
        p.grad = g.clone()
        opt.step()
        m = mu * m + (1 - mu) * g
        nesterov = mu * m + (1 - mu) * g
        w = w - lr * scale * _ns_reference(nesterov)
        assert torch.allclose(p.data, w, atol=1e-10)


def test_muon_rejects_vectors():
    with pytest.raises(ValueError):
        Muon([torch.nn.Parameter(torch.zeros(4))])


# ----------------------------------------------------------------------------- AdamW-Nesterov


def test_adamw_nesterov_two_steps_match_hand_computation():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 1e-3
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdamWNesterov([p], lr=lr, betas=(b1, b2), eps=eps)
    grads = [[0.5, -1.0], [0.25, 3.0]]
    w = [1.0, -2.0]
    m = [0.0, 0.0]
    v = [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = b1 * m[i] / (1 - b1 ** (t + 1)) + (1 - b1) * g[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            w[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        assert p.data.tolist() == pytest.approx(w, rel=1e-12, abs=1e-15)


def test_adamw_nesterov_first_step_closed_form():
    # t = 1: m̂ = g·(b1/(1 + b1) + 1), v̂ = g²  →  Δ = −lr·(1 + b1/(1 + b1))·sign(g) (plain Adam: −lr·sign(g))
    p = torch.nn.Parameter(torch.tensor([0.0, 0.0], dtype=torch.float64))
    opt = AdamWNesterov([p], lr=1e-3, eps=0.0)
    p.grad = torch.tensor([2.0, -0.5], dtype=torch.float64)
    opt.step()
    step = 1e-3 * (1 + 0.9 / 1.9)
    assert p.data.tolist() == pytest.approx([-step, step], rel=1e-12)


# ----------------------------------------------------------------------------- splits / builder


ATTN = {f"blocks.{i}.attn.{n}.weight" for i in range(2) for n in "qkvo"}
MATRICES = {f"blocks.{i}.ffn.fc{j}.weight" for i in range(2) for j in (1, 2)} | {
    "head.weight", "tok_emb.weight", "pos_emb"}


def _groups(assignment, group):
    return {n for n, g in assignment if g == group}


def test_reference_split():
    model = TransformerPolicy(2, 10)
    opt, assignment = build_optimizer(model, "reference", lr=1e-3)
    assert [n for n, _ in assignment] == [n for n, _ in model.named_parameters()]
    assert _groups(assignment, "muon") == MATRICES
    adam = _groups(assignment, "adamw")
    assert ATTN <= adam
    assert all(p.dim() == 1 for n, p in model.named_parameters() if n in adam - ATTN)
    muon, adamw = opt.optimizers
    assert isinstance(muon, Muon) and isinstance(adamw, AdamWNesterov)
    layouts = {g["layout"]: {id(p) for p in g["params"]} for g in muon.param_groups}
    assert layouts["in_out"] == {id(model.tok_emb.weight), id(model.pos_emb)}


def test_all_matrices_split():
    model = TransformerPolicy(2, 10)
    _, assignment = build_optimizer(model, "all-matrices", lr=1e-3)
    assert _groups(assignment, "muon") == MATRICES | ATTN
    assert all(p.dim() == 1 for n, p in model.named_parameters() if n in _groups(assignment, "adamw"))


def test_unknown_split_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_optimizer(TransformerPolicy(2, 3), "everything", lr=1e-3)
    assert all(name in str(err.value) for name in SPLITS)


def test_builder_passes_hyperparameters():
    opt, _ = build_optimizer(TransformerPolicy(2, 3), "reference", lr=3e-3, muon_momentum=0.8, ns_steps=4,
                             ns_coeffs=(3.0, -4.0, 2.0), adam_betas=(0.8, 0.99), adam_eps=1e-6)
    muon, adamw = opt.optimizers
    assert all(g["lr"] == 3e-3 for g in opt.param_groups)
    assert all(g["momentum"] == 0.8 and g["ns_steps"] == 4 and g["ns_coeffs"] == (3.0, -4.0, 2.0)
               for g in muon.param_groups)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99) and adamw.param_groups[0]["eps"] == 1e-6
    assert adamw.param_groups[0]["weight_decay"] == 0.0


def test_split_optimizer_steps_every_parameter():
    model = TransformerPolicy(2, 3, generator=torch.Generator().manual_seed(0))
    opt, _ = build_optimizer(model, "reference", lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randint(0, 2, (8, 5), generator=torch.Generator().manual_seed(0))
    model(x).logsumexp(-1).mean().backward()   # depends on every parameter
    opt.step()
    opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before)
    assert all(p.grad is None for p in model.parameters())
