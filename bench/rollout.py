"""Sampling answers from a causal transformer policy, and recomputing their log-probs.

One decoding loop (temperature 1, KV cache) serves three rollout modes:

* ``sample_single``           one answer per prompt            → answers, logp_old [B, H]
* ``sample_grouped``          K full answers per prompt        → answers, logp_old [B, K, H]
* ``sample_token_candidates`` one behaviour answer per prompt, and at every prefix
                              state K i.i.d. next-token candidates from π(·|x, y_<t),
                              candidate 0 being the behaviour token
                              → answers [B, H], candidates [B, H, K], logp_old [B, H, K]

The sampling-time log-probs are kept as the frozen "old" log-probs. Training
epochs recompute them with one full forward pass of the buffer
``[x_0..x_{H−1}, y_0..y_{H−2}]`` (answer token t is predicted at position H+t−1):
``sequence_logp`` for the sampled tokens, ``token_candidate_logp`` for all
candidates of all prefixes of a behaviour answer at once.

Randomness: every draw comes from the ``torch.Generator`` passed in, on the
generator's device (then moved to the model's device), through the Gumbel-max
trick a = argmax_v (log π_v + G_v), G_v = −log(−log U_v) ~ Gumbel(0, 1). The same
seed therefore gives the same samples; keep prompts on a separate generator so
that the prompt stream is the same for every algorithm (common random numbers).
Alternatively the caller passes the whole rollout's Gumbel noise up front
(``noise=`` [N, H, K, V], e.g. drawn per seed from per-seed generators when
several seeds are decoded as one batch); then ``generator`` is not used.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from bench.seeding import to_device

LogitsFn = Callable[[Tensor], Tensor]


class Rollout(NamedTuple):
    """Sampled answers (long) and their sampling-time token log-probs, same shape ([B, H] or [B, K, H])."""

    answers: Tensor
    logp: Tensor


class TokenCandidates(NamedTuple):
    """Behaviour answers [B, H]; candidates [B, H, K] (k = 0 is the behaviour token); their log-probs [B, H, K]."""

    answers: Tensor
    candidates: Tensor
    logp: Tensor


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """Standard Gumbel noise −log(−log U), U ~ U(0, 1) drawn on the generator's device, moved to ``device``."""
    u = to_device(torch.rand(shape, generator=generator, device=generator.device), device)
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log(-torch.log(u.clamp(min=tiny)))


def _decode(model, prompts: Tensor, K: int, generator: Optional[torch.Generator],
            noise: Optional[Tensor] = None, repeat: int = 1) -> tuple[Tensor, Tensor]:
    """Decode H answer tokens for prompts [P, H]; at each step draw K i.i.d. tokens and feed back the first.

    ``repeat`` > 1 decodes ``repeat`` independent answers per prompt (rows prompt-major,
    N = P·repeat) from one prefill of each prompt (its cache is repeated, not recomputed).
    Returns candidates [N, H, K] (long) and their log-probs [N, H, K]. ``noise`` [N, H, K, V]:
    pre-drawn Gumbel noise used instead of drawing from ``generator``.
    """
    logits, cache = model.prefill(prompts)
    step_logits = logits[:, -1]                                                     # [P, V]
    if repeat > 1:
        step_logits = step_logits.repeat_interleave(repeat, dim=0)
        cache = tuple((k.repeat_interleave(repeat, dim=0), v.repeat_interleave(repeat, dim=0)) for k, v in cache)
    N, H = step_logits.shape[0], prompts.shape[1]
    tokens, logps = [], []
    for t in range(H):
        logp = torch.log_softmax(step_logits.float(), dim=-1)                        # [N, V]
        g = gumbel_noise((N, K, logp.shape[-1]), generator, logp.device) if noise is None else noise[:, t]
        a = torch.argmax(logp.unsqueeze(1) + g, dim=-1)                              # [N, K]
        tokens.append(a)
        logps.append(torch.gather(logp, -1, a))
        if t < H - 1:
            step_logits, cache = model.decode(a[:, :1], cache)
            step_logits = step_logits[:, -1]
    return torch.stack(tokens, dim=1), torch.stack(logps, dim=1)


@torch.no_grad()
def sample_single(model, prompts: Tensor, generator: Optional[torch.Generator],
                  noise: Optional[Tensor] = None) -> Rollout:
    """One answer per prompt: prompts [B, H] → answers [B, H], logp_old [B, H] (noise: [B, H, 1, V])."""
    a, lp = _decode(model, prompts, 1, generator, noise)
    return Rollout(a[..., 0], lp[..., 0])


@torch.no_grad()
def sample_grouped(model, prompts: Tensor, K: int, generator: Optional[torch.Generator],
                   noise: Optional[Tensor] = None) -> Rollout:
    """K independent full answers per prompt: prompts [B, H] → answers [B, K, H], logp_old [B, K, H]
    (noise: [B·K, H, 1, V], rows prompt-major)."""
    B, H = prompts.shape
    a, lp = _decode(model, prompts, 1, generator, noise, repeat=K)
    return Rollout(a[..., 0].reshape(B, K, H), lp[..., 0].reshape(B, K, H))


@torch.no_grad()
def sample_token_candidates(model, prompts: Tensor, K: int, generator: Optional[torch.Generator],
                            noise: Optional[Tensor] = None) -> TokenCandidates:
    """Behaviour answer + K next-token candidates per prefix (candidate 0 = behaviour token).

    prompts [B, H] → answers [B, H], candidates [B, H, K], logp_old [B, H, K].
    Candidates 1..K−1 are i.i.d. draws from π(·|x, y_<t) of the behaviour prefix (noise: [B, H, K, V]).
    """
    cands, lp = _decode(model, prompts, K, generator, noise)
    return TokenCandidates(cands[..., 0], cands, lp)


def model_inputs(prompts: Tensor, answers: Tensor) -> Tensor:
    """Token buffer [..., 2H−1] = [x, y_0..y_{H−2}] for prompts [..., H] and answers [..., H] or [..., K, H]
    (the same leading axes, e.g. [B] or a seed axis and [S, B]; the K answers of a prompt share it)."""
    x = prompts.reshape(prompts.shape[:-1] + (1,) * (answers.dim() - prompts.dim()) + prompts.shape[-1:])
    x = x.expand(answers.shape[:-1] + prompts.shape[-1:])
    return torch.cat([x, answers[..., :-1]], dim=-1)


def answer_log_probs(model: LogitsFn, prompts: Tensor, answers: Tensor) -> Tensor:
    """Full next-token log-distributions at every answer step, one forward pass: [..., H, V].

    ``model`` is any callable tokens [..., T] → logits [..., T, V] (the module itself, a
    :class:`bench.families.sequence.StackedPolicy` over stacked parameters with the seed axis first, or a
    ``torch.func.functional_call`` partial).
    """
    H = prompts.shape[-1]
    logits = model(model_inputs(prompts, answers))                                   # [..., 2H−1, V]
    return torch.log_softmax(logits[..., H - 1:, :].float(), dim=-1)


def sequence_logp(model: LogitsFn, prompts: Tensor, answers: Tensor) -> Tensor:
    """Per-token log π(y_t | x, y_<t) of given answers [B, H] or [B, K, H] (same shape out), with grad."""
    logp = answer_log_probs(model, prompts, answers)
    return torch.gather(logp, -1, answers.unsqueeze(-1)).squeeze(-1)


def token_candidate_logp(model: LogitsFn, prompts: Tensor, answers: Tensor, candidates: Tensor) -> Tensor:
    """log π(cand_{t,k} | x, y_<t) [B, H, K] for behaviour answers [B, H] — one forward of the behaviour buffer."""
    return torch.gather(answer_log_probs(model, prompts, answers), -1, candidates)


def grouped_sequence_logp(model, prompts: Tensor, answers: Tensor) -> Tensor:
    """:func:`sequence_logp` for K answers per prompt, encoding each prompt once.

    ``model`` has ``prefill``/``decode`` (a :class:`TransformerPolicy`, or a
    :class:`bench.families.sequence.StackedPolicy` over seed-major rows). prompts [B, H], answers [B, K, H] →
    per-token log π(y_t | x, y_<t) [B, K, H], with grad.
    The prompt is prefilled once per group ([B, H] tokens); the K answer prefixes
    y_0..y_{H−2} are then decoded against the cached prompt in one pass ([B·K, H−1] tokens)
    instead of K full ``[x, y_<H]`` buffers — about half the work of :func:`sequence_logp` at
    equal results (up to float rounding).
    """
    B, K, H = answers.shape
    logits0, cache = model.prefill(prompts)                                          # [B, H, V]
    first = logits0[:, -1:].unsqueeze(1).expand(B, K, 1, logits0.shape[-1])          # predicts y_0
    if H == 1:
        logits = first
    else:
        cache = tuple((k.repeat_interleave(K, dim=0), v.repeat_interleave(K, dim=0)) for k, v in cache)
        rest, _ = model.decode(answers.reshape(B * K, H)[:, :-1], cache)               # [B·K, H−1, V]
        logits = torch.cat([first, rest.reshape(B, K, H - 1, -1)], dim=2)              # [B, K, H, V]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, -1, answers.unsqueeze(-1)).squeeze(-1)
