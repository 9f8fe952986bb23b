"""Muon (optax.contrib.muon semantics and the legacy variant), AdamW-Nesterov and the named parameter splits."""
import math

import numpy as np
import pytest
import torch

from bench.models import TransformerConfig, TransformerPolicy
from bench.optim import (EPS, LEGACY_EPS, NS_COEFFS, SPLITS, AdamWNesterov, Muon, build_optimizer, muon_scale,
                         newton_schulz)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------- float64 reference (from the formulas)


def _reference_muon(w_flax, grads, lr, beta, eps, nesterov=True, bias_correction=True, ns_steps=5):
    """Muon on a Flax-layout kernel W [fan_in, fan_out], written from the formulas of the module docstring
    of bench.optim.muon (optax.contrib.muon 0.2.5–0.2.8) in numpy float64. Returns W after each step."""
    a, b, c = NS_COEFFS
    w, m, out = np.array(w_flax, dtype=np.float64), np.zeros_like(w_flax, dtype=np.float64), []
    fan_in, fan_out = w.shape
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        m = beta * m + (1 - beta) * g
        if bias_correction:
            u = beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta ** t) if nesterov else \
                m / (1 - beta ** t)
        else:
            u = beta * m + (1 - beta) * g if nesterov else m
        x = u.T if u.shape[0] > u.shape[1] else u
        x = x / (np.sqrt((x * x).sum()) + eps)
        for _ in range(ns_steps):
            gram = x @ x.T
            x = a * x + (b * gram + c * gram @ gram) @ x
        o = x.T if u.shape[0] > u.shape[1] else x
        w = w - lr * math.sqrt(max(1.0, fan_out / fan_in)) * o
        out.append(w.copy())
    return out


def _grads(shape, n, seed, scale=1.0, corr=0.5):
    """n correlated gradients (g_t = corr·g_{t−1} + noise), so that the momentum buffer matters."""
    rng = np.random.default_rng(seed)
    g, out = rng.standard_normal(shape), []
    for _ in range(n):
        g = corr * g + rng.standard_normal(shape)
        out.append(g * scale)
    return out


@pytest.mark.parametrize("fan_in, fan_out", [(12, 5), (5, 12), (7, 7)])
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_optax_formulas_torch_layout(fan_in, fan_out, nesterov):
    # the reference's Flax kernel is [fan_in, fan_out]; torch stores the same Linear as [fan_out, fan_in]
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((fan_in, fan_out))
    grads = _grads((fan_in, fan_out), 8, seed=1)
    expected = _reference_muon(w0, grads, lr=0.02, beta=0.95, eps=1e-8, nesterov=nesterov)
    p = torch.nn.Parameter(torch.tensor(w0.T.copy()))
    opt = Muon([p], lr=0.02, momentum=0.95, nesterov=nesterov)                 # defaults: eps 1e-8, bias-corrected
    for g, w in zip(grads, expected):
        p.grad = torch.tensor(g.T.copy())
        opt.step()
        got = p.detach().numpy().T
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(got - w0, w - w0, rtol=1e-9, atol=1e-13)   # the updates themselves


def test_muon_matches_optax_formulas_embedding_layout_and_stacked_seeds():
    # an embedding table is [V, d] = [fan_in, fan_out] in both frameworks (layout "in_out"); leading seed axis
    S, V, d = 3, 4, 10
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((S, V, d))
    grads = _grads((S, V, d), 6, seed=3)
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = Muon([p], lr=0.01, layout="in_out")
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    for s in range(S):
        expected = _reference_muon(w0[s], [g[s] for g in grads], lr=0.01, beta=0.95, eps=1e-8)[-1]
        np.testing.assert_allclose(p.detach().numpy()[s], expected, rtol=1e-6, atol=1e-12)


def test_muon_float32_matches_float64_reference_to_round_off():
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((64, 256)).astype(np.float32)                   # Flax FFN kernel [d, d_ff]
    grads = [g.astype(np.float32) for g in _grads((64, 256), 5, seed=5)]
    expected = _reference_muon(w0, grads, lr=1e-3, beta=0.95, eps=1e-8)[-1]
    p = torch.nn.Parameter(torch.tensor(w0.T.copy()))
    opt = Muon([p], lr=1e-3)
    for g in grads:
        p.grad = torch.tensor(g.T.copy())
        opt.step()
    got = p.detach().numpy().T.astype(np.float64)
    assert np.abs(got - expected).max() < 1e-6 * np.abs(expected).max()      # float32 storage round-off
    assert np.linalg.norm((got - w0) - (expected - w0)) / np.linalg.norm(expected - w0) < 1e-3


def test_muon_legacy_config_matches_legacy_formulas():
    rng = np.random.default_rng(6)
    w0 = rng.standard_normal((9, 4))
    grads = _grads((9, 4), 6, seed=7)
    expected = _reference_muon(w0, grads, lr=0.05, beta=0.9, eps=1e-7, bias_correction=False)
    p = torch.nn.Parameter(torch.tensor(w0.T.copy()))
    opt = Muon([p], lr=0.05, momentum=0.9, eps=LEGACY_EPS, bias_correction=False)
    for g, w in zip(grads, expected):
        p.grad = torch.tensor(g.T.copy())
        opt.step()
        np.testing.assert_allclose(p.detach().numpy().T, w, rtol=1e-6, atol=1e-12)


def test_muon_legacy_config_reproduces_previous_update_bit_for_bit():
    # the suite's earlier Muon, transcribed: m ← μm + (1−μ)g; u = g(1−μ) + μm; X = u/(‖u‖+1e-7); NS; W −= lr·s·X
    shape, mu, lr = (6, 11), 0.95, 1e-3
    w = _randn(*shape, seed=8, dtype=torch.float32)
    p = torch.nn.Parameter(w.clone())
    opt = Muon([p], lr=lr, eps=1e-7, bias_correction=False)
    buf = torch.zeros_like(w)
    a, b, c = NS_COEFFS
    for t in range(5):
        g = _randn(*shape, seed=20 + t, dtype=torch.float32)
        p.grad = g.clone()
        opt.step()
        buf.mul_(mu).add_(g, alpha=1.0 - mu)
        u = g * (1.0 - mu) + buf * mu
        x = u / (torch.linalg.matrix_norm(u, keepdim=True) + 1e-7)
        for _ in range(5):
            A = x @ x.transpose(-2, -1)
            x = a * x + (b * A + c * (A @ A)) @ x
        w.add_(x, alpha=-lr * muon_scale(shape, "out_in"))
        assert torch.equal(p.detach(), w)


def test_muon_bias_correction_changes_early_updates_only():
    # same gradients: the default (bias-corrected) and legacy momentum weigh m_t against g_t differently
    # by (1 − μ^t)/(1 − μ^{t+1}) → 1; at t = 1 both are ∝ g, so the updates coincide
    shape = (16, 24)
    p_new, p_old = (torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)) for _ in range(2))
    new, old = Muon([p_new], lr=1.0), Muon([p_old], lr=1.0, bias_correction=False, eps=EPS)
    diffs = []
    for t in range(60):
        g = _randn(*shape, seed=100 + t)
        before = p_new.detach().clone()
        p_new.grad, p_old.grad = g.clone(), g.clone()
        p_old.data.copy_(before)
        new.step(), old.step()
        d_new, d_old = p_new.detach() - before, p_old.detach() - before
        diffs.append(((d_new - d_old).norm() / d_new.norm()).item())
    assert diffs[0] < 1e-7                   # (only ε against the two norms differs)
    assert diffs[1] > 0.05                   # the second step differs by several per cent
    assert diffs[-1] < 0.01                  # and the gap closes with t


def test_muon_eps_matters_for_tiny_gradients():
    # a solved policy: gradient entries ~1e-7, ‖u‖_F ~1e-6, so ε = 1e-7 shrinks X_0 and changes the update
    rng = np.random.default_rng(9)
    w0 = rng.standard_normal((16, 8))                                           # Flax [in, out]
    tiny = _grads((16, 8), 5, seed=10, scale=1e-7)
    updates = {}
    for eps in (1e-8, 1e-7):
        p = torch.nn.Parameter(torch.tensor(w0.T.copy()))
        opt = Muon([p], lr=1e-3, eps=eps)
        for g in tiny:
            p.grad = torch.tensor(g.T.copy())
            opt.step()
        expected = _reference_muon(w0, tiny, lr=1e-3, beta=0.95, eps=eps)[-1]
        np.testing.assert_allclose(p.detach().numpy().T, expected, rtol=1e-6, atol=1e-12)
        updates[eps] = p.detach().numpy().T - w0
    rel = np.linalg.norm(updates[1e-8] - updates[1e-7]) / np.linalg.norm(updates[1e-8])
    assert rel > 0.03, rel                                                   # ≈ 5 % here
    # the same gradients scaled to order 1: ε no longer matters
    big = [g * 1e7 for g in tiny]
    up = [_reference_muon(w0, big, lr=1e-3, beta=0.95, eps=eps)[-1] - w0 for eps in (1e-8, 1e-7)]
    assert np.linalg.norm(up[0] - up[1]) / np.linalg.norm(up[0]) < 1e-6


@pytest.mark.parametrize("kwargs, field", [({"eps": 0.0}, "eps"), ({"momentum": 1.0}, "momentum"),
                                           ({"layout": "rows"}, "layout"), ({"view": (3, 3)}, "view")])
def test_muon_rejects_bad_options_in_one_line(kwargs, field):
    with pytest.raises(ValueError) as err:
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], **kwargs)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_muon_rejects_vectors_without_view():
    with pytest.raises(ValueError):
        Muon([torch.nn.Parameter(torch.zeros(4))])


def test_muon_view_orthogonalises_the_reshaped_matrix():
    # a stacked q bias [S, heads·head_dim] with view (heads, head_dim) = Muon on [S, heads, head_dim], layout in_out
    S, heads, d_head = 3, 2, 8
    flat = torch.nn.Parameter(torch.zeros(S, heads * d_head, dtype=torch.float64))
    mat = torch.nn.Parameter(torch.zeros(S, heads, d_head, dtype=torch.float64))
    a = Muon([flat], lr=0.1, layout="in_out", view=(heads, d_head))
    b = Muon([mat], lr=0.1, layout="in_out")
    for t in range(4):
        g = _randn(S, heads, d_head, seed=30 + t)
        flat.grad, mat.grad = g.reshape(S, -1).clone(), g.clone()
        a.step(), b.step()
        assert torch.allclose(flat.detach().reshape(S, heads, d_head), mat.detach(), rtol=0, atol=1e-14)
    assert muon_scale((heads, d_head), "in_out") == pytest.approx(2.0)          # √(head_dim/heads)
    # orthogonalised per seed as a 2 × 8 matrix: both singular values of the first update ≈ 1 (quintic band)
    s = torch.linalg.svdvals(newton_schulz(_randn(heads, d_head, seed=30)))
    assert s.min() > 0.6 and s.max() < 1.25


# ----------------------------------------------------------------------------- Newton–Schulz


@pytest.mark.parametrize("shape", [(32, 128), (128, 32), (64, 64)])
def test_newton_schulz_singular_values_in_band(shape):
    g = _randn(*shape)
    if shape[0] == shape[1]:  # a square Gaussian has near-zero σ_min; use a condition number of 100
        u, _, vh = torch.linalg.svd(g)
        g = u @ torch.diag(torch.logspace(0, -2, shape[0], dtype=g.dtype)) @ vh
    s = torch.linalg.svdvals(newton_schulz(g))
    assert s.min() > 0.6 and s.max() < 1.25, (s.min(), s.max())  # quintic's band ≈ [0.68, 1.2]
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    cos = (newton_schulz(g) * polar).sum() / (newton_schulz(g).norm() * polar.norm())
    assert cos > 0.98


def test_newton_schulz_batched_equals_per_matrix_and_transpose_commutes():
    g = _randn(3, 8, 20)
    out = newton_schulz(g)
    for i in range(3):
        assert torch.allclose(out[i], newton_schulz(g[i]), atol=1e-12)
        assert torch.allclose(newton_schulz(g[i].T), out[i].T, atol=1e-12)   # NS(Xᵀ) = NS(X)ᵀ: layout-free


@pytest.mark.parametrize("shape, layout, scale", [
    ((3, 5), "out_in", 1.0),                 # fan_out 3 < fan_in 5
    ((5, 3), "out_in", math.sqrt(5 / 3)),    # tall: transposed inside NS, scaled up
    ((5, 3), "in_out", 1.0),                 # embedding layout: fan_out = cols
    ((2, 32), "in_out", 4.0),                # q/k/v bias view [heads, head_dim] at d = 64, 2 heads
])
def test_muon_scale(shape, layout, scale):
    assert muon_scale(shape, layout) == pytest.approx(scale)


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

# The reference (Flax) model at d = 64, 2 heads (head_dim 32), d_ff 256, V = 2, H = 7 (2H = 14): every
# tensor's shape there, by the torch name of the same tensor. optax.contrib.muon puts exactly the 2-D
# ones under Muon, each read as [fan_in, fan_out].
REFERENCE_SHAPES = {
    "tok_emb.weight": (2, 64),                 # nn.Embed [V, d]
    "pos_emb": (14, 64),                       # [2H, d]
    "ln_f.weight": (64,), "ln_f.bias": (64,),
    "head.weight": (64, 2), "head.bias": (2,),   # Dense kernel [d, V]
    **{name: shape for i in range(2) for name, shape in {
        f"blocks.{i}.ln1.weight": (64,), f"blocks.{i}.ln1.bias": (64,),
        f"blocks.{i}.attn.q.weight": (64, 2, 32), f"blocks.{i}.attn.q.bias": (2, 32),   # DenseGeneral
        f"blocks.{i}.attn.k.weight": (64, 2, 32), f"blocks.{i}.attn.k.bias": (2, 32),
        f"blocks.{i}.attn.v.weight": (64, 2, 32), f"blocks.{i}.attn.v.bias": (2, 32),
        f"blocks.{i}.attn.o.weight": (2, 32, 64), f"blocks.{i}.attn.o.bias": (64,),     # out DenseGeneral
        f"blocks.{i}.ln2.weight": (64,), f"blocks.{i}.ln2.bias": (64,),
        f"blocks.{i}.ffn.fc1.weight": (64, 256), f"blocks.{i}.ffn.fc1.bias": (256,),
        f"blocks.{i}.ffn.fc2.weight": (256, 64), f"blocks.{i}.ffn.fc2.bias": (64,),
    }.items()},
}
ATTN = {f"blocks.{i}.attn.{n}.weight" for i in range(2) for n in "qkvo"}


def _reference_model():
    return TransformerPolicy(2, 7, TransformerConfig(n_heads=2), generator=torch.Generator().manual_seed(0))


def _muon_matrices(muon):
    """name-free {id(param): (rows, cols, scale)} of what Muon orthogonalises."""
    out = {}
    for g in muon.param_groups:
        for p in g["params"]:
            rows, cols = g["view"] if g["view"] is not None else tuple(p.shape[-2:])
            out[id(p)] = (rows, cols, muon_scale((rows, cols), g["layout"]))
    return out


def _groups(assignment, group):
    return {n for n, g in assignment if g == group}


def test_reference_split_parameter_by_parameter():
    model = _reference_model()
    opt, assignment = build_optimizer(model, "reference", lr=1e-3)
    named = dict(model.named_parameters())
    assert set(named) == set(REFERENCE_SHAPES) and [n for n, _ in assignment] == list(named)
    for name, group in assignment:
        assert math.prod(REFERENCE_SHAPES[name]) == named[name].numel(), name
        assert group == ("muon" if len(REFERENCE_SHAPES[name]) == 2 else "adamw"), name
    muon, adamw = opt.optimizers
    assert isinstance(muon, Muon) and isinstance(adamw, AdamWNesterov)
    matrices = _muon_matrices(muon)
    for name in _groups(assignment, "muon"):
        # the matrix Muon works on, read as the reference's [fan_in, fan_out] (torch Linear weights are its transpose)
        fan_in, fan_out = REFERENCE_SHAPES[name]
        rows, cols, scale = matrices[id(named[name])]
        assert (rows, cols) in ((fan_in, fan_out), (fan_out, fan_in)), name
        assert scale == pytest.approx(math.sqrt(max(1.0, fan_out / fan_in))), name
    assert matrices[id(named["blocks.1.attn.v.bias"])] == (2, 32, pytest.approx(4.0))
    assert {id(p) for p in adamw.param_groups[0]["params"]} == {id(named[n]) for n in _groups(assignment, "adamw")}


def test_all_matrices_split_adds_only_the_attention_kernels():
    model = _reference_model()
    _, ref = build_optimizer(model, "reference", lr=1e-3)
    _, allm = build_optimizer(model, "all-matrices", lr=1e-3)
    assert _groups(allm, "muon") == _groups(ref, "muon") | ATTN
    assert all(p.dim() == 1 for n, p in model.named_parameters() if n in _groups(allm, "adamw"))


def test_split_on_seed_stacked_parameters_keeps_the_seed_axis():
    # a task holding the template's parameters stacked over S seeds [S, ...], as the sequence family does
    S, template = 3, _reference_model()

    class Stacked:
        def __init__(self):
            self.params = {n: _randn(S, *p.shape, seed=i).requires_grad_(True)
                           for i, (n, p) in enumerate(template.named_parameters())}

        def named_parameters(self):
            return list(self.params.items())

        def parameter_roles(self):
            return template.parameter_roles()

        def parameter_views(self):
            return template.parameter_views()

    task = Stacked()
    opt, assignment = build_optimizer(task, "reference", lr=1e-3)
    assert _groups(assignment, "muon") == {n for n, s in REFERENCE_SHAPES.items() if len(s) == 2}
    q = task.params["blocks.0.attn.q.bias"]                                     # [S, 64]
    g = _randn(S, 64, seed=99)
    for p in task.params.values():
        p.grad = torch.zeros_like(p)
    q.grad = g.clone()
    before = q.detach().clone()
    opt.step()
    # per seed: bias-corrected Nesterov at t = 1 is ∝ g; the update is −lr·4·NS(g_s as [2, 32])
    for s in range(S):
        expected = -1e-3 * 4.0 * newton_schulz(g[s].reshape(2, 32)).reshape(64)
        assert torch.allclose(q.detach()[s] - before[s], expected, rtol=1e-6, atol=1e-10)


def test_attention_bias_without_view_is_rejected():
    model = _reference_model()

    class NoViews:
        def named_parameters(self):
            return model.named_parameters()

        def parameter_roles(self):
            return model.parameter_roles()

    with pytest.raises(ValueError, match="parameter_views"):
        build_optimizer(NoViews(), "reference", lr=1e-3)


def test_unknown_split_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_optimizer(TransformerPolicy(2, 3), "everything", lr=1e-3)
    assert all(name in str(err.value) for name in SPLITS)


def test_builder_passes_hyperparameters():
    opt, _ = build_optimizer(TransformerPolicy(2, 3), "reference", lr=3e-3, muon_momentum=0.8, ns_steps=4,
                             ns_coeffs=(3.0, -4.0, 2.0), adam_betas=(0.8, 0.99), adam_eps=1e-6, muon_eps=1e-7,
                             bias_correction=False)
    muon, adamw = opt.optimizers
    assert all(g["lr"] == 3e-3 for g in opt.param_groups)
    assert all(g["momentum"] == 0.8 and g["ns_steps"] == 4 and g["ns_coeffs"] == (3.0, -4.0, 2.0)
               and g["eps"] == 1e-7 and g["bias_correction"] is False for g in muon.param_groups)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99) and adamw.param_groups[0]["eps"] == 1e-6
    assert adamw.param_groups[0]["weight_decay"] == 0.0
    default, _ = build_optimizer(TransformerPolicy(2, 3), "reference")
    assert all(g["eps"] == 1e-8 and g["bias_correction"] is True for g in default.optimizers[0].param_groups)


def test_config_reaches_the_optimizer():
    from bench.build import build
    from bench.cli import compose
    from bench.schema import MuonConfig, to_settings

    assert MuonConfig().eps == 1e-8 and MuonConfig().bias_correction is True
    base = ["env=reversal", "model=transformer", "optim=muon", "logger=none", "env.horizon=3", "env.vocab=2",
            "env.batch_size=4", "env.k=2", "algorithm=tpo", "run.seeds=2"]
    for extra, eps, bc in ([], 1e-8, True), (["optim.eps=1e-7", "optim.bias_correction=false"], 1e-7, False):
        muon = build(to_settings(compose([*base, *extra]))).optimizer.optimizers[0]
        assert all(g["eps"] == eps and g["bias_correction"] is bc for g in muon.param_groups)
        views = [g["view"] for g in muon.param_groups if g["view"] is not None]
        assert views == [(2, 32)]


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
