"""D4RL-layout HDF5 files: write atomically, checksum the arrays, read the metadata back.

Layout (flat keys, as D4RL, Fu et al. 2020):

* arrays — ``observations`` [N, O] float32, ``actions`` [N, A] float32 (raw env actions), ``rewards`` [N]
  float32, ``terminals`` [N] bool, ``timeouts`` [N] bool, optional ``infos/<name>`` [N, ...];
* ``metadata/<name>`` — 0-d datasets: strings as variable-length UTF-8 (h5py returns ``bytes``; use
  ``ds.asstr()[()]`` or :func:`read_metadata`), ints as int64, floats as float64; ``action_low`` /
  ``action_high`` as float32 [A]; ``config`` and ``env_kwargs`` as JSON strings; ``checksum`` =
  :func:`checksum` of the arrays.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

ARRAY_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
DTYPES = {"observations": np.float32, "actions": np.float32, "rewards": np.float32,
          "terminals": np.bool_, "timeouts": np.bool_}
REQUIRED_METADATA = ("dataset_id", "env_id", "env_kwargs", "obs_key", "max_episode_steps", "ref_random_return",
                     "ref_expert_return", "behaviour_policy", "behaviour_return", "generator",
                     "generator_version", "seed", "action_low", "action_high", "config", "checksum")


class CorruptDatasetError(Exception):
    """A file that cannot be read, lacks a required key, or whose arrays do not match their checksum."""


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 (hex) of the arrays: for every key in sorted order (``metadata/*`` excluded), the UTF-8 key,
    the dtype string (``"<f4"``, ``"|b1"``), the shape as comma-joined ints, each followed by a NUL byte,
    then the C-ordered array bytes."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if not k.startswith("metadata/")):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + b"\0" + a.dtype.str.encode() + b"\0" + ",".join(map(str, a.shape)).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def check_arrays(arrays: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError unless the arrays follow the layout (keys, dtypes, shapes, episode ends)."""
    for k in ARRAY_KEYS:
        if k not in arrays:
            raise ValueError(f"arrays: missing key {k!r}")
        if arrays[k].dtype != DTYPES[k]:
            raise ValueError(f"{k}: dtype {arrays[k].dtype}, expected {np.dtype(DTYPES[k])}")
    n = len(arrays["rewards"])
    for k, a in arrays.items():
        if len(a) != n:
            raise ValueError(f"{k}: {len(a)} rows, expected {n}")
    for k in ("observations", "actions"):
        if arrays[k].ndim != 2:
            raise ValueError(f"{k}: shape {arrays[k].shape}, expected [N, dim]")
    if n and not (arrays["terminals"][-1] or arrays["timeouts"][-1]):
        raise ValueError("the last row must end an episode (terminal or timeout)")


def _meta_value(v: Any):
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return np.bool_(v)
    if isinstance(v, (int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating)):
        return np.float64(v)
    if isinstance(v, np.ndarray):
        return v
    return json.dumps(v, sort_keys=True)


def write_dataset(path: Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any],
                  compression: str = "gzip") -> Path:
    """Write ``arrays`` and ``metadata`` (``metadata/<name>``; ``checksum`` is added here) to ``path``.

    The file is written as ``<path>.tmp-<pid>`` and renamed over ``path`` when complete, so a killed run
    never leaves a partial file under the final name. Returns ``path``.
    """
    import h5py

    check_arrays(arrays)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    meta = dict(metadata)
    meta["checksum"] = checksum(arrays)
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            for k, a in arrays.items():
                a = np.ascontiguousarray(a)
                opts = {"compression": compression, "compression_opts": 4} if compression == "gzip" and a.size else {}
                f.create_dataset(k, data=a, **opts)
            for k, v in meta.items():
                f.create_dataset(f"metadata/{k}", data=_meta_value(v))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_metadata(path: Path) -> dict[str, Any]:
    """``{name: value}`` of the file's ``metadata/*`` (strings decoded, scalars as Python numbers, arrays as
    numpy). Raises :class:`CorruptDatasetError` when the file cannot be opened."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            g = f.get("metadata")
            if g is None:
                raise CorruptDatasetError(f"{path}: no metadata group")
            return {k: _decode(g[k][()]) for k in g.keys()}
    except (OSError, KeyError, ValueError) as e:
        raise CorruptDatasetError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every non-metadata array of the file, by flat key (``infos/goal`` ...)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and not name.startswith("metadata/"):
                    out[name] = obj[()]
            f.visititems(visit)
    except (OSError, KeyError, ValueError) as e:
        raise CorruptDatasetError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    return out


def verify(path: Path) -> dict[str, Any]:
    """Read the metadata, check every required key is there and the arrays match ``metadata/checksum``;
    returns the metadata. Raises :class:`CorruptDatasetError` (one line) otherwise."""
    meta = read_metadata(path)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise CorruptDatasetError(f"{path}: missing metadata {', '.join(missing)}")
    arrays = read_arrays(path)
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise CorruptDatasetError(f"{path}: missing arrays {', '.join(missing)}")
    if checksum(arrays) != meta["checksum"]:
        raise CorruptDatasetError(f"{path}: arrays do not match metadata/checksum")
    return meta
