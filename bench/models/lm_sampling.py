"""Batched sampling of K completions per prompt with a KV cache, returning the sampling-time log-probs.

:func:`sample_completions` runs its own decoding loop over the model's KV cache (no ``generate``), so the
log-probability of every sampled token under the distribution it was drawn from is recorded exactly:

* the prompts are left-padded and run once (prefill); the cache is then repeated K times, so prompt i's
  K completions are the CONTIGUOUS rows ``i*K … i*K+K−1`` (a ``[G·K, T]`` tensor views as ``[G, K, T]``,
  the layout of :class:`algorithms.batch.GroupBatch`);
* each step draws one token per unfinished row from the behaviour policy μ: softmax(logits / τ)
  restricted to the nucleus of mass ``top_p`` (Holtzman et al. 2020, §3.1: the smallest set of most
  likely tokens whose probability reaches p), renormalised;
* a row stops at its first EOS; later columns hold the pad token with mask 0.

Behaviour log-probs (the choice, documented): ``logp_old`` is log μ(y_t) of the distribution actually
sampled (tempered and nucleus-truncated) — the exact denominator of an importance ratio for the data as
drawn. ``logp_model`` is log π(y_t) of the model at temperature 1 over the full vocabulary — what
:func:`bench.models.lm.completion_logprobs` recomputes from the same weights. At τ = 1 and top_p = 1 the two
are the same numbers. Greedy decoding (τ = 0, for evaluation) is deterministic; there both fields hold the
model's temperature-1 log-probs of the argmax tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import torch
from torch import Tensor

from bench.models.lm import cache_kwarg, causal_lm, format_prompt, position_ids


@dataclass(frozen=True)
class Rollout:
    """K sampled completions for each of G prompts; N = G·K rows, prompt i's completions at rows i*K … i*K+K−1.

    Fields (shapes):
        prompt_ids:      [N, P] long, left-padded prompt tokens (row n repeats prompt n // K).
        prompt_mask:     [N, P] long, 1 at real prompt tokens, 0 at left padding.
        completion_ids:  [N, T] long, sampled tokens; the pad token after a row's EOS. T ≤ max_new_tokens
                         (decoding stops once every row has ended).
        completion_mask: [N, T] float32, 1 up to and including the first EOS, 0 after (GroupBatch convention).
        logp_old:        [N, T] float32, log μ(y_t) under the sampled (tempered, top-p) distribution; 0 at mask 0.
        logp_model:      [N, T] float32, log π(y_t) of the model at temperature 1; 0 at mask 0.
        texts:           N decoded completions (special tokens dropped).
        prompts:         the G prompts as given.
        k:               completions per prompt.
        n_tokens:        generated tokens counted by the mask (EOS included).
        ended:           [N] bool, the row ended with a stop token (False: cut at max_new_tokens).
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    logp_old: Tensor
    logp_model: Tensor
    texts: list[str]
    prompts: list[str]
    k: int
    n_tokens: int
    ended: Tensor

    @property
    def input_ids(self) -> Tensor:
        """[N, P + T] prompt then completion (the input of :func:`bench.models.lm.completion_logprobs`)."""
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        """[N, P + T] long: the prompt mask then the completion mask."""
        return torch.cat([self.prompt_mask, self.completion_mask.long()], dim=1)

    def groups(self, x: Tensor) -> Tensor:
        """View an [N, ...] tensor as [G, K, ...] (prompt-major, as the rows are laid out)."""
        return x.view(x.shape[0] // self.k, self.k, *x.shape[1:])


def _check(name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"sample_completions: {name}={value!r}: {allowed}")


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """logits [N, V] with every token outside the nucleus set to −inf: keep the most likely tokens while the
    probability mass BEFORE them is below ``top_p`` (so the first token is always kept). top_p ≥ 1: unchanged."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= top_p
    return logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))


def encode_prompts(tokenizer: Any, prompts: Sequence[str], chat_template: bool = True) -> tuple[Tensor, Tensor]:
    """Left-padded ``(ids [G, P], mask [G, P])`` of the prompts. With ``chat_template`` and a tokenizer that
    has one, each prompt is wrapped by :func:`bench.models.lm.format_prompt` and tokenized without adding
    special tokens again (the template holds them); otherwise the tokenizer adds its own (the character
    tokenizer: BOS)."""
    templated = chat_template and bool(getattr(tokenizer, "chat_template", None))
    texts = [format_prompt(tokenizer, p) for p in prompts] if templated else list(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=not templated)
    finally:
        tokenizer.padding_side = side
    return enc["input_ids"], enc["attention_mask"]


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS and the model's ``generation_config.eos_token_id``
    (an int or a list: chat models often stop on an end-of-turn token too)."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(causal_lm(model), "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def sample_completions(model: Any, tokenizer: Any, prompts: Sequence[str], k: int, max_new_tokens: int,
                       temperature: float = 1.0, top_p: float = 1.0, seed: Optional[int] = None,
                       generator: Optional[torch.Generator] = None, chat_template: bool = True,
                       stop_ids: Optional[Iterable[int]] = None) -> Rollout:
    """Sample ``k`` completions for every prompt with a KV cache (see the module docstring).

    Args:
        model: causal LM (``transformers`` or ``peft``); run in eval mode under ``no_grad`` (its mode is restored).
        tokenizer: its tokenizer (pad and EOS tokens set).
        prompts: G prompt texts (raw task text; :func:`encode_prompts` applies the chat template).
        k: completions per prompt (≥ 1).
        max_new_tokens: most tokens generated per completion (≥ 1).
        temperature: τ ≥ 0; 0 = greedy (argmax; no randomness used).
        top_p: nucleus mass in (0, 1]; 1 = the full distribution.
        seed / generator: the sampling noise: a seed (a new generator on the model's device) or a
            ``torch.Generator`` (advanced by the call). Required unless greedy. Same seed, weights and
            prompts → the same completions.
        chat_template: wrap prompts in the tokenizer's chat template when it has one.
        stop_ids: token ids that end a row (default :func:`eos_ids`).

    Returns:
        :class:`Rollout` (rows prompt-major and contiguous).

    Raises:
        ValueError: a bad argument (one line naming it, its value and the allowed range).
    """
    _check("prompts", len(prompts), len(prompts) > 0, "need at least one prompt")
    _check("k", k, isinstance(k, int) and k >= 1, "must be an integer >= 1")
    _check("max_new_tokens", max_new_tokens, isinstance(max_new_tokens, int) and max_new_tokens >= 1,
           "must be an integer >= 1")
    _check("temperature", temperature, temperature >= 0, "must be >= 0 (0 = greedy)")
    _check("top_p", top_p, 0 < top_p <= 1, "must be > 0 and <= 1")
    greedy = temperature == 0
    lm = causal_lm(model)
    device = next(lm.parameters()).device
    if not greedy and generator is None:
        _check("seed", seed, seed is not None, "pass seed= or generator= (sampling must be seeded)")
        generator = torch.Generator(device=device).manual_seed(int(seed))
    stops = torch.tensor(sorted(stop_ids) if stop_ids is not None else eos_ids(model, tokenizer),
                         dtype=torch.long, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids(model, tokenizer)[0]

    ids, mask = encode_prompts(tokenizer, prompts, chat_template)
    ids, mask = ids.to(device), mask.to(device)
    n = ids.shape[0] * k
    was_training = lm.training
    lm.eval()
    try:
        cache_name = cache_kwarg(lm)
        out = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True,
                 logits_to_keep=1)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        logits = out.logits[:, -1].float()
        if k > 1:
            if hasattr(cache, "batch_repeat_interleave"):
                cache.batch_repeat_interleave(k)
            else:   # a cache that cannot be repeated: prefill every row
                out = lm(input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0),
                         position_ids=position_ids(mask).repeat_interleave(k, 0), use_cache=True, logits_to_keep=1)
                cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            logits = logits.repeat_interleave(k, 0)
        prompt_ids, prompt_mask = ids.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        attn = prompt_mask
        pos = position_ids(prompt_mask)[:, -1]
        alive = torch.ones(n, dtype=torch.bool, device=device)
        tokens, masks, logp_old, logp_model = [], [], [], []
        for step in range(max_new_tokens):
            logp_full = torch.log_softmax(logits, dim=-1)
            if greedy:
                tok = logits.argmax(-1)
                lp_mu = logp_full.gather(-1, tok[:, None]).squeeze(-1)
            else:
                logp_mu = logp_full if temperature == 1 and top_p >= 1 else \
                    torch.log_softmax(top_p_filter(logits / temperature, top_p), dim=-1)
                tok = torch.multinomial(logp_mu.exp(), 1, generator=generator).squeeze(-1)
                lp_mu = logp_mu.gather(-1, tok[:, None]).squeeze(-1)
            lp_model = logp_full.gather(-1, tok[:, None]).squeeze(-1)
            tok = torch.where(alive, tok, torch.full_like(tok, pad))
            zero = torch.zeros_like(lp_mu)
            tokens.append(tok)
            masks.append(alive.float())
            logp_old.append(torch.where(alive, lp_mu, zero))
            logp_model.append(torch.where(alive, lp_model, zero))
            alive = alive & ~torch.isin(tok, stops)
            if not alive.any() or step == max_new_tokens - 1:
                break
            attn = torch.cat([attn, masks[-1].long()[:, None]], dim=1)
            pos = pos + masks[-1].long()
            out = lm(input_ids=tok[:, None], attention_mask=attn, position_ids=pos[:, None],
                     use_cache=True, logits_to_keep=1, **{cache_name: cache})
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            logits = out.logits[:, -1].float()
    finally:
        lm.train(was_training)

    completion_ids = torch.stack(tokens, 1)
    completion_mask = torch.stack(masks, 1)
    lengths = completion_mask.sum(-1).long().tolist()
    rows = completion_ids.tolist()
    texts = tokenizer.batch_decode([r[:m] for r, m in zip(rows, lengths)], skip_special_tokens=True)
    return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids,
                   completion_mask=completion_mask, logp_old=torch.stack(logp_old, 1),
                   logp_model=torch.stack(logp_model, 1), texts=texts, prompts=list(prompts), k=k,
                   n_tokens=int(sum(lengths)), ended=~alive)
