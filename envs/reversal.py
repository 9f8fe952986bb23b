"""Token reversal family: the transformer sequence tasks (TPO paper, §Token reversal).

A prompt is H tokens x ∈ [0, V)^H drawn uniformly. The policy answers with H
tokens y'. The target y is a fixed function of x (the *logic*):

    copy           y_t = x_t
    flip           y_t = (V − 1) − x_t
    reverse_copy   y_t = x_{H−1−t}
    reverse_flip   y_t = (V − 1) − x_{H−1−t}

Per-token correctness c_t = 1{y'_t = y_t} ∈ {0, 1}. Rewards (*reward* name):

    bag         r_t = c_t                      (dense, [.., H])
    sequential  r_t = Π_{j≤t} c_j              (dense, [.., H])
    terminal    r   = Π_j c_j                  (one exact-match bit, [..])

Sequence score used by grouped methods: mean_t r_t for dense rewards, the
exact-match bit for terminal. Error (measured on the step's training
rollouts, before the update):

    bag         token error       1 − mean c_t
    sequential  prefix error      1 − mean_t Π_{j≤t} c_j
    terminal    exact-match error 1 − mean Π_j c_j

Token-candidate groups (TPO_token / GRPO_token, dense rewards only): at prefix
state t of a behaviour answer, K next-token candidates are scored as
1{cand = y_t} (bag) or alive_t · 1{cand = y_t} (sequential), where
alive_t = Π_{j<t} c_j is 1 iff all previous *behaviour* tokens were correct.

Every function is pure, works on any leading batch shape ``[...]`` and on any
device; nothing calls ``.item()``. Imports torch only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import torch
from torch import Tensor

__all__ = [
    "LOGICS", "REWARDS", "SCORES", "ERRORS", "CANDIDATE_SCORES", "ReversalTask",
    "sample_prompts", "target", "correct",
    "reward_bag", "reward_sequential", "reward_terminal", "alive",
    "sequence_score", "error_bag", "error_sequential", "error_terminal",
    "candidate_scores_bag", "candidate_scores_sequential",
]


# --------------------------------------------------------------------------- prompts / targets


def sample_prompts(generator: torch.Generator, batch: int, horizon: int, vocab: int,
                   device: Optional[torch.device | str] = None) -> Tensor:
    """Uniform prompts x ~ U{0..V−1}^{B×H} as a long tensor [B, H] on ``device``.

    The numbers are drawn on the *generator's* device and then moved, so a CPU
    generator with a given seed gives the same prompt stream on CPU and CUDA
    (common random numbers). Use a generator dedicated to prompts: then the
    stream does not depend on how much randomness an algorithm's sampler uses.
    """
    x = torch.randint(0, vocab, (batch, horizon), generator=generator, device=generator.device)
    return x if device is None else x.to(device)


def _copy(x: Tensor, vocab: int) -> Tensor:
    return x


def _flip(x: Tensor, vocab: int) -> Tensor:
    return (vocab - 1) - x


def _reverse_copy(x: Tensor, vocab: int) -> Tensor:
    return x.flip(-1)


def _reverse_flip(x: Tensor, vocab: int) -> Tensor:
    return (vocab - 1) - x.flip(-1)


LOGICS: Mapping[str, Callable[[Tensor, int], Tensor]] = {
    "copy": _copy,
    "flip": _flip,
    "reverse_copy": _reverse_copy,
    "reverse_flip": _reverse_flip,
}


def _lookup(table: Mapping[str, object], kind: str, name: str):
    """``table[name]`` or a ValueError that lists the valid names."""
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; valid: {sorted(table)}")
    return table[name]


def target(prompts: Tensor, logic: str, vocab: int) -> Tensor:
    """Target answers y [..., H] for prompts x [..., H] under ``logic`` (see module doc)."""
    return _lookup(LOGICS, "logic", logic)(prompts, vocab)


def correct(answers: Tensor, targets: Tensor) -> Tensor:
    """Per-token correctness c_t = 1{y'_t = y_t} as float [..., H].

    ``targets`` [B, H] broadcasts against grouped answers if it is given as
    [B, 1, H] (use ``targets.unsqueeze(1)`` for answers [B, K, H]).
    """
    return (answers == targets).to(torch.get_default_dtype())


# --------------------------------------------------------------------------- rewards


def alive(c: Tensor) -> Tensor:
    """alive_t = Π_{j<t} c_j [..., H] (alive_0 = 1): all earlier tokens correct."""
    ones = torch.ones_like(c[..., :1])
    return torch.cat([ones, torch.cumprod(c[..., :-1], dim=-1)], dim=-1)


def reward_bag(c: Tensor) -> Tensor:
    """Bag of tokens: r_t = c_t, [..., H]."""
    return c


def reward_sequential(c: Tensor) -> Tensor:
    """Sequential: r_t = Π_{j≤t} c_j, [..., H] (a reward stops at the first mistake)."""
    return torch.cumprod(c, dim=-1)


def reward_terminal(c: Tensor) -> Tensor:
    """Terminal: r = Π_j c_j, [...] (exact match, given once at the end)."""
    return c.prod(dim=-1)


REWARDS: Mapping[str, Callable[[Tensor], Tensor]] = {
    "bag": reward_bag,
    "sequential": reward_sequential,
    "terminal": reward_terminal,
}

DENSE_REWARDS = ("bag", "sequential")


def _mean_last(r: Tensor) -> Tensor:
    return r.mean(dim=-1)


def _identity(r: Tensor) -> Tensor:
    return r


# sequence score from the reward tensor: mean_t r_t (dense) or the bit (terminal)
SCORES: Mapping[str, Callable[[Tensor], Tensor]] = {
    "bag": _mean_last,
    "sequential": _mean_last,
    "terminal": _identity,
}


def sequence_score(c: Tensor, reward: str) -> Tensor:
    """Scalar score per answer [...] from correctness c [..., H].

    s = mean_t r_t for dense rewards (bag, sequential); s = Π_j c_j for terminal.
    """
    r = _lookup(REWARDS, "reward", reward)(c)
    return SCORES[reward](r)


# --------------------------------------------------------------------------- errors


def error_bag(c: Tensor) -> Tensor:
    """Token error 1 − mean c over every token of every answer; 0-dim tensor."""
    return 1.0 - c.mean()


def error_sequential(c: Tensor) -> Tensor:
    """Prefix error 1 − mean_{answers, t} Π_{j≤t} c_j; 0-dim tensor."""
    return 1.0 - torch.cumprod(c, dim=-1).mean()


def error_terminal(c: Tensor) -> Tensor:
    """Exact-match error 1 − mean Π_j c_j; 0-dim tensor."""
    return 1.0 - c.prod(dim=-1).mean()


ERRORS: Mapping[str, Callable[[Tensor], Tensor]] = {
    "bag": error_bag,
    "sequential": error_sequential,
    "terminal": error_terminal,
}


# --------------------------------------------------------------------------- token candidates


def candidate_scores_bag(candidates: Tensor, c: Tensor, targets: Tensor) -> Tensor:
    """Bag scores of next-token candidates: s_{t,k} = 1{cand_{t,k} = y_t}.

    candidates [B, H, K] long, c [B, H] behaviour correctness (unused), targets
    [B, H] → [B, H, K] float.
    """
    return (candidates == targets.unsqueeze(-1)).to(c.dtype)


def candidate_scores_sequential(candidates: Tensor, c: Tensor, targets: Tensor) -> Tensor:
    """Sequential scores: s_{t,k} = alive_t · 1{cand_{t,k} = y_t}, alive_t = Π_{j<t} c_j.

    ``c`` [B, H] is the correctness of the *behaviour* answer (candidate 0);
    candidates [B, H, K]; targets [B, H] → [B, H, K] float.
    """
    return alive(c).unsqueeze(-1) * candidate_scores_bag(candidates, c, targets)


CANDIDATE_SCORES: Mapping[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "bag": candidate_scores_bag,
    "sequential": candidate_scores_sequential,
}


# --------------------------------------------------------------------------- task object


@dataclass(frozen=True)
class ReversalTask:
    """One member of the token reversal family.

    horizon: H, prompt and answer length.  vocab: V ≥ 2.
    logic:   one of ``LOGICS`` (copy, flip, reverse_copy, reverse_flip).
    reward:  one of ``REWARDS`` (bag, sequential, terminal).

    Methods dispatch through the module's dicts; names are validated here.
    """

    horizon: int
    vocab: int
    logic: str = "reverse_copy"
    reward: str = "bag"

    def __post_init__(self) -> None:
        _lookup(LOGICS, "logic", self.logic)
        _lookup(REWARDS, "reward", self.reward)
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.vocab < 2:
            raise ValueError(f"vocab must be >= 2, got {self.vocab}")

    @property
    def dense(self) -> bool:
        """True for per-token rewards (bag, sequential); token candidates need this."""
        return self.reward in DENSE_REWARDS

    def sample_prompts(self, generator: torch.Generator, batch: int,
                       device: Optional[torch.device | str] = None) -> Tensor:
        """[B, H] uniform prompts (see :func:`sample_prompts`)."""
        return sample_prompts(generator, batch, self.horizon, self.vocab, device)

    def targets(self, prompts: Tensor) -> Tensor:
        """[..., H] targets y for prompts [..., H]."""
        return LOGICS[self.logic](prompts, self.vocab)

    def correct(self, prompts: Tensor, answers: Tensor) -> Tensor:
        """c [B, H] or [B, K, H] for prompts [B, H] and answers of either shape."""
        y = self.targets(prompts)
        y = y.reshape(y.shape[:1] + (1,) * (answers.dim() - y.dim()) + y.shape[1:])
        return correct(answers, y)

    def rewards(self, c: Tensor) -> Tensor:
        """r [..., H] (dense) or [...] (terminal) from c [..., H]."""
        return REWARDS[self.reward](c)

    def score(self, c: Tensor) -> Tensor:
        """Sequence score [...] (mean_t r_t, or the exact-match bit for terminal)."""
        return SCORES[self.reward](REWARDS[self.reward](c))

    def error(self, c: Tensor) -> Tensor:
        """0-dim error of the rollouts with correctness c (see module doc)."""
        return ERRORS[self.reward](c)

    def candidate_scores(self, candidates: Tensor, c: Tensor, prompts: Tensor) -> Tensor:
        """[B, H, K] scores of token candidates; dense rewards only.

        candidates [B, H, K], c [B, H] behaviour correctness, prompts [B, H].
        """
        fn = _lookup(CANDIDATE_SCORES, "token-candidate reward", self.reward)
        return fn(candidates, c, self.targets(prompts))


# --------------------------------------------------------------------------- harness config

MATCHINGS = ("prompt", "interaction")


@dataclass(frozen=True)
class ReversalConfig:
    """Settings of a token reversal run (the ``reversal`` entry of :data:`envs.ENVS`).

    horizon:    H, prompt and answer length.      vocab: V.
    logic:      one of ``LOGICS``.                 reward: one of ``REWARDS``.
    batch_size: B, prompts per step (paper: 100).  k: K, candidates per group (paper: 8).
    matching:   ``prompt`` — every method sees B prompts (grouped methods score B·K
                answers); ``interaction`` — methods with one answer per prompt see B·K
                prompts and run at lr·√K (grouped methods are unchanged). The derived
                numbers are computed by named functions in the harness
                (``bench.families.sequence``), never written back into this config.
    """

    name: str = "reversal"
    horizon: int = field(default=10, metadata={"ge": 1})
    vocab: int = field(default=2, metadata={"ge": 2})
    logic: str = field(default="reverse_copy", metadata={"choices": tuple(LOGICS)})
    reward: str = field(default="bag", metadata={"choices": tuple(REWARDS)})
    batch_size: int = field(default=100, metadata={"ge": 1})
    k: int = field(default=8, metadata={"ge": 1})   # grouped methods need K >= 2 (checked by the harness)
    matching: str = field(default="prompt", metadata={"choices": MATCHINGS})

    def __post_init__(self) -> None:
        ReversalTask(self.horizon, self.vocab, self.logic, self.reward)  # validates the names and sizes
        if self.matching not in MATCHINGS:
            raise ValueError(f"unknown matching {self.matching!r}; valid: {list(MATCHINGS)}")
        if self.batch_size < 1 or self.k < 1:
            raise ValueError(f"batch_size and k must be >= 1, got {self.batch_size}, {self.k}")

    def task(self) -> ReversalTask:
        """The :class:`ReversalTask` these settings describe."""
        return ReversalTask(self.horizon, self.vocab, self.logic, self.reward)
