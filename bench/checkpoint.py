"""Checkpoints of long runs: task state (parameters and random streams),
optimizer state and the step, written atomically every ``run.checkpoint_every``
steps to ``<run dir>/checkpoint.pt``. Resuming from one continues the run
bitwise-identically on CPU (tested).

A checkpoint holds only tensors (random-stream states are byte tensors) and plain
containers of numbers and strings, and is read with ``torch.load(weights_only=True)``:
a file that would need arbitrary unpickling (and so could run code) is refused with
one warning line and the run starts afresh."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Optional

import torch

from bench.progress import say

CHECKPOINT = "checkpoint.pt"


def supports(task: Any) -> bool:
    """Every task can be checkpointed: its own ``state_dict``/``load_state_dict``
    if it has them, else :func:`task_state` / :func:`load_task_state`."""
    return True


def _generator_lists(task: Any) -> dict[str, list[torch.Generator]]:
    return {name: value for name, value in sorted(vars(task).items())
            if isinstance(value, list) and value and all(isinstance(g, torch.Generator) for g in value)}


def task_state(task: Any) -> dict[str, Any]:
    """Generic task state: the trainable tensors (``task.parameters()``) and the
    state of every per-seed random stream (attributes holding lists of generators).
    Everything else a task holds is rebuilt deterministically from the config."""
    if hasattr(task, "state_dict"):
        return task.state_dict()
    return {"parameters": [p.detach().clone() for p in task.parameters()],
            "generators": {k: [g.get_state() for g in gens] for k, gens in _generator_lists(task).items()}}


def load_task_state(task: Any, state: dict[str, Any]) -> None:
    """Inverse of :func:`task_state`."""
    if hasattr(task, "load_state_dict"):
        task.load_state_dict(state)
        return
    with torch.no_grad():
        for p, saved in zip(task.parameters(), state["parameters"], strict=True):
            p.copy_(saved)
    gens = _generator_lists(task)
    for name, states in state["generators"].items():
        for g, s in zip(gens[name], states, strict=True):
            g.set_state(s)


def save(run_dir: Path, step: int, identity: str, task: Any, optimizer: torch.optim.Optimizer,
         chunk: int = 0, chunks: Optional[list[list[int]]] = None) -> None:
    """Write the state after ``step`` of seed chunk ``chunk`` (of ``chunks``; see
    :mod:`bench.batching`) — atomic: the old checkpoint or the new one, never a part."""
    _write(run_dir, {"step": step, "identity": identity, "chunk": chunk, "chunks": chunks, "task": task_state(task),
                     "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()})


def save_chunk_start(run_dir: Path, identity: str, chunk: int, chunks: list[list[int]]) -> None:
    """Mark that every chunk before ``chunk`` is finished and ``chunk`` starts from step 0."""
    _write(run_dir, {"step": -1, "identity": identity, "chunk": chunk, "chunks": chunks, "task": None})


def _write(run_dir: Path, state: dict[str, Any]) -> None:
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(run_dir: Path, identity: str) -> Optional[dict[str, Any]]:
    """The checkpoint of a run with this identity hash, or ``None`` (missing, unreadable, refused
    or another config). Read with ``weights_only=True``: tensors and plain containers only, so
    loading never runs code; a refused or damaged file gets one warning line on stderr."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "nsupported" in line), "unsupported content")
        say(f"[bench] warning: checkpoint {path} refused, it holds more than tensors and plain containers "
            f"({reason[:160]}); starting afresh")
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint means "start afresh"
        say(f"[bench] warning: checkpoint {path} unreadable ({type(exc).__name__}); starting afresh")
        return None
    return state if isinstance(state, dict) and state.get("identity") == identity else None


def restore(state: dict[str, Any], task: Any, optimizer: torch.optim.Optimizer) -> int:
    """Load ``state`` into the task and optimizer; return the first step still to run
    (0 for a chunk-start mark, which carries no task state)."""
    if state.get("task") is None:
        return 0
    load_task_state(task, state["task"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]) + 1


def remove(run_dir: Path) -> None:
    """Delete the checkpoint of a finished run."""
    (Path(run_dir) / CHECKPOINT).unlink(missing_ok=True)
