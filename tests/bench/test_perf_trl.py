"""TRL's GRPOTrainer step, timed on the suite's RLVR task and model (bench.perf_trl)."""
from __future__ import annotations

import math
import sys

import pytest

from bench import perf_trl

SMALL = ["model.hidden=32", "model.intermediate=64", "model.heads=2", "model.layers=1", "env.prompts_per_step=2",
         "env.k=4", "env.sft.steps=0", "env.log_kl=false"]


def test_trl_grpo_step_time_is_positive_and_finite(monkeypatch):
    pytest.importorskip("trl")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    seconds = perf_trl.time_trl_grpo_step(SMALL, steps=1)
    assert isinstance(seconds, float) and math.isfinite(seconds) and 0 < seconds < 60


def test_steps_below_one_is_one_line_error():
    pytest.importorskip("trl")
    with pytest.raises(ValueError, match=r"^steps=0: must be >= 1$"):
        perf_trl.time_trl_grpo_step(SMALL, steps=0)


def test_misspelled_override_is_one_line_config_error():
    pytest.importorskip("trl")
    from bench.schema import ConfigError

    with pytest.raises(ConfigError, match=r"^env\.kk: unknown key; did you mean k\?$"):
        perf_trl.time_trl_grpo_step(["env.kk=3"], steps=1)


def test_missing_trl_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)   # `import trl` now raises ImportError
    with pytest.raises(ImportError) as info:
        perf_trl.time_trl_grpo_step(SMALL, steps=1)
    assert str(info.value) == "TRL is not installed: pip install -e .[trl]"
    assert "\n" not in str(info.value) and info.value.__cause__ is None
