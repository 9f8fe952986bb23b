"""Fixtures for the offline-RL data tests: writers of small D4RL-layout HDF5 files and
Minari directories (every random draw seeded)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np
import pytest


def _write_hdf5(path: Path, entries: Mapping[str, Any]) -> Path:
    """Write ``{flat key: value}`` to ``path``: arrays as datasets, str/int/float/bool as
    scalar datasets (str as UTF-8 variable-length strings, as h5py writes a python str)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in entries.items():
            f[key] = value
    return path


def episode_arrays(lengths, ends, obs_dim=3, act_dim=2, seed=0) -> dict[str, np.ndarray]:
    """Flat D4RL arrays for episodes of the given lengths; ``ends[k]`` is "terminal",
    "timeout" or "partial" (no flag) for episode k. Rewards/terminals stored ``[N, 1]``."""
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    stop = 0
    for length, end in zip(lengths, ends):
        stop += length
        if end == "terminal":
            terminals[stop - 1] = True
        elif end == "timeout":
            timeouts[stop - 1] = True
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=(n, 1)).astype(np.float32),
        "terminals": terminals[:, None],
        "timeouts": timeouts,
    }


GEN_METADATA = {
    "metadata/dataset_id": "pendulum-medium-replay-gen",
    "metadata/env_id": "Pendulum-v1",
    "metadata/env_kwargs": json.dumps({"g": 9.81}),
    "metadata/obs_key": "",
    "metadata/max_episode_steps": 200,
    "metadata/ref_random_return": -1200.5,
    "metadata/ref_expert_return": -150.25,
    "metadata/generator": "bench-data",
    "metadata/generator_version": "1",
    "metadata/seed": 7,
    "metadata/behaviour_policy": "sac-medium",
    "metadata/behaviour_return": -600.0,
    "metadata/action_low": np.array([-2.0], dtype=np.float32),
    "metadata/action_high": np.array([2.0], dtype=np.float32),
}


@pytest.fixture
def write_hdf5() -> Callable[[Path, Mapping[str, Any]], Path]:
    return _write_hdf5


@pytest.fixture
def write_generated() -> Callable[..., tuple[Path, dict]]:
    """``write_generated(root, dataset_id="pendulum-medium-replay-gen", drop=(), **metadata)``:
    a valid generated file (3 episodes: terminal, time-out, partial) at ``root/<id>.hdf5``;
    ``drop`` removes metadata keys, keyword arguments replace metadata values."""

    def write(root: Path, dataset_id: str = "pendulum-medium-replay-gen", drop=(), **metadata) -> tuple[Path, dict]:
        entries = episode_arrays([4, 5, 3], ["terminal", "timeout", "partial"], obs_dim=3, act_dim=1, seed=11)
        entries["actions"] = entries["actions"] * 2.0
        meta = dict(GEN_METADATA, **{"metadata/dataset_id": dataset_id})
        meta.update({f"metadata/{k}": v for k, v in metadata.items()})
        for key in drop:
            meta.pop(f"metadata/{key}")
        entries.update(meta)
        return _write_hdf5(Path(root) / f"{dataset_id}.hdf5", entries), entries

    return write


def write_minari_dir(root: Path, episodes, metadata: Mapping[str, Any] | None = None,
                     metadata_in: str = "data") -> Path:
    """A Minari dataset directory: ``episodes`` is a list of (name, dict of arrays or, for
    ``observations``, a dict of arrays for a dict observation)."""
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "data" / "main_data.hdf5", "w") as f:
        for name, episode in episodes:
            group = f.create_group(name)
            for key, value in episode.items():
                if isinstance(value, dict):
                    sub = group.create_group(key)
                    for k, v in value.items():
                        sub[k] = v
                else:
                    group[key] = value
        if metadata_in == "attrs":
            for key, value in (metadata or {}).items():
                f.attrs[key] = value
    if metadata_in != "attrs":
        target = root / "data" / "metadata.json" if metadata_in == "data" else root / "metadata.json"
        target.write_text(json.dumps(metadata or {}))
    return root


@pytest.fixture
def minari_dir() -> Callable[..., Path]:
    return write_minari_dir


@pytest.fixture
def make_episodes() -> Callable[..., dict]:
    return episode_arrays
