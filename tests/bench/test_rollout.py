"""Sampler equivalences (old log-probs vs recomputation, one-forward token candidates), seeding,
sampling distribution, and a tiny on-policy REINFORCE smoke run on copy."""
import pytest
import torch

from bench.models import TransformerPolicy
from bench.optim import build_optimizer
from bench.rollout import (answer_log_probs, sample_grouped, sample_single, sample_token_candidates, sequence_logp,
                           token_candidate_logp)
from envs.reversal import ReversalTask

V, H = 3, 5


@pytest.fixture(scope="module")
def model():
    m = TransformerPolicy(V, H, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # sharpen the random policy a little so log-probs differ across tokens
        m.head.weight.mul_(3.0)
    return m


@pytest.fixture(scope="module")
def prompts():
    return torch.randint(0, V, (6, H), generator=torch.Generator().manual_seed(1))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_single_logp_old_matches_recomputation(model, prompts):
    a, lp = sample_single(model, prompts, _gen(0))
    assert a.shape == lp.shape == (6, H) and a.dtype == torch.long
    assert torch.allclose(lp, sequence_logp(model, prompts, a), atol=1e-5)
    assert (lp <= 0).all() and ((a >= 0) & (a < V)).all()


def test_grouped_logp_old_matches_recomputation(model, prompts):
    a, lp = sample_grouped(model, prompts, 4, _gen(0))
    assert a.shape == lp.shape == (6, 4, H)
    assert torch.allclose(lp, sequence_logp(model, prompts, a), atol=1e-5)
    assert not all(torch.equal(a[:, 0], a[:, k]) for k in range(1, 4))  # the K samples differ


def test_token_candidates(model, prompts):
    K = 5
    a, cands, lp = sample_token_candidates(model, prompts, K, _gen(0))
    assert a.shape == (6, H) and cands.shape == lp.shape == (6, H, K)
    assert torch.equal(cands[..., 0], a)
    assert torch.allclose(lp[..., 0], sequence_logp(model, prompts, a), atol=1e-5)
    one_pass = token_candidate_logp(model, prompts, a, cands)
    assert torch.allclose(one_pass, lp, atol=1e-5)
    # per-prefix reference: a separate forward pass for every prefix state t
    for t in range(H):
        buf = torch.cat([prompts, a[:, :t]], dim=1)
        ref = torch.log_softmax(model(buf)[:, -1], dim=-1).gather(-1, cands[:, t])
        assert torch.allclose(one_pass[:, t], ref, atol=1e-5)


def test_candidate_logp_has_gradient(model, prompts):
    a, cands, _ = sample_token_candidates(model, prompts, 3, _gen(0))
    lp = token_candidate_logp(model, prompts, a, cands)
    (g,) = torch.autograd.grad(lp.sum(), [model.head.weight])
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("sampler", [
    lambda m, x, g: sample_single(m, x, g),
    lambda m, x, g: sample_grouped(m, x, 3, g),
    lambda m, x, g: sample_token_candidates(m, x, 3, g),
])
def test_same_seed_same_samples(model, prompts, sampler):
    first, again, other = sampler(model, prompts, _gen(7)), sampler(model, prompts, _gen(7)), sampler(model, prompts, _gen(8))
    assert all(torch.equal(u, v) for u, v in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_sampling_distribution_matches_policy():
    """Gumbel-max draws follow π: empirical frequencies of y_0, and of the i.i.d. candidates at t = 2."""
    m = TransformerPolicy(V, H, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():  # a clearly non-uniform, prefix-dependent policy
        m.head.weight.mul_(0.5)
        m.head.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    x = torch.tensor([[0, 2, 1, 1, 0]])
    n = 8000
    probs = torch.softmax(m(x)[0, H - 1], dim=-1).double()
    assert probs.max() - probs.min() > 0.2
    a, _ = sample_single(m, x.expand(n, H), _gen(3))
    freq = torch.bincount(a[:, 0], minlength=V).double() / n
    assert torch.allclose(freq, probs, atol=0.02)
    xs = x.expand(n // 4, H)
    a, cands, _ = sample_token_candidates(m, xs, 4, _gen(4))
    with torch.no_grad():
        expected = answer_log_probs(m, xs, a)[:, 2].exp().mean(0).double()    # E[π(·|x, y_<2)]
    freq_c = torch.bincount(cands[:, 2, 1:].reshape(-1), minlength=V).double() / cands[:, 2, 1:].numel()
    assert torch.allclose(freq_c, expected, atol=0.02)


def test_reinforce_smoke_reduces_token_error():
    """30 on-policy REINFORCE steps, copy, V=2, H=3: A_t = r_t − mean_B r_t, loss −mean_B Σ_t A_t log π(a_t)."""
    torch.manual_seed(0)
    task = ReversalTask(horizon=3, vocab=2, logic="copy", reward="bag")
    model = TransformerPolicy(2, 3, generator=_gen(0))
    opt, _ = build_optimizer(model, "all-matrices", lr=2e-3)
    prompt_gen, action_gen = _gen(100), _gen(200)
    errors = []
    for _ in range(30):
        x = task.sample_prompts(prompt_gen, 256)
        a, _ = sample_single(model, x, action_gen)
        c = task.correct(x, a)
        errors.append(task.error(c))
        r = task.rewards(c)
        loss = -((r - r.mean(0)) * sequence_logp(model, x, a)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    early, late = torch.stack(errors[:3]).mean().item(), torch.stack(errors[-5:]).mean().item()
    assert early > 0.3 and late < early - 0.15, (early, late)


def test_model_inputs_pairs_each_prompt_with_its_answers_under_a_seed_axis():
    from bench.rollout import model_inputs

    prompts = torch.arange(12).reshape(2, 2, 3)              # [S, B, H]
    answers = 100 + torch.arange(24).reshape(2, 2, 2, 3)     # [S, B, K, H]
    buf = model_inputs(prompts, answers)
    assert buf.shape == (2, 2, 2, 5)
    for s in range(2):
        for b in range(2):
            for k in range(2):
                assert torch.equal(buf[s, b, k], torch.cat([prompts[s, b], answers[s, b, k, :-1]]))
