"""Minari datasets read with h5py alone (the ``minari`` package is not imported).

A Minari dataset directory (Minari documentation, "Dataset Standards") holds::

    <dataset_dir>/data/main_data.hdf5     one group per episode, ``episode_0``, ``episode_1``, ...
    <dataset_dir>/data/metadata.json      dataset metadata (env_spec, spaces, ref scores, ...)

(older releases kept the metadata as attributes of ``main_data.hdf5``; a ``metadata.json``
directly under ``<dataset_dir>`` is accepted too). An episode group of T steps holds

    observations   [T+1, O]   the reset observation, then one per step; a group of arrays
                              (one per key) for a ``Dict`` observation space
    actions        [T, A]
    rewards        [T] or [T, 1]
    terminations   [T] or [T, 1]   bool
    truncations    [T] or [T, 1]   bool
    infos/...                 optional, ignored here

:func:`read_minari` flattens the episodes to the D4RL arrays: ``observations`` are each
episode's rows ``0..T-1``, ``next_observations`` its rows ``1..T`` (exact successors, also
across the time limit), ``terminals`` the terminations and ``timeouts`` the truncations.
An episode that ends with neither flag (recording stopped mid-episode) gets ``timeouts`` set
on its last step, so that episode boundaries survive the flattening.

Public API
----------
``read_minari(dataset_dir, obs_key="observation")`` -> flat arrays + ``metadata/...``.
``read_minari_metadata(dataset_dir)``               -> the metadata dict.
``minari_transitions(data)``                        -> float32 (s, a, r, s', terminal), all steps.
``minari_env(metadata)``                            -> (env_id, env_kwargs, max_episode_steps).
``minari_action_bounds(metadata)``                  -> (low, high) of a Box action space, or None.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

__all__ = [
    "MAIN_FILE",
    "minari_action_bounds",
    "minari_env",
    "minari_transitions",
    "read_minari",
    "read_minari_metadata",
]

MAIN_FILE = Path("data") / "main_data.hdf5"
"""Where the episodes live, relative to the dataset directory."""

_EPISODE = re.compile(r"episode_(\d+)")


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a python value (bytes -> str, numpy scalar -> int/float/bool)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_minari_metadata(dataset_dir: Union[str, os.PathLike]) -> dict[str, Any]:
    """The dataset metadata: ``data/metadata.json``, else ``metadata.json``, else the root
    attributes of ``data/main_data.hdf5``. ``ValueError`` if a JSON file does not parse."""
    root = Path(dataset_dir)
    for candidate in (root / "data" / "metadata.json", root / "metadata.json"):
        if candidate.is_file():
            try:
                return dict(json.loads(candidate.read_text()))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{candidate} is not a JSON object: {exc}") from None
    import h5py

    with h5py.File(root / MAIN_FILE, "r") as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def _rows(array: np.ndarray) -> np.ndarray:
    """A per-step array as 2-D ``[T, D]`` (a ``[T]`` array becomes ``[T, 1]``)."""
    array = np.asarray(array)
    return array.reshape(array.shape[0], -1)


def _flag(array: np.ndarray) -> np.ndarray:
    """A per-step scalar stored ``[T]`` or ``[T, 1]`` as ``[T]``."""
    return np.asarray(array).reshape(-1)


def _observations(group: Any, name: str, obs_key: Optional[str]) -> tuple[np.ndarray, bool]:
    """(observation rows of one episode, whether they came from a dict observation's
    ``obs_key`` entry)."""
    import h5py

    node = group["observations"]
    if not isinstance(node, h5py.Group):
        return _rows(node[()]), False
    if obs_key is None or obs_key not in node or not isinstance(node[obs_key], h5py.Dataset):
        raise ValueError(f"{name}/observations is a dict observation with keys "
                         f"{', '.join(sorted(node))}; obs_key={obs_key!r} is not one of them")
    return _rows(node[obs_key][()]), True


def _read_episode(group: Any, name: str, obs_key: Optional[str]) -> dict[str, np.ndarray]:
    """One episode group as ``[T, ...]`` arrays; ``ValueError`` for a bad layout."""
    missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in group]
    if missing:
        raise ValueError(f"{name} has no {', '.join(missing)}")
    obs, from_dict = _observations(group, name, obs_key)
    actions = _rows(group["actions"][()])
    rewards = _flag(group["rewards"][()])
    terminations = _flag(group["terminations"][()]).astype(bool)
    truncations = _flag(group["truncations"][()]).astype(bool)
    steps = rewards.shape[0]
    lengths = (actions.shape[0], terminations.shape[0], truncations.shape[0])
    if steps == 0 or any(n != steps for n in lengths) or obs.shape[0] != steps + 1:
        raise ValueError(f"{name}: observations has {obs.shape[0]} rows, actions/rewards/terminations/"
                         f"truncations have {lengths[0]}/{steps}/{lengths[1]}/{lengths[2]} "
                         f"(expected T+1 observations for T >= 1 steps)")
    timeouts = truncations.copy()
    if not (terminations[-1] or truncations[-1]):
        timeouts[-1] = True
    return {"observations": obs[:-1], "next_observations": obs[1:], "actions": actions,
            "rewards": rewards, "terminals": terminations, "timeouts": timeouts, "dict_obs": from_dict}


def read_minari(dataset_dir: Union[str, os.PathLike], obs_key: Optional[str] = "observation") -> dict[str, Any]:
    """Read a Minari dataset directory into flat D4RL-style arrays.

    Episodes are taken in the order of their id (``episode_0``, ``episode_1``, ...).
    Returns ``observations [N, O]``, ``next_observations [N, O]``, ``actions [N, A]``,
    ``rewards [N]``, ``terminals [N]`` (bool, the terminations), ``timeouts [N]`` (bool, the
    truncations; see the module docstring), ``episode_ids [N]`` (int64) in their stored
    dtypes, ``obs_key`` (the key used when observations are a dict, else None), plus
    ``metadata/<key>`` for every entry of :func:`read_minari_metadata`.

    ``obs_key`` names the entry of a ``Dict`` observation to use (ignored for array
    observations). Raises ``OSError`` when ``data/main_data.hdf5`` is missing or unreadable
    and ``ValueError`` (one line) for a wrong layout.
    """
    import h5py

    path = Path(dataset_dir) / MAIN_FILE
    with h5py.File(path, "r") as f:
        names = sorted((n for n in f if _EPISODE.fullmatch(n)), key=lambda n: int(n[len("episode_"):]))
        if not names:
            raise ValueError(f"{path} holds no episode_<id> groups (found: {', '.join(sorted(f)) or 'nothing'})")
        episodes = [_read_episode(f[n], n, obs_key) for n in names]
    data: dict[str, Any] = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0] if k != "dict_obs"}
    data["obs_key"] = obs_key if any(e["dict_obs"] for e in episodes) else None
    data["episode_ids"] = np.concatenate(
        [np.full(e["rewards"].shape[0], int(n[len("episode_"):]), dtype=np.int64) for n, e in zip(names, episodes)])
    for key, value in read_minari_metadata(dataset_dir).items():
        data[f"metadata/{key}"] = value
    return data


def minari_transitions(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """All steps of :func:`read_minari` data as float32 Q-learning transitions.

    Unlike the D4RL layout, Minari stores each step's true next observation, so no step is
    dropped (truncated steps included). Returns ``observations [N, O]``, ``actions [N, A]``,
    ``next_observations [N, O]``, ``rewards [N]``, ``terminals [N]`` (0.0/1.0).
    """
    return {
        "observations": np.asarray(data["observations"], dtype=np.float32),
        "actions": np.asarray(data["actions"], dtype=np.float32),
        "next_observations": np.asarray(data["next_observations"], dtype=np.float32),
        "rewards": np.asarray(data["rewards"], dtype=np.float32).reshape(-1),
        "terminals": np.asarray(data["terminals"]).astype(np.float32).reshape(-1),
    }


def _json_object(value: Any) -> dict[str, Any]:
    """A metadata entry that is a JSON object or a JSON string of one, else ``{}``."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def minari_env(metadata: Mapping[str, Any]) -> tuple[str, dict[str, Any], Optional[int]]:
    """``(env_id, env_kwargs, max_episode_steps)`` to evaluate in, from the metadata's
    ``eval_env_spec`` (preferred) or ``env_spec`` (gymnasium ``EnvSpec`` JSON). Missing
    entries give ``("", {}, None)``."""
    spec = _json_object(metadata.get("eval_env_spec")) or _json_object(metadata.get("env_spec"))
    steps = spec.get("max_episode_steps")
    return str(spec.get("id") or ""), dict(spec.get("kwargs") or {}), (int(steps) if steps else None)


def minari_action_bounds(metadata: Mapping[str, Any]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(low, high)`` float32 ``[A]`` of a serialised ``Box`` action space, else None."""
    space = _json_object(metadata.get("action_space"))
    if space.get("type") != "Box" or "low" not in space or "high" not in space:
        return None
    low = np.asarray(space["low"], dtype=np.float32).reshape(-1)
    high = np.asarray(space["high"], dtype=np.float32).reshape(-1)
    return (low, high) if low.shape == high.shape else None
