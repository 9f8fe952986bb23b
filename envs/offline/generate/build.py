"""``generate``: make (or reuse) one generated dataset file at ``<root>/<id>.hdf5``."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from envs.offline.generate.specs import (GENERATOR, GENERATOR_VERSION, Config, DatasetSpec, data_root, get_spec,
                                         make_config)
from envs.offline.generate.writer import CorruptDatasetError, verify, write_dataset

PACKAGES = ("numpy", "h5py", "gymnasium", "gymnasium-robotics", "mujoco", "stable-baselines3", "torch")


@dataclass(frozen=True)
class Generated:
    """path: the file; generated: False when an existing file was reused; seconds: wall time of this call;
    rows: N; notice: why an existing file was replaced ("" when none was)."""

    path: Path
    generated: bool
    seconds: float
    rows: int
    notice: str = ""


def config_record(spec: DatasetSpec, cfg: Config, seed: int) -> dict:
    """``metadata/config``: every generation setting (JSON-able, as stored)."""
    rec = {"dataset_id": spec.dataset_id, "family": spec.family, "kind": spec.kind, "env_id": spec.env_id,
           "seed": int(seed), "generator_version": GENERATOR_VERSION, **dataclasses.asdict(cfg)}
    return json.loads(json.dumps(rec, sort_keys=True))


def _versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib_metadata.version(p)
        except importlib_metadata.PackageNotFoundError:
            out[p] = None
    return out


@contextlib.contextmanager
def _isolated():
    """One torch thread, and the caller's global random states (random, numpy, torch) restored after:
    stable-baselines3 seeds all three globally."""
    import torch

    threads = torch.get_num_threads()
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _diff(stored: dict, wanted: dict) -> str:
    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate_dataset(dataset_id: str, root: Optional[Union[str, os.PathLike]] = None, seed: int = 0,
                     force: bool = False, say: Optional[Callable[[str], None]] = _stderr, **overrides) -> Generated:
    """:func:`generate` with a report of what happened (:class:`Generated`); ``say`` receives progress
    and notice lines (``None``: silent)."""
    spec = get_spec(dataset_id)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: {seed!r} is not allowed (an integer ≥ 0)")
    cfg = make_config(spec, overrides)
    root = data_root(root)
    path = root / f"{dataset_id}.hdf5"
    wanted = config_record(spec, cfg, seed)
    t0 = time.perf_counter()
    notice = ""
    if path.exists() and not force:
        try:
            meta = verify(path)
            stored = json.loads(meta["config"])
        except (CorruptDatasetError, ValueError) as e:
            notice = f"notice: {path} is corrupt ({str(e).replace(str(path) + ': ', '')}); regenerating"
        else:
            if stored == wanted:
                return Generated(path, False, time.perf_counter() - t0, int(meta.get("rows", -1)))
            notice = f"notice: {path} was generated with other settings ({_diff(stored, wanted)}); regenerating"
        if say:
            say(notice)
    with _isolated():
        if spec.family == "maze2d":
            from envs.offline.generate.maze2d import generate_maze2d

            arrays, meta = generate_maze2d(spec, cfg, seed, say)
        else:
            from envs.offline.generate.behaviour import generate_sac

            arrays, meta = generate_sac(spec, cfg, seed, root, say)
    rows = len(arrays["rewards"])
    meta = {"dataset_id": spec.dataset_id, "env_id": spec.env_id, **meta, "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION, "seed": int(seed), "config": json.dumps(wanted, sort_keys=True),
            "rows": rows, "wall_time_s": time.perf_counter() - t0, "versions": json.dumps(_versions())}
    write_dataset(path, arrays, meta)
    return Generated(path, True, time.perf_counter() - t0, rows, notice)


def generate(dataset_id: str, root: Optional[Union[str, os.PathLike]] = None, seed: int = 0, force: bool = False,
             **overrides) -> Path:
    """Generate dataset ``dataset_id`` at ``<root>/<dataset_id>.hdf5`` (D4RL layout) and return its path.

    root:      directory (``None``: :func:`data_root` — ``$TPO_BENCH_DATA``, else the user cache).
    seed:      generation seed (≥ 0); the same seed and settings give byte-identical arrays.
    force:     regenerate even when a valid file with the same settings exists (a cached SAC behaviour
               run under ``<root>/behaviour/`` is still reused; delete it to retrain).
    overrides: config fields of the dataset's family (:class:`~envs.offline.generate.specs.Maze2dConfig` or
               :class:`~envs.offline.generate.specs.SACConfig`), e.g. ``steps=2000`` or ``sac_steps=300``.

    An existing file is reused when its ``metadata/config`` equals the requested settings and its arrays
    match ``metadata/checksum``; otherwise it is regenerated (one notice line on stderr). The file is
    written under a temporary name and renamed when complete.

    Raises :class:`~envs.offline.generate.specs.UnknownDatasetError` (unknown id; one line listing the
    valid ids) and ValueError (a bad seed or setting; one line naming it and the allowed values).
    """
    return generate_dataset(dataset_id, root, seed, force, **overrides).path
