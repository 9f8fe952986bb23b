"""verl reward function for the suite's RLVR tasks: ``reward.custom_reward_function.path=<this file>``
(``name=compute_score``). Each parquet row written by :func:`bench.engines.verl.write_data` carries its task
(name and settings) and problem in ``extra_info``; the score is the suite's ``task.score`` — the same verifier and
reward as the native loop. Imports ``envs`` only."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Optional


@lru_cache(maxsize=8)
def _task(task_json: str) -> Any:
    from types import SimpleNamespace

    from envs.rlvr.config import build_task

    spec = json.loads(task_json)
    return build_task(SimpleNamespace(task=spec["task"], settings=spec["settings"]))


def compute_score(data_source: str, solution_str: str, ground_truth: Optional[str],
                  extra_info: Optional[dict] = None, **_: Any) -> float:
    """Score ∈ [0, 1] of one completion (verl's custom reward signature). ``extra_info``: ``task`` (JSON of the task
    name and settings), ``problem`` (JSON of the problem's prompt, answer and metadata)."""
    from envs.rlvr.tasks import Problem

    if not extra_info or "task" not in extra_info or "problem" not in extra_info:
        raise ValueError(f"data_source={data_source}: extra_info needs 'task' and 'problem' (written by "
                         f"bench.engines.verl.write_data)")
    p = json.loads(extra_info["problem"])
    problem = Problem(prompt=p["prompt"], answer=p.get("answer", ground_truth), metadata=p.get("metadata") or {},
                      task=p.get("task", ""))
    return float(_task(extra_info["task"]).score(problem, solution_str))
