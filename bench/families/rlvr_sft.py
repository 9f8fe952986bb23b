"""Supervised warm start (SFT) of the LLM RLVR family: the tiny random-init model is fine-tuned on generated
solutions before RL, because a random-init model never earns a verifiable reward.

The fine-tune is deliberately imperfect so that RL has room to improve: a share of the demonstrations is
WRONG (a different answer that the task scores below 1) or TRUNCATED (the gold text cut before its end,
with no end-of-sequence token, so the model is not taught where that answer stops). Settings:
:class:`envs.rlvr.config.SFTSettings` (``env.sft``).

* :func:`demonstrations` — ``n`` :class:`Demo` rows (prompt, completion, kind) from the task's TRAIN split.
* :func:`sft_key` — the cache key: the first 16 hex digits of SHA-256 over a canonical JSON of everything the
  weights depend on.
* :func:`warm_start` — load ``<cache_dir>/<key>.pt`` or train and save it. For a given seed every algorithm
  and run of a sweep starts RL from the same SFT weights (common random numbers, as the ``"init"`` stream of
  :mod:`bench.seeding`).
* :func:`greedy_accuracy` — mean task score of greedy completions (temperature 0).

Training objective: the mean token cross-entropy of the completion tokens given the prompt,

    L = − Σ_i Σ_t m_it · log π(y_it | x_i, y_i<t) / Σ_i Σ_t m_it,

over a minibatch of demonstrations (gold and wrong completions end with EOS; truncated ones do not). The
prompt is tokenized by :func:`bench.models.lm_sampling.encode_prompts`, exactly as the RL sampler does, and the
log-probs are those of :func:`bench.models.lm.completion_logprobs`. Optimizer: AdamW (Loshchilov & Hutter
2019, decoupled weight decay).

Random streams: demonstrations draw from ``numpy.random.default_rng(stream_seed(seed, "sft"))``; any torch
randomness inside the model's forward (dropout, LoRA dropout) draws from a forked torch RNG seeded with
``stream_seed(seed, "sft_torch")`` and the global torch RNG is left as it was. Same inputs → bitwise-identical
weights (on one device and torch build).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import torch

from bench.models.lm import causal_lm, completion_logprobs
from bench.models.lm_sampling import encode_prompts, sample_completions
from bench.seeding import stream_seed
from envs.rlvr.config import SFTSettings
from envs.rlvr.errors import TaskConfigError, one_line
from envs.rlvr.extract import parse_number
from envs.rlvr.tasks import Problem, RLVRTask

__all__ = ["ANSWER_FORMATS", "DEMO_KINDS", "MAX_WRONG_OFFSET", "SFT_FORMAT_VERSION", "Demo", "answer_format",
           "canonical_json", "default_cache_dir", "demonstrations", "greedy_accuracy", "sft_batch", "sft_key",
           "sft_loss", "warm_start"]

SFT_FORMAT_VERSION = 1
"""Version of the demonstration recipe and the cache file layout; part of every cache key (bump it when
either changes, so that stale weights are never loaded)."""

DEMO_KINDS = ("gold", "wrong", "truncated")

MAX_WRONG_OFFSET = 3
"""A wrong numeric answer is the gold number ± an offset drawn uniformly from 1 … MAX_WRONG_OFFSET (a near
miss, as a model's slips are); subtracted only when that keeps a non-negative gold answer non-negative."""

ANSWER_FORMATS: tuple[tuple[str, str], ...] = (
    ("bare", "{}"),                       # arithmetic_small (extract: full_text)
    ("answer_tag", "<answer>{}</answer>"),  # reasoning-gym and GSM8K prompts ask for the tag
    ("boxed", "\\boxed{{{}}}"),
    ("hash", "#### {}"),
)
"""Completion templates tried in order; a task's demonstrations use the first that the task scores 1.0 on
the gold answer (:func:`answer_format`)."""

CACHE_ENV_VAR = "XDG_CACHE_HOME"


class Demo(NamedTuple):
    """One demonstration: ``prompt`` (the task's prompt text, before any chat template), ``completion`` (the
    text after it) and ``kind`` (one of :data:`DEMO_KINDS`). Gold and wrong completions are trained with an
    EOS token after them; truncated ones without."""

    prompt: str
    completion: str
    kind: str


# --------------------------------------------------------------------------- demonstrations


def _no_gold(task: RLVRTask) -> TaskConfigError:
    return TaskConfigError(f"SFT warm start needs gold answers; task {task.name!r} has none (verifier only): "
                           f"set env.sft.steps=0, or use model.path with a real checkpoint (which skips SFT)")


def answer_format(task: RLVRTask, problem: Problem) -> str:
    """The first template of :data:`ANSWER_FORMATS` whose gold completion ``task.score``s 1.0 on ``problem``.

    Raises TaskConfigError (one line) when the problem has no gold answer, or no template scores 1.0."""
    if problem.answer is None:
        raise _no_gold(task)
    for _, template in ANSWER_FORMATS:
        if task.score(problem, template.format(problem.answer)) >= 1.0:
            return template
    raise TaskConfigError(f"SFT warm start: task {task.name!r} scores none of the completion formats "
                          f"{', '.join(n for n, _ in ANSWER_FORMATS)} 1.0 on the gold answer "
                          f"{problem.answer!r}; use a checkpoint (model.path) or env.sft.steps=0")


def _wrong_answer(task: RLVRTask, problem: Problem, template: str, rng: np.random.Generator,
                  others: Sequence[str]) -> str:
    """A completion in ``template`` that ``task`` scores < 1 on ``problem``: the gold number ± an offset in
    1 … MAX_WRONG_OFFSET (a non-numeric gold answer: another problem's gold answer)."""
    gold = problem.answer
    number = parse_number(gold)
    if number is not None and "." not in number:
        value = int(number)
        offset = int(rng.integers(1, MAX_WRONG_OFFSET + 1))
        sign = -1 if rng.random() < 0.5 and (value < 0 or value - offset >= 0) else 1
        candidates = [str(value + sign * offset)]
    else:
        candidates = [others[i] for i in rng.permutation(len(others))] if others else []
    for answer in candidates:
        text = template.format(answer)
        if task.score(problem, text) < 1.0:
            return text
    raise TaskConfigError(f"SFT warm start: cannot build a wrong answer for task {task.name!r} (gold "
                          f"{gold!r}); set env.sft.wrong_fraction=0")


def _counts(n: int, wrong_fraction: float, truncated_fraction: float) -> tuple[int, int]:
    wrong = min(n, int(round(wrong_fraction * n)))
    truncated = min(n - wrong, int(round(truncated_fraction * n)))
    return wrong, truncated


def demonstrations(task: RLVRTask, n: int, seed: int, wrong_fraction: float,
                   truncated_fraction: float) -> list[Demo]:
    """``n`` demonstrations on the task's ``train`` split.

    Exactly ``round(wrong_fraction·n)`` are wrong and ``round(truncated_fraction·n)`` truncated (capped so the
    counts fit in ``n``), the rest gold; which rows get which kind is a seeded permutation. Gold: the gold
    answer in the first :data:`ANSWER_FORMATS` template the task scores 1.0 (``"7"`` for arithmetic_small).
    Wrong: the same template around a different answer the task scores < 1 (gold ± 1 … :data:`MAX_WRONG_OFFSET`
    for an integer). Truncated: the gold completion cut to its first c characters, c uniform in
    1 … len − 1 (c = 0, an empty completion, when the completion is one character).

    Draws: the problems are ``task.prompts("train", n, stream_seed(seed, "sft"))`` and every other choice
    comes from ``numpy.random.default_rng(stream_seed(seed, "sft"))`` (:mod:`bench.seeding`).

    Raises:
        TaskConfigError: a task without gold answers (one line: SFT needs gold answers; use ``model.path``
            with a real checkpoint, which skips SFT), or the task's own error for a bad ``n``.
        ValueError: a fraction outside [0, 1] or fractions summing above 1 (one line).
    """
    for name, value in (("wrong_fraction", wrong_fraction), ("truncated_fraction", truncated_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{name}={value!r}: must be a number >= 0 and <= 1")
    if wrong_fraction + truncated_fraction > 1:
        raise ValueError(f"wrong_fraction + truncated_fraction = {wrong_fraction} + {truncated_fraction}: "
                         f"must be <= 1")
    if not task.has_gold:
        raise _no_gold(task)
    problem_seed = stream_seed(seed, "sft")
    rng = np.random.default_rng(problem_seed)
    problems = task.prompts("train", n, problem_seed)
    if any(p.answer is None for p in problems):
        raise _no_gold(task)
    n_wrong, n_truncated = _counts(len(problems), wrong_fraction, truncated_fraction)
    kinds = np.array(["gold"] * (len(problems) - n_wrong - n_truncated) + ["wrong"] * n_wrong
                     + ["truncated"] * n_truncated)[rng.permutation(len(problems))]
    golds = sorted({p.answer for p in problems})
    templates: dict[str, str] = {}        # one format per task in practice; looked up once per distinct gold
    out = []
    for problem, kind in zip(problems, kinds.tolist()):
        if problem.answer not in templates:
            templates[problem.answer] = answer_format(task, problem)
        template = templates[problem.answer]
        gold_text = template.format(problem.answer)
        if kind == "gold":
            completion = gold_text
        elif kind == "wrong":
            completion = _wrong_answer(task, problem, template, rng,
                                       [g for g in golds if g != problem.answer])
        else:
            cut = int(rng.integers(1, len(gold_text))) if len(gold_text) > 1 else 0
            completion = gold_text[:cut]
        out.append(Demo(problem.prompt, completion, kind))
    return out


# --------------------------------------------------------------------------- cache key


def _plain(value: Any) -> Any:
    """JSON-ready form: dataclasses and mappings -> dicts (string keys), sequences -> lists, Paths -> str,
    numpy scalars -> Python numbers. Raises TypeError (one line) for anything else that JSON cannot hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise TypeError(f"sft_key: non-finite number {value!r} in the key parts")
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and hasattr(value, "__len__")
                                            and not isinstance(value, (bytes, np.ndarray))):
        return [_plain(v) for v in value]
    raise TypeError(f"sft_key: cannot put a {type(value).__name__} ({value!r:.60}) in the key parts; "
                    f"pass numbers, strings, lists, mappings or dataclasses")


def canonical_json(parts: Mapping[str, Any]) -> str:
    """``parts`` as canonical JSON: keys sorted, no whitespace, dataclasses as dicts, tuples as lists."""
    return json.dumps(_plain(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sft_key(parts: Mapping[str, Any]) -> str:
    """First 16 hex digits of SHA-256 over :func:`canonical_json` of ``parts`` — everything the SFT weights
    depend on (the caller's model config, task name and settings, SFT settings, seed, and
    :data:`SFT_FORMAT_VERSION`). Equal parts (whatever their key order or tuple/list spelling) give equal keys.

    Raises TypeError (one line) for a value JSON cannot hold (an object, NaN, infinity)."""
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tpo-bench/sft``, else ``~/.cache/tpo-bench/sft``."""
    xdg = os.environ.get(CACHE_ENV_VAR)
    return (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "tpo-bench" / "sft"


# --------------------------------------------------------------------------- training


def sft_batch(tokenizer: Any, demos: Sequence[Demo], device: Any = "cpu", chat_template: bool = True):
    """The model input of B demonstrations, laid out as the RL sampler's rollouts (the arguments of
    :func:`bench.models.lm.completion_logprobs`).

    Returns ``(input_ids [B, P+T] long, attention_mask [B, P+T] long, completion_mask [B, T] long)`` on
    ``device``: the prompts left-padded by :func:`encode_prompts` (the RL sampler's tokenization), then each
    completion's tokens (no special tokens added) followed by EOS for gold and wrong demonstrations (none for
    truncated ones), right-padded with the pad token; the masks are 1 at real tokens. T >= 1 (a batch of
    empty completions gets one masked column)."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, [d.prompt for d in demos], chat_template)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = []
    for demo in demos:
        ids = tokenizer(demo.completion, add_special_tokens=False)["input_ids"] if demo.completion else []
        rows.append(list(ids) + ([eos] if demo.kind != "truncated" else []))
    T = max(1, max(len(r) for r in rows))
    completion = torch.full((len(rows), T), pad, dtype=torch.long)
    completion_mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        completion[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        completion_mask[i, :len(r)] = 1
    input_ids = torch.cat([prompt_ids, completion], 1).to(device)
    attention_mask = torch.cat([prompt_mask, completion_mask], 1).to(device)
    return input_ids, attention_mask, completion_mask.to(device)


def sft_loss(model: Any, tokenizer: Any, demos: Sequence[Demo], chat_template: bool = True) -> torch.Tensor:
    """Scalar mean token cross-entropy (nats per token) of the demonstrations' completion tokens given their
    prompts (module docstring); 0 when the batch has no completion token. Differentiable; runs the model in
    its current train/eval mode."""
    device = next(causal_lm(model).parameters()).device
    ids, mask, completion_mask = sft_batch(tokenizer, demos, device, chat_template)
    logp = completion_logprobs(model, ids, mask, completion_mask)
    return -logp.sum() / completion_mask.sum().clamp(min=1)


def _save(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same directory, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load(path: Path, model: Any, key: str) -> float:
    """Load the cached weights at ``path`` into ``model`` and return the stored loss. The file is checked in
    full (key, every parameter name, shape and dtype) BEFORE the model is touched; any problem raises
    ValueError/OSError/RuntimeError and leaves the model as it was."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("key") != key or payload.get("format") != SFT_FORMAT_VERSION:
        raise ValueError("not an SFT cache file of this key and format")
    state, loss = payload.get("state_dict"), payload.get("sft_loss")
    if not isinstance(state, dict) or not isinstance(loss, float):
        raise ValueError("missing state_dict or sft_loss")
    own = model.state_dict()
    if set(state) != set(own):
        raise ValueError(f"parameter names differ from the model's ({len(set(state) ^ set(own))} mismatched)")
    for name, value in own.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or got.shape != value.shape or got.dtype != value.dtype:
            raise ValueError(f"parameter {name} has a different shape or dtype")
    model.load_state_dict(state, strict=True)
    return loss


def warm_start(model: Any, tokenizer: Any, task: RLVRTask, sft: SFTSettings, seed: int, parts: Mapping[str, Any],
               cache_dir: Optional[Path] = None, chat_template: bool = True) -> dict[str, Any]:
    """Supervised warm start of ``model`` in place: load it from the cache, or train and cache it.

    Args:
        model: the freshly built policy (``transformers`` or ``peft`` causal LM), on its device.
        tokenizer: its tokenizer.
        task: the RLVR task (gold answers needed when ``sft.steps > 0``).
        sft: :class:`~envs.rlvr.config.SFTSettings`.
        seed: the run seed (demonstrations and their order derive from it, :func:`demonstrations`).
        parts: everything else the weights depend on (model config, task name and settings); the key is
            :func:`sft_key` of ``parts`` with ``sft``, ``seed`` and ``sft_format`` (:data:`SFT_FORMAT_VERSION`)
            set here, so two calls that differ in any of them never share a file.
        cache_dir: folder of ``<key>.pt`` files; None: :func:`default_cache_dir`.
        chat_template: passed to :func:`encode_prompts` (must match the RL sampler's).

    Training (no valid cache file): AdamW(lr, weight_decay) for ``sft.steps`` steps; step s uses
    demonstrations s·B … s·B + B − 1 of ``demonstrations(task, steps·B, seed, ...)`` (B = ``batch_size``, the
    demonstrations in their seeded order) and the loss of :func:`sft_loss`. The weights and the last-step loss
    are then written atomically to ``<cache_dir>/<key>.pt``. A file that cannot be read or does not fit the
    model is retrained and overwritten (one notice line on stderr). ``steps == 0``: nothing is done.

    Returns:
        ``{"sft_loss": last-step loss in nats/token (the stored one when loaded; 0.0 when steps == 0),
        "sft_cached": 1.0 if loaded from the cache else 0.0, "sft_steps": steps}``.

    Raises:
        TaskConfigError: the task has no gold answers and ``steps > 0`` (one line; use ``model.path``).
    """
    if sft.steps == 0:
        return {"sft_loss": 0.0, "sft_cached": 0.0, "sft_steps": 0}
    if not task.has_gold:
        raise _no_gold(task)
    key = sft_key({**parts, "sft": sft, "seed": int(seed), "sft_format": SFT_FORMAT_VERSION})
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / f"{key}.pt"
    if path.exists():
        try:
            loss = _load(path, model, key)
            return {"sft_loss": loss, "sft_cached": 1.0, "sft_steps": sft.steps}
        except Exception as exc:  # a torn or foreign file of any kind: retrain (the model is untouched)
            print(f"SFT cache file {path} unusable ({one_line(exc)[:200] or type(exc).__name__}); retraining "
                  f"and overwriting it", file=sys.stderr)
    loss = _train(model, tokenizer, task, sft, seed, chat_template)
    _save(path, {"key": key, "format": SFT_FORMAT_VERSION, "sft_loss": loss,
                 "parts": canonical_json({**parts, "sft": sft, "seed": int(seed), "sft_format": SFT_FORMAT_VERSION}),
                 "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})
    return {"sft_loss": loss, "sft_cached": 0.0, "sft_steps": sft.steps}


def _train(model: Any, tokenizer: Any, task: RLVRTask, sft: SFTSettings, seed: int, chat_template: bool) -> float:
    demos = demonstrations(task, sft.steps * sft.batch_size, seed, sft.wrong_fraction, sft.truncated_fraction)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=sft.lr, weight_decay=sft.weight_decay)
    lm = causal_lm(model)
    device = next(lm.parameters()).device
    was_training = lm.training
    lm.train()
    last = torch.zeros(())
    try:
        cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(stream_seed(seed, "sft_torch"))
            for step in range(sft.steps):
                batch = demos[step * sft.batch_size:(step + 1) * sft.batch_size]
                loss = sft_loss(model, tokenizer, batch, chat_template)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last = loss.detach()
    finally:
        lm.train(was_training)
    return float(last)


# --------------------------------------------------------------------------- evaluation


def greedy_accuracy(model: Any, tokenizer: Any, task: RLVRTask, problems: Sequence[Problem], max_new_tokens: int,
                    batch_size: int = 256, chat_template: bool = True) -> float:
    """Mean ``task.score`` of the greedy completion (temperature 0, k = 1) of every problem, in [0, 1];
    problems are decoded ``batch_size`` at a time. Raises ValueError for no problems."""
    if not problems:
        raise ValueError("greedy_accuracy: problems=[]: need at least one problem")
    scores = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start:start + batch_size]
        rollout = sample_completions(model, tokenizer, [p.prompt for p in chunk], k=1,
                                     max_new_tokens=max_new_tokens, temperature=0.0, chat_template=chat_template)
        scores.extend(task.score(p, text) for p, text in zip(chunk, rollout.texts))
    return float(np.mean(scores))
