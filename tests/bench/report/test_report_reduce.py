"""Named reductions against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.report import reduce as R

BY = ["algorithm.name"]


def _rows(run, algo, status, seed, values, metric="m"):
    return [{"run_id": run, "status": status, "algorithm.name": algo, "seed": seed, "step": step,
             "metric": metric, "value": v} for step, v in enumerate(values)]


@pytest.fixture
def tidy() -> pd.DataFrame:
    """Algorithm a: 2 seeds × 4 steps (last value of seed 0 is null); b: 3 seeds; a failed run to ignore."""
    rows = (_rows("r1", "a", "completed", 0, [0.5, 0.2, 0.1, math.nan])
            + _rows("r1", "a", "completed", 1, [0.7, 0.05, 0.3])
            + _rows("r2", "b", "completed", 0, [5.0, 1.0])
            + _rows("r2", "b", "completed", 1, [5.0, 2.0])
            + _rows("r2", "b", "completed", 2, [5.0, 3.0])
            + _rows("r3", "a", "failed", 0, [0.0, 0.0, 0.0])
            + _rows("r1", "a", "completed", 0, [9.0, 9.0, 9.0], metric="other"))
    return pd.DataFrame(rows)


def _by_algo(frame: pd.DataFrame, col: str) -> dict:
    return dict(zip(frame["algorithm.name"], frame[col]))


def test_final_is_last_finite_step_per_seed(tidy):
    per_seed = R.per_seed_final(tidy, BY, "m")
    a = per_seed[per_seed["algorithm.name"] == "a"].sort_values("seed")["value"].tolist()
    assert a == [0.1, 0.3]  # null at step 3 ignored; failed run r3 ignored
    assert sorted(per_seed[per_seed["algorithm.name"] == "b"]["value"]) == [1.0, 2.0, 3.0]


def test_mean_and_standard_error_use_ddof_1(tidy):
    stats = R.mean_se(R.per_seed_final(tidy, BY, "m"), BY)
    assert _by_algo(stats, "mean") == pytest.approx({"a": 0.2, "b": 2.0})
    assert _by_algo(stats, "se") == pytest.approx({"a": 0.1, "b": 1 / math.sqrt(3)})
    assert _by_algo(stats, "n") == {"a": 2, "b": 3}


def test_standard_error_of_one_value_is_nan():
    assert math.isnan(R.standard_error([1.0]))
    assert R.standard_error([1.0, 3.0]) == pytest.approx(1.0)


def test_best_per_seed(tidy):
    low = R.mean_se(R.per_seed_best(tidy, BY, "m", lower_is_better=True), BY)
    high = R.mean_se(R.per_seed_best(tidy, BY, "m", lower_is_better=False), BY)
    assert _by_algo(low, "mean")["a"] == pytest.approx((0.1 + 0.05) / 2)
    assert _by_algo(high, "mean")["a"] == pytest.approx((0.5 + 0.7) / 2)


def test_seed_mean_curve(tidy):
    curve = R.seed_mean_curve(tidy, BY, "m")
    a = curve[curve["algorithm.name"] == "a"]
    assert a["mean"].tolist() == pytest.approx([0.6, 0.125, 0.2])


@pytest.mark.parametrize("threshold, expected", [(0.15, 1), (0.7, 0), (0.1, None), (0.125, None)])
def test_steps_to_threshold_uses_seed_mean_and_strict_below(tidy, threshold, expected):
    out = R.steps_to_threshold(tidy, BY, "m", threshold)
    assert _by_algo(out, "steps")["a"] == expected
    assert _by_algo(out, "n")["a"] == 2


def test_steps_to_threshold_is_not_per_seed_minimum(tidy):
    # seed 1 of `a` is below 0.1 at step 1, but the seed mean never is
    assert _by_algo(R.steps_to_threshold(tidy, BY, "m", 0.1), "steps")["a"] is None


def test_spread_and_fraction_below(tidy):
    out = R.spread(R.per_seed_final(tidy, BY, "m"), BY, threshold=2.5)
    b = out[out["algorithm.name"] == "b"].iloc[0]
    assert (b["min"], b["median"], b["max"], b["n"], b["n_below"]) == (1.0, 2.0, 3.0, 3, 2)
    assert b["frac_below"] == pytest.approx(2 / 3)


def test_iqm_trims_outliers():
    assert R.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)
    assert math.isnan(R.iqm([]))
    robust = R.robust(pd.DataFrame({"g": ["x"] * 5, "value": [1, 2, 3, 4, 100]}), ["g"])
    assert robust["iqm"].iloc[0] == pytest.approx(3.0) and robust["median"].iloc[0] == 3


def test_seeds_of_different_runs_stay_distinct():
    rows = _rows("r1", "a", "completed", 0, [1.0]) + _rows("r2", "a", "completed", 0, [3.0])
    stats = R.mean_se(R.per_seed_final(pd.DataFrame(rows), BY, "m"), BY)
    assert stats["n"].iloc[0] == 2 and stats["mean"].iloc[0] == pytest.approx(2.0)
    assert np.isfinite(stats["se"].iloc[0])
