"""Causal-LM wrapper: character tokenizer, LMConfig validation, loading (tiny model, local checkpoint, missing
path), dtype, gradient checkpointing, chunked completion log-probs, the reference policy with and without LoRA."""
from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("transformers")

from bench.models.char_tokenizer import BOS, EOS, PAD, UNK, build_char_tokenizer, char_vocab  # noqa: E402
from bench.models.lm import (LMConfig, LoraSettings, ModelNotFound, completion_logprobs, format_prompt,  # noqa: E402
                             is_checkpointing, load_lm, make_reference, reference_logprobs)
from bench.models.lm_sampling import encode_prompts  # noqa: E402

ALPHABET = "0123456789+=? "
TINY = dict(hidden=32, layers=2, heads=2, intermediate=64, max_position=64)


def tiny(**kw):
    lora = kw.pop("lora", None)
    return LMConfig(**{**TINY, **kw}, **({"lora": LoraSettings(**lora)} if lora else {}))


def batch(tokenizer, prompts=("1+2=", "12+345=", "7="), completions=("3", "357 ", "7?")):
    """Left-padded prompts followed by right-padded completions: ids/mask [N, P+T], completion mask [N, T]."""
    p_ids, p_mask = encode_prompts(tokenizer, list(prompts))
    comp = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    T = max(map(len, comp))
    c_ids = torch.tensor([c + [tokenizer.pad_token_id] * (T - len(c)) for c in comp])
    c_mask = torch.tensor([[1.0] * len(c) + [0.0] * (T - len(c)) for c in comp])
    return torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask.long()], 1), c_mask


def naive_logprobs(model, ids, mask, c_mask):
    """Reference computation: full logits, full log-softmax (what the chunked version must equal)."""
    T = c_mask.shape[1]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    logp = logits[:, -T - 1:-1].log_softmax(-1).gather(-1, ids[:, -T:, None]).squeeze(-1)
    return torch.where(c_mask > 0, logp, torch.zeros_like(logp))


@pytest.fixture(scope="module")
def lm():
    return load_lm(tiny(), alphabet=ALPHABET, seed=0)


# -- character tokenizer -------------------------------------------------------------------------
def test_char_tokenizer_round_trip_and_layout(tmp_path):
    tok = build_char_tokenizer(ALPHABET)
    assert len(tok) == 4 + len(set(ALPHABET))
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    text = "12+ 3=?"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1      # one token per character, BOS first
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.convert_ids_to_tokens(ids)[1:] == list(text)
    assert tok.decode(tok("1x2")["input_ids"], skip_special_tokens=False) == f"{BOS}1{UNK}2"   # unknown char
    enc = tok(["1", "123"], padding=True)
    assert tok.padding_side == "left" and enc["input_ids"][0][:2] == [tok.pad_token_id] * 2
    assert enc["attention_mask"][0] == [0, 0, 1, 1]
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    back = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert back.get_vocab() == tok.get_vocab() and back.padding_side == "left"
    assert back(text)["input_ids"] == ids and back.decode(ids, skip_special_tokens=True) == text
    assert (back.pad_token, back.eos_token) == (PAD, EOS)


def test_char_vocab_is_sorted_so_a_set_gives_the_same_ids():
    assert char_vocab(set("ba9")) == char_vocab(["9", "a", "b", "a"]) == {PAD: 0, BOS: 1, EOS: 2, UNK: 3,
                                                                           "9": 4, "a": 5, "b": 6}


@pytest.mark.parametrize("alphabet, match", [([], "at least one"), (["ab"], "one character")])
def test_char_tokenizer_bad_alphabet_one_line(alphabet, match):
    with pytest.raises(ValueError, match=match) as info:
        build_char_tokenizer(alphabet)
    assert "\n" not in str(info.value)


# -- config --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    ({"dtype": "float64"}, r"model.dtype='float64'; valid: float32, bfloat16, float16"),
    ({"heads": 3}, r"model.heads=3: must divide model.hidden=32"),
    ({"lora": {"rank": -1}}, r"model.lora.rank=-1: must be >= 0"),
    ({"lora": {"rank": 2, "dropout": 1.0}}, r"model.lora.dropout=1.0"),
])
def test_config_bad_value_one_line(kw, match):
    with pytest.raises(ValueError, match=match) as info:
        tiny(**kw)
    assert "\n" not in str(info.value)


# -- loading -------------------------------------------------------------------------------------
def test_tiny_model_size_seed_and_global_rng(lm):
    model, tok = lm
    c = model.config
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == \
        (len(tok), 32, 2, 2, 64)
    state = torch.random.get_rng_state()
    again, _ = load_lm(tiny(), alphabet=ALPHABET, seed=0)
    other, _ = load_lm(tiny(), alphabet=ALPHABET, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)          # the global stream is left alone
    w = [m.model.embed_tokens.weight for m in (model, again, other)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


@pytest.mark.parametrize("make", ["absent", "empty"])
def test_missing_path_is_one_line_naming_path_and_download(tmp_path, make):
    path = tmp_path / "Qwen3-1.7B"
    if make == "empty":
        path.mkdir()
    with pytest.raises(ModelNotFound) as info:
        load_lm(tiny(path=str(path)))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert f"hf download Qwen/Qwen3-1.7B --local-dir {path}" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_local_checkpoint_loads_offline_with_same_logprobs(tmp_path, lm):
    model, tok = lm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_lm(tiny(path=str(tmp_path)))
    assert ltok.padding_side == "left" and ltok.get_vocab() == tok.get_vocab()
    ids, mask, c_mask = batch(tok)
    with torch.no_grad():
        assert torch.allclose(completion_logprobs(loaded, ids, mask, c_mask),
                              completion_logprobs(model, ids, mask, c_mask), atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype_option(dtype):
    model, tok = load_lm(tiny(dtype=dtype), alphabet=ALPHABET, seed=0)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    ids, mask, c_mask = batch(tok)
    with torch.no_grad():
        lp = completion_logprobs(model, ids, mask, c_mask)
        ref = completion_logprobs(load_lm(tiny(), alphabet=ALPHABET, seed=0)[0], ids, mask, c_mask)
    assert lp.dtype == torch.float32 and torch.isfinite(lp).all()
    assert (lp - ref).abs().max() < 0.1 and not torch.equal(lp, ref)   # same weights, rounded


def test_gradient_checkpointing_backward_matches_plain():
    grads = []
    for ckpt in (False, True):
        model, tok = load_lm(tiny(gradient_checkpointing=ckpt), alphabet=ALPHABET, seed=0)
        assert is_checkpointing(model) == ckpt
        model.train()
        ids, mask, c_mask = batch(tok)
        completion_logprobs(model, ids, mask, c_mask).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


# -- completion log-probs ------------------------------------------------------------------------
def test_completion_logprobs_equal_full_log_softmax_with_padding(lm):
    model, tok = lm
    ids, mask, c_mask = batch(tok)
    assert (mask[:, 0] == 0).any() and (c_mask == 0).any()   # left padding and completions of unequal length
    with torch.no_grad():
        lp = completion_logprobs(model, ids, mask, c_mask)
        naive = naive_logprobs(model, ids, mask, c_mask)
    assert lp.shape == c_mask.shape and lp.dtype == torch.float32
    assert (lp[c_mask == 0] == 0).all() and (lp[c_mask > 0] < 0).all()
    assert torch.allclose(lp, naive, atol=1e-5)
    # a padded row computes what it computes alone
    alone = [completion_logprobs(model, *batch(tok, [p], [c])) for p, c in (("7=", "7?"), ("12+345=", "357 "))]
    assert torch.allclose(lp[2, :alone[0].shape[1]], alone[0][0], atol=1e-5)
    assert torch.allclose(lp[1], alone[1][0], atol=1e-5)


def test_chunked_logprobs_and_gradients_equal_one_chunk():
    model, tok = load_lm(tiny(), alphabet=ALPHABET, seed=0)
    ids, mask, c_mask = batch(tok)
    out = []
    for chunk in (None, 3):   # 3 tokens per chunk: several checkpointed chunks
        model.zero_grad()
        lp = completion_logprobs(model, ids, mask, c_mask, chunk_tokens=chunk)
        (lp * torch.arange(lp.numel()).view_as(lp)).sum().backward()
        out.append((lp.detach(), model.lm_head.weight.grad.clone(), model.model.embed_tokens.weight.grad.clone()))
    for a, b in zip(*out):
        assert torch.allclose(a, b, atol=1e-6)
    assert out[0][1].abs().sum() > 0


def test_completion_logprobs_shape_error_one_line(lm):
    model, tok = lm
    ids, mask, c_mask = batch(tok)
    with pytest.raises(ValueError, match="completion_logprobs") as info:
        completion_logprobs(model, ids, mask[:, 1:], c_mask)
    assert "\n" not in str(info.value)


# -- reference policy ----------------------------------------------------------------------------
def test_lora_reference_is_base_model_without_a_copy():
    base, tok = load_lm(tiny(), alphabet=ALPHABET, seed=0)
    model, _ = load_lm(tiny(lora={"rank": 4, "alpha": 8.0, "targets": ["q_proj", "v_proj"]}), alphabet=ALPHABET,
                       seed=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)          # the base weights are frozen
    assert any("lora_" in n for n, _ in model.named_parameters())
    ref = make_reference(model)
    assert ref.kind == "adapters_off" and ref.model is None
    ids, mask, c_mask = batch(tok)
    with torch.no_grad():
        base_lp = completion_logprobs(base, ids, mask, c_mask)
        assert torch.allclose(reference_logprobs(model, ref, ids, mask, c_mask), base_lp, atol=1e-6)
        assert torch.allclose(completion_logprobs(model, ids, mask, c_mask), base_lp, atol=1e-6)   # B = 0 at init
    # one optimizer step moves the policy, not the reference
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    (-completion_logprobs(model, ids, mask, c_mask).sum()).backward()
    opt.step()
    with torch.no_grad():
        assert (completion_logprobs(model, ids, mask, c_mask) - base_lp).abs().max() > 1e-3
        assert torch.allclose(reference_logprobs(model, ref, ids, mask, c_mask), base_lp, atol=1e-6)
    assert torch.equal(model.get_base_model().model.embed_tokens.weight, base.model.embed_tokens.weight)


def test_full_finetuning_reference_is_a_frozen_copy_made_once():
    model, tok = load_lm(tiny(), alphabet=ALPHABET, seed=0)
    assert make_reference(model, needed=False) is None
    ref = make_reference(model)
    assert ref.kind == "frozen_copy" and ref.model is not model
    assert not any(p.requires_grad for p in ref.model.parameters())
    ids, mask, c_mask = batch(tok)
    with torch.no_grad():
        before = completion_logprobs(model, ids, mask, c_mask)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    (-completion_logprobs(model, ids, mask, c_mask).sum()).backward()
    opt.step()
    with torch.no_grad():
        assert (completion_logprobs(model, ids, mask, c_mask) - before).abs().max() > 1e-3
    assert torch.allclose(reference_logprobs(model, ref, ids, mask, c_mask), before, atol=1e-6)


# -- prompts -------------------------------------------------------------------------------------
def test_format_prompt_uses_a_chat_template_when_present(lm):
    _, tok = lm
    assert format_prompt(tok, "1+2=") == "1+2="
    chat = build_char_tokenizer(ALPHABET)
    chat.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant: {% endif %}")
    assert format_prompt(chat, "1+2=") == "user: 1+2=\nassistant: "
    ids, _ = encode_prompts(chat, ["1+2="])
    assert ids[0, 0] != chat.bos_token_id            # the template's text, no BOS added on top


def test_model_option_composes_and_converts():
    """conf/model/lm.yaml holds every LMConfig field at its default; overrides reach the typed config; a bad
    value is refused in one line naming the field and what is allowed."""
    import yaml
    from omegaconf import OmegaConf

    from bench import validate
    from bench.cli import CONF_DIR, compose
    from bench.schema import MODELS, ConfigError, _typed

    conf = yaml.safe_load((CONF_DIR / "model" / "lm.yaml").read_text())
    assert set(conf) - {"defaults"} == {f.name for f in dataclasses.fields(LMConfig)} - {"name"}
    assert set(conf["lora"]) == {f.name for f in dataclasses.fields(LoraSettings)}
    assert MODELS["lm"] is LMConfig
    assert _typed("model", compose(["model=lm"]).model) == LMConfig()
    node = compose(["model=lm", "model.path=/ckpt/Qwen3-1.7B", "model.dtype=bfloat16", "model.lora.rank=8"]).model
    assert OmegaConf.get_type(node) is LMConfig
    typed = _typed("model", node)
    assert (typed.path, typed.dtype, typed.lora.rank, typed.lora.alpha) == ("/ckpt/Qwen3-1.7B", "bfloat16", 8, 16.0)
    with pytest.raises(ConfigError, match=r"^model.dtype='fp8'; valid: float32, bfloat16, float16$"):
        validate.check_fields(LMConfig, compose(["model=lm", "model.dtype=fp8"]).model, "model")
    with pytest.raises(ConfigError, match=r"^model.lora.rank=-2: must be >= 0"):
        _typed("model", compose(["model=lm", "model.lora.rank=-2"]).model)
