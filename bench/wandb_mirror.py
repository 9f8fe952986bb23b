"""Weights & Biases mirror of the local records.

Naming contract: project from config, group = experiment, job_type =
algorithm, name = ``{algorithm}-{env}-s{seed}``, config = the resolved schema
(+ ``seed``). One W&B run per seed (at most ``max_seed_runs`` of a batched
run). Offline by default: ``WANDB_MODE`` is set before ``wandb`` is imported
unless the user already chose a mode. Any W&B failure prints one warning and
turns the mirror off; it never stops the run.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Mapping, Optional

from bench.schema import WandbLoggerConfig


class WandbMirror:
    def __init__(self, cfg: Any, config: Mapping[str, Any], seeds: list[int], experiment: str,
                 algorithm: str, env: str, root: str = "runs"):
        self.runs: dict[int, Any] = {}
        self.active = isinstance(cfg, WandbLoggerConfig) and cfg.mode != "disabled"
        if not self.active:
            return
        os.environ.setdefault("WANDB_MODE", cfg.mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        n = len(seeds) if cfg.max_seed_runs < 0 else min(len(seeds), cfg.max_seed_runs)
        self.dir = cfg.dir if cfg.dir is not None else os.path.join(root, "wandb")
        self._guard(self._open, cfg, dict(config), seeds[:n], experiment, algorithm, env)

    def _open(self, cfg: WandbLoggerConfig, config: dict, seeds: list[int], experiment: str, algorithm: str,
              env: str) -> None:
        import wandb

        os.makedirs(self.dir, exist_ok=True)
        for seed in seeds:
            self.runs[seed] = wandb.init(
                project=cfg.project, entity=cfg.entity, group=experiment, job_type=algorithm,
                name=f"{algorithm}-{env}-s{seed}", config={**config, "seed": seed}, dir=self.dir,
                mode=os.environ.get("WANDB_MODE", cfg.mode), tags=list(cfg.tags), reinit="create_new")

    def log(self, step: int, per_seed: Mapping[int, Mapping[str, float]]) -> None:
        """Log one step's metrics, ``per_seed[seed] = {metric: value}``."""
        if self.active and self.runs:
            self._guard(self._log, step, per_seed)

    def _log(self, step: int, per_seed: Mapping[int, Mapping[str, float]]) -> None:
        for seed, run in self.runs.items():
            if seed in per_seed:   # a run trained in seed chunks logs one chunk's seeds at a time
                run.log(dict(per_seed[seed]), step=step)

    def finish(self, status: str) -> None:
        if self.active and self.runs:
            self._guard(self._finish, status)

    def _finish(self, status: str) -> None:
        for run in self.runs.values():
            run.summary["status"] = status
            run.finish(exit_code=0 if status == "completed" else 1)
        self.runs = {}

    def _guard(self, fn, *args) -> Optional[Any]:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the mirror must never kill a run
            warnings.warn(f"W&B mirror disabled after error: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            self.active = False
            return None
