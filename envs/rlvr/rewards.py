"""Named reward functions of the RLVR tasks; every reward is a float in [0, 1].

A reward is called as ``reward(task, problem, completion) -> float`` where ``task`` is the
:class:`envs.rlvr.tasks.RLVRTask` that made ``problem`` (it supplies the extraction chain and the
task's own verifier) and ``completion`` is the model's text (the prompt excluded). Rewards
(:data:`REWARDS`):

``exact_match``  1.0 if the extracted answer equals the gold answer after normalisation
                 (:func:`answers_match`), else 0.0; 0.0 when nothing is extracted. Needs a gold answer:
                 a task without one (``graph_color``) refuses it when the task is built.
``native``       the task's own verifier on the extracted answer: reasoning-gym's ``score_answer``
                 (its partial credit, e.g. knights_knaves 0.3 + 0.7·fraction of correct roles, or
                 len(gold)/len(answer) when the gold answer is a substring; Stojanovski et al. 2025), or
                 ``exact_match`` for tasks without their own verifier (GSM8K, ``arithmetic_small``).
                 Values are clipped into [0, 1]; a non-finite value counts as 0.
``format``       1.0 if the completion holds a complete non-empty ``<answer>…</answer>`` pair in its
                 scanned tail (:func:`envs.rlvr.extract.answer_tag`), else 0.0.

:func:`make_reward` composes them by name from config: a name (``"exact_match"``) or a mapping of
names to non-negative weights (``{"exact_match": 0.9, "format": 0.1}``), whose value is the
WEIGHTED MEAN ``Σ w_i r_i / Σ w_i`` — so a composed reward stays in [0, 1] and a format bonus is a
weight, not an addend.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Union

from envs.rlvr.errors import TaskConfigError
from envs.rlvr.extract import answer_tag, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from envs.rlvr.tasks import Problem, RLVRTask

__all__ = ["REWARDS", "NEEDS_GOLD", "Reward", "RewardSpec", "answers_match", "exact_match", "format_reward",
           "make_reward", "native", "normalise_text"]

RewardSpec = Union[str, Mapping[str, float]]
"""A reward name, or a mapping name -> non-negative weight (weighted mean)."""


def normalise_text(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed to one space, one trailing ``.`` dropped."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def _number(text: str) -> Optional[Decimal]:
    parsed = parse_number(text)
    if parsed is None:
        return None
    try:
        return Decimal(parsed)
    except InvalidOperation:  # pragma: no cover - parse_number only emits [-]digits[.digits]
        return None


def answers_match(candidate: Optional[str], gold: str) -> bool:
    """Whether an extracted answer equals the gold answer.

    If the gold answer is ONE number (:func:`envs.rlvr.extract.parse_number`: sign, digits,
    thousands commas, decimals, unicode digits, a leading ``$``), the candidate must also be one
    number of equal value (``"1,000"`` = ``"1000.0"``; ``"1000 apples"`` is not a number). Otherwise
    the texts are compared after :func:`normalise_text`. ``None`` never matches.
    """
    if candidate is None:
        return False
    gold_value = _number(gold)
    if gold_value is not None:
        value = _number(candidate)
        return value is not None and value == gold_value
    return normalise_text(candidate) == normalise_text(gold)


def exact_match(task: "RLVRTask", problem: "Problem", completion: str) -> float:
    """1.0 if the extracted answer matches ``problem.answer`` (:func:`answers_match`), else 0.0.
    Raises TaskConfigError if the problem has no gold answer."""
    if problem.answer is None:
        raise TaskConfigError(f"reward 'exact_match' needs a gold answer; task {problem.task!r} has none "
                              f"(verifier only): use reward 'native'")
    return 1.0 if answers_match(task.extract(completion), problem.answer) else 0.0


def native(task: "RLVRTask", problem: "Problem", completion: str) -> float:
    """The task's verifier on the extracted answer, clipped into [0, 1] (non-finite -> 0)."""
    value = float(task.verify(problem, task.extract(completion)))
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def format_reward(task: "RLVRTask", problem: "Problem", completion: str) -> float:
    """1.0 if the completion holds a complete, non-empty ``<answer>…</answer>`` pair, else 0.0."""
    return 0.0 if answer_tag(completion) is None else 1.0


Reward = Callable[["RLVRTask", "Problem", str], float]

REWARDS: dict[str, Reward] = {"exact_match": exact_match, "native": native, "format": format_reward}
"""Reward registry: name -> ``reward(task, problem, completion) -> float in [0, 1]``."""

NEEDS_GOLD = frozenset({"exact_match"})
"""Rewards that need ``problem.answer`` (refused by tasks without gold answers)."""


@dataclass(frozen=True)
class WeightedReward:
    """Weighted mean of named rewards. ``terms``: ((name, weight), ...), weights >= 0, sum > 0."""

    terms: tuple[tuple[str, float], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    def __call__(self, task: "RLVRTask", problem: "Problem", completion: str) -> float:
        total = sum(weight for _, weight in self.terms)
        value = sum(weight * REWARDS[name](task, problem, completion) for name, weight in self.terms if weight)
        return min(1.0, max(0.0, value / total))


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in REWARDS:
        raise TaskConfigError(f"reward: unknown reward {name!r}; valid rewards: {', '.join(REWARDS)}")
    return name


def make_reward(spec: RewardSpec) -> WeightedReward:
    """The reward named by ``spec`` (a name, or a mapping name -> weight; module docstring).

    Returns a :class:`WeightedReward` (``.names`` lists the rewards used). Raises TaskConfigError
    (one line) for an unknown name (listing the valid ones), a negative or non-finite weight, or
    weights summing to 0.
    """
    if isinstance(spec, str):
        return WeightedReward(((_check_name(spec), 1.0),))
    if not isinstance(spec, Mapping) or not spec:
        raise TaskConfigError(f"reward: expected a name or a non-empty mapping name -> weight, got {spec!r}; "
                              f"valid rewards: {', '.join(REWARDS)}")
    terms = []
    for name, weight in spec.items():
        _check_name(name)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise TaskConfigError(f"reward: weight of {name!r} must be a finite number >= 0, got {weight!r}")
        terms.append((name, float(weight)))
    if sum(weight for _, weight in terms) <= 0:
        raise TaskConfigError(f"reward: the weights {dict(spec)!r} sum to 0; at least one must be > 0")
    return WeightedReward(tuple(terms))
