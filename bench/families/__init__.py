"""Task families: each maps typed settings + seeds to a :class:`bench.loop.Task`.

``FAMILIES[family](settings, seeds, batch_kind)`` — looked up once, at build time,
from the env's ``family`` in :data:`envs.ENVS`."""
from __future__ import annotations

from typing import Any, Callable

from bench.families import mnist, tabular


def build_tabular(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The tabular task for ``settings.env`` (model must be ``table``)."""
    if settings.model.name != "table":
        raise ValueError(f"tabular envs need model=table, got model={settings.model.name}")
    task_cls = tabular.TASKS[settings.env.name]
    return task_cls(settings.env, seeds, batch_kind, settings.algorithm.candidates, device=settings.run.device)


def build_sequence(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The token reversal task with a seed-stacked transformer (model must be ``transformer``)."""
    from bench.families.sequence import SequenceTask

    if settings.model.name != "transformer":
        raise ValueError(f"sequence envs need model=transformer, got model={settings.model.name}")
    return SequenceTask(settings, seeds, batch_kind)


def build_offline(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The offline-RL task on ``settings.env.dataset`` (:mod:`bench.families.offline`)."""
    from bench.families.offline import build_offline as build

    return build(settings, seeds, batch_kind)


def build_rlvr(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The LLM RLVR task (:mod:`bench.families.rlvr`; model must be ``lm``)."""
    from bench.families.rlvr import build_rlvr as build

    return build(settings, seeds, batch_kind)


def build_refine(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The tabular refinement task (:mod:`bench.families.refine`; model must be ``table``)."""
    from bench.families.refine import build_refine as build

    return build(settings, seeds, batch_kind)


def build_refine_sequence(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The sequence-scale refinement task (:mod:`bench.families.refine_sequence`; model must be ``transformer``)."""
    from bench.families.refine_sequence import build_refine_sequence as build

    return build(settings, seeds, batch_kind)


def build_refine_llm(settings: Any, seeds: list[int], batch_kind: str) -> Any:
    """The LLM-scale refinement task (:mod:`bench.families.refine_llm`; model must be ``lm``)."""
    from bench.families.refine_llm import build_refine_llm as build

    return build(settings, seeds, batch_kind)


FAMILIES: dict[str, Callable[..., Any]] = {"tabular": build_tabular, "mnist": mnist.build_mnist,
                                           "sequence": build_sequence, "offline": build_offline,
                                           "rlvr": build_rlvr, "refine": build_refine,
                                           "refine_sequence": build_refine_sequence,
                                           "refine_llm": build_refine_llm}
