"""RLVR tasks: prompts with verifiable answers, and their scores (reinforcement learning with verifiable
rewards; Lambert et al. 2024, Tülu 3 §6).

One interface, :class:`RLVRTask`:

* ``task.prompts(split, n, seed) -> list[Problem]`` — ``split`` is ``"train"`` or ``"eval"`` (held out);
  the same (split, n, seed) always gives the same problems;
* ``task.score(problem, completion_text, reward=None) -> float`` in [0, 1] — extracts the answer from
  the completion (the task's ``extract`` chain, :mod:`envs.rlvr.extract`) and applies a named reward
  (:mod:`envs.rlvr.rewards`; ``None`` = the task's configured ``reward``);
* ``task.alphabet()`` — for the built-in task, the sorted characters any prompt or answer can contain
  (to build a character tokenizer); ``None`` for the other tasks.

Tasks (:data:`TASKS`, built by :func:`make_task`):

``arithmetic_small``   built-in: sums of ``n_terms`` integers uniform in [0, ``max_operand``], prompt
                       ``"3+4="``, answer ``"7"``; small enough for a random-init tiny model on a CPU.
``basic_arithmetic``, ``chain_sum``, ``leg_counting``, ``knights_knaves``, ``graph_color``
                       reasoning-gym generators and verifiers (Stojanovski et al. 2025, "Reasoning Gym");
                       ``difficulty`` is passed through as the dataset's config fields. ``graph_color``
                       has no gold answer: it is scored by its verifier only (reward ``native``).
``reasoning_gym``      any other reasoning-gym dataset, named by the setting ``dataset``.
``gsm8k``              GSM8K from files on disk (:mod:`envs.rlvr.gsm8k`); ``eval`` reads the test split.

Settings common to every task: ``instruction`` (text appended to each question to form the prompt),
``extract`` (extractor chain) and ``reward`` (a reward name or {name: weight}).

Held-out splits
---------------
* Generated tasks split the QUESTION SPACE by a hash of the question text (:func:`held_out`: a
  question is ``eval`` iff ``crc32(question) < eval_fraction·2^32``; ``arithmetic_small`` splits an
  enumerable space exactly, :class:`ArithmeticSmallTask`), and each split keeps only its own questions,
  so no question is in both splits whatever the seed or difficulty. (Disjoint seeds alone do not
  suffice: at reasoning-gym's default settings ``graph_color`` draws the same sparse graphs from
  different seeds.)
* reasoning-gym seeds: item ``i`` of a dataset with seed ``s`` is drawn from ``random.Random(s + i)``;
  the train split also uses dataset seeds in [0, 2^31) and the eval split in [2^31, 2^32)
  (:data:`SEED_SPACE`, :func:`reasoning_gym_seed`), so the two splits never share a generator stream.
* GSM8K: the dataset's own train and test files.

Errors: :class:`~envs.rlvr.errors.TaskConfigError` for a bad name or setting (one line listing the
valid choices), :class:`~envs.rlvr.errors.TaskDataNotFound` / ``TaskDataUnreadable`` for GSM8K files.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from envs.rlvr import gsm8k as gsm8k_files
from envs.rlvr.errors import TaskConfigError, one_line
from envs.rlvr.extract import check_methods, extract_answer
from envs.rlvr.rewards import NEEDS_GOLD, RewardSpec, WeightedReward, answers_match, make_reward

__all__ = [
    "DEFAULT_INSTRUCTION", "ENUMERATE_LIMIT", "MAX_PROBLEMS", "REASONING_GYM_TASKS", "SEED_SPACE", "SPLITS", "TASKS",
    "ArithmeticSmallSettings", "ArithmeticSmallTask", "GSM8KSettings", "GSM8KTask", "Problem", "RLVRTask",
    "ReasoningGymSettings", "ReasoningGymTask", "held_out", "make_task", "reasoning_gym_seed",
]

SPLITS = ("train", "eval")
MAX_PROBLEMS = 2 ** 20
"""Most problems one ``prompts`` call returns."""
ENUMERATE_LIMIT = 2 ** 16
"""``arithmetic_small`` question spaces up to this size are enumerated to split them exactly."""
SEED_SPACE = 2 ** 31
"""reasoning-gym dataset seeds: train in [0, SEED_SPACE), eval in [SEED_SPACE, 2·SEED_SPACE)."""
DEFAULT_INSTRUCTION = "\n\nPut your final answer between <answer> and </answer> tags."
"""Appended to reasoning-gym and GSM8K questions (the tag that ``answer_tag`` extracts)."""


@dataclass(frozen=True)
class Problem:
    """One prompt of a task.

    prompt:   the text given to the model (question + the task's instruction).
    answer:   the gold answer text, or None for verifier-only tasks (graph_color).
    metadata: task data the verifier needs (reasoning-gym's entry metadata; GSM8K's solution and
              index; the operands of arithmetic_small). Read-only by convention; not part of
              equality or hashing.
    task:     the name of the task that made it.
    """

    prompt: str
    answer: Optional[str]
    metadata: dict = field(default_factory=dict, compare=False)
    task: str = ""


# --------------------------------------------------------------------------- checks


def _check_split(split: Any) -> str:
    if split not in SPLITS:
        raise TaskConfigError(f"split: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def _check_int(what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise TaskConfigError(f"{what}: expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _check_text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TaskConfigError(f"{what}: expected a string, got {value!r}")
    return value


def _check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise TaskConfigError(f"eval_fraction: expected a number in (0, 1), got {value!r}")
    return float(value)


def held_out(question: str, eval_fraction: float) -> bool:
    """Whether a question (its text without the instruction) belongs to the ``eval`` split of a generated
    task: ``crc32(UTF-8 text) < eval_fraction · 2^32``. A fixed function of the text, so a question is in
    one split only, whatever seed or difficulty produced it."""
    return zlib.crc32(question.encode("utf-8")) < eval_fraction * 2 ** 32


def _draw_budget(n: int) -> int:
    return 1000 + 100 * n


def _too_few(task: str, found: int, n: int, split: str, draws: int, eval_fraction: float) -> TaskConfigError:
    return TaskConfigError(
        f"task {task!r}: found {found} of {n} {split} questions in {draws} draws: the {split} share of the "
        f"question space is too small (eval_fraction={eval_fraction}); move eval_fraction towards 0.5 or make "
        f"the task harder (more distinct questions)")


class RLVRTask(ABC):
    """A source of prompts with verifiable answers (module docstring).

    Attributes: ``name`` (registry key), ``settings`` (frozen dataclass), ``has_gold`` (problems carry a
    gold answer), ``reward`` (the configured :class:`~envs.rlvr.rewards.WeightedReward`),
    ``extract_methods`` (the extractor chain).
    """

    has_gold: bool = True

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = settings
        self.extract_methods = check_methods(settings.extract)
        self.reward = self._reward(settings.reward)

    def _reward(self, spec: RewardSpec) -> WeightedReward:
        reward = make_reward(spec)
        if not self.has_gold and NEEDS_GOLD.intersection(reward.names):
            raise TaskConfigError(f"task {self.name!r}: reward {spec!r} needs gold answers, which this task "
                                  f"does not have (verifier only); use reward 'native'")
        return reward

    @abstractmethod
    def prompts(self, split: str, n: Optional[int], seed: int) -> list[Problem]:
        """``n`` problems of ``split`` (``"train"``/``"eval"``) for ``seed`` (an integer >= 0), the same
        for the same arguments. ``n=None`` asks for the whole split: file-backed tasks (GSM8K) only.
        Raises TaskConfigError for a bad split, n (1 ... 2^20, or the split's size) or seed."""

    @abstractmethod
    def verify(self, problem: Problem, answer: Optional[str]) -> float:
        """The task's own score of an extracted answer (None: nothing extracted), in [0, 1]."""

    def alphabet(self) -> Optional[tuple[str, ...]]:
        """Sorted characters of every prompt and answer (built-in task), else None."""
        return None

    def extract(self, completion: str) -> Optional[str]:
        """The answer in a completion by the task's extractor chain, or None."""
        return extract_answer(completion, self.extract_methods)

    def score(self, problem: Problem, completion_text: str, reward: Optional[RewardSpec] = None) -> float:
        """Reward in [0, 1] of ``completion_text`` (the model's text after the prompt) for ``problem``.

        ``reward``: a reward name or {name: weight} (:func:`~envs.rlvr.rewards.make_reward`); None uses
        the task's configured reward. Raises TaskConfigError for an unknown reward, a reward needing a
        gold answer on a verifier-only task, or a problem made by another task.
        """
        if problem.task != self.name:
            raise TaskConfigError(f"problem: made by task {problem.task!r}, cannot be scored by task {self.name!r}")
        fn = self.reward if reward is None else self._reward(reward)
        return fn(self, problem, completion_text)


# --------------------------------------------------------------------------- built-in arithmetic


@dataclass(frozen=True)
class ArithmeticSmallSettings:
    """max_operand: operands uniform in [0, max_operand] (1 ... 10^6); n_terms: operands per sum (1 ... 16);
    eval_fraction: share of the question space held out for ``eval`` (0 < f < 1)."""

    max_operand: int = 9
    n_terms: int = 2
    eval_fraction: float = 0.2
    instruction: str = ""
    extract: Sequence[str] = ("full_text",)
    reward: RewardSpec = "exact_match"

    def __post_init__(self) -> None:
        _check_int("max_operand", self.max_operand, 1, 10 ** 6)
        _check_int("n_terms", self.n_terms, 1, 16)
        _check_fraction(self.eval_fraction)
        _check_text("instruction", self.instruction)


class ArithmeticSmallTask(RLVRTask):
    """Sums of small integers for tiny models: prompt ``"a+b(+c...)="`` + instruction, answer the sum
    in decimal digits, drawn from ``numpy.random.default_rng([split index, seed])``.

    Held-out split (a deterministic function of the question and the settings): when the question space
    has at most :data:`ENUMERATE_LIMIT` questions, it is enumerated and the ``max(1, round(f·size))``
    questions of lowest ``crc32`` (ties by text; at most size − 1) are ``eval``, the rest ``train``, and
    each split draws uniformly from its own list; a larger space uses :func:`held_out` and each split
    draws by rejection (at most 1000 + 100·n draws; too few questions of a split raise
    TaskConfigError). f = ``eval_fraction``.
    """

    def __init__(self, name: str, settings: ArithmeticSmallSettings) -> None:
        super().__init__(name, settings)
        self._pools: Optional[dict[str, np.ndarray]] = None
        size = (settings.max_operand + 1) ** settings.n_terms
        if size <= ENUMERATE_LIMIT:
            rows = np.array(list(itertools.product(range(settings.max_operand + 1), repeat=settings.n_terms)))
            keys = sorted((zlib.crc32(self._question(row).encode("utf-8")), self._question(row), k)
                          for k, row in enumerate(rows.tolist()))
            n_eval = min(size - 1, max(1, round(settings.eval_fraction * size)))
            in_eval = np.zeros(size, dtype=bool)
            in_eval[[k for _, _, k in keys[:n_eval]]] = True
            self._pools = {"train": rows[~in_eval], "eval": rows[in_eval]}
        else:
            for split in SPLITS:              # fail now if a split owns no question at this difficulty
                self.prompts(split, 1, 0)

    @staticmethod
    def _question(row: Sequence[int]) -> str:
        return "+".join(map(str, row)) + "="

    def alphabet(self) -> tuple[str, ...]:
        return tuple(sorted(set("0123456789+=") | set(self.settings.instruction)))

    def _problem(self, row: list[int], split: str) -> Problem:
        question = self._question(row)
        return Problem(question + self.settings.instruction, str(sum(row)),
                       {"operands": tuple(row), "question": question, "split": split}, self.name)

    def prompts(self, split: str, n: Optional[int], seed: int) -> list[Problem]:
        split = _check_split(split)
        n = _check_int("n", n, 1, MAX_PROBLEMS)
        seed = _check_int("seed", seed, 0, 2 ** 63 - 1)
        s = self.settings
        rng = np.random.default_rng([SPLITS.index(split), seed])
        if self._pools is not None:
            pool = self._pools[split]
            return [self._problem(row, split) for row in pool[rng.integers(0, len(pool), size=n)].tolist()]
        want_eval = split == "eval"
        out: list[Problem] = []
        draws, budget = 0, _draw_budget(n)
        while len(out) < n:
            if draws >= budget:
                raise _too_few(self.name, len(out), n, split, draws, s.eval_fraction)
            chunk = max(64, 2 * (n - len(out)))
            draws += chunk
            for row in rng.integers(0, s.max_operand + 1, size=(chunk, s.n_terms)).tolist():
                if held_out(self._question(row), s.eval_fraction) == want_eval:
                    out.append(self._problem(row, split))
                    if len(out) == n:
                        break
        return out

    def verify(self, problem: Problem, answer: Optional[str]) -> float:
        return 1.0 if answers_match(answer, problem.answer) else 0.0


# --------------------------------------------------------------------------- reasoning-gym


def reasoning_gym_seed(split: str, seed: int, n: int) -> int:
    """The reasoning-gym dataset seed of ``prompts(split, n, seed)``: ``base + h(seed) mod (SEED_SPACE − n + 1)``
    with base 0 (train) or SEED_SPACE (eval) and h a 64-bit hash of ``seed`` (numpy ``SeedSequence``), so
    items ``base + h … + n − 1`` stay inside the split's half and consecutive seeds do not overlap."""
    mixed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
    return SPLITS.index(split) * SEED_SPACE + mixed % (SEED_SPACE - n + 1)


@dataclass(frozen=True)
class ReasoningGymSettings:
    """dataset: reasoning-gym dataset name; difficulty: that dataset's config fields (except seed and
    size, which the task sets); eval_fraction: share of the questions (by :func:`held_out`) kept for ``eval``."""

    dataset: str = ""
    difficulty: Mapping[str, Any] = field(default_factory=dict)
    eval_fraction: float = 0.2
    instruction: str = DEFAULT_INSTRUCTION
    extract: Sequence[str] = ("answer_tag",)
    reward: RewardSpec = "native"

    def __post_init__(self) -> None:
        _check_text("dataset", self.dataset)
        _check_fraction(self.eval_fraction)
        _check_text("instruction", self.instruction)
        if not isinstance(self.difficulty, Mapping):
            raise TaskConfigError(f"difficulty: expected a mapping of dataset settings, got {self.difficulty!r}")


def _import_reasoning_gym():
    try:
        import reasoning_gym
    except ImportError:
        raise TaskConfigError("reasoning-gym tasks need the reasoning-gym package: "
                              "pip install 'reasoning-gym==0.1.25' (the llm extra)") from None
    return reasoning_gym


class ReasoningGymTask(RLVRTask):
    """A reasoning-gym dataset: its generator makes the problems, its ``score_answer`` is the verifier.

    ``prompts(split, n, seed)`` walks items 0, 1, … of the dataset with seed
    ``reasoning_gym_seed(split, seed, 1000 + 100·n)`` and keeps those of ``split`` (:func:`held_out`) until
    it has ``n``; too few within that many items raise TaskConfigError."""

    def __init__(self, name: str, settings: ReasoningGymSettings) -> None:
        rg = _import_reasoning_gym()
        registry = rg.factory.DATASETS
        if settings.dataset not in registry:
            raise TaskConfigError(f"task {name!r}: dataset: unknown reasoning-gym dataset {settings.dataset!r}; "
                                  f"valid datasets: {', '.join(sorted(registry))}")
        valid = [f.name for f in dataclasses.fields(registry[settings.dataset][1]) if f.name not in ("seed", "size")]
        for key in settings.difficulty:
            if key not in valid:
                raise TaskConfigError(f"task {name!r}: difficulty: unknown setting {key!r} of reasoning-gym dataset "
                                      f"{settings.dataset!r}; valid settings: {', '.join(valid)}")
        self._difficulty = dict(settings.difficulty)
        self._dataset_name = settings.dataset
        self._create = rg.create_dataset
        try:
            self._verifier = self._dataset(0, 1)
            probe = self._verifier[0]
        except (AssertionError, ValueError, TypeError) as exc:
            raise TaskConfigError(f"task {name!r}: invalid difficulty {self._difficulty!r} "
                                  f"({one_line(exc) or type(exc).__name__})") from None
        self.has_gold = probe["answer"] is not None
        super().__init__(name, settings)

    def _dataset(self, seed: int, size: int):
        return self._create(self._dataset_name, seed=seed, size=size, **self._difficulty)

    def prompts(self, split: str, n: Optional[int], seed: int) -> list[Problem]:
        split = _check_split(split)
        n = _check_int("n", n, 1, MAX_PROBLEMS)
        seed = _check_int("seed", seed, 0, 2 ** 63 - 1)
        budget = _draw_budget(n)
        data = self._dataset(reasoning_gym_seed(split, seed, budget), budget)
        fraction, want_eval = self.settings.eval_fraction, split == "eval"
        out = []
        for i in range(budget):
            entry = data[i]
            if held_out(entry["question"], fraction) != want_eval:
                continue
            answer = entry["answer"]
            out.append(Problem(entry["question"] + self.settings.instruction,
                               None if answer is None else str(answer), entry["metadata"], self.name))
            if len(out) == n:
                return out
        raise _too_few(self.name, len(out), n, split, budget, fraction)

    def verify(self, problem: Problem, answer: Optional[str]) -> float:
        """reasoning-gym's ``score_answer`` on the answer; an exception raised on model text counts as 0."""
        entry = {"question": problem.prompt, "answer": problem.answer, "metadata": problem.metadata}
        try:
            value = float(self._verifier.score_answer(answer, entry))
        except Exception:  # untrusted model text must not stop a run; the verifier's own bugs show as 0
            return 0.0
        return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


# --------------------------------------------------------------------------- GSM8K


@dataclass(frozen=True)
class GSM8KSettings:
    """data_dir: folder holding the GSM8K files (:mod:`envs.rlvr.gsm8k`); None: ``$TPO_BENCH_DATA/gsm8k``,
    else ``~/.cache/tpo-bench/datasets/gsm8k``."""

    data_dir: Optional[str] = None
    instruction: str = DEFAULT_INSTRUCTION
    extract: Sequence[str] = ("answer_tag", "boxed", "hash", "last_number")
    reward: RewardSpec = "exact_match"

    def __post_init__(self) -> None:
        if self.data_dir is not None:
            _check_text("data_dir", self.data_dir)
        _check_text("instruction", self.instruction)


class GSM8KTask(RLVRTask):
    """GSM8K word problems; ``train`` reads the train split, ``eval`` the test split. Both splits must be
    present when the task is built; each is read on first use and kept. ``prompts(split, None, seed)``
    returns the whole split in file order; otherwise ``n`` distinct problems drawn with
    ``numpy.random.default_rng(seed)``."""

    def __init__(self, name: str, settings: GSM8KSettings) -> None:
        super().__init__(name, settings)
        self.root = gsm8k_files.gsm8k_root(settings.data_dir)
        for split in SPLITS:
            gsm8k_files.find_split_files(self.root, split)
        self._records: dict[str, list] = {}

    def records(self, split: str) -> list:
        """Every :class:`~envs.rlvr.gsm8k.GSM8KRecord` of ``split``, in file order."""
        split = _check_split(split)
        if split not in self._records:
            self._records[split] = gsm8k_files.read_gsm8k(self.root, split)
        return self._records[split]

    def prompts(self, split: str, n: Optional[int], seed: int) -> list[Problem]:
        records = self.records(split)
        seed = _check_int("seed", seed, 0, 2 ** 63 - 1)
        if n is None:
            chosen = range(len(records))
        else:
            n = _check_int("n", n, 1, len(records))
            chosen = np.random.default_rng(seed).choice(len(records), size=n, replace=False).tolist()
        return [Problem(records[i].question + self.settings.instruction, records[i].gold,
                        {"index": records[i].index, "solution": records[i].solution, "source": records[i].source,
                         "split": split}, self.name) for i in chosen]

    def verify(self, problem: Problem, answer: Optional[str]) -> float:
        return 1.0 if answers_match(answer, problem.answer) else 0.0


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    cls: type
    settings: type
    fixed: Mapping[str, Any] = field(default_factory=dict)      # not settable from config
    defaults: Mapping[str, Any] = field(default_factory=dict)   # task-specific defaults


_NUMERIC_EXTRACT = ("answer_tag", "boxed", "last_number")
REASONING_GYM_TASKS = ("basic_arithmetic", "chain_sum", "leg_counting", "knights_knaves", "graph_color")

TASKS: dict[str, _Entry] = {
    "arithmetic_small": _Entry(ArithmeticSmallTask, ArithmeticSmallSettings),
    "basic_arithmetic": _Entry(ReasoningGymTask, ReasoningGymSettings, {"dataset": "basic_arithmetic"},
                               {"extract": _NUMERIC_EXTRACT}),
    "chain_sum": _Entry(ReasoningGymTask, ReasoningGymSettings, {"dataset": "chain_sum"},
                        {"extract": _NUMERIC_EXTRACT}),
    "leg_counting": _Entry(ReasoningGymTask, ReasoningGymSettings, {"dataset": "leg_counting"},
                           {"extract": _NUMERIC_EXTRACT}),
    "knights_knaves": _Entry(ReasoningGymTask, ReasoningGymSettings, {"dataset": "knights_knaves"}),
    "graph_color": _Entry(ReasoningGymTask, ReasoningGymSettings, {"dataset": "graph_color"}),
    "reasoning_gym": _Entry(ReasoningGymTask, ReasoningGymSettings),
    "gsm8k": _Entry(GSM8KTask, GSM8KSettings),
}
"""Task registry: name -> the task class, its settings dataclass, the settings fixed by the name, and the
task's own defaults."""


def _plain(value: Any, sequence: type = tuple) -> Any:
    """Config containers to plain data, recursively: mappings -> dict, lists/tuples -> ``sequence``.
    Anything else that is iterable (a ListConfig) counts as a list when it is not a str/bytes."""
    if isinstance(value, Mapping):
        return {k: _plain(v, sequence) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and hasattr(value, "__len__")
                                            and not isinstance(value, (str, bytes, np.ndarray))):
        return sequence(_plain(v, sequence) for v in value)
    return value


def make_task(name: str, **settings: Any) -> RLVRTask:
    """Build the task ``name`` of :data:`TASKS` with ``settings`` (the fields of its settings dataclass).

    Raises TaskConfigError (one line) for an unknown task name (listing the valid names), an unknown
    setting (listing the valid settings), an out-of-range value, or an unknown reasoning-gym difficulty
    field; TaskDataNotFound when GSM8K files are missing.
    """
    entry = TASKS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise TaskConfigError(f"unknown RLVR task {name!r}; valid tasks: {', '.join(TASKS)}")
    valid = [f.name for f in dataclasses.fields(entry.settings) if f.name not in entry.fixed]
    for key in settings:
        if key not in valid:
            raise TaskConfigError(f"task {name!r}: unknown setting {key!r}; valid settings: {', '.join(valid)}")
    values = {**entry.defaults, **{k: _plain(v, list if k == "difficulty" else tuple) for k, v in settings.items()},
              **entry.fixed}
    if entry.settings is ReasoningGymSettings:
        if not values.get("dataset"):
            raise TaskConfigError(f"task {name!r}: setting 'dataset' (a reasoning-gym dataset name) is required")
    return entry.cls(name, entry.settings(**values))


def task_names() -> tuple[str, ...]:
    """The registered task names."""
    return tuple(TASKS)

