"""LLM RLVR on the task side: prompt generators, verifiers, answer extraction and rewards.

* :mod:`envs.rlvr.tasks` — the :class:`RLVRTask` interface, :class:`Problem`, the task registry
  :data:`TASKS` and :func:`make_task` (built-in ``arithmetic_small``, reasoning-gym tasks, GSM8K files);
* :mod:`envs.rlvr.extract` — bounded, linear answer extraction (answer tags, ``\\boxed{}``, ``####``, last number);
* :mod:`envs.rlvr.rewards` — named rewards in [0, 1] (``exact_match``, ``native``, ``format``) and
  :func:`make_reward`;
* :mod:`envs.rlvr.gsm8k` — GSM8K jsonl/parquet readers; :mod:`envs.rlvr.config` — :class:`RLVRConfig`.

Imports numpy only; reasoning-gym is imported when a reasoning-gym task is built, pyarrow when a parquet
file is read. Neither ``algorithms`` nor the harness is imported.
"""
from envs.rlvr.config import RLVRConfig, build_task
from envs.rlvr.errors import RLVRError, TaskConfigError, TaskDataNotFound, TaskDataUnreadable
from envs.rlvr.extract import EXTRACTORS, MAX_SCAN_CHARS, extract_answer
from envs.rlvr.rewards import REWARDS, make_reward
from envs.rlvr.tasks import SPLITS, TASKS, Problem, RLVRTask, make_task

__all__ = [
    "EXTRACTORS", "MAX_SCAN_CHARS", "REWARDS", "RLVRConfig", "RLVRError", "RLVRTask", "SPLITS", "TASKS",
    "Problem", "TaskConfigError", "TaskDataNotFound", "TaskDataUnreadable", "build_task", "extract_answer",
    "make_reward", "make_task",
]
