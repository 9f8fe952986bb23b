"""Checkpoints of long runs: task state (parameters and random streams),
optimizer state and the step, written atomically every ``run.checkpoint_every``
steps to ``<run dir>/checkpoint.pt``. Resuming from one continues the run
bitwise-identically on CPU (tested)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch

CHECKPOINT = "checkpoint.pt"


def supports(task: Any) -> bool:
    """Whether a task can be checkpointed (it implements ``state_dict``/``load_state_dict``)."""
    return hasattr(task, "state_dict") and hasattr(task, "load_state_dict")


def save(run_dir: Path, step: int, identity: str, task: Any, optimizer: torch.optim.Optimizer) -> None:
    """Write the state after ``step`` (atomic: the old checkpoint or the new one, never a part)."""
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
    torch.save({"step": step, "identity": identity, "task": task.state_dict(),
                "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def load(run_dir: Path, identity: str) -> Optional[dict[str, Any]]:
    """The checkpoint of a run with this identity hash, or ``None`` (missing, unreadable or another config)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a damaged checkpoint means "start afresh"
        return None
    return state if isinstance(state, dict) and state.get("identity") == identity else None


def restore(state: dict[str, Any], task: Any, optimizer: torch.optim.Optimizer) -> int:
    """Load ``state`` into the task and optimizer; return the first step still to run."""
    task.load_state_dict(state["task"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]) + 1


def remove(run_dir: Path) -> None:
    """Delete the checkpoint of a finished run."""
    (Path(run_dir) / CHECKPOINT).unlink(missing_ok=True)
