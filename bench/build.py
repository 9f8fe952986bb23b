"""Build a run from typed settings: registry lookups happen here, once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from algorithms import ALGORITHMS
from algorithms.batch import GroupBatch, TrajectoryBatch
from bench.families import FAMILIES
from bench.families.tabular import NormalisedStep
from bench.loop import LossRunner, Task
from bench.optim import build_optimizer
from bench.schema import ConfigError, Settings
from envs import get_env

BATCH_TYPES: dict[str, type] = {"group": GroupBatch, "trajectory": TrajectoryBatch}


def _adam(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


def _muon(named: Any, cfg: Any) -> Any:
    """Muon + AdamW-Nesterov split by parameter name: ``named`` has ``named_parameters()``
    (and ``parameter_roles()``) — the task itself (see :data:`NAMED_PARAM_OPTIMIZERS`)."""
    if not hasattr(named, "named_parameters"):
        raise ConfigError("optim=muon splits parameters by name; this family exposes no named_parameters() "
                          "(use optim=adam or optim=normalised_step)")
    optimizer, _ = build_optimizer(named, cfg.split, lr=cfg.lr, muon_momentum=cfg.momentum, ns_steps=cfg.ns_steps,
                                   ns_coeffs=tuple(cfg.ns_coeffs), adam_betas=(cfg.adam_beta1, cfg.adam_beta2),
                                   adam_eps=cfg.adam_eps, nesterov=cfg.nesterov)
    return optimizer


OPTIMIZERS: dict[str, Callable[[list[torch.Tensor], Any], torch.optim.Optimizer]] = {
    "normalised_step": lambda params, cfg: NormalisedStep(params, cfg.lr),
    "adam": _adam,
    "muon": _muon,
}
NAMED_PARAM_OPTIMIZERS = {"muon"}  # builders that get the task (named_parameters/parameter_roles), not a tensor list


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
    source = task if settings.optim.name in NAMED_PARAM_OPTIMIZERS else task.parameters()
    optim_cfg = settings.optim
    lr_multiplier = getattr(task, "lr_multiplier", 1.0)  # derived by the family (e.g. interaction matching)
    if lr_multiplier != 1.0:
        optim_cfg = dataclasses.replace(optim_cfg, lr=optim_cfg.lr * lr_multiplier)  # a copy: config is never mutated
    optimizer = OPTIMIZERS[settings.optim.name](source, optim_cfg)
    loss = LossRunner(spec.loss, settings.loss_params, BATCH_TYPES[spec.batch])
    return Built(task, optimizer, loss, settings.algorithm.epochs)
