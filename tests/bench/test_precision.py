"""Opt-in precision switches: validated, applied (bf16 autocast moves the numbers a little),
recorded in provenance, part of the run identity; torch.compile matches eager."""
from __future__ import annotations

import json

import pytest

from bench.cli import compose
from bench.records import read_metrics
from bench.run import execute, identity
from bench.schema import ConfigError, record_config, to_settings

SEQ = ["experiment=table3_terminal", "algorithm=tpo", "env.horizon=3", "env.batch_size=16", "env.k=4",
       "run.seeds=2", "run.steps=3", "run.log_every=1", "logger=none", "hydra.sweeper.params={}"]


def _losses(root):
    (run,) = (root / "table3_terminal" / "quick").iterdir()
    return run, [r["loss/total"] for r in read_metrics(run)]


def test_unknown_autocast_lists_the_valid_choices():
    with pytest.raises(ConfigError, match="run.autocast='fp8'; valid: none, bf16"):
        to_settings(compose([*SEQ, "run.autocast=fp8"]))


def test_precision_switches_are_part_of_the_identity():
    plain = identity(record_config(compose(SEQ)))
    assert identity(record_config(compose([*SEQ, "run.autocast=bf16"]))) != plain
    assert identity(record_config(compose([*SEQ, "run.compile=true"]))) != plain
    assert identity(record_config(compose([*SEQ, "run.seeds_per_batch=1"]))) == plain


def test_bf16_autocast_runs_close_to_fp32_and_is_recorded(tmp_path):
    execute(compose([*SEQ, f"run.root={tmp_path / 'fp32'}"]))
    execute(compose([*SEQ, "run.autocast=bf16", f"run.root={tmp_path / 'bf16'}"]))
    _, fp32 = _losses(tmp_path / "fp32")
    run, bf16 = _losses(tmp_path / "bf16")
    assert fp32 != bf16                                     # the products really ran in bf16
    assert bf16 == pytest.approx(fp32, rel=2e-2)
    prec = json.loads((run / "provenance.json").read_text())["precision"]
    assert prec["autocast"] == "bf16" and prec["compile"] is False and prec["tf32"] is False


@pytest.mark.slow
def test_compiled_epoch_loss_matches_eager(tmp_path):
    """torch.compile of the training forward + loss (inductor needs a C++ compiler on CPU)."""
    execute(compose([*SEQ, f"run.root={tmp_path / 'eager'}"]))
    execute(compose([*SEQ, "run.compile=true", f"run.root={tmp_path / 'compiled'}"]))
    assert _losses(tmp_path / "compiled")[1] == pytest.approx(_losses(tmp_path / "eager")[1], rel=1e-4)
