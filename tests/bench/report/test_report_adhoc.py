"""Ad-hoc tables never pool configurations: a sweep's table holds exactly that sweep's runs (its
own records and the ones its jobs reused), one row per configuration with the values that tell
them apart as columns."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import metrics as M
from bench.records import RunWriter, config_hash
from bench.report import build_report
from bench.report.api import JOB_RUN_FILE
from bench.report.tables import distinguishing_keys

BIN = Path(sys.executable).parent


def _config(algo: str, steps: int, env: str = "tabular_single") -> dict:
    return {"experiment": "adhoc", "scale": "quick", "algorithm": {"name": algo, "epochs": 1},
            "env": {"name": env}, "run": {"seeds": 1, "seed0": 0, "steps": steps}, "logger": {"mode": "offline"}}


def write(root: Path, algo: str, steps: int, sweep: Path | None, env: str = "tabular_single",
          value: float = 0.5) -> str:
    config = _config(algo, steps, env)
    ident = config_hash(config)
    prov = {"sweep": {"dir": str(sweep.resolve()), "job": 0}} if sweep else {}
    with RunWriter(root / "adhoc" / "quick" / f"{algo}-{env}-{ident}", config, [0], identity=ident,
                   extra_provenance=prov) as rec:
        metric = M.EVAL_ERROR if env == "mnist" else M.ERROR
        rec.log([{"step": steps - 1, "seed": 0, metric: value}])
    return ident


def test_a_sweep_table_holds_its_runs_only_one_row_per_configuration(tmp_path):
    runs, first, second = tmp_path / "runs", tmp_path / "runs/_hydra/d/1", tmp_path / "runs/_hydra/d/2"
    long_run = write(runs, "tpo", 100, first, value=0.1)
    write(runs, "pg", 100, first, value=0.7)
    write(runs, "tpo", 50, second, value=0.3)
    write(runs, "tpo", 1, None, env="mnist", value=0.9)           # an unrelated MNIST run
    (second / "1").mkdir(parents=True)                              # a job of the second sweep reused tpo@100
    (second / "1" / JOB_RUN_FILE).write_text(json.dumps({"config_hash": long_run}))

    result = build_report("adhoc", "quick", runs, tmp_path / "results", sweep=second)
    table = result.tables["train_error"]
    rows = table.cells.set_index("run.steps")
    assert sorted(rows.index) == [50, 100] and list(rows["n"]) == [1, 1]   # never averaged together
    assert rows.loc[100, "value"] == 10.0 and rows.loc[50, "value"] == 30.0   # an error rate prints in % as in
    assert table.spec.unit == "%"                                              # every experiment table
    assert table.spec.row_labels == ("algorithm.name", "env.name", "run.steps")
    assert "eval_error" not in result.tables                       # the MNIST run is not in this sweep
    assert "| Config       | algorithm   | env            | run.steps   |" in result.markdown
    assert result.out_dir == runs / "adhoc" / "quick" / "report" / "d_2"
    assert not (tmp_path / "results").exists()

    everything = build_report("adhoc", "quick", runs, tmp_path / "results")
    assert len(everything.tables["train_error"].cells) == 3 and "eval_error" in everything.tables
    cells = everything.tables["train_error"].cells   # rows ordered by their labels, not by identity hash
    assert [(a, int(n)) for a, n in zip(cells["algorithm.name"], cells["run.steps"])] == [
        ("pg", 100), ("tpo", 50), ("tpo", 100)]


def test_distinguishing_keys_skip_each_algorithms_own_defaults():
    import pandas as pd
    runs = pd.DataFrame([
        {"config_hash": "a", "algorithm.name": "tpo", "env.name": "e", "algorithm.eta": 1.0, "algorithm.epochs": 4,
         "run.steps": 100},
        {"config_hash": "b", "algorithm.name": "pg", "env.name": "e", "algorithm.eta": None, "algorithm.epochs": 1,
         "run.steps": 50},
        {"config_hash": "c", "algorithm.name": "tpo", "env.name": "e", "algorithm.eta": 2.0, "algorithm.epochs": 4,
         "run.steps": 100}])
    assert distinguishing_keys(runs) == ("algorithm.name", "env.name", "algorithm.eta", "run.steps")


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "bench"), "-m", *args, "env=tabular_single", "run.seeds=2", "logger=none",
                           "run.progress=false", f"run.root={cwd / 'runs'}"], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _error_table(stdout: str) -> list[str]:
    block = stdout.split("## train/error (%) at the last step, one row per configuration", 1)[1]
    return [line for line in block.split("\n\n", 2)[1].splitlines()[2:]]


def test_second_adhoc_sweep_prints_only_its_own_configurations(tmp_path):
    one = _bench("algorithm=tpo,pg", "run.steps=3", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert len(_error_table(one.stdout)) == 2
    two = _bench("algorithm=tpo", "run.steps=2,3", cwd=tmp_path)   # tpo@3 is reused from the first sweep
    assert two.returncode == 0, two.stderr
    rows = _error_table(two.stdout)
    assert len(rows) == 2 and all("| tpo " in r for r in rows)
    assert sorted(r.split("|")[4].strip() for r in rows) == ["2", "3"]   # run.steps column
    assert "results/ unchanged" not in two.stdout and not (tmp_path / "results").exists()
