"""Optional training engines behind one interface: ``engine=native`` (the suite's own loop, the default),
``engine=trl`` (TRL's ``GRPOTrainer`` with the suite's losses, :mod:`bench.engines.trl`) and ``engine=verl`` (verl
with the suite's TPO registered as a policy loss, :mod:`bench.engines.verl`).

An engine run uses the same task, model, algorithm and scale configs as the native loop and writes the same run
records (``bench.run``); it trains one seed at a time (each seed its own chunk of the record). Nothing here imports
an engine: TRL and verl are imported only when a run asks for them (extras ``[trl]``, ``[verl]``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

ENGINES = ("native", "trl", "verl")


@dataclass(frozen=True)
class NativeEngineConfig:
    """The suite's own on-policy loop (``bench/loop.py``)."""

    name: str = "native"


@dataclass(frozen=True)
class TRLEngineConfig:
    """TRL's ``GRPOTrainer`` with the suite's TPO / DRO-V loss (:mod:`bench.engines.trl`). Batch, sampling, optimizer
    and epochs come from ``env``, ``optim`` and ``algorithm``; processes from ``accelerate launch``."""

    name: str = "trl"


@dataclass(frozen=True)
class VerlEngineConfig:
    """verl (Ray, FSDP, vLLM/SGLang rollout) with the suite's TPO as a registered policy loss
    (:mod:`bench.engines.verl`). Fields are the launch settings the suite's config does not hold.

    n_gpus_per_node, nnodes: verl's ``trainer.n_gpus_per_node`` / ``trainer.nnodes``; rollout: verl's rollout
    backend (``vllm`` or ``sglang``); micro_batch_size_per_gpu: completions per forward/backward (a multiple of
    ``env.k``, so micro-batches hold whole groups); tensor_parallel: the rollout's tensor-parallel size;
    gpu_memory_utilization: the rollout engine's share of GPU memory; data_dir: where the prompts are written as
    parquet (default ``<run dir>/verl_data``); extra: further verl overrides appended verbatim.
    """

    name: str = "verl"
    n_gpus_per_node: int = 1
    nnodes: int = 1
    rollout: str = "vllm"
    micro_batch_size_per_gpu: int = 16
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.6
    data_dir: Optional[str] = None
    extra: list[str] = field(default_factory=list)


ENGINE_SCHEMAS: dict[str, type] = {"native": NativeEngineConfig, "trl": TRLEngineConfig, "verl": VerlEngineConfig}


def engine_name(settings: Any) -> str:
    """The run's engine (``native`` when the settings carry none)."""
    engine = getattr(settings, "engine", None)
    return "native" if engine is None else engine.name


def is_native(settings: Any) -> bool:
    return engine_name(settings) == "native"


def builder(settings: Any) -> Callable[..., Any]:
    """``build(settings, seeds) -> Built`` of the run's engine (:func:`bench.build.build` for the native loop)."""
    name = engine_name(settings)
    if name == "native":
        from bench.build import build
        return build
    check(settings)
    if name == "trl":
        from bench.engines import trl
        return trl.build
    from bench.engines import verl
    return verl.build


def seeds_per_chunk(settings: Any) -> Optional[int]:
    """Seeds trained together: ``None`` (the native batching decides) or 1 (engines: one seed at a time)."""
    return None if is_native(settings) else 1


def check(settings: Any) -> None:
    """Refuse (``bench.schema.ConfigError``, one line) what an engine run cannot honour."""
    from bench.schema import ConfigError

    name = engine_name(settings)
    if name == "native":
        return
    if settings.env.name != "rlvr":
        raise ConfigError(f"engine={name}: env={settings.env.name}; engines run env=rlvr only (engine=native for the "
                          f"other families)")
    valid = {"trl": ("tpo", "dro_v"), "verl": ("tpo", "grpo")}[name]
    if settings.algorithm.loss not in valid:
        raise ConfigError(f"engine={name}: algorithm={settings.algorithm.name} (loss {settings.algorithm.loss}); "
                          f"valid: {', '.join(valid)}")
    run = settings.run
    for key, value, default in (("run.checkpoint_every", run.checkpoint_every, 0), ("run.autocast", run.autocast, "none"),
                                ("run.compile", run.compile, False), ("run.tf32", run.tf32, False)):
        if value != default:
            raise ConfigError(f"{key}={value}: not supported with engine={name} (only {default})")
    if settings.optim.name != "adam":
        raise ConfigError(f"optim={settings.optim.name}: engine={name} uses Adam(W); valid: adam")


def process_rank() -> int:
    """This process's rank in a multi-process launch (``accelerate launch``/``torchrun`` set ``RANK``); 0 alone."""
    return int(os.environ.get("RANK", "0") or 0)


def writes_records(settings: Any) -> bool:
    """Whether this process writes the run record: always for the native loop; for an engine, rank 0 only."""
    return is_native(settings) or process_rank() == 0


def train_unrecorded(settings: Any, record: dict[str, Any]) -> dict[str, Any]:
    """A non-zero rank of a multi-process engine launch: train every seed alongside rank 0, write nothing (a run
    whose record is already completed is skipped, as rank 0 skips it). ``record``: the run's resolved config
    (:func:`bench.schema.record_config`). Returns a summary naming the rank."""
    from bench.build import seed_list
    from bench.records import read_run
    from bench.run import identity, run_dir

    ident = identity(record)
    previous = read_run(run_dir(settings, ident))
    if previous is not None and previous.status == "completed" and previous.summary.get("config_hash") == ident:
        return previous.summary
    build = builder(settings)
    for seed in seed_list(settings):
        built = build(settings, [seed])
        built.train(built.task, built.loss, built.optimizer, steps=settings.run.steps, epochs=built.epochs,
                    log_every=settings.run.log_every, on_log=lambda step, logged: None)
    return {"status": "completed", "rank": process_rank(), "record": "written by rank 0"}
