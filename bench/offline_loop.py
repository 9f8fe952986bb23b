"""The offline loop: the second training regime of the suite (the on-policy one is :mod:`bench.loop`).

    for step:  minibatch of transitions per seed                      (task.sample)
               for each phase of the algorithm (e.g. critic, actor):  (AlgorithmSpec.phases)
                   loss per seed (vmap) → Σ_seeds backward → optimizer step on that network only
               Polyak update of every target copy, on the steps the (possibly delayed) actor runs
               (``step % actor_every == 0``: TD3, Fujimoto et al. 2018, Alg. 1; every step when actor_every = 1)
               evaluation every ``env.eval_every`` steps               (task.after_step)
               log (every ``log_every`` steps; the only host syncs)

Seeds are stacked as in every family: each network's parameters carry a leading seed axis S, each
phase's loss is evaluated per seed with ``torch.func.vmap`` and the per-seed losses are summed before
``backward``, so every seed gets exactly its own gradient. One Adam holds every network: a phase leaves
the other networks' gradients unset (their parameters enter the loss detached), and Adam skips a
parameter without a gradient, state included, so this equals one optimizer per network.
"""
from __future__ import annotations

import time

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from algorithms.batch import TransitionBatch
from algorithms.registry import AlgorithmSpec, Phase
from bench import metrics as M
from bench.loop import LogWindow, per_seed_grad_norm
from bench.precision import Precision

Metrics = dict[str, Tensor]


@dataclass(frozen=True)
class OfflineLossRunner:
    """An offline algorithm's phases bound to its hyperparameters, evaluated per seed."""

    spec: AlgorithmSpec
    params: Any

    def due(self, phase: Phase, step: int) -> bool:
        """Whether ``phase`` runs at ``step`` (its ``every`` names a params field holding the period)."""
        return phase.every is None or step % int(getattr(self.params, phase.every)) == 0

    def __call__(self, phase: Phase, task: Any, fields: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-seed losses [S] and diagnostics {name: [S]} of ``phase``; only ``phase.network`` has grad."""
        online = {name: (ps if name == phase.network else [p.detach() for p in ps])
                  for name, ps in task.networks.items()}

        def one_seed(online: dict, targets: dict, f: dict) -> tuple[Tensor, dict[str, Tensor]]:
            return phase.loss(TransitionBatch(**f), task.nets(online, targets), self.params)

        return torch.func.vmap(one_seed, randomness="error")(online, task.targets, dict(fields))


def train(task: Any, loss_fn: OfflineLossRunner, optimizer: torch.optim.Optimizer, *, steps: int, epochs: int,
          log_every: int, on_log: Callable[[int, Metrics], None], start_step: int = 0,
          on_step_end: Optional[Callable[[int], None]] = None, precision: Precision = Precision()) -> int:
    """Run gradient steps ``start_step … steps − 1`` (the signature of :func:`bench.loop.train`; ``epochs``
    and ``precision`` are unused: one update per phase and step, float32). Logs ``loss/<network>``,
    ``diag/<name>`` and ``diag/grad_norm_<network>`` of each phase (the latest values of a delayed phase),
    the task's evaluation metrics, and ``time/step_s`` (training only: the evaluations' time is excluded). Raises :class:`bench.loop.NonFinite` after logging
    a step whose loss or metric is not finite."""
    tau = float(getattr(loss_fn.params, "tau", 0.0))
    latest: Metrics = {}
    window = LogWindow(len(task.seeds), steps, log_every)
    for step in range(start_step, steps):
        fields = task.sample(step)
        for phase in loss_fn.spec.phases:
            if not loss_fn.due(phase, step):
                continue
            losses, diags = loss_fn(phase, task, fields)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            latest[f"{M.LOSS}{phase.network}"] = losses.detach()
            latest.update({M.diag(k): v.detach() for k, v in diags.items()})
            latest[M.diag(f"grad_norm_{phase.network}")] = per_seed_grad_norm(task.networks[phase.network])
            optimizer.step()
        if step % int(getattr(loss_fn.params, "actor_every", 1)) == 0:   # TD3 Alg. 1: targets move with the actor
            for name in task.targets:
                task.update_target(name, tau)
        logged = dict(latest)
        t_eval = time.perf_counter()
        logged.update(task.after_step(step))
        window.exclude(time.perf_counter() - t_eval)   # time/step_s is training time: evaluations are not in it
        window.end_step(step, logged, on_log)
        if on_step_end is not None:
            on_step_end(step)
    return steps
