"""The algorithm registry type. The dict itself, ``ALGORITHMS``, lives in
:mod:`algorithms` (``algorithms/__init__.py``) and is the only place a loss is
looked up by name; the harness does so once, at build time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from torch import Tensor

LossFn = Callable[[Any, Any], "tuple[Tensor, dict[str, Tensor]]"]


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered loss.

    name:    registry key (``"tpo"``, ``"grpo"``, ...).
    loss:    ``loss(batch, params) -> (scalar loss, diagnostics)``; diagnostics
             are detached 0-dim tensors keyed by short names (the harness
             prefixes them with ``diag/``).
    params:  frozen dataclass type of the loss hyperparameters, every field
             with its paper default.
    batch:   ``"group"`` (:class:`GroupBatch`) or ``"trajectory"``
             (:class:`TrajectoryBatch`).
    epochs:  the paper's default number of full-batch gradient epochs per
             rollout batch (the harness config may override it).
    summary: one line for listings.
    """

    name: str
    loss: LossFn
    params: type
    batch: Literal["group", "trajectory"]
    epochs: int
    summary: str
