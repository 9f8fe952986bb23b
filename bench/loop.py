"""The on-policy group loop, shared by every on-policy family.

    for step:  sample → score → freeze  (task.rollout)
               E epochs: batch(θ) → loss per seed → Σ_seeds backward → optimizer step
               log (every ``log_every`` steps; the only host syncs)

All seeds of a configuration run together: every task tensor carries a
leading seed axis S, the loss is evaluated per seed with ``torch.func.vmap``
(called directly when S = 1; either way each seed's gradient is the gradient it
would get alone) and the per-seed losses are summed before ``backward``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol

import torch
from torch import Tensor

from algorithms import diagnostics
from bench import metrics as M
from bench.precision import Precision, epoch_loss

Metrics = dict[str, Tensor]  # name → [S] tensor (one value per seed)


class Task(Protocol):
    """What a family provides to the loop. Every metric tensor is [S]."""

    seeds: list[int]

    def parameters(self) -> list[Tensor]:
        """Trainable tensors, each with leading seed axis S."""

    def rollout(self, step: int) -> tuple[Any, Metrics]:
        """Sample with the current policy (no grad), score, freeze; return the
        frozen rollout and its metrics (measured before the update)."""

    def batch_fields(self, rollout: Any) -> dict[str, Tensor]:
        """Fields of the algorithm's batch type with a leading seed axis,
        ``logp`` recomputed with grad under the current parameters."""

    def grad_metrics(self, rollout: Any) -> Metrics:
        """Metrics of the first-epoch gradient (parameters' ``.grad`` is set)."""

    def after_step(self, step: int) -> Metrics:
        """Metrics measured after the optimizer step (e.g. a held-out evaluation
        every N steps: return ``{}`` on the other steps)."""

    # Optional: ``grad_norm() -> [S]`` for tasks whose tensors carry no seed axis (one model per seed),
    # ``micro_batches(rollout) -> [(part, weight)]`` for gradient accumulation (:func:`accumulate`), and
    # ``logs_on_cadence = True`` for tasks that never return ``eval/`` metrics, so that a step is logged only on
    # the loop's cadence: the loop then skips the losses' diagnostics and the gradient metrics on the other
    # steps (:mod:`algorithms.diagnostics`; the task may skip its own metrics there too).


@dataclass(frozen=True)
class LossRunner:
    """A registry loss bound to its hyperparameters and batch type, evaluated per seed."""

    loss: Callable[[Any, Any], tuple[Tensor, dict[str, Tensor]]]
    params: Any
    batch_type: type

    def __call__(self, fields: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-seed losses [S] and diagnostics {name: [S]} via ``vmap`` over the seed axis; with one seed, the
        loss is called on that seed's tensors directly (the same values, without vmap's per-operator cost)."""
        def one_seed(f: Mapping[str, Tensor]):
            return self.loss(self.batch_type(**f), self.params)
        if next(iter(fields.values())).shape[0] == 1:
            loss, diags = one_seed({k: v[0] for k, v in fields.items()})
            return loss.unsqueeze(0), {k: v.unsqueeze(0) for k, v in diags.items()}
        return torch.func.vmap(one_seed, randomness="error")(dict(fields))


def per_seed_grad_norm(params: list[Tensor]) -> Tensor:
    """‖∇θ‖₂ per seed over all parameters (each with leading seed axis): [S]."""
    sq = None
    for p in params:
        if p.grad is None:
            continue
        g2 = p.grad.detach().pow(2).reshape(p.shape[0], -1).sum(-1)
        sq = g2 if sq is None else sq + g2
    return sq.sqrt() if sq is not None else torch.zeros(len(params[0]))


class LogWindow:
    """When a loop logs, and ``time/step_s`` over the steps since the last log.

    A step is logged every ``log_every`` steps, at the last step and whenever it produced an ``eval/``
    metric; logging is the loops' only host sync. :meth:`end_step` raises :class:`NonFinite` after
    logging a step with a non-finite value. Shared by the on-policy and the offline loop."""

    def __init__(self, n_seeds: int, steps: int, log_every: int):
        self.n_seeds, self.steps, self.log_every = n_seeds, steps, log_every
        self.t_window, self.since = time.perf_counter(), 0

    def due(self, step: int) -> bool:
        """True when ``step`` will be logged on the cadence (every ``log_every`` steps, and the last step)."""
        return self.since + 1 == self.log_every or step == self.steps - 1

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` (e.g. an evaluation) out of the current window's ``time/step_s``."""
        self.t_window += seconds

    def end_step(self, step: int, logged: Metrics, on_log: Callable[[int, Metrics], None]) -> None:
        self.since += 1
        if self.since == self.log_every or step == self.steps - 1 or any(k.startswith(M.EVAL) for k in logged):
            now = time.perf_counter()
            logged[M.STEP_TIME] = torch.full((self.n_seeds,), (now - self.t_window) / self.since)
            self.t_window, self.since = now, 0
            on_log(step, logged)
            bad = [k for k, v in logged.items() if not bool(torch.isfinite(v).all())]
            if bad:
                raise NonFinite(step, bad)


def train(task: Task, loss_fn: LossRunner, optimizer: torch.optim.Optimizer, *, steps: int, epochs: int,
          log_every: int, on_log: Callable[[int, Metrics], None], start_step: int = 0,
          on_step_end: Optional[Callable[[int], None]] = None, precision: Precision = Precision()) -> int:
    """Run ``steps`` on-policy steps; call ``on_log(step, metrics)`` every
    ``log_every`` steps, at the last step and at every step that produced an
    ``eval/`` metric; ``on_step_end(step)`` after every step (checkpoints). Returns the number of steps done.
    ``precision``: opt-in autocast around the rollout and the training forward, and
    ``torch.compile`` of the per-epoch loss (:mod:`bench.precision`).

    Raises :class:`NonFinite` (after logging the offending step) as soon as a
    logged loss or metric is not finite.

    For a task with ``logs_on_cadence`` (and no compiled loss), the steps that will not be logged skip the
    losses' diagnostics, the gradient norm and the task's gradient metrics: they change no parameter.
    """
    params = task.parameters()
    forward = epoch_loss(task, loss_fn, precision)
    micro = getattr(task, "micro_batches", None)
    window = LogWindow(len(task.seeds), steps, log_every)
    on_cadence = getattr(task, "logs_on_cadence", False) and not precision.compile
    for step in range(start_step, steps):
        measured = not on_cadence or window.due(step)
        with diagnostics.computed(measured):
            try:
                with precision.autocast_context():
                    rollout, logged = task.rollout(step)
            except RuntimeError as exc:  # e.g. sampling from a NaN policy
                _raise_if_nonfinite(params, step, exc)
                raise
            for epoch in range(epochs):
                optimizer.zero_grad(set_to_none=True)
                losses, diags = accumulate(forward, rollout, micro)
                if epoch == 0 and measured:
                    logged[M.LOSS_TOTAL] = losses.detach()
                    logged.update({M.diag(k): v.detach() for k, v in diags.items()})
                    logged[M.GRAD_NORM] = task.grad_norm() if hasattr(task, "grad_norm") else per_seed_grad_norm(params)
                    logged.update(task.grad_metrics(rollout))
                optimizer.step()
            logged.update(task.after_step(step))
        window.end_step(step, logged, on_log)
        if on_step_end is not None:
            on_step_end(step)
    return steps


def accumulate(forward: Callable[[Any], tuple[Tensor, dict[str, Tensor]]], rollout: Any,
               micro: Optional[Callable[[Any], list[tuple[Any, float]]]]) -> tuple[Tensor, dict[str, Tensor]]:
    """Backward of Σ_seeds loss for one epoch; returns the per-seed losses [S] and diagnostics (detached).

    Without ``micro`` (a task's ``micro_batches``), one forward on the whole rollout. With it, gradient
    accumulation: Σ_m w_m·∇loss(part_m) over the task's parts of the rollout (weights w_m summing to 1), and the
    reported losses and diagnostics are the same weighted sums — for a loss that averages over the parts' units
    (groups), exactly the full batch's."""
    if micro is None:
        losses, diags = forward(rollout)
        losses.sum().backward()
        return losses, diags
    total: Optional[Tensor] = None
    acc: dict[str, Tensor] = {}
    for part, w in micro(rollout):
        losses, diags = forward(part)
        (w * losses).sum().backward()
        total = w * losses.detach() if total is None else total + w * losses.detach()
        for k, v in diags.items():
            acc[k] = w * v.detach() if k not in acc else acc[k] + w * v.detach()
    return total, acc


def _raise_if_nonfinite(params: list[Tensor], step: int, cause: BaseException) -> None:
    """Turn an error caused by non-finite parameters into :class:`NonFinite`."""
    bad = [f"param[{i}]" for i, p in enumerate(params) if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFinite(step, bad) from cause


class NonFinite(RuntimeError):
    """A logged loss or metric became NaN/inf."""

    def __init__(self, step: int, keys: list[str]):
        self.step, self.keys = step, keys
        super().__init__(f"non-finite {', '.join(keys)} at step {step}")
