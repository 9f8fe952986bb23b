"""The runs an experiment's table should hold: its sweep grid, expanded by Hydra.

An experiment file sets ``hydra.sweeper.params`` (its scale file may replace the grid); the
grid is read from the *composed* config (``conf/experiment/NAME.yaml`` + ``conf/scales/NAME/SCALE.yaml``
+ any extra overrides), parsed with Hydra's override parser and expanded with Hydra's basic
sweeper, so the report expects exactly the jobs ``bench experiment=NAME scale=SCALE`` launches.
Each grid point is composed too (at the end of a sweep, the configs its jobs were composed with before
launch are reused: :func:`remember_job`), so the expected run's full resolved config is known: a
record is matched to a grid point by the swept values, and any other identity-relevant value
that differs from the experiment file is reported.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import pandas as pd

from bench.records import NON_IDENTITY
from bench.report.collect import flatten
from bench.report.tables import key_text

NOT_COMPARED = ("experiment", "scale", "env.data_dir", *NON_IDENTITY)
"""Flattened config keys (prefixes) never reported as differences: labels, machine paths, logging."""


class GridError(RuntimeError):
    """The grid of an experiment cannot be composed (the message says why)."""


@dataclass(frozen=True)
class ExpectedRun:
    """One grid point of an experiment.

    label:     ``<algorithm>-<env>`` plus the other swept values, e.g. ``tpo-reversal env.matching=prompt env.horizon=7``.
    overrides: the grid point's Hydra overrides (``("algorithm=tpo", "env.horizon=7")``).
    coords:    record key -> value text of the swept axes (a group ``algorithm=tpo`` is ``algorithm.name``).
    config:    the composed record config, flattened (``{"run.steps": 150, ...}``).
    """

    label: str
    overrides: tuple[str, ...]
    coords: Mapping[str, str]
    config: Mapping[str, Any] = field(repr=False)


@contextlib.contextmanager
def _composer() -> Iterator[Any]:
    """Hydra's ``compose`` with the suite's config directory (reuses a running Hydra app's)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.cli import CONF_DIR, register_all

    register_all()
    if GlobalHydra.instance().is_initialized():   # inside `bench` (the sweep-end callback)
        yield compose
        return
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        yield compose


_COMPOSED: dict[frozenset, dict[str, Any]] = {}
"""Flattened record configs of the jobs a sweep in this process composed before launching them
(hydra_plugins/tpo_bench/sweeper.py), keyed by the job's set of overrides: the sweep-end report reads its grid
points from here instead of composing each of them again."""


def remember_job(overrides: Sequence[str], cfg: Any) -> None:
    """Keep the composed config ``cfg`` (with or without its ``hydra`` node) of the job ``overrides`` for
    :func:`expected_grid`. Best effort: a config that does not resolve is simply not kept."""
    from omegaconf import OmegaConf

    from bench.schema import record_config

    try:
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        _COMPOSED[frozenset(overrides)] = flatten(record_config(job))
    except Exception:  # noqa: BLE001 - the report then composes this grid point itself
        pass


def _groups() -> set[str]:
    from bench.cli import CONF_DIR
    return {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}


def expand(params: Mapping[str, Any]) -> list[list[str]]:
    """``hydra.sweeper.params`` -> one list of overrides per job, in Hydra's launch order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    batches = BasicSweeper.split_arguments(parsed, None)
    return [list(job) for batch in batches for job in batch]


def command_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides of a command line that can shape an experiment's grid: all but ``experiment=``,
    ``scale=`` and ``hydra.*`` (sweeps kept: a sweep of one of the grid's axes widens it, :func:`expected_grid`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return [text for text, parsed in zip(overrides, OverridesParser.create().parse_overrides(list(overrides)))
            if parsed.key_or_group not in ("experiment", "scale") and not parsed.key_or_group.startswith("hydra")]


def widen_axes(params: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, str]:
    """``hydra.sweeper.params`` with the command line's values of a swept key joined to that axis.

    Hydra runs the command line's value of a key the experiment sweeps instead of the sweep
    (``bench experiment=table3_terminal env.horizon=3`` runs H = 3 only); the report's grid keeps the
    experiment's values and adds the new ones, so the run is a grid point and the rest of the table
    still shows (filled by earlier runs, or named missing). ``{"env.horizon": "7,8"}`` and
    ``["env.horizon=3"]`` give ``{"env.horizon": "7,8,3"}``; keys that are not axes are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = {k: str(v) for k, v in params.items()}
    for parsed in parser.parse_overrides(list(overrides)):
        key = parsed.key_or_group.lstrip("+~")
        if key not in out:
            continue
        values = _values(parser.parse_overrides([f"{key}={out[key]}"])[0])
        out[key] = ",".join(values + [v for v in _values(parsed) if v not in values])
    return out


def _values(parsed: Any) -> list[str]:
    return list(parsed.sweep_string_iterator()) if parsed.is_sweep_override() else \
        [parsed.get_value_element_as_str()]


def non_sweep(overrides: Sequence[str]) -> list[str]:
    """The overrides of a command line that are not sweeps (``run.seeds=30``, not ``algorithm=tpo,pg``),
    without ``experiment=``/``scale=`` and without ``hydra.*`` keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept = []
    for text, parsed in zip(overrides, OverridesParser.create().parse_overrides(list(overrides))):
        key = parsed.key_or_group
        if parsed.is_sweep_override() or key in ("experiment", "scale") or key.startswith("hydra"):
            continue
        kept.append(text)
    return kept


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _record_key(override: str, groups: set[str]) -> str:
    key = _key(override)
    return f"{key}.name" if key in groups else key


def expected_grid(experiment: str, scale: str, overrides: Sequence[str] = ()) -> Optional[list[ExpectedRun]]:
    """The grid of ``bench experiment=EXPERIMENT scale=SCALE [overrides]``; ``None`` when the
    experiment has no config file (e.g. ``adhoc``) or no sweep. Raises :class:`GridError` when
    the experiment's config does not compose (the message is Hydra's).

    ``overrides``: the command line's (:func:`command_overrides`). A plain value of a key that is not an
    axis applies to every grid point (``run.seeds=30``); a value, or a sweep, of an axis key joins that
    axis (:func:`widen_axes`); a sweep of any other key is not part of the experiment's grid."""
    from bench.cli import CONF_DIR
    from bench.schema import record_config

    if not (Path(CONF_DIR) / "experiment" / f"{experiment}.yaml").exists():
        return None
    base = [f"experiment={experiment}", f"scale={scale}", *non_sweep(overrides)]
    groups = _groups()
    try:
        with _composer() as compose:
            top = compose("config", overrides=base, return_hydra_config=True)
            params = dict(top.hydra.sweeper.get("params") or {})
            if not params:
                return None
            params = widen_axes(params, overrides)
            base = [o for o in base if _key(o) not in params]   # an axis's value comes from its grid point
            grid = []
            for job in expand(params):
                known = _COMPOSED.get(frozenset([*base, *job]))
                record = dict(known) if known is not None else \
                    flatten(record_config(compose("config", overrides=[*base, *job])))
                coords = {}
                for text in job:
                    key = _record_key(text, groups)
                    coords[key] = key_text(record.get(key))
                grid.append(ExpectedRun(_label(record, coords), tuple(job), coords, record))
    except Exception as exc:  # noqa: BLE001 - Hydra/OmegaConf raise many types; the report goes on without a grid
        raise GridError(f"expected grid of {experiment}/{scale} not composed: {type(exc).__name__}: {exc}") from None
    return grid


def _label(record: Mapping[str, Any], coords: Mapping[str, str]) -> str:
    name = f"{record.get('algorithm.name')}-{record.get('env.name')}"
    rest = [f"{k}={v}" for k, v in coords.items() if k not in ("algorithm.name", "env.name")]
    return " ".join([name, *rest])


def _compared(key: str) -> bool:
    return "." in key and not any(key == p or key.startswith(p + ".") for p in NOT_COMPARED)


# keys a record leaves out at their default (bench.schema.record_config drops a native engine)
ABSENT_MEANS = {"engine.name": "native"}


def differences(expected: Mapping[str, Any], run: Mapping[str, Any], shared_matching: bool = False) -> list[str]:
    """``"key: run value (experiment file: value)"`` for every identity-relevant key that differs.

    Keys absent from the run (an older record) read as ``missing`` (``engine.name`` as ``native``: records drop
    the default engine). ``env.matching`` is not
    compared for a run whose matching is shared (grouped methods run once for both).
    """
    out = []
    for key in sorted(set(expected) | {k for k in run if not _isnan(run[k])}):
        if not _compared(key) or (shared_matching and key == "env.matching"):
            continue
        absent = ABSENT_MEANS.get(key, "missing")
        want = key_text(expected[key]) if key in expected and not _isnan(expected[key]) else absent
        got = key_text(run[key]) if key in run and not _isnan(run[key]) else absent
        if want != got:
            out.append(f"{key}: {got} (experiment file: {want})")
    return out


def _isnan(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def matches(run: Mapping[str, Any], expected: ExpectedRun) -> bool:
    """Whether a run (flattened config row) sits at ``expected``'s grid point."""
    shared = is_shared_matching(run)
    for key, value in expected.coords.items():
        if shared and key == "env.matching":
            continue
        if key not in run or _isnan(run[key]) or key_text(run[key]) != value:
            return False
    return True


def is_shared_matching(run: Mapping[str, Any]) -> bool:
    """A grouped method's run serves both matching columns (see :func:`bench.run.matching_is_shared`)."""
    return "env.matching" in run and not _isnan(run.get("env.matching")) and \
        str(run.get("algorithm.candidates")) != "single"
