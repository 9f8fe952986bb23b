"""A character-level tokenizer built in code, for the tiny random-init language models of the LLM RLVR family.

Every character of an alphabet is one token; four special tokens come first:

======  ===========  ==========================================================
id      token        role
======  ===========  ==========================================================
0       ``<|pad|>``  padding (prompts are padded on the LEFT for generation)
1       ``<|bos|>``  prepended to every encoded text (``add_special_tokens=True``)
2       ``<|eos|>``  end of a completion (the sampler stops a row on it)
3       ``<|unk|>``  any character outside the alphabet
4 …     characters   the alphabet, SORTED by code point
======  ===========  ==========================================================

The alphabet is sorted so that a set (whose iteration order changes with ``PYTHONHASHSEED``) gives the same
token ids in every process: the same alphabet always maps to the same vocabulary.

The tokenizer is a Hugging Face fast tokenizer (:class:`transformers.PreTrainedTokenizerFast`) over a
``tokenizers`` BPE model with the characters as its vocabulary and no merges, so every HF API works on it
(``__call__`` with padding, ``decode``/``batch_decode``, ``save_pretrained``) and
``AutoTokenizer.from_pretrained(dir)`` reloads it with no custom code (a saved tiny model loads through
``model.path`` like any checkpoint).
"""
from __future__ import annotations

from typing import Iterable

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)

#: alphabet of :func:`build_char_tokenizer` when none is given: printable ASCII (space … ``~``) and newline
DEFAULT_ALPHABET: tuple[str, ...] = tuple(chr(c) for c in range(32, 127)) + ("\n",)


def char_vocab(alphabet: Iterable[str]) -> dict[str, int]:
    """Token → id: the special tokens (ids 0–3) then the alphabet's distinct characters sorted by code point.

    Raises ValueError (one line) when the alphabet is empty or holds an entry that is not one character.
    """
    chars = list(alphabet)
    bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
    if bad:
        raise ValueError(f"alphabet: every entry must be one character, got {bad[0]!r}")
    if not chars:
        raise ValueError("alphabet: must hold at least one character, got none")
    return {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *sorted(set(chars))])}


def build_char_tokenizer(alphabet: Iterable[str] | None = None, model_max_length: int = 1 << 20):
    """A character tokenizer over ``alphabet`` (default :data:`DEFAULT_ALPHABET`); see the module docstring.

    Args:
        alphabet: characters (a string, list or set of single characters; order does not matter).
        model_max_length: longest sequence the tokenizer reports as allowed (the model's position limit).

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with ``padding_side="left"``, ``pad/bos/eos/unk`` set, a
        post-processor that prepends ``<|bos|>`` and a decoder that concatenates characters (no spaces
        inserted). ``len(tokenizer)`` is the vocabulary size, 4 + the number of distinct characters.

    Raises:
        ValueError: the alphabet is empty or has an entry that is not a single character.
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = char_vocab(DEFAULT_ALPHABET if alphabet is None else alphabet)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    core.add_special_tokens(list(SPECIAL_TOKENS))
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                        special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, padding_side="left", clean_up_tokenization_spaces=False,
                                   model_max_length=model_max_length)
