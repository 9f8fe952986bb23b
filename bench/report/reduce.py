"""Named reductions: pure functions of the tidy frame (see :mod:`bench.report.collect`).

Conventions (TPO paper (Kaddour 2026) §3 for final values and steps to threshold; docs/paper-map.md §6):

* a *seed* is the pair ``(run_id, seed)`` so that seeds of different runs pooled in one
  cell stay distinct;
* **final** = the value at the last logged step of each seed;
* **best** = the minimum (``lower_is_better``) or maximum over steps of each seed;
* **at step** = the value at the first logged step at or after a given step (e.g. "error at
  episode 400"); a seed whose record ends before that step has no value there;
* **steps to threshold** = the first logged step whose *seed-mean* value is strictly
  below the threshold; ``None`` when never (rendered "−");
* **mean ± s.e.** over seeds: s.e. = sample standard deviation (``ddof=1``) / √n;
  NaN when n < 2;
* **spread** = per-seed min / median / max and the fraction of seeds strictly below a
  threshold (outcomes are often bimodal: a seed solves the task or it does not);
* **iqm** = interquartile mean (the mean of the middle 50 % of the seeds), with stratified
  bootstrap confidence intervals of the IQM and of the mean: computed by rliable
  (:mod:`bench.report.robust`; Agarwal et al. 2021), a robust alternative to the mean.

Values logged as ``null`` (non-finite) are ignored by every reduction; runs that stopped
on a NaN carry status ``nan`` and are filtered out by :func:`usable` before reducing.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from bench.report import robust as RB

SEED = ["run_id", "seed"]


def usable(tidy: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of completed runs for ``metric`` with a finite value."""
    rows = tidy[(tidy["metric"] == metric) & (tidy["status"] == "completed")]
    return rows[np.isfinite(rows["value"].astype(float))]


def _groupby(frame: pd.DataFrame, keys: Sequence[str]):
    return frame.groupby(list(keys), observed=True, sort=True, dropna=False)


def per_seed_final(tidy: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """``by + [run_id, seed, value]``: each seed's value at its last logged step."""
    rows = usable(tidy, metric).sort_values("step")
    last = _groupby(rows, [*by, *SEED]).tail(1)
    return last[[*by, *SEED, "value"]].reset_index(drop=True)


def per_seed_best(tidy: pd.DataFrame, by: Sequence[str], metric: str, lower_is_better: bool = True) -> pd.DataFrame:
    """``by + [run_id, seed, value]``: each seed's best value over all steps."""
    rows = usable(tidy, metric)
    agg = "min" if lower_is_better else "max"
    best = _groupby(rows, [*by, *SEED])["value"].agg(agg)
    return best.reset_index()[[*by, *SEED, "value"]]


def per_seed_at_step(tidy: pd.DataFrame, by: Sequence[str], metric: str, step: int) -> pd.DataFrame:
    """``by + [run_id, seed, value]``: each seed's value at the first logged step ``>= step``
    (seeds that logged nothing from ``step`` on are left out)."""
    rows = usable(tidy, metric)
    rows = rows[rows["step"] >= step].sort_values("step")
    first = _groupby(rows, [*by, *SEED]).head(1)
    return first[[*by, *SEED, "value"]].reset_index(drop=True)


def standard_error(values: Sequence[float]) -> float:
    """std (ddof=1) / √n; NaN for fewer than two values."""
    x = np.asarray(values, dtype=float)
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) >= 2 else math.nan


def mean_se(per_seed: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``by + [mean, se, n]`` over seeds (s.e. with ddof=1, see :func:`standard_error`)."""
    grouped = _groupby(per_seed, by)["value"]
    out = grouped.agg(mean="mean", n="count").reset_index()
    out["se"] = grouped.agg(standard_error).to_numpy()
    return out[[*by, "mean", "se", "n"]]


def seed_mean_curve(tidy: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """``by + [step, mean, se, n]``: the learning curve averaged over seeds at each step."""
    rows = usable(tidy, metric)
    grouped = _groupby(rows, [*by, "step"])["value"]
    out = grouped.agg(mean="mean", n="count").reset_index()
    out["se"] = grouped.agg(standard_error).to_numpy()
    return out[[*by, "step", "mean", "se", "n"]]


def first_step_below(curve: pd.DataFrame, threshold: float) -> Optional[int]:
    """First ``step`` of a (step, mean) curve with ``mean < threshold``; ``None`` if never."""
    below = curve.loc[curve["mean"] < threshold, "step"]
    return int(below.min()) if len(below) else None


def steps_to_threshold(tidy: pd.DataFrame, by: Sequence[str], metric: str, threshold: float) -> pd.DataFrame:
    """``by + [steps, n]``: first step whose seed-mean value is below ``threshold`` (None = never).

    ``by`` must name at least one column; ``n`` counts the seeds behind the curve.
    """
    curve = seed_mean_curve(tidy, by, metric)
    seeds = usable(tidy, metric)[[*by, *SEED]].drop_duplicates()
    counts = {k if isinstance(k, tuple) else (k,): int(v) for k, v in _groupby(seeds, by).size().items()}
    rows = []
    for key, group in _groupby(curve, by):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "steps": first_step_below(group, threshold), "n": counts.get(key, 0)})
    out = pd.DataFrame(rows, columns=[*by, "steps", "n"])
    out["steps"] = pd.Series([None if s is None or s != s else int(s) for s in out["steps"]], dtype=object)
    return out


def spread(per_seed: pd.DataFrame, by: Sequence[str], threshold: Optional[float] = None) -> pd.DataFrame:
    """``by + [min, median, max, n, n_below, frac_below]`` over seeds (below = strictly < threshold)."""
    grouped = _groupby(per_seed, by)["value"]
    out = grouped.agg(min="min", median="median", max="max", n="count").reset_index()
    if threshold is None:
        out["n_below"], out["frac_below"] = pd.NA, math.nan
    else:
        out["n_below"] = grouped.agg(lambda v: int((v < threshold).sum())).to_numpy()
        out["frac_below"] = out["n_below"] / out["n"]
    return out


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (25 % trimmed from each end; rliable's ``aggregate_iqm``); NaN for no values."""
    return RB.iqm(values)


def robust(per_seed: pd.DataFrame, by: Sequence[str], reps: int = RB.BOOTSTRAP_REPS,
           seed: int = RB.BOOTSTRAP_SEED, intervals: Sequence[str] = ("iqm", "mean")) -> pd.DataFrame:
    """``by + [iqm, iqm_low, iqm_high, mean_low, mean_high, median]`` over seeds.

    ``*_low``/``*_high`` bound the 95 % stratified-bootstrap interval (``reps`` resamples,
    seeded with ``seed``: the same values always give the same interval) of the statistics named
    in ``intervals`` (the others' bounds are NaN: each interval costs ``reps`` evaluations).
    """
    rows = []
    nan3 = (math.nan, math.nan, math.nan)
    for key, group in _groupby(per_seed, by)["value"]:
        key = key if isinstance(key, tuple) else (key,)
        values = group.to_numpy(dtype=float)
        _, low, high = RB.bootstrap_ci(values, "iqm", reps=reps, seed=seed) if "iqm" in intervals else nan3
        point = RB.iqm(values)
        _, mean_low, mean_high = RB.bootstrap_ci(values, "mean", reps=reps, seed=seed) if "mean" in intervals \
            else nan3
        rows.append({**dict(zip(by, key)), "iqm": point, "iqm_low": low, "iqm_high": high,
                     "mean_low": mean_low, "mean_high": mean_high, "median": float(np.median(values))})
    return pd.DataFrame(rows, columns=[*by, "iqm", "iqm_low", "iqm_high", "mean_low", "mean_high", "median"])


def optimality_gap(per_seed: pd.DataFrame, by: Sequence[str], target: float, lower_is_better: bool = True,
                   reps: int = RB.BOOTSTRAP_REPS, seed: int = RB.BOOTSTRAP_SEED) -> pd.DataFrame:
    """``by + [gap, gap_low, gap_high]``: rliable's optimality gap of the seeds to ``target``
    (``mean(max(value − target, 0))`` when lower is better) with its 95 % bootstrap interval."""
    rows = []
    for key, group in _groupby(per_seed, by)["value"]:
        key = key if isinstance(key, tuple) else (key,)
        gap, low, high = RB.gap_ci(group.to_numpy(dtype=float), target, lower_is_better, reps=reps, seed=seed)
        rows.append({**dict(zip(by, key)), "gap": gap, "gap_low": low, "gap_high": high})
    return pd.DataFrame(rows, columns=[*by, "gap", "gap_low", "gap_high"])


def per_seed_mean(tidy: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """``by + [run_id, seed, value]``: each seed's mean over all its logged steps
    (e.g. the misalignment averaged over training)."""
    rows = usable(tidy, metric)
    mean = _groupby(rows, [*by, *SEED])["value"].mean().reset_index()
    return mean[[*by, *SEED, "value"]]


# -- registry used by table specs -------------------------------------------------------
PerSeed = Callable[[pd.DataFrame, Sequence[str], str, bool], pd.DataFrame]

PER_SEED: dict[str, PerSeed] = {
    "final": lambda tidy, by, metric, lower: per_seed_final(tidy, by, metric),
    "best": per_seed_best,
    "mean_over_steps": lambda tidy, by, metric, lower: per_seed_mean(tidy, by, metric),
}
"""Reductions that give one value per seed (then summarised as mean ± s.e. and spread)."""

REDUCTIONS = (*PER_SEED, "at_step", "steps_to_threshold")
"""All reduction names a :class:`bench.report.tables.TableSpec` may name (``at_step`` takes the
spec's ``at_step``; ``steps_to_threshold`` its ``threshold``)."""
