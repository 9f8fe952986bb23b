"""Bad input on the command line: non-zero exit, a short message naming the
valid choices, no stack trace."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([str(BIN / "bench"), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.mark.parametrize("args, expect", [
    (("algorithm=nope",), "Available options in 'algorithm'"),
    (("env=nope",), "Available options in 'env'"),
    (("experiment=nope",), "Available options in 'experiment'"),
    (("algorithm.etaa=1",), "Key 'etaa' not in"),
    (("algorithm.eta=abc",), "could not be converted to Float"),
])
def test_bad_input_exits_nonzero_with_choices(tmp_path, args, expect):
    out = bench(*args, "logger=none", f"run.root={tmp_path}", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert expect in text
    assert "Traceback" not in text
    if "Available options" in expect:
        assert "tabular_single" in text or "tpo" in text


def test_help_lists_experiments_algorithms_envs(tmp_path):
    out = bench("--help", cwd=tmp_path)
    assert out.returncode == 0
    for word in ("Experiments", "tabular_single", "Algorithms", "tpo_token", "grpo_nokl", "Envs", "tabular_multi"):
        assert word in out.stdout


def test_single_run_writes_a_complete_record(tmp_path):
    out = bench("algorithm=tpo", "algorithm.candidates=all", "env=tabular_single", "run.seeds=2", "run.steps=5",
                "logger=none", f"run.root={tmp_path}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from bench.records import read_metrics, read_run
    (run,) = [p for p in (tmp_path / "adhoc" / "quick").iterdir()]
    rec = read_run(run)
    assert rec.status == "completed" and rec.config["algorithm"]["name"] == "tpo"
    assert len(read_metrics(run)) == 2 * 5
    assert rec.provenance["versions"]["torch"]


def test_command_line_beats_the_experiments_algorithm_overrides(tmp_path):
    out = bench("experiment=tabular_single", "algorithm=tpo", "algorithm.epochs=3", "run.seeds=2", "run.steps=3",
                "logger=none", "hydra.mode=RUN", f"run.root={tmp_path}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from bench.records import read_run
    (run,) = (tmp_path / "tabular_single" / "quick").iterdir()
    algo = read_run(run).config["algorithm"]
    assert algo["epochs"] == 3            # command line
    assert algo["candidates"] == "all"    # experiment's algorithm_overrides


def test_submitit_local_launcher_runs_a_sweep(tmp_path):
    """The cluster path (submitit) exercised locally: each job writes its own complete record."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = bench("-m", "algorithm=tpo,pg", "env=tabular_multi", "run.seeds=2", "run.steps=5", "logger=none",
                "launcher=submitit_local", f"run.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/_hydra",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    from bench.records import read_run
    runs = [read_run(p) for p in (tmp_path / "adhoc" / "quick").iterdir()]
    assert sorted(r.config["algorithm"]["name"] for r in runs) == ["pg", "tpo"]
    assert all(r.status == "completed" for r in runs)
