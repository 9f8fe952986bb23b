"""Fixture run directories for the report tests, written with the real ``RunWriter``.

Experiment ``fixture`` (scale ``quick``), algorithms tpo/dg/pg × env.vocab {2, 4} × 3 seeds,
4 steps, plus damaged records: a killed run (summary ``running`` + torn metrics line), a NaN
run, a failed run, a directory with only ``config.yaml``, one with a corrupt ``summary.json``,
and an older duplicate of the tpo/V=2 config. Provenance and wall times are pinned so the
Markdown output is deterministic.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench import metrics as M
from bench.records import RunWriter, config_hash
from bench.report import tables as T
from bench.report.collect import flatten
from bench.report.grid import ExpectedRun

EXPERIMENT, SCALE = "fixture", "quick"
SEEDS = [0, 1, 2]
# error per step (before the seed offset); V=4 multiplies it by 1.5
ERROR = {"tpo": [0.5, 0.2, 0.05, 0.004], "dg": [0.6, 0.3, 0.1, 0.02], "pg": [0.7, 0.5, 0.4, 0.3]}


def error_value(algo: str, vocab: int, step: int, seed: int) -> float:
    """The fixture's train/error: ERROR[algo][step] · (1.5 if V=4) + 0.001 · seed."""
    return ERROR[algo][step] * (1.5 if vocab == 4 else 1.0) + 0.001 * seed


def make_config(algo: str, vocab: int, lr: float = 0.1) -> dict:
    """A resolved config in the suite's nested layout."""
    return {
        "experiment": EXPERIMENT, "scale": SCALE,
        "algorithm": {"name": algo, "loss": algo, "epochs": 1},
        "env": {"name": "bandit", "vocab": vocab},
        "model": {"kind": "table", "dims": [4, 4]},
        "optim": {"lr": lr},
        "run": {"seeds": len(SEEDS), "seed0": 0, "steps": 4, "log_every": 1, "device": "cpu"},
        "logger": {"wandb": False},
    }


def pinned_provenance(started_at: str) -> dict:
    """Provenance fields overriding the machine-dependent ones."""
    return {"git_sha": "0123456789abcdef0123", "git_dirty": False, "host": "testhost", "device": "cpu",
            "device_name": "x86_64", "cpu_count": 2, "versions": {"torch": "2.0.0"}, "started_at": started_at}


def run_dir(root: Path, config: dict, suffix: str = "") -> Path:
    """``<root>/<experiment>/<scale>/<algo>-<env>-<hash><suffix>``."""
    name = f"{config['algorithm']['name']}-{config['env']['name']}-{config_hash(config)}{suffix}"
    return root / config["experiment"] / config["scale"] / name


def pin_wall_time(path: Path, seconds: float) -> None:
    """Replace the measured wall time in ``summary.json`` (keeps the golden file stable)."""
    summary = json.loads((path / "summary.json").read_text())
    summary["wall_time_s"] = seconds
    summary["updated_at"] = "2026-01-01T00:00:00+0000"
    (path / "summary.json").write_text(json.dumps(summary))


def write_completed(root: Path, algo: str, vocab: int, started_at: str = "2026-01-01T10:00:00+0000",
                    suffix: str = "", offset: float = 0.0) -> Path:
    """A completed run logging train/error and train/reward for every seed and step."""
    config = make_config(algo, vocab)
    path = run_dir(root, config, suffix)
    with RunWriter(path, config, SEEDS, extra_provenance=pinned_provenance(started_at)) as rec:
        for step in range(4):
            rec.log({"step": step, "seed": s, M.ERROR: error_value(algo, vocab, step, s) + offset,
                     M.REWARD: 1 - error_value(algo, vocab, step, s)} for s in SEEDS)
        rec.progress(4)
    pin_wall_time(path, 1.5)
    return path


def write_nan(root: Path) -> Path:
    """ppo / V=2 stopped on NaN at step 2; seed 1 logged a null error there."""
    config = make_config("ppo", 2)
    path = run_dir(root, config)
    with RunWriter(path, config, SEEDS, extra_provenance=pinned_provenance("2026-01-01T10:00:00+0000")) as rec:
        rec.log({"step": 0, "seed": s, M.ERROR: 0.5} for s in SEEDS)
        rec.log({"step": 2, "seed": s, M.ERROR: float("nan") if s == 1 else 0.4} for s in SEEDS)
        rec.progress(2)
        rec.mark_nan(2, "loss/total")
    pin_wall_time(path, 0.5)
    return path


def write_failed(root: Path) -> Path:
    """dg / V=8 raised inside the run."""
    config = make_config("dg", 8)
    path = run_dir(root, config)
    with pytest.raises(RuntimeError):
        with RunWriter(path, config, SEEDS, extra_provenance=pinned_provenance("2026-01-01T10:00:00+0000")):
            raise RuntimeError("boom")
    pin_wall_time(path, 0.25)
    return path


def bare_run(root: Path, algorithm: str, vocab: int, files: dict[str, str]) -> Path:
    """A run directory written by hand: its ``config.yaml`` plus ``files`` (name → raw text)."""
    config = make_config(algorithm, vocab)
    path = run_dir(root, config)
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def write_killed(root: Path) -> Path:
    """grpo / V=2 killed mid-write: summary ``running`` and a torn last metrics line (by hand)."""
    summary = {"status": "running", "seeds": SEEDS, "steps_done": 1,
               "config_hash": config_hash(make_config("grpo", 2)), "wall_time_s": 0.0}
    return bare_run(root, "grpo", 2, {
        "provenance.json": json.dumps(pinned_provenance("2026-01-01T10:00:00+0000")),
        "summary.json": json.dumps(summary),
        "metrics.jsonl": '{"step": 0, "seed": 0, "train/error": 0.9}\n{"step": 1, "se'})


def write_config_only(root: Path) -> Path:
    """grpo / V=4: killed before the first summary write."""
    return bare_run(root, "grpo", 4, {})


def write_corrupt_summary(root: Path) -> Path:
    """pg / V=8: summary.json is not JSON."""
    return bare_run(root, "pg", 8, {"summary.json": "{not json",
                                    "metrics.jsonl": '{"step": 0, "seed": 0, "train/error": 0.9}\n'})


FIXTURE_SPECS = [
    T.TableSpec("final", "Fixture: error (%) at the last step", M.ERROR, columns=("env.vocab",), scale=100,
                unit="%", decimals=2, row_order=("tpo", "dg", "pg", "ppo", "grpo"), published="fixture.csv",
                tolerance=1.0, never_above=95.0, spread=True, spread_threshold=1.0, reference="fixture table"),
    T.TableSpec("steps", "Fixture: steps to 1% error", M.ERROR, reduction="steps_to_threshold", threshold=0.01,
                columns=("env.vocab",), row_order=("tpo", "dg", "pg", "ppo", "grpo"), published="fixture.csv",
                rel_tolerance=0.25, reference="fixture table"),
]

FIXTURE_SPECS.append(T.TableSpec(
    "final_iqm", "Fixture: error (%) at the last step, IQM", M.ERROR, columns=("env.vocab",), scale=100, unit="%",
    decimals=2, row_order=("tpo", "dg", "pg", "ppo", "grpo"), cell="iqm_ci", published="fixture.csv", tolerance=1.0,
    never_above=95.0, reference="fixture table"))

GRID_ALGOS, GRID_VOCABS = ("tpo", "dg", "pg", "ppo", "grpo"), (2, 4)


def fixture_grid() -> list[ExpectedRun]:
    """The fixture experiment's expected grid: tpo/dg/pg/ppo/grpo × V ∈ {2, 4} (10 runs).

    Against :func:`runs_root`: ppo/V=2 stopped on NaN, ppo/V=4 was never run, grpo/V=2 was killed
    and grpo/V=4 has only its config: 4 missing. dg/V=8 and pg/V=8 are not grid points.
    """
    return [ExpectedRun(f"{a}-bandit env.vocab={v}", (f"algorithm={a}", f"env.vocab={v}"),
                        {"algorithm.name": a, "env.vocab": str(v)}, flatten(make_config(a, v)))
            for a in GRID_ALGOS for v in GRID_VOCABS]


PUBLISHED_CSV = """experiment,table,method,env.vocab,metric,reduction,threshold,value,unit,note,source
fixture,T,tpo,2,train/error,final,,0.5,%,,fixture
fixture,T,dg,2,train/error,final,,5.0,%,,fixture
fixture,T,pg,2,train/error,final,,,%,never reached (>95%),fixture
fixture,T,tpo,2,train/error,steps_to_threshold,0.01,2,steps,,fixture
fixture,T,dg,2,train/error,steps_to_threshold,0.01,,steps,never reached,fixture
fixture,T,pg,2,train/error,steps_to_threshold,0.01,3,steps,,fixture
fixture,T,tpo,16,train/error,final,,0.3,%,,fixture
"""

CLAIMS_CSV = """experiment,claim,text,kind,table,metric,across,subjects,versus,settings,threshold,source
fixture,tpo_below_dg_pg,TPO ends below DG and PG,ordering,final,train/error,,tpo,dg|pg,,,fixture
fixture,pg_below_tpo,PG ends below TPO,ordering,final,train/error,,pg,tpo,,,fixture
fixture,tpo_lowest,TPO has the lowest error at each V,lowest,final,train/error,,tpo,,,,fixture
fixture,tpo_first,TPO reaches 1% first at V = 2,lowest,steps,train/error,,tpo,dg|pg,env.vocab=2,,fixture
fixture,v8,DG is below 5% at V = 8,below,final,train/error,,dg,,env.vocab=8,5,fixture
"""


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    """A runs root holding the whole fixture experiment (see module docstring)."""
    root = tmp_path / "runs"
    for algo in ERROR:
        for vocab in (2, 4):
            write_completed(root, algo, vocab)
    # an older record of the tpo/V=2 config with worse numbers: must be superseded
    write_completed(root, "tpo", 2, started_at="2025-12-31T10:00:00+0000", suffix="-old", offset=0.5)
    write_nan(root)
    write_failed(root)
    write_killed(root)
    write_config_only(root)
    write_corrupt_summary(root)
    return root


@pytest.fixture
def published_root(tmp_path: Path) -> Path:
    """A published-numbers directory with ``fixture.csv``."""
    root = tmp_path / "published"
    root.mkdir()
    (root / "fixture.csv").write_text(PUBLISHED_CSV)
    (root / "claims.csv").write_text(CLAIMS_CSV)
    return root


@pytest.fixture
def fixture_tables(monkeypatch: pytest.MonkeyPatch) -> list[T.TableSpec]:
    """Register the fixture experiment's table specs (its claims are in :data:`CLAIMS_CSV`, written
    by :func:`published_root`)."""
    monkeypatch.setitem(T.TABLES, EXPERIMENT, FIXTURE_SPECS)
    return FIXTURE_SPECS
