"""Robust aggregates over seeds with rliable: IQM, optimality gap, stratified bootstrap CIs,
performance profiles.

The statistics are those of Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS 2021), computed by their library ``rliable``:

* **IQM** (interquartile mean): the mean of the middle 50 % of the values (25 % trimmed from
  each end, ``rliable.metrics.aggregate_iqm``); robust to the few seeds that fail outright.
* **optimality gap** to a target γ: ``mean(max(γ − score, 0))`` over seeds
  (``rliable.metrics.aggregate_optimality_gap``). For a lower-is-better metric (error) the
  score is ``−value`` and γ is ``−target``, so the gap is ``mean(max(value − target, 0))``:
  how far, on average, seeds stay above the target.
* **stratified bootstrap CI** (``get_interval_estimates`` of rliable): percentile
  interval of the statistic over ``reps`` resamples of the seeds (with replacement).
* **performance profile** (``create_performance_profile`` of rliable): the fraction of
  seeds whose value is better than τ, for each τ on a grid, with bootstrap CIs.

Determinism: rliable's stratified bootstrap draws its resampling indices from NumPy's *global*
generator (``np.random.choice``), whatever ``random_state`` it is given. Every function here
therefore seeds that global generator with ``seed`` for the duration of the call and restores
its previous state afterwards, so the same values give the same interval on every machine and
the caller's random streams are untouched.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterator, Mapping, Sequence

import numpy as np

BOOTSTRAP_REPS = 2000
"""Bootstrap resamples per interval (rliable's default is 50,000; 2,000 keeps a table of many
cells to seconds and moves a 95 % interval's end by well under its width)."""
PROFILE_REPS = 1000
"""Bootstrap resamples per performance-profile band (a figure; each resample evaluates every τ)."""
BOOTSTRAP_SEED = 0
"""Seed of every bootstrap draw (deterministic tables)."""
CONFIDENCE = 0.95
"""Coverage of the bootstrap intervals."""


def _rliable():
    """``(library, metrics)`` of rliable, imported on first use (it pulls in arch and seaborn). Its progress lines
    ("Calculating estimates for …", absl logging at INFO) are silenced: under a Hydra sweep's logging they would
    print beside the tables."""
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rliable import library, metrics
    logging.getLogger("absl").setLevel(logging.WARNING)
    return library, metrics


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.RandomState]:
    """Seed NumPy's global generator (which rliable's bootstrap draws from) for a block; restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch: random_state -> generator
            yield np.random.RandomState(seed)
    finally:
        np.random.set_state(state)


def _column(values: Sequence[float]) -> np.ndarray:
    """Finite values as rliable's ``(num_runs, num_tasks=1)`` score matrix."""
    x = np.asarray(values, dtype=float).reshape(-1)
    return x[np.isfinite(x)].reshape(-1, 1)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean of the finite ``values`` (``rliable.metrics.aggregate_iqm``); NaN for none."""
    x = _column(values)
    if not len(x):
        return math.nan
    return float(_rliable()[1].aggregate_iqm(x))


def optimality_gap(values: Sequence[float], target: float, lower_is_better: bool = True) -> float:
    """Mean shortfall of the seeds from ``target`` (``rliable.metrics.aggregate_optimality_gap``).

    Lower is better: ``mean(max(value − target, 0))``; higher is better:
    ``mean(max(target − value, 0))``. Same units as ``values``; NaN for no finite value.
    """
    x = _column(values)
    if not len(x):
        return math.nan
    sign = -1.0 if lower_is_better else 1.0
    return float(_rliable()[1].aggregate_optimality_gap(sign * x, sign * target))


STATISTICS = {
    "mean": lambda x: float(np.mean(x)),
    "iqm": lambda x: float(_rliable()[1].aggregate_iqm(x)),
}
"""Statistics with a bootstrap CI (name -> function of a ``(n, 1)`` score matrix)."""


def bootstrap_ci(values: Sequence[float], statistic: str = "iqm", *, reps: int = BOOTSTRAP_REPS,
                 seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(point, low, high)``: the statistic of the finite ``values`` and its percentile
    stratified-bootstrap interval (``get_interval_estimates`` of rliable).

    ``statistic`` is ``"iqm"`` or ``"mean"``. One value gives ``(value, value, value)``; none gives
    NaNs. Raises ``ValueError`` for an unknown statistic.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; valid: {', '.join(STATISTICS)}")
    x = _column(values)
    if not len(x):
        return math.nan, math.nan, math.nan
    fn = STATISTICS[statistic]
    point = fn(x)
    if len(x) == 1 or np.all(x == x[0]):
        return point, point, point
    library, _ = _rliable()
    with seeded(seed) as rs:
        _, intervals = library.get_interval_estimates({"x": x}, lambda s: np.array([fn(s)]), reps=reps,
                                                      confidence_interval_size=confidence, random_state=rs)
    low, high = intervals["x"][:, 0]
    return point, float(low), float(high)


def gap_ci(values: Sequence[float], target: float, lower_is_better: bool = True, *, reps: int = BOOTSTRAP_REPS,
           seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(gap, low, high)``: :func:`optimality_gap` and its stratified-bootstrap interval."""
    x = _column(values)
    if not len(x):
        return math.nan, math.nan, math.nan
    sign = -1.0 if lower_is_better else 1.0
    library, metrics = _rliable()
    fn = lambda s: np.array([metrics.aggregate_optimality_gap(sign * s, sign * target)])  # noqa: E731
    point = float(fn(x)[0])
    if len(x) == 1 or np.all(x == x[0]):
        return point, point, point
    with seeded(seed) as rs:
        _, intervals = library.get_interval_estimates({"x": x}, fn, reps=reps, confidence_interval_size=confidence,
                                                      random_state=rs)
    low, high = intervals["x"][:, 0]
    return point, float(low), float(high)


def performance_profile(groups: Mapping[str, Sequence[float]], taus: Sequence[float], lower_is_better: bool = True,
                        *, reps: int = PROFILE_REPS, seed: int = BOOTSTRAP_SEED,
                        confidence: float = CONFIDENCE) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per group: ``(fraction, low, high)`` arrays over ``taus`` — the fraction of seeds whose value
    is better than τ (below τ when ``lower_is_better``, else above) and its bootstrap interval
    (``create_performance_profile`` of rliable). Groups without finite values are left out."""
    library, _ = _rliable()
    sign = -1.0 if lower_is_better else 1.0
    scores = {k: sign * _column(v) for k, v in groups.items() if len(_column(v))}
    if not scores:
        return {}
    with seeded(seed):
        fractions, cis = library.create_performance_profile(scores, sign * np.asarray(taus, dtype=float),
                                                            use_score_distribution=True, reps=reps,
                                                            confidence_interval_size=confidence)
    return {k: (np.asarray(fractions[k]), np.asarray(cis[k][0]), np.asarray(cis[k][1])) for k in scores}
