"""Offline-RL dataset ids, where their files live, and loading them.

Ids and locations (``root`` = :func:`data_root`)
------------------------------------------------
* D4RL ids (Fu et al. 2020), e.g. ``hopper-medium-v2``, ``maze2d-umaze-v1``,
  ``antmaze-large-diverse-v2`` (the list: :data:`D4RL_DATASET_IDS`): the published file, renamed
  to ``<root>/<id>.hdf5``. When that file is absent and the ``d4rl`` package imports (it needs
  MuJoCo 2.1 binaries; any exception while importing counts as "not importable"), the data
  is loaded through ``d4rl`` instead (which may download it to its own cache).
* Generated ids end in ``-gen`` (``pendulum-medium-replay-gen``, ``maze2d-umaze-gen``, ...):
  ``<root>/<id>.hdf5`` written by ``bench-data generate <id>`` in the D4RL layout; everything
  about the dataset (evaluation env, time limit, reference returns) comes from the file's
  ``metadata/...`` entries, see :data:`GENERATED_METADATA_KEYS`.
* Minari ids contain a ``/`` (``mujoco/hopper/medium-v0``): the Minari dataset directory
  ``<root>/minari/<id>/`` (read with h5py alone, :mod:`envs.offline.minari`).
* Any other id whose ``<root>/<id>.hdf5`` exists is read as a D4RL-layout file.

Evaluation environments for D4RL ids
------------------------------------
The D4RL datasets were recorded and scored in gym + mujoco-py environments (Hopper-v3,
maze2d-umaze-v1, ...) that no longer install. :class:`DatasetInfo` names their gymnasium
counterparts instead: Gym locomotion -> ``Hopper-v5``, ``HalfCheetah-v5``, ``Walker2d-v5``,
``Ant-v5`` (time limit 1000); ``maze2d-{umaze,medium,large}`` -> gymnasium-robotics
``PointMaze_{UMaze,Medium,Large}-v3`` (``Dense`` for the dense ids; dict observation, key
``"observation"``; ``continuing_task=True``, ``reset_target=False``; limits 300/600/800 as in
D4RL); ``antmaze-*`` -> ``AntMaze_{UMaze,Medium,Large}-v5`` (``continuing_task=False``: the
episode ends at the goal, so the return is the success indicator; limits 700/1000/1000).
Scoring a policy trained on a real D4RL file in these environments is therefore close to,
not identical with, D4RL's own evaluation: the MuJoCo version and model files differ; the
PointMaze/AntMaze mazes are centred at the origin and sample their goal and start cells,
whereas D4RL's mazes use cell coordinates and a fixed evaluation goal; D4RL ant files have
111-dim observations (6 always-zero world-body contact forces) against Ant-v5's 105, and
antmaze files keep the x-y position inside the observation, which AntMaze-v5 moves to
``achieved_goal``. ``DatasetInfo.metadata["eval_note"]`` says which of these applies.

Errors
------
:class:`DatasetError` (base), :class:`DatasetNotFound` (no file/directory, or an unknown id)
and :class:`DatasetUnreadable` (truncated or corrupt file, wrong layout, missing generator
metadata). Every message is one line naming the path and what to do.

Public API
----------
``data_root(data_dir=None)``, ``dataset_path(dataset_id, data_dir=None)``,
``dataset_info(dataset_id, data_dir=None)``, ``load_dataset(dataset_id, data_dir=None, *,
minari_obs_key="observation")``, ``d4rl_download_url(dataset_id)``, ``is_d4rl_id``,
``is_generated_id``, ``is_minari_id``, :class:`DatasetInfo`, :class:`OfflineDataset`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from envs.offline import d4rl as d4rl_format
from envs.offline import minari as minari_format
from envs.offline.scores import KNOWN_FAMILIES, REF_MAX_SCORE, REF_MIN_SCORE

__all__ = [
    "D4RL_DATASET_IDS",
    "DATA_ENV_VAR",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFound",
    "DatasetUnreadable",
    "GENERATED_METADATA_KEYS",
    "OfflineDataset",
    "SOURCES",
    "d4rl_download_url",
    "data_root",
    "dataset_info",
    "dataset_path",
    "is_d4rl_id",
    "is_generated_id",
    "is_minari_id",
    "load_dataset",
]

DATA_ENV_VAR = "TPO_BENCH_DATA"
"""Environment variable naming the dataset root (overridden by an explicit ``data_dir``)."""

SOURCES = ("d4rl-file", "minari", "d4rl-package", "generated")
"""Values of :attr:`DatasetInfo.source`."""

D4RL_DATASET_IDS: tuple[str, ...] = tuple(sorted(REF_MIN_SCORE))
"""The D4RL ids this module knows (those with reference scores in :mod:`envs.offline.scores`)."""

GENERATED_METADATA_KEYS = (
    "dataset_id", "env_id", "env_kwargs", "obs_key", "max_episode_steps", "ref_random_return",
    "ref_expert_return", "generator", "generator_version", "seed", "behaviour_policy", "behaviour_return",
)
"""Entries ``metadata/<key>`` a generated (``-gen``) file must hold: ``env_kwargs`` is a JSON
object string, ``obs_key`` is ``""`` when observations are arrays. Optional:
``metadata/action_low`` and ``metadata/action_high`` (``[A]``)."""

GENERATED_REF_SOURCE = "the generator's recorded random/expert returns"
D4RL_REF_SOURCE = "D4RL reference constants"
_D4RL_URL_ROOT = "http://rail.eecs.berkeley.edu/datasets/offline_rl"
_WHERE = f"or set {DATA_ENV_VAR} / env.data_dir to the folder that holds it"


# --------------------------------------------------------------------------- errors


class DatasetError(Exception):
    """A dataset cannot be provided; the message is one line naming the path and the fix."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """No file or directory for the id (or the id is unknown)."""


class DatasetUnreadable(DatasetError, ValueError):
    """The file exists but is truncated, corrupt, of the wrong layout or lacks metadata."""


def _one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- ids and paths


def data_root(data_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The dataset root: ``data_dir`` if given, else ``$TPO_BENCH_DATA``, else
    ``$XDG_CACHE_HOME/tpo-bench/datasets``, else ``~/.cache/tpo-bench/datasets``
    (``~`` expanded in each)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()
    return base / "tpo-bench" / "datasets"


def is_minari_id(dataset_id: str) -> bool:
    """Minari ids contain a ``/`` (``namespace/env/name-vK``)."""
    return "/" in dataset_id


def is_generated_id(dataset_id: str) -> bool:
    """Ids of files written by the suite's generator end in ``-gen``."""
    return dataset_id.endswith("-gen") and not is_minari_id(dataset_id)


def is_d4rl_id(dataset_id: str) -> bool:
    """One of :data:`D4RL_DATASET_IDS`."""
    return dataset_id in REF_MIN_SCORE


def dataset_path(dataset_id: str, data_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Where the id's data is expected: ``<root>/minari/<id>`` for a Minari id, else
    ``<root>/<id>.hdf5``."""
    root = data_root(data_dir)
    if is_minari_id(dataset_id):
        return root / "minari" / dataset_id
    return root / f"{dataset_id}.hdf5"


_ANTMAZE_FILES = {  # D4RL antmaze dataset -> (maze name in the file, multistart, multigoal)
    "umaze": ("u-maze", False, False), "umaze-diverse": ("u-maze", True, True),
    "medium-play": ("big-maze", True, False), "medium-diverse": ("big-maze", True, True),
    "large-play": ("hardest-maze", True, False), "large-diverse": ("hardest-maze", True, True),
}


def d4rl_download_url(dataset_id: str) -> str:
    """The D4RL download address of a D4RL id (the ``DATASET_URLS`` patterns of
    ``d4rl/infos.py`` in the D4RL code release); ``KeyError`` for other ids."""
    if not is_d4rl_id(dataset_id):
        raise KeyError(f"{dataset_id!r} is not a D4RL id; known ids: {KNOWN_FAMILIES}")
    head, version = dataset_id.rsplit("-", 1)
    if head.startswith("maze2d-"):
        name = head[len("maze2d-"):]
        kind = "dense" if name.endswith("-dense") else "sparse"
        return f"{_D4RL_URL_ROOT}/maze2d/maze2d-{name.removesuffix('-dense')}-{kind}-{version}.hdf5"
    if head.startswith("antmaze-"):
        maze, multistart, multigoal = _ANTMAZE_FILES[head[len("antmaze-"):]]
        folder, suffix = ("ant_maze_new", "sparse") if version == "v0" else ("ant_maze_v2", "sparse_fixed")
        return (f"{_D4RL_URL_ROOT}/{folder}/Ant_maze_{maze}_noisy_multistart_{multistart}"
                f"_multigoal_{multigoal}_{suffix}.hdf5")
    env, name = head.split("-", 1)
    return f"{_D4RL_URL_ROOT}/gym_mujoco_{version}/{env}_{name.replace('-', '_')}-{version}.hdf5"


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is and how to evaluate a policy trained on it.

    id: the dataset id; source: one of :data:`SOURCES`; path: file or directory read ("" if
    none); env_id / env_kwargs: the gymnasium environment to evaluate in (``gym.make(env_id,
    **env_kwargs)``; ``""`` when none is known); obs_key: key of a dict observation to feed
    the policy (None for array observations); max_episode_steps: evaluation time limit;
    ref_min_score / ref_max_score: returns mapped to 0 and 100 by the normalised score (NaN
    when unknown); ref_source: where those come from; comparable_to_d4rl: True when the
    references are D4RL's constants, so scores sit on the scale of published D4RL tables
    (up to the evaluation differences in the module docstring); metadata: scalar metadata of
    the file plus ``eval_note`` where the evaluation env differs from the data's.
    """

    id: str
    source: str
    path: str
    env_id: str
    env_kwargs: dict = field(default_factory=dict)
    obs_key: Optional[str] = None
    max_episode_steps: int = 1000
    ref_min_score: float = math.nan
    ref_max_score: float = math.nan
    ref_source: str = ""
    comparable_to_d4rl: bool = False
    metadata: dict = field(default_factory=dict)


_LOCOMOTION_EVAL = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
_MAZES = {"umaze": ("UMaze", 300, 700), "medium": ("Medium", 600, 1000), "large": ("Large", 800, 1000)}
_NOTE_MAZE2D = ("gymnasium-robotics PointMaze: maze centred at the origin and goal/start cells sampled per reset; "
                "D4RL maze2d uses cell coordinates and a fixed goal")
_NOTE_ANT = ("D4RL ant observations are 111-dim (6 always-zero world-body contact forces at 27:33); "
             "Ant-v5 gives 105")
_NOTE_ANTMAZE = ("D4RL antmaze observations (29-dim) include the x-y position, which AntMaze-v5 gives as "
                 "achieved_goal; the maze is centred at the origin and goal/start cells are sampled per reset")


def _d4rl_eval(dataset_id: str) -> tuple[str, dict, Optional[str], int, str]:
    """(env_id, env_kwargs, obs_key, max_episode_steps, eval_note) of a D4RL id."""
    head = dataset_id.rsplit("-", 1)[0]
    family = head.split("-", 1)[0]
    if family == "maze2d":
        size = head.split("-")[1]
        name, steps, _ = _MAZES[size]
        dense = "Dense" if head.endswith("-dense") else ""
        return (f"PointMaze_{name}{dense}-v3", {"continuing_task": True, "reset_target": False},
                "observation", steps, _NOTE_MAZE2D)
    if family == "antmaze":
        size = head.split("-")[1]
        name, _, steps = _MAZES[size]
        return f"AntMaze_{name}-v5", {"continuing_task": False}, "observation", steps, _NOTE_ANTMAZE
    return _LOCOMOTION_EVAL[family], {}, None, 1000, (_NOTE_ANT if family == "ant" else "")


def _scalar_metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: value}`` for the non-array ``metadata/<key>`` entries of a flat dict."""
    return {k[len("metadata/"):]: v for k, v in data.items()
            if k.startswith("metadata/") and not isinstance(v, np.ndarray)}


def _d4rl_info(dataset_id: str, source: str, path: str, data: Mapping[str, Any]) -> DatasetInfo:
    """DatasetInfo of a D4RL id (static table + the file's scalar metadata)."""
    env_id, env_kwargs, obs_key, steps, note = _d4rl_eval(dataset_id)
    metadata = _scalar_metadata(data)
    if note:
        metadata["eval_note"] = note
    return DatasetInfo(id=dataset_id, source=source, path=path, env_id=env_id, env_kwargs=env_kwargs,
                       obs_key=obs_key, max_episode_steps=steps, ref_min_score=REF_MIN_SCORE[dataset_id],
                       ref_max_score=REF_MAX_SCORE[dataset_id], ref_source=D4RL_REF_SOURCE,
                       comparable_to_d4rl=True, metadata=metadata)


def _generated_info(dataset_id: str, path: Path, data: Mapping[str, Any]) -> DatasetInfo:
    """DatasetInfo from a generated file's ``metadata/...`` entries (see GENERATED_METADATA_KEYS)."""
    meta = _scalar_metadata(data)
    missing = [f"metadata/{k}" for k in GENERATED_METADATA_KEYS if k not in meta]
    if missing:
        raise DatasetUnreadable(f"dataset {dataset_id!r}: {path} lacks {', '.join(missing)} (written by the "
                                f"generator); regenerate it with `bench-data generate {dataset_id}`")
    if meta["dataset_id"] != dataset_id:
        raise DatasetUnreadable(f"dataset {dataset_id!r}: {path} holds dataset {meta['dataset_id']!r} "
                                f"(metadata/dataset_id); rename the file or generate {dataset_id!r}")
    try:
        env_kwargs = json.loads(meta["env_kwargs"]) if meta["env_kwargs"] else {}
        if not isinstance(env_kwargs, dict):
            raise ValueError("not a JSON object")
        steps, ref_min, ref_max = int(meta["max_episode_steps"]), float(meta["ref_random_return"]), \
            float(meta["ref_expert_return"])
    except (TypeError, ValueError) as exc:
        raise DatasetUnreadable(f"dataset {dataset_id!r}: {path} has bad generator metadata "
                                f"({_one_line(exc)}); regenerate it with `bench-data generate {dataset_id}`") from None
    return DatasetInfo(id=dataset_id, source="generated", path=str(path), env_id=str(meta["env_id"]),
                       env_kwargs=env_kwargs, obs_key=str(meta["obs_key"]) or None, max_episode_steps=steps,
                       ref_min_score=ref_min, ref_max_score=ref_max, ref_source=GENERATED_REF_SOURCE,
                       comparable_to_d4rl=False, metadata=meta)


def _other_file_info(dataset_id: str, path: Path, data: Mapping[str, Any]) -> DatasetInfo:
    """An unknown id with a file: generator metadata when present, else no evaluation env."""
    if "metadata/env_id" in data and "metadata/dataset_id" in data:
        return _generated_info(dataset_id, path, data)
    return DatasetInfo(id=dataset_id, source="d4rl-file", path=str(path), env_id="",
                       max_episode_steps=int(data.get("metadata/max_episode_steps", 1000)),
                       ref_source="none (not a D4RL id and no generator metadata)",
                       metadata=_scalar_metadata(data))


def _minari_info(dataset_id: str, path: Path, data: Mapping[str, Any]) -> DatasetInfo:
    """DatasetInfo from a Minari dataset's metadata (eval_env_spec/env_spec, ref scores)."""
    meta = _scalar_metadata(data)
    env_id, env_kwargs, steps = minari_format.minari_env(meta)
    if steps is None:
        ends = np.flatnonzero(np.diff(np.asarray(data["episode_ids"]))) + 1
        steps = int(np.diff(np.concatenate([[0], ends, [len(data["episode_ids"])]])).max())
    has_refs = "ref_min_score" in meta and "ref_max_score" in meta
    return DatasetInfo(id=dataset_id, source="minari", path=str(path), env_id=env_id, env_kwargs=env_kwargs,
                       obs_key=data.get("obs_key"), max_episode_steps=steps,
                       ref_min_score=float(meta["ref_min_score"]) if has_refs else math.nan,
                       ref_max_score=float(meta["ref_max_score"]) if has_refs else math.nan,
                       ref_source="Minari metadata (ref_min_score/ref_max_score)" if has_refs else "none",
                       comparable_to_d4rl=False, metadata=meta)


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """A dataset in Q-learning form (float32 numpy arrays), with its description.

    observations [N, O], actions [N, A], rewards [N], next_observations [N, O],
    terminals [N] (0.0/1.0): the transitions of :func:`envs.offline.d4rl.qlearning_dataset`
    (D4RL files) or all steps (Minari). episode_returns [E] (float64): undiscounted returns of
    the complete episodes of the data. action_low / action_high [A]: the action bounds
    (``metadata/action_low``/``action_high`` of the file or Minari's action space when
    present, else [-1, 1] as in D4RL's environments).
    """

    info: DatasetInfo
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    episode_returns: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray

    @property
    def size(self) -> int:
        """Number of transitions N."""
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])


# --------------------------------------------------------------------------- loading


def _not_found_message(dataset_id: str, path: Path) -> str:
    """One line: where the id's data was looked for and how to obtain it."""
    if is_minari_id(dataset_id):
        return (f"Minari dataset {dataset_id!r} not found: no {path / minari_format.MAIN_FILE}; download it with "
                f"`minari download {dataset_id}`, copy ~/.minari/datasets/{dataset_id} to {path} {_WHERE}")
    if is_generated_id(dataset_id):
        from envs.offline.generate.specs import DATASETS

        if dataset_id not in DATASETS:   # a file of that name may exist elsewhere, but the generator cannot make it
            import difflib
            close = difflib.get_close_matches(dataset_id, list(DATASETS), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            return (f"unknown generated dataset {dataset_id!r} (no file {path}); {hint}the generator makes: "
                    f"{', '.join(DATASETS)} (`bench-data list`)")
        return (f"dataset {dataset_id!r} not found: no file {path} (expected file name {path.name}); generate it "
                f"with `bench-data generate {dataset_id}` {_WHERE}")
    if is_d4rl_id(dataset_id):
        return (f"D4RL dataset {dataset_id!r} not found: no file {path} (expected file name {path.name}); "
                f"download {d4rl_download_url(dataset_id)} and put it at {path} {_WHERE}")
    return (f"unknown dataset id {dataset_id!r} (no file {path}); valid ids: D4RL {KNOWN_FAMILIES}; generated "
            f"'<env>-<dataset>-gen' (e.g. pendulum-medium-replay-gen, from `bench-data generate <id>`); "
            f"Minari '<namespace>/<env>/<name>-v<k>' under {path.parent / 'minari'}")


def _d4rl_package_dataset(dataset_id: str) -> Optional[tuple[dict[str, Any], str]]:
    """(data, path) through the ``d4rl`` package, or None when it does not import."""
    try:
        import d4rl  # noqa: F401  (registers the D4RL gym environments)
        import gym
    except Exception:  # d4rl raises various errors without MuJoCo 2.1 binaries
        return None
    env = gym.make(dataset_id)
    data = dict(env.get_dataset())
    path = str(getattr(getattr(env, "unwrapped", env), "dataset_filepath", "") or "")
    return d4rl_format.squeeze_columns(data), path


def _read_file(dataset_id: str, path: Path, prefix: str = "") -> dict[str, Any]:
    """read_hdf5 with h5py errors turned into DatasetUnreadable."""
    try:
        return d4rl_format.read_hdf5(path, prefix=prefix)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise DatasetUnreadable(f"dataset {dataset_id!r}: cannot read {path} ({_one_line(exc)}); the file is "
                                f"truncated or not HDF5: delete it and download or generate it again") from None


def _locate(dataset_id: str, data_dir: Optional[Union[str, os.PathLike]]) -> tuple[str, Path]:
    """(source, path) of an id; DatasetNotFound when nothing provides it."""
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise DatasetNotFound(f"dataset id must be a non-empty string, got {dataset_id!r}; valid ids: "
                              f"D4RL {KNOWN_FAMILIES}; generated '<env>-<dataset>-gen'; Minari "
                              f"'<namespace>/<env>/<name>-v<k>'")
    path = dataset_path(dataset_id, data_dir)
    if is_minari_id(dataset_id):
        if (path / minari_format.MAIN_FILE).is_file():
            return "minari", path
        raise DatasetNotFound(_not_found_message(dataset_id, path))
    if path.is_file():
        if is_generated_id(dataset_id):
            return "generated", path
        return "d4rl-file", path
    raise DatasetNotFound(_not_found_message(dataset_id, path))


def _read(dataset_id: str, data_dir: Optional[Union[str, os.PathLike]], minari_obs_key: Optional[str],
          ) -> tuple[DatasetInfo, dict[str, Any]]:
    """Find and read an id's data; (info, flat data)."""
    try:
        source, path = _locate(dataset_id, data_dir)
    except DatasetNotFound:
        if not is_d4rl_id(dataset_id):
            raise
        try:
            loaded = _d4rl_package_dataset(dataset_id)
        except Exception as exc:  # the package imported but could not provide the data
            message = _not_found_message(dataset_id, dataset_path(dataset_id, data_dir))
            raise DatasetNotFound(f"{message} (the d4rl package failed too: {_one_line(exc)})") from None
        if loaded is None:
            raise
        data, package_path = loaded
        return _d4rl_info(dataset_id, "d4rl-package", package_path, data), data
    if source == "minari":
        try:
            data = minari_format.read_minari(path, obs_key=minari_obs_key)
        except (OSError, RuntimeError, KeyError) as exc:
            raise DatasetUnreadable(f"Minari dataset {dataset_id!r}: cannot read {path / minari_format.MAIN_FILE} "
                                    f"({_one_line(exc)}); download it again with `minari download {dataset_id}`"
                                    ) from None
        except ValueError as exc:
            raise DatasetUnreadable(f"Minari dataset {dataset_id!r}: {path} has the wrong layout: "
                                    f"{_one_line(exc)}") from None
        return _minari_info(dataset_id, path, data), data
    data = _read_file(dataset_id, path)
    if source == "generated":
        return _generated_info(dataset_id, path, data), data
    if is_d4rl_id(dataset_id):
        return _d4rl_info(dataset_id, "d4rl-file", str(path), data), data
    return _other_file_info(dataset_id, path, data), data


def _action_bounds(dataset_id: str, info: DatasetInfo, data: Mapping[str, Any], action_dim: int,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """[A] action bounds: file metadata, else Minari's Box space, else [-1, 1]."""
    bounds = None
    if "metadata/action_low" in data and "metadata/action_high" in data:
        bounds = (np.asarray(data["metadata/action_low"], dtype=np.float32).reshape(-1),
                  np.asarray(data["metadata/action_high"], dtype=np.float32).reshape(-1))
    elif info.source == "minari":
        bounds = minari_format.minari_action_bounds(info.metadata)
    if bounds is None:
        return -np.ones(action_dim, dtype=np.float32), np.ones(action_dim, dtype=np.float32)
    low, high = bounds
    if low.shape != (action_dim,) or high.shape != (action_dim,) or np.any(low > high):
        raise DatasetUnreadable(f"dataset {dataset_id!r}: {info.path} has action bounds low={low.tolist()} "
                                f"high={high.tolist()}, expected two [{action_dim}] arrays with low <= high")
    return low, high


def dataset_info(dataset_id: str, data_dir: Optional[Union[str, os.PathLike]] = None) -> DatasetInfo:
    """The :class:`DatasetInfo` of an id, reading only the file's metadata where possible.

    Raises :class:`DatasetNotFound` / :class:`DatasetUnreadable` as :func:`load_dataset`.
    (A Minari dataset and a D4RL id served by the ``d4rl`` package are read in full.)
    """
    try:
        source, path = _locate(dataset_id, data_dir)
    except DatasetNotFound:
        if not is_d4rl_id(dataset_id):
            raise
        return _read(dataset_id, data_dir, "observation")[0]
    if source == "minari":
        return _read(dataset_id, data_dir, "observation")[0]
    metadata = _read_file(dataset_id, path, prefix="metadata/")
    if source == "generated":
        return _generated_info(dataset_id, path, metadata)
    if is_d4rl_id(dataset_id):
        return _d4rl_info(dataset_id, "d4rl-file", str(path), metadata)
    return _other_file_info(dataset_id, path, metadata)


def load_dataset(dataset_id: str, data_dir: Optional[Union[str, os.PathLike]] = None, *,
                 minari_obs_key: Optional[str] = "observation") -> OfflineDataset:
    """Load an offline dataset by id (see the module docstring for ids and locations).

    D4RL-layout files (D4RL, generated, other) become transitions with D4RL's
    ``qlearning_dataset`` semantics (time-out rows and the last row dropped; v0 files'
    time-outs inferred from ``max_episode_steps``); Minari datasets keep every step.
    ``minari_obs_key`` picks the entry of a dict observation in a Minari dataset.

    Raises :class:`DatasetNotFound` (nothing at the expected path, unknown id) or
    :class:`DatasetUnreadable` (truncated/corrupt file, wrong layout, missing generator
    metadata), each with a one-line message naming the path.
    """
    info, data = _read(dataset_id, data_dir, minari_obs_key)
    try:
        if info.source == "minari":
            transitions = minari_format.minari_transitions(data)
        else:
            transitions = d4rl_format.qlearning_dataset(data, info.max_episode_steps)
        returns = d4rl_format.episode_returns(data, info.max_episode_steps)
    except ValueError as exc:
        raise DatasetUnreadable(f"dataset {dataset_id!r}: {info.path or 'the d4rl package data'} is not a "
                                f"D4RL-layout file: {_one_line(exc)}") from None
    low, high = _action_bounds(dataset_id, info, data, transitions["actions"].shape[1])
    return OfflineDataset(info=info, episode_returns=returns, action_low=low, action_high=high, **transitions)
