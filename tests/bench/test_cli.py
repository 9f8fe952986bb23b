"""Bad input on the command line: non-zero exit, one line naming the field and the valid
choices or range (no stack trace), and no run directory."""
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


def one_error_line(out: subprocess.CompletedProcess) -> str:
    """The single non-empty stderr line of a refused command (asserts there is exactly one)."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bench: error: ") and "Traceback" not in out.stdout + out.stderr
    return lines[0].removeprefix("bench: error: ")


def assert_no_run_directory(root: Path) -> None:
    """No file under run.root: no run record, and no Hydra job folder either (a refused job's is removed)."""
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()], list(root.rglob("*"))


@pytest.mark.parametrize("args, expect", [
    (("algorithm=nope",), "Available options in 'algorithm': bc, ce, consistency_ac,"),
    (("algorithm=tpoo",), "algorithm=tpoo: no such option; did you mean tpo?"),
    (("env=nope",), "Available options in 'env':"),
    (("experiment=nope",), "Available options in 'experiment':"),
    (("algorithm.etaa=1",), "algorithm.etaa: unknown key; did you mean eta?"),
    (("+algorithm.etaa=1",), "algorithm.etaa: unknown key; did you mean eta?"),
    (("algorithm.eta=abc",), "algorithm.eta: Value 'abc' of type 'str' could not be converted to Float"),
])
def test_bad_input_exits_nonzero_with_choices(tmp_path, args, expect):
    out = bench(*args, "logger=none", f"run.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode != 0
    assert expect in one_error_line(out)
    assert "use +" not in out.stderr   # Hydra's "append with +key" hint is replaced by the closest key
    assert_no_run_directory(tmp_path / "runs")


@pytest.mark.parametrize("args, expect", [
    (("run.seeds=0",), "run.seeds=0: must be >= 1"),
    (("run.steps=-5",), "run.steps=-5: must be >= 1"),
    (("env=reversal", "env.k=1", "algorithm=tpo"), "env.k=1: must be >= 2 for algorithm=tpo"),
    (("env=reversal", "env.k=1", "algorithm=grpo"), "env.k=1: must be >= 2 for algorithm=grpo"),
    (("env=reversal", "env.k=1", "algorithm=rloo"), "env.k=1: must be >= 2 for algorithm=rloo"),
    (("env=mnist", "model=table"), "env=mnist needs model=mlp, got model=table"),
])
def test_out_of_range_config_is_refused_before_any_run_directory(tmp_path, args, expect):
    out = bench(*args, "logger=none", f"run.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 2
    assert one_error_line(out).startswith(expect)
    assert_no_run_directory(tmp_path / "runs")


@pytest.mark.parametrize("args, expect", [
    (("algorithm.eta=1,-1",), "algorithm.eta=-1.0: must be > 0 (job algorithm.eta=-1; none of the sweep's 2 jobs"),
    (("algorithm=tpo,pgg",), "algorithm=pgg: no such option; did you mean pg?"),
    (("algorithm.etaa=1,2",), "algorithm.etaa: unknown key; did you mean eta?"),
])
def test_a_sweep_with_one_bad_job_is_refused_before_any_job_runs(tmp_path, args, expect):
    """Every job of a sweep is validated before the first is launched (hydra_plugins/tpo_bench/sweeper.py):
    the good first job does not run, Hydra does not announce the launch, the sweep folder is removed."""
    out = bench("-m", "env=tabular_single", "run.seeds=1", "run.steps=2", *args, "logger=none",
                f"run.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 2
    line = one_error_line(out)
    assert line.startswith(expect) and "none of the sweep's 2 jobs was launched" in line
    assert "Launching" not in out.stdout + out.stderr
    assert_no_run_directory(tmp_path / "runs")
    assert not (tmp_path / "runs" / "_hydra").exists()   # the sweep's own folder went too


def test_a_sweep_in_batches_says_which_jobs_ran(tmp_path):
    """With hydra.sweeper.max_batch_size, batches are validated one at a time: the refusal says what already ran."""
    out = bench("-m", "env=tabular_single", "run.seeds=1", "run.steps=2", "algorithm.eta=1,-1", "logger=none",
                "hydra.sweeper.max_batch_size=1", f"run.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("bench: error: algorithm.eta=-1.0: must be > 0 (job algorithm.eta=-1; "
                                                   "1 of its 2 jobs ran in earlier batches, none of this batch's 1)")


@pytest.mark.parametrize("damage", ["truncated", "wrong-magic"])
def test_corrupt_mnist_file_is_one_line_and_leaves_no_run_directory(tmp_path, damage):
    import numpy as np

    from envs.mnist import MNIST_FILES, MNIST_MIRRORS, write_idx

    data = tmp_path / "mnist"
    rng = np.random.default_rng(0)
    for name, n, shape in zip(MNIST_FILES, (20, 20, 10, 10), ((28, 28), (), (28, 28), ())):
        arr = rng.integers(0, 10 if not shape else 256, size=(n, *shape), dtype=np.uint8)
        write_idx(data / name, arr)
    bad = data / MNIST_FILES[0]
    blob = bad.read_bytes()
    bad.write_bytes(blob[:-100] if damage == "truncated" else b"\x12\x34" + blob[2:])
    out = bench("env=mnist", f"env.data_dir={data}", "run.steps=2", "logger=none", f"run.root={tmp_path / 'runs'}",
                cwd=tmp_path)
    assert out.returncode == 2
    line = one_error_line(out)
    assert str(bad) in line and MNIST_MIRRORS[0] in line   # the file, and how to get a good copy
    assert ("truncated" in line) if damage == "truncated" else ("magic" in line)
    assert_no_run_directory(tmp_path / "runs")


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
    runs = [r for r in map(read_run, (tmp_path / "adhoc" / "quick").iterdir()) if r is not None]  # not report/
    assert sorted(r.config["algorithm"]["name"] for r in runs) == ["pg", "tpo"]
    assert all(r.status == "completed" for r in runs)
