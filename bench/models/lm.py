"""Hugging Face causal language models for the LLM RLVR family: loading, LoRA, reference policy, log-probs.

* :class:`LMConfig` — the ``model=lm`` option (``conf/model/lm.yaml``). ``path: null`` builds a tiny
  random-init ``LlamaForCausalLM`` from the size fields and a character tokenizer
  (:mod:`bench.models.char_tokenizer`); a path loads a local checkpoint (e.g. Qwen3-1.7B or
  DeepSeek-R1-Distill-Qwen-1.5B, the TPO paper's RLVR models) with ``local_files_only=True``: nothing is
  downloaded at run time.
* :func:`load_lm` — ``(model, tokenizer)``; LoRA adapters through peft when ``lora.rank > 0``
  (Hu et al. 2022, LoRA: ΔW = (α/r)·B·A with B = 0 at initialisation, so the adapted model starts equal
  to the base model).
* :func:`make_reference` / :func:`reference_logprobs` — the fixed reference policy π_ref of a KL term.
  With LoRA on, π_ref is the base model, evaluated by switching the adapters off
  (``model.disable_adapter()``): no second copy of the weights. With LoRA off, π_ref is a frozen deep copy
  made ONCE, when :func:`make_reference` is called (before training), so it stays the initial policy;
  ``needed=False`` (no KL term) returns None and copies nothing.
* :func:`completion_logprobs` — per-token log π(y_t | x, y_<t) of given completions, fp32, computed in
  chunks of tokens so the full ``[N, T, V]`` log-softmax is never materialised at once.
* :func:`format_prompt` — the tokenizer's chat template around a task prompt, when it has one.

Sequences are LEFT-padded prompts followed by completions; position ids come from the attention mask
(:func:`position_ids`), in sampling and in every recomputation alike, so a padded row computes what it
computes alone.
"""
from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch
from torch import Tensor

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: projections of Llama/Qwen decoder layers: attention (q, k, v, o) and MLP (gate, up, down)
LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Hub repositories of the paper's checkpoints, by directory name (named in the missing-path message)
KNOWN_REPOS: dict[str, str] = {"qwen3-1.7b": "Qwen/Qwen3-1.7B",
                               "deepseek-r1-distill-qwen-1.5b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"}
#: logits held at once by :func:`completion_logprobs` (tokens per chunk = this // vocabulary size)
CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (Hu et al. 2022): ΔW = (alpha / rank)·B·A on the ``targets`` linear layers.

    rank:    r; 0 turns LoRA off (full fine-tuning).
    alpha:   α, the scale numerator.
    dropout: dropout on the adapter's input during training, in [0, 1).
    targets: module names to adapt (default: every attention and MLP projection of Llama/Qwen).
    """

    rank: int = field(default=0, metadata={"ge": 0})
    alpha: float = field(default=16.0, metadata={"gt": 0})
    dropout: float = field(default=0.0, metadata={"ge": 0, "lt": 1})
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"model.lora.rank={self.rank}: must be >= 0 (0 = LoRA off)")
        if not self.alpha > 0:
            raise ValueError(f"model.lora.alpha={self.alpha}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.lora.dropout={self.dropout}: must be >= 0 and < 1")
        if self.rank > 0 and not self.targets:
            raise ValueError("model.lora.targets=[]: name at least one module when model.lora.rank > 0")


@dataclass(frozen=True)
class LMConfig:
    """A causal language model (``model=lm``).

    path:          local checkpoint directory (``config.json`` + weights + tokenizer files), or None for a
                   tiny random-init ``LlamaForCausalLM`` built from the size fields below (ignored when a
                   path is given) with a character tokenizer.
    hidden, layers, heads, intermediate, max_position: hidden size, decoder layers, attention heads (must
                   divide ``hidden``), MLP width and longest sequence (prompt + completion) of the tiny model.
    dtype:         parameter dtype: float32, bfloat16 or float16 (log-probs are always computed in fp32).
    gradient_checkpointing: recompute layer activations in the backward pass (less memory, ~1/3 more time).
    lora:          :class:`LoraSettings` (rank 0 = off).
    """

    name: str = "lm"
    path: Optional[str] = None
    hidden: int = field(default=64, metadata={"ge": 1})
    layers: int = field(default=2, metadata={"ge": 1})
    heads: int = field(default=4, metadata={"ge": 1})
    intermediate: int = field(default=256, metadata={"ge": 1})
    max_position: int = field(default=512, metadata={"ge": 2})
    dtype: str = field(default="float32", metadata={"choices": tuple(DTYPES)})
    gradient_checkpointing: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype={self.dtype!r}; valid: {', '.join(DTYPES)}")
        if self.hidden % self.heads:
            raise ValueError(f"model.heads={self.heads}: must divide model.hidden={self.hidden}")
        if isinstance(self.lora, dict):   # built from a plain mapping (tests, scripts)
            object.__setattr__(self, "lora", LoraSettings(**self.lora))


class ModelNotFound(FileNotFoundError):
    """``model.path`` holds no checkpoint; the message (one line) names the path and how to get the model."""


# -- loading -------------------------------------------------------------------------------------
def load_lm(cfg: LMConfig, alphabet: Optional[Iterable[str]] = None, seed: int = 0, device: str = "cpu"):
    """Build or load the policy model and its tokenizer.

    Args:
        cfg: :class:`LMConfig`.
        alphabet: characters of the character tokenizer of the tiny model (``cfg.path is None``; default
            :data:`bench.models.char_tokenizer.DEFAULT_ALPHABET`); ignored for a checkpoint, whose own
            tokenizer is loaded.
        seed: seeds the tiny model's random initialisation and the LoRA ``A`` matrices (inside a forked RNG:
            the global torch RNG is left as it was).
        device: torch device of the returned model.

    Returns:
        ``(model, tokenizer)``: a ``transformers`` causal LM (a ``peft.PeftModel`` when ``cfg.lora.rank > 0``,
        with only the adapters trainable) and a tokenizer with ``padding_side="left"`` and a pad token (the
        EOS token when the checkpoint defines none).

    Raises:
        ModelNotFound: ``cfg.path`` is missing, empty or holds no loadable checkpoint (one line naming the
            path and the ``hf download`` command to fetch the model on a connected machine).
    """
    dtype = DTYPES[cfg.dtype]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.path is None:
            model, tokenizer = _tiny_model(cfg, alphabet)
        else:
            model, tokenizer = _checkpoint(cfg.path, dtype)
        model = model.to(device=device, dtype=dtype)
        if cfg.gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):   # transformers >= 5.2x name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False   # training forwards; the sampler passes its own cache
        if cfg.lora.rank > 0:
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha,
                                                     lora_dropout=cfg.lora.dropout,
                                                     target_modules=list(cfg.lora.targets), task_type="CAUSAL_LM"))
    return model, tokenizer


def _tiny_model(cfg: LMConfig, alphabet: Optional[Iterable[str]]):
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.models.char_tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(alphabet, model_max_length=cfg.max_position)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                         num_key_value_heads=cfg.heads, max_position_embeddings=cfg.max_position,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _missing(path: str, why: str) -> ModelNotFound:
    repo = KNOWN_REPOS.get(os.path.basename(os.path.normpath(path)).lower(), "<repo>")
    return ModelNotFound(f"model.path={path!r}: {why}; on a connected machine run `hf download {repo} "
                         f"--local-dir {path}` (or `huggingface-cli download {repo} --local-dir {path}`) and "
                         "copy the directory here (e.g. Qwen/Qwen3-1.7B, deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B)")


def _checkpoint(path: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isdir(path):
        raise _missing(path, "no such directory")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise _missing(path, "no config.json there (empty or incomplete checkpoint)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    except OSError as exc:
        raise _missing(path, f"cannot load the checkpoint ({str(exc).strip().splitlines()[0][:200]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# -- forward helpers -----------------------------------------------------------------------------
def is_checkpointing(model: Any) -> bool:
    """True when ``model`` recomputes layer activations in the backward pass (gradient checkpointing)."""
    lm = causal_lm(model)
    flag = getattr(type(lm), "is_activation_checkpointing", None)
    return bool(lm.is_activation_checkpointing if flag is not None else lm.is_gradient_checkpointing)


def causal_lm(model: Any) -> Any:
    """The ``transformers`` causal LM inside ``model`` (a ``peft.PeftModel`` is unwrapped; its LoRA layers
    live inside and stay active unless disabled)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def position_ids(attention_mask: Tensor) -> Tensor:
    """[N, L] positions counting real tokens only: cumsum(mask) − 1, clamped at 0 (left padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def cache_kwarg(lm: Any) -> str:
    """Name of the KV-cache argument of ``lm.forward`` (``cache`` in transformers ≥ 5.2x, else
    ``past_key_values``)."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def _head_logits(lm: Any, hidden: Tensor) -> Tensor:
    """fp32 logits of the output head on hidden states [..., H] (with the final soft-cap where the model has one)."""
    logits = lm.get_output_embeddings()(hidden).float()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _token_logp(lm: Any, hidden: Tensor, targets: Tensor) -> Tensor:
    logits = _head_logits(lm, hidden)
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def completion_logprobs(model: Any, input_ids: Tensor, attention_mask: Tensor, completion_mask: Tensor,
                        chunk_tokens: Optional[int] = None) -> Tensor:
    """Per-token log-probabilities log π(y_t | x, y_<t) of the completions ending each row.

    Args:
        model: causal LM (``transformers`` or ``peft``); runs in its current train/eval mode.
        input_ids: [N, P + T] left-padded prompt followed by the completion (the last T columns).
        attention_mask: [N, P + T] 1 at real tokens, 0 at padding (prompt's left padding, completion after EOS).
        completion_mask: [N, T] 1 at completion tokens to score (up to and including EOS), else 0.
        chunk_tokens: completion tokens whose logits are held at once (default ``CHUNK_ELEMENTS // vocab``).

    Returns:
        [N, T] float32; 0 where ``completion_mask`` is 0. Differentiable w.r.t. the model's trainable parameters.

    Memory: the backbone runs once on all N·(P+T) tokens; the output head and the fp32 log-softmax
    (``logit[y] − logsumexp(logit)``) run on chunks of the masked completion positions, so at most
    ``chunk_tokens × V`` logits exist at once — O(N·T·H) instead of O(N·T·V). With gradients on and more
    than one chunk, each chunk is checkpointed (its logits are recomputed in the backward pass), so the
    backward pass keeps no full-vocabulary tensor either.

    Raises:
        ValueError: shapes disagree (one line naming the tensors and shapes).
    """
    N, L = input_ids.shape
    T = completion_mask.shape[-1]
    if attention_mask.shape != input_ids.shape or completion_mask.shape[0] != N or not 0 < T < L:
        raise ValueError(f"completion_logprobs: input_ids {tuple(input_ids.shape)}, attention_mask "
                         f"{tuple(attention_mask.shape)}, completion_mask {tuple(completion_mask.shape)}: need "
                         "equal [N, P+T] ids and mask and an [N, T] completion mask with 0 < T < P+T")
    lm = causal_lm(model)
    hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids(attention_mask), use_cache=False).last_hidden_state
    flat = hidden[:, L - T - 1:L - 1].reshape(N * T, -1)          # state before each completion token
    targets = input_ids[:, L - T:].reshape(N * T)
    where = (completion_mask.reshape(N * T) > 0).nonzero().squeeze(-1)
    vocab = lm.get_output_embeddings().weight.shape[0]
    step = chunk_tokens or max(1, CHUNK_ELEMENTS // vocab)
    parts = []
    recompute = torch.is_grad_enabled() and flat.requires_grad and where.numel() > step
    for start in range(0, where.numel(), step):
        idx = where[start:start + step]
        if recompute:
            from torch.utils.checkpoint import checkpoint
            parts.append(checkpoint(_token_logp, lm, flat[idx], targets[idx], use_reentrant=False))
        else:
            parts.append(_token_logp(lm, flat[idx], targets[idx]))
    values = torch.cat(parts) if parts else flat.new_zeros(0, dtype=torch.float32)
    out = torch.zeros(N * T, dtype=torch.float32, device=input_ids.device).index_put((where,), values)
    return out.view(N, T)


# -- reference policy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """The fixed reference policy π_ref of a KL term.

    kind:  ``"adapters_off"`` (LoRA on: the policy model with its adapters disabled) or ``"frozen_copy"``.
    model: the frozen copy (eval mode, no gradients) for ``"frozen_copy"``; None for ``"adapters_off"``.
    """

    kind: str
    model: Any = None


def make_reference(model: Any, needed: bool = True) -> Optional[Reference]:
    """π_ref for ``model``, fixed from now on; call it ONCE, before training.

    Returns None when ``needed`` is False (no KL term: nothing is copied). A ``peft`` model gets
    ``Reference("adapters_off")`` — no extra weights. Otherwise a deep copy of ``model`` is made now, put
    in eval mode with ``requires_grad=False``: it costs one more copy of the weights in memory.
    """
    if not needed:
        return None
    if hasattr(model, "disable_adapter"):
        return Reference("adapters_off")
    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    return Reference("frozen_copy", frozen)


def reference_logprobs(model: Any, reference: Reference, input_ids: Tensor, attention_mask: Tensor,
                       completion_mask: Tensor) -> Tensor:
    """[N, T] fp32 log π_ref(y_t | x, y_<t) (no gradient; same arguments as :func:`completion_logprobs`).

    ``adapters_off``: ``model`` is evaluated inside ``model.disable_adapter()``; ``frozen_copy``: the copy."""
    with torch.no_grad():
        if reference.kind == "adapters_off":
            with model.disable_adapter():
                return completion_logprobs(model, input_ids, attention_mask, completion_mask)
        if reference.kind == "frozen_copy":
            return completion_logprobs(reference.model, input_ids, attention_mask, completion_mask)
    raise ValueError(f"reference.kind={reference.kind!r}; valid: adapters_off, frozen_copy")


# -- prompts -------------------------------------------------------------------------------------
def format_prompt(tokenizer: Any, text: str) -> str:
    """``text`` as one user turn of the tokenizer's chat template with the assistant turn opened
    (``apply_chat_template(..., add_generation_prompt=True)``); ``text`` unchanged when the tokenizer has no
    chat template (the character tokenizer)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text
