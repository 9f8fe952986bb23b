"""Build a run from typed settings: registry lookups happen here, once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from algorithms import ALGORITHMS
from algorithms.batch import GroupBatch, TrajectoryBatch
from bench.families import FAMILIES
from bench.families.tabular import NormalisedStep
from bench.loop import LossRunner, Task
from bench.schema import Settings
from envs import get_env

BATCH_TYPES: dict[str, type] = {"group": GroupBatch, "trajectory": TrajectoryBatch}


def _adam(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


OPTIMIZERS: dict[str, Callable[[list[torch.Tensor], Any], torch.optim.Optimizer]] = {
    "normalised_step": lambda params, cfg: NormalisedStep(params, cfg.lr),
    "adam": _adam,
}


@dataclass
class Built:
    task: Task
    optimizer: torch.optim.Optimizer
    loss: LossRunner
    epochs: int


def seed_list(settings: Settings) -> list[int]:
    """The seeds of a run: ``seed0 … seed0 + seeds − 1``."""
    return list(range(settings.run.seed0, settings.run.seed0 + settings.run.seeds))


def build(settings: Settings) -> Built:
    """Task, optimizer and per-seed loss for a run."""
    spec = ALGORITHMS[settings.algorithm.loss]
    env = get_env(settings.env.name)
    task = FAMILIES[env.family](settings, seed_list(settings), spec.batch)
    optimizer = OPTIMIZERS[settings.optim.name](task.parameters(), settings.optim)
    loss = LossRunner(spec.loss, settings.loss_params, BATCH_TYPES[spec.batch])
    return Built(task, optimizer, loss, settings.algorithm.epochs)
