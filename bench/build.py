"""Build a run from typed settings: registry lookups happen here, once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from algorithms import ALGORITHMS
from algorithms.batch import GroupBatch, TrajectoryBatch
from bench.families import FAMILIES
from bench.families.tabular import NormalisedStep
from bench import loop, offline_loop
from bench.loop import LossRunner, Task
from bench.optim import build_optimizer
from bench.schema import ConfigError, Settings
from envs import get_env

BATCH_TYPES: dict[str, type] = {"group": GroupBatch, "trajectory": TrajectoryBatch}
LOOPS: dict[str, Callable[..., int]] = {"group": loop.train, "trajectory": loop.train,
                                        "transition": offline_loop.train}
"""batch kind → training loop: the on-policy group loop, or the offline loop for transition algorithms."""


def _adam(task: Task, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(task.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


def _muon(task: Task, cfg: Any) -> Any:
    """Muon + AdamW-Nesterov split by parameter name: the task has ``named_parameters()``
    (and ``parameter_roles()``)."""
    if not hasattr(task, "named_parameters"):
        raise ConfigError("optim=muon splits parameters by name; this family exposes no named_parameters() "
                          "(use optim=adam or optim=normalised_step)")
    optimizer, _ = build_optimizer(task, cfg.split, lr=cfg.lr, muon_momentum=cfg.momentum, ns_steps=cfg.ns_steps,
                                   ns_coeffs=tuple(cfg.ns_coeffs), adam_betas=(cfg.adam_beta1, cfg.adam_beta2),
                                   adam_eps=cfg.adam_eps, nesterov=cfg.nesterov, muon_eps=cfg.eps,
                                   bias_correction=cfg.bias_correction)
    return optimizer


OPTIMIZERS: dict[str, Callable[[Task, Any], torch.optim.Optimizer]] = {
    "normalised_step": lambda task, cfg: NormalisedStep(task.parameters(), cfg.lr),
    "adam": _adam,
    "muon": _muon,
}
"""optim name → builder(task, typed optim config)."""


@dataclass
class Built:
    task: Task
    optimizer: torch.optim.Optimizer
    loss: Any          # LossRunner (on-policy) or offline_loop.OfflineLossRunner
    epochs: int
    train: Callable[..., int]   # the regime's loop (LOOPS)


def seed_list(settings: Settings) -> list[int]:
    """The seeds of a run: ``seed0 … seed0 + seeds − 1``."""
    return list(range(settings.run.seed0, settings.run.seed0 + settings.run.seeds))


def build(settings: Settings, seeds: Optional[list[int]] = None) -> Built:
    """Task, optimizer and per-seed loss for a run (``seeds``: a chunk of its seeds; default all)."""
    spec = ALGORITHMS[settings.algorithm.loss]
    env = get_env(settings.env.name)
    task = FAMILIES[env.family](settings, seed_list(settings) if seeds is None else list(seeds), spec.batch)
    optim_cfg = settings.optim
    lr_multiplier = getattr(task, "lr_multiplier", 1.0)  # derived by the family (e.g. interaction matching)
    if lr_multiplier != 1.0:
        optim_cfg = dataclasses.replace(optim_cfg, lr=optim_cfg.lr * lr_multiplier)  # a copy: config is never mutated
    optimizer = OPTIMIZERS[settings.optim.name](task, optim_cfg)
    if spec.batch == "transition":
        loss: Any = offline_loop.OfflineLossRunner(spec, settings.loss_params)
    else:
        loss = LossRunner(spec.loss, settings.loss_params, BATCH_TYPES[spec.batch])
    return Built(task, optimizer, loss, settings.algorithm.epochs, LOOPS[spec.batch])
