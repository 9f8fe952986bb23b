"""Batched KV-cache sampler: behaviour log-probs equal a recomputed forward pass, masks after EOS, contiguous
groups, seeded reproducibility, temperature/top-p log-probs, greedy equals HF generate, argument errors."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from bench.models.lm import LMConfig, LoraSettings, completion_logprobs, load_lm, position_ids  # noqa: E402
from bench.models.lm_sampling import encode_prompts, sample_completions, top_p_filter  # noqa: E402

ALPHABET = "0123456789+=? "
PROMPTS = ["1+2=?", "12+345=?", "7=?"]          # three lengths: left padding of 0, 3 and 5
K = 4


@pytest.fixture(scope="module")
def lm():
    model, tok = load_lm(LMConfig(hidden=32, layers=2, heads=2, intermediate=64, max_position=64),
                         alphabet=ALPHABET, seed=0)
    with torch.no_grad():   # make EOS likely enough that some of 12 completions end early, not all
        model.lm_head.weight[tok.eos_token_id] += 0.5 * model.lm_head.weight.mean(0)
    return model, tok


@pytest.fixture(scope="module")
def rollout(lm):
    model, tok = lm
    return sample_completions(model, tok, PROMPTS, k=K, max_new_tokens=10, seed=3)


def full_logits(model, r):
    """[N, T, V] fp32 logits before each completion token, from one full forward pass (no cache)."""
    ids, mask = r.input_ids, r.attention_mask
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits.float()
    T = r.completion_ids.shape[1]
    return logits[:, -T - 1:-1]


def test_logp_old_equals_recomputed_forward(lm, rollout):
    model, _ = lm
    r = rollout
    N, T = r.completion_ids.shape
    assert N == len(PROMPTS) * K and T == 10
    assert r.ended.any() and (~r.ended).any()                     # some rows hit EOS early, some ran to the end
    assert (r.completion_mask.sum(1) < T).any()
    assert (r.prompt_mask[:, 0] == 0).any()                      # left padding present
    with torch.no_grad():
        recomputed = completion_logprobs(model, r.input_ids, r.attention_mask, r.completion_mask)
    assert r.logp_old.dtype == torch.float32
    assert torch.allclose(r.logp_old, recomputed, atol=1e-5, rtol=0)
    assert torch.equal(r.logp_old, r.logp_model)                 # τ = 1, top_p = 1: one distribution
    assert (r.logp_old[r.completion_mask == 0] == 0).all() and (r.logp_old[r.completion_mask > 0] < 0).all()


def test_masks_end_after_eos_and_padding_follows(lm, rollout):
    _, tok = lm
    r = rollout
    eos = r.completion_ids == tok.eos_token_id
    for n in range(r.completion_ids.shape[0]):
        length = int(r.completion_mask[n].sum())
        assert torch.equal(r.completion_mask[n], (torch.arange(r.completion_ids.shape[1]) < length).float())
        hits = eos[n].nonzero().flatten().tolist()
        if r.ended[n]:
            assert hits and hits[0] == length - 1                # mask 1 up to and including the first EOS
            assert (r.completion_ids[n, length:] == tok.pad_token_id).all()
        else:
            assert not hits and length == r.completion_ids.shape[1]
        assert r.texts[n] == tok.decode(r.completion_ids[n, :length], skip_special_tokens=True)
        assert "<|" not in r.texts[n]
    assert r.n_tokens == int(r.completion_mask.sum())


def test_groups_are_contiguous(lm, rollout):
    _, tok = lm
    r = rollout
    ids, mask = encode_prompts(tok, PROMPTS)
    for i in range(len(PROMPTS)):
        for row in range(i * K, i * K + K):
            assert torch.equal(r.prompt_ids[row], ids[i]) and torch.equal(r.prompt_mask[row], mask[i])
    grouped = r.groups(r.completion_ids)
    assert grouped.shape == (len(PROMPTS), K, r.completion_ids.shape[1])
    assert torch.equal(grouped[1, 2], r.completion_ids[1 * K + 2])
    # greedy: every row of prompt i's block is prompt i's own completion, whatever the order of the prompts
    model, _ = lm
    alone = [sample_completions(model, tok, [p], k=1, max_new_tokens=6, temperature=0.0).texts[0] for p in PROMPTS]
    order = [2, 0, 1]
    g = sample_completions(model, tok, [PROMPTS[i] for i in order], k=3, max_new_tokens=6, temperature=0.0)
    assert g.texts == [alone[i] for i in order for _ in range(3)]
    assert len(set(alone)) > 1


def test_same_seed_same_completions_other_seed_differs(lm, rollout):
    model, tok = lm
    again = sample_completions(model, tok, PROMPTS, k=K, max_new_tokens=10, seed=3)
    assert torch.equal(again.completion_ids, rollout.completion_ids) and again.texts == rollout.texts
    assert torch.equal(again.logp_old, rollout.logp_old)
    other = sample_completions(model, tok, PROMPTS, k=K, max_new_tokens=10, seed=4)
    assert not torch.equal(other.completion_ids[:, :3], rollout.completion_ids[:, :3])
    gen = torch.Generator().manual_seed(3)
    by_gen = sample_completions(model, tok, PROMPTS, k=K, max_new_tokens=10, generator=gen)
    assert torch.equal(by_gen.completion_ids, rollout.completion_ids)


def test_tempered_top_p_logp_old_is_the_sampled_distribution(lm):
    model, tok = lm
    tau, p = 0.7, 0.8
    r = sample_completions(model, tok, PROMPTS, k=K, max_new_tokens=8, temperature=tau, top_p=p, seed=5)
    logits = full_logits(model, r)
    mu = torch.log_softmax(top_p_filter(logits.reshape(-1, logits.shape[-1]) / tau, p), -1).view_as(logits)
    expected = mu.gather(-1, r.completion_ids[..., None]).squeeze(-1)
    on = r.completion_mask > 0
    assert torch.isfinite(expected[on]).all()                    # every sampled token lies in its nucleus
    assert torch.allclose(r.logp_old[on], expected[on], atol=1e-5, rtol=0)
    with torch.no_grad():
        model_lp = completion_logprobs(model, r.input_ids, r.attention_mask, r.completion_mask)
    assert torch.allclose(r.logp_model, model_lp, atol=1e-5, rtol=0)
    assert not torch.allclose(r.logp_old[on], r.logp_model[on], atol=1e-3)


def test_top_p_filter_keeps_the_smallest_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    keep = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert keep(0.5) == [True, False, False]       # the first token alone reaches 0.5
    assert keep(0.6) == [True, True, False]
    assert keep(0.81) == [True, True, True]
    assert keep(1.0) == [True, True, True]
    assert keep(0.01) == [True, False, False]      # the most likely token is always kept


def test_greedy_equals_hf_generate(lm):
    model, tok = lm
    r = sample_completions(model, tok, PROMPTS, k=2, max_new_tokens=8, temperature=0.0)
    assert torch.equal(r.groups(r.completion_ids)[:, 0], r.groups(r.completion_ids)[:, 1])   # deterministic
    ids, mask = encode_prompts(tok, PROMPTS)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=8,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    hf = out[:, ids.shape[1]:]
    ours = r.completion_ids[::2]
    assert ours.shape == hf.shape and torch.equal(ours, hf)


def test_lora_model_samples_and_recomputes():
    model, tok = load_lm(LMConfig(hidden=32, layers=2, heads=2, intermediate=64, max_position=64,
                                  lora=LoraSettings(rank=2)), alphabet=ALPHABET, seed=0)
    r = sample_completions(model, tok, PROMPTS[:2], k=2, max_new_tokens=6, seed=0)
    with torch.no_grad():
        lp = completion_logprobs(model, r.input_ids, r.attention_mask, r.completion_mask)
    assert torch.allclose(r.logp_old, lp, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw, match", [
    ({"k": 0}, "k=0: must be an integer >= 1"),
    ({"max_new_tokens": 0}, "max_new_tokens=0: must be an integer >= 1"),
    ({"temperature": -1.0}, "temperature=-1.0: must be >= 0"),
    ({"top_p": 0.0}, "top_p=0.0: must be > 0 and <= 1"),
    ({"seed": None}, "seed=None: pass seed= or generator="),
])
def test_bad_arguments_one_line(lm, kw, match):
    model, tok = lm
    args = {"k": 2, "max_new_tokens": 4, "seed": 0, **kw}
    with pytest.raises(ValueError, match=match) as info:
        sample_completions(model, tok, PROMPTS, **args)
    assert "\n" not in str(info.value)
