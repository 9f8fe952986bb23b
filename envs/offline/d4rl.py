"""The D4RL HDF5 layout: reading a file, Q-learning transitions, episodes.

D4RL (Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven Reinforcement Learning", and its
code release) stores one dataset per HDF5 file as flat, step-aligned arrays::

    observations   [N, O]   observation o_i before step i
    actions        [N, A]   action a_i taken at o_i
    rewards        [N]      r_i (some files store [N, 1])
    terminals      [N]      1 where step i ended the episode in a true terminal state
    timeouts       [N]      1 where step i was cut by the time limit (absent in v0 files)
    infos/...      [N, ...] per-step extras (qpos, qvel, goal, ...)
    metadata/...            scalars, strings and policy parameters

Episodes follow each other in the arrays; row i+1 is the next observation of step i unless
step i ends an episode. Only numpy and h5py are used, and h5py is imported inside the
functions that need it, so importing this module is cheap.

Public API
----------
``read_hdf5(path, prefix="")``              every dataset of a file by its flat key.
``check_layout(data)``                      ValueError naming a missing key or length mismatch.
``time_out_flags(terminals, max_episode_steps)``  D4RL's step-counter time-outs for v0 data.
``qlearning_dataset(data, max_episode_steps=None)``  (s, a, r, s', terminal) transitions.
``split_episodes(data, max_episode_steps=None)``     list of per-episode dicts.
``episode_returns(data, max_episode_steps=None)``    returns of the complete episodes.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import numpy as np

__all__ = [
    "FLAG_KEYS",
    "REQUIRED_KEYS",
    "check_layout",
    "episode_bounds",
    "episode_returns",
    "qlearning_dataset",
    "read_hdf5",
    "split_episodes",
    "squeeze_columns",
    "time_out_flags",
]

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
"""Keys every D4RL-layout dataset must hold."""

FLAG_KEYS = ("rewards", "terminals", "timeouts")
"""Per-step scalar keys: stored ``[N]`` or ``[N, 1]``, always returned ``[N]``."""


# --------------------------------------------------------------------------- reading


def _python_value(value: Any) -> Any:
    """A scalar HDF5 value as a python value: bytes -> str, numpy scalar -> int/float/bool."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _array_value(value: np.ndarray) -> np.ndarray:
    """A non-scalar HDF5 value; byte-string arrays are decoded to ``str`` arrays."""
    if value.dtype.kind == "S":
        return value.astype(str)
    if value.dtype.kind == "O" and value.size and isinstance(value.flat[0], bytes):
        return np.vectorize(lambda b: b.decode("utf-8", errors="replace"), otypes=[object])(value)
    return value


def squeeze_columns(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with the per-step scalars ``rewards``/``terminals``/``timeouts``
    stored ``[N, 1]`` squeezed to ``[N]``; every other entry is passed through unchanged."""
    out = dict(data)
    for key in FLAG_KEYS:
        value = out.get(key)
        if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[1] == 1:
            out[key] = value[:, 0]
    return out


def read_hdf5(path: Union[str, os.PathLike], prefix: str = "") -> dict[str, Any]:
    """Read every dataset of a D4RL-layout HDF5 file (only the keys starting with ``prefix``,
    e.g. ``"metadata/"``, when it is given).

    Returns ``{flat key: value}`` with keys as HDF5 paths (``"observations"``,
    ``"infos/qpos"``, ``"metadata/algorithm"``, ...). Arrays come back as numpy arrays in
    their stored dtype (byte strings decoded to ``str``); scalar datasets (metadata numbers
    and strings) as python values (``int``/``float``/``bool``/``str``). ``rewards``,
    ``terminals`` and ``timeouts`` stored ``[N, 1]`` are squeezed to ``[N]``.

    Raises ``OSError`` (from h5py) when the file is missing, truncated or not HDF5; the
    layout is not checked here (see :func:`check_layout`).
    """
    import h5py

    data: dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.startswith(prefix):
            value = obj[()]
            data[name] = _array_value(value) if isinstance(value, np.ndarray) else _python_value(value)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return squeeze_columns(data)


def check_layout(data: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) unless ``data`` has the D4RL layout.

    Checked: the keys of :data:`REQUIRED_KEYS` are present; ``observations`` is ``[N, O]``;
    ``actions`` is ``[N, A]``; ``rewards``, ``terminals`` and ``timeouts`` (if present) are
    ``[N]`` or ``[N, 1]``; ``N >= 2`` (one transition needs two rows).
    """
    data = squeeze_columns(data)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)} (a D4RL-layout file needs "
                         f"{', '.join(REQUIRED_KEYS)}; present: {', '.join(sorted(data)) or 'none'})")
    shapes = {k: np.shape(data[k]) for k in (*REQUIRED_KEYS, "timeouts") if k in data}
    if len(shapes["observations"]) != 2:
        raise ValueError(f"observations must be [N, O], got shape {shapes['observations']}")
    if len(shapes["actions"]) != 2:
        raise ValueError(f"actions must be [N, A], got shape {shapes['actions']}")
    for key in FLAG_KEYS:
        if key in shapes and len(shapes[key]) != 1:
            raise ValueError(f"{key} must be [N], got shape {shapes[key]}")
    n = shapes["observations"][0]
    if any(shape[0] != n for shape in shapes.values()):
        lengths = ", ".join(f"{k}={s[0]}" for k, s in shapes.items())
        raise ValueError(f"mismatched lengths: {lengths}")
    if n < 2:
        raise ValueError(f"observations has {n} row(s); at least 2 are needed for one transition")


# --------------------------------------------------------------------------- episodes


def time_out_flags(terminals: np.ndarray, max_episode_steps: int) -> np.ndarray:
    """Time-out flags ``[N]`` (bool) for data without a ``timeouts`` key (D4RL v0 files).

    D4RL's ``qlearning_dataset`` helper (Fu et al. 2020, code release ``d4rl/__init__.py``)
    keeps an episode step counter ``c``, starting at 0, and walks the rows in order:

    * row i is a time-out when ``c == max_episode_steps - 1``; the counter is then reset to 0
      (the row is skipped by ``qlearning_dataset``, so it is not counted);
    * otherwise, when ``terminals[i]`` is set the counter is reset to 0 and then, like every
      kept row, incremented: the first row after a terminal is counted as step 1, so an
      episode that follows a terminal reaches its time-out one row earlier than one that
      follows a time-out;
    * a row that is both terminal and at the limit is a time-out.

    This function reproduces that rule exactly (one loop iteration per episode).
    ``ValueError`` if ``max_episode_steps < 1``.
    """
    if max_episode_steps is None or int(max_episode_steps) < 1:
        raise ValueError(f"max_episode_steps must be an integer >= 1, got {max_episode_steps!r}")
    limit_step = int(max_episode_steps) - 1
    term = np.asarray(terminals).astype(bool).reshape(-1)
    n = term.shape[0]
    flags = np.zeros(n, dtype=bool)
    term_idx = np.flatnonzero(term)
    start, counter = 0, 0  # counter value at row `start`
    while start < n:
        # row at which the counter reaches max_episode_steps - 1 (never, if already past it)
        limit_row = start + (limit_step - counter) if counter <= limit_step else n
        k = np.searchsorted(term_idx, start)
        next_term = int(term_idx[k]) if k < term_idx.size else n
        if limit_row < n and limit_row <= next_term:
            flags[limit_row] = True
            start, counter = limit_row + 1, 0
        elif next_term < n:
            start, counter = next_term + 1, 1
        else:
            break
    return flags


def _ends(data: Mapping[str, Any], max_episode_steps: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """(terminals, timeouts) as bool ``[N]``; time-outs inferred for data without them."""
    terminals = np.asarray(data["terminals"]).astype(bool).reshape(-1)
    if "timeouts" in data:
        timeouts = np.asarray(data["timeouts"]).astype(bool).reshape(-1)
    elif max_episode_steps is not None:
        timeouts = time_out_flags(terminals, max_episode_steps)
    else:
        raise ValueError("the data has no 'timeouts' key (D4RL v0 layout): pass max_episode_steps "
                         "(the environment's time limit) to find where episodes were cut")
    return terminals, timeouts


def qlearning_dataset(data: Mapping[str, Any], max_episode_steps: Optional[int] = None) -> dict[str, np.ndarray]:
    """Transitions ``(s_i, a_i, r_i, s_{i+1}, terminal_i)`` with D4RL's semantics.

    Follows the ``qlearning_dataset`` helper of D4RL (Fu et al. 2020; default
    ``terminate_on_end=False``):

    * rows ``i = 0 .. N-2`` are candidates; the last row is dropped (no next observation);
    * a row whose time-out flag is set is dropped: it ends an episode by the time limit, so
      row ``i+1`` is the first observation of the next episode, not its successor;
    * terminal rows are kept with ``terminal = 1`` (``s_{i+1}`` is then unused by a
      bootstrapped target);
    * time-out flags come from ``data["timeouts"]`` when present; otherwise (v0 files) from
      D4RL's step counter, see :func:`time_out_flags` (needs ``max_episode_steps``).

    A stored ``next_observations`` array is ignored, as in D4RL.

    Input: a mapping with ``observations [N, O]``, ``actions [N, A]``, ``rewards [N]``,
    ``terminals [N]`` and optionally ``timeouts [N]`` (the last three may be ``[N, 1]``).
    Returns float32 arrays ``observations [M, O]``, ``actions [M, A]``,
    ``next_observations [M, O]``, ``rewards [M]``, ``terminals [M]`` (0.0/1.0), where
    ``M = N - 1 - (number of time-outs among rows 0..N-2)``.
    Raises ``ValueError`` for a bad layout or v0 data without ``max_episode_steps``.
    """
    data = squeeze_columns(data)
    check_layout(data)
    terminals, timeouts = _ends(data, max_episode_steps)
    n = terminals.shape[0]
    rows = np.flatnonzero(~timeouts[: n - 1])
    observations = np.asarray(data["observations"])
    return {
        "observations": observations[rows].astype(np.float32),
        "actions": np.asarray(data["actions"])[rows].astype(np.float32),
        "next_observations": observations[rows + 1].astype(np.float32),
        "rewards": np.asarray(data["rewards"]).reshape(-1)[rows].astype(np.float32),
        "terminals": terminals[rows].astype(np.float32),
    }


def episode_bounds(data: Mapping[str, Any], max_episode_steps: Optional[int] = None) -> list[tuple[int, int, bool]]:
    """Episodes as ``(start, stop, complete)`` row ranges ``[start, stop)``.

    An episode ends at (and includes) a row with ``terminals | timeouts`` set; rows after
    the last such row form a final partial episode with ``complete=False`` (a file cut
    mid-episode). Time-outs of v0 data are inferred as in :func:`time_out_flags`.
    """
    terminals, timeouts = _ends(data, max_episode_steps)
    n = terminals.shape[0]
    ends = np.flatnonzero(terminals | timeouts) + 1
    starts = np.concatenate([[0], ends])
    bounds = [(int(a), int(b), True) for a, b in zip(starts[:-1], ends)]
    if starts[-1] < n:
        bounds.append((int(starts[-1]), n, False))
    return bounds


def split_episodes(data: Mapping[str, Any], max_episode_steps: Optional[int] = None) -> list[dict[str, Any]]:
    """Cut the flat arrays into episodes at ``terminals | timeouts``.

    Each episode is a dict of every per-step array of ``data`` (the entries with ``N`` rows
    outside ``metadata/``: ``observations [T, O]``, ``actions [T, A]``, ``rewards [T]``,
    ``terminals [T]``, ``timeouts [T]``, ``infos/...``) sliced to its rows, plus
    ``"complete"``: True when it ends with a terminal or a time-out, False for the final
    partial episode (kept, flagged). v0 data (no ``timeouts``) needs ``max_episode_steps``;
    its inferred flags are added as ``"timeouts"``.
    """
    terminals, timeouts = _ends(data, max_episode_steps)
    n = terminals.shape[0]
    data = squeeze_columns(data)
    per_step = {k: v for k, v in data.items()
                if not k.startswith("metadata/") and isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n}
    per_step["terminals"], per_step["timeouts"] = terminals, timeouts
    episodes = []
    for start, stop, complete in episode_bounds(data, max_episode_steps):
        episode = {k: v[start:stop] for k, v in per_step.items()}
        episode["complete"] = complete
        episodes.append(episode)
    return episodes


def episode_returns(data: Mapping[str, Any], max_episode_steps: Optional[int] = None) -> np.ndarray:
    """Undiscounted returns ``[E]`` (float64) of the complete episodes, in file order.

    An episode is complete when it ends with a terminal or a time-out row (see
    :func:`episode_bounds`); its return sums the rewards of all its rows, the time-out row
    included. The final partial episode of a file cut mid-episode is left out, since its
    return is not comparable with a full episode's. Empty when no episode is complete.
    """
    rewards = np.asarray(data["rewards"], dtype=np.float64).reshape(-1)
    bounds = episode_bounds(data, max_episode_steps)
    if not bounds:
        return np.zeros(0, dtype=np.float64)
    sums = np.add.reduceat(rewards, [start for start, _, _ in bounds])
    return sums[np.array([complete for _, _, complete in bounds], dtype=bool)]
