"""D4RL reference scores and the normalised score.

D4RL (Fu et al. 2020; the scores of its benchmark tables) reports a policy's undiscounted episode
return R as a normalised score

    score = 100 * (R - R_random) / (R_expert - R_random),

so that 0 is a uniform-random policy and 100 the reference expert. The reference returns
below are D4RL's published constants, typed in from ``REF_MIN_SCORE`` / ``REF_MAX_SCORE`` in
``d4rl/infos.py`` of the D4RL code release (github.com/Farama-Foundation/D4RL). Every
dataset of one environment shares its environment's pair (the v1/v2 Gym-MuJoCo ids reuse
the v0 numbers).

Public API
----------
``REF_MIN_SCORE``, ``REF_MAX_SCORE``   {D4RL dataset id: reference return}.
``reference_scores(dataset_id)``       -> (ref_min, ref_max); KeyError listing the families.
``normalised_score(returns, ref_min, ref_max)``  the formula above, elementwise.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np

__all__ = [
    "ANTMAZE_DATASETS",
    "LOCOMOTION_DATASETS",
    "LOCOMOTION_ENVS",
    "MAZE2D_SIZES",
    "REF_MAX_SCORE",
    "REF_MIN_SCORE",
    "normalised_score",
    "reference_scores",
]

LOCOMOTION_ENVS = ("hopper", "halfcheetah", "walker2d", "ant")
LOCOMOTION_DATASETS = ("random", "medium", "expert", "medium-replay", "medium-expert", "full-replay")
MAZE2D_SIZES = ("umaze", "medium", "large")
ANTMAZE_DATASETS = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")

# ---- D4RL reference returns, from d4rl/infos.py (REF_MIN_SCORE / REF_MAX_SCORE) ----------
# Gym-MuJoCo locomotion: the v0 entries; the v1/v2 ids reuse them.
_LOCOMOTION_REF = {  # env: (random return, expert return)
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
# Maze2D v1, sparse reward (maze2d-<size>-v1) and dense reward (maze2d-<size>-dense-v1).
_MAZE2D_REF = {  # size: (random return, expert return)
    "umaze": (23.85, 161.86),
    "medium": (13.13, 277.39),
    "large": (6.7, 273.99),
}
_MAZE2D_DENSE_REF = {
    "umaze": (68.537689, 193.66285642381482),
    "medium": (44.264742, 297.4552547777125),
    "large": (30.569041, 303.4857382709002),
}
# AntMaze v0 and v2: success rate, so the range is [0, 1] for every dataset.
_ANTMAZE_REF = (0.0, 1.0)


def _build_tables() -> tuple[dict[str, float], dict[str, float]]:
    """Expand the per-environment pairs above to one entry per D4RL dataset id."""
    pairs: dict[str, tuple[float, float]] = {}
    for env, pair in _LOCOMOTION_REF.items():
        for name in LOCOMOTION_DATASETS:
            for version in ("v1", "v2"):
                pairs[f"{env}-{name}-{version}"] = pair
    for size in MAZE2D_SIZES:
        pairs[f"maze2d-{size}-v1"] = _MAZE2D_REF[size]
        pairs[f"maze2d-{size}-dense-v1"] = _MAZE2D_DENSE_REF[size]
    for name in ANTMAZE_DATASETS:
        for version in ("v0", "v2"):
            pairs[f"antmaze-{name}-{version}"] = _ANTMAZE_REF
    return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}


REF_MIN_SCORE, REF_MAX_SCORE = _build_tables()
"""{D4RL dataset id: return of the random reference policy / of the expert reference}."""

KNOWN_FAMILIES = (
    "{" + ",".join(LOCOMOTION_ENVS) + "}-{" + ",".join(LOCOMOTION_DATASETS) + "}-v{1,2}, "
    "maze2d-{" + ",".join(MAZE2D_SIZES) + "}[-dense]-v1, "
    "antmaze-{" + ",".join(ANTMAZE_DATASETS) + "}-v{0,2}"
)
"""The D4RL ids of :data:`REF_MIN_SCORE`, written compactly for error messages."""


def reference_scores(dataset_id: str) -> tuple[float, float]:
    """``(ref_min, ref_max)`` of a D4RL dataset id; ``KeyError`` (one line) for other ids."""
    try:
        return REF_MIN_SCORE[dataset_id], REF_MAX_SCORE[dataset_id]
    except KeyError:
        raise KeyError(f"no D4RL reference scores for {dataset_id!r}; known ids: {KNOWN_FAMILIES}") from None


def normalised_score(returns: Union[float, np.ndarray], ref_min: float, ref_max: float) -> Union[float, np.ndarray]:
    """D4RL normalised score ``100 * (R - ref_min) / (ref_max - ref_min)`` (Fu et al. 2020).

    ``returns``: a return or an array of returns (any shape); the result has the same shape
    (a python float for a scalar input). ``ValueError`` (one line) when ``ref_max == ref_min``
    or either reference is not finite (the scale is undefined).
    """
    ref_min, ref_max = float(ref_min), float(ref_max)
    if not (math.isfinite(ref_min) and math.isfinite(ref_max)) or ref_max == ref_min:
        raise ValueError(f"normalised score needs finite ref_min != ref_max, got ref_min={ref_min}, "
                         f"ref_max={ref_max}")
    score = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
    return float(score) if score.ndim == 0 else score
