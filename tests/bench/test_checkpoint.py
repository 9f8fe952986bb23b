"""Checkpoints hold only tensors and plain containers: every family's checkpoint loads with
``torch.load(weights_only=True)``, and a planted file whose unpickling would run code is
refused (one warning line) and the run starts afresh without running it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import checkpoint
from bench.build import build
from bench.cli import compose
from bench.loop import train
from bench.schema import to_settings

REPO = Path(__file__).resolve().parents[2]


class WritesMarker:
    """Unpickling this (weights_only=False) opens ``path`` for writing: it creates a marker file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _mnist_dir(tmp_path: Path) -> Path:
    from envs.mnist import MNIST_FILES, write_idx

    rng = np.random.default_rng(0)
    for name, n, shape in zip(MNIST_FILES, (40, 40, 20, 20), ((28, 28), (), (28, 28), ())):
        write_idx(tmp_path / "mnist" / name, rng.integers(0, 256 if shape else 10, size=(n, *shape), dtype=np.uint8))
    return tmp_path / "mnist"


FAMILIES = {
    "tabular_single": ["env=tabular_single", "algorithm=dg"],
    "tabular_multi": ["env=tabular_multi", "algorithm=tpo"],
    "mnist": ["env=mnist", "algorithm=pg", "algorithm.baseline=learned", "env.batch_size=8", "env.eval_every=1"],
    "reversal": ["env=reversal", "algorithm=grpo", "env.horizon=3", "env.batch_size=4", "env.k=3"],
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_familys_checkpoint_loads_weights_only(tmp_path, family):
    overrides = [*FAMILIES[family], "run.seeds=2", "logger=none"]
    if family == "mnist":
        overrides.append(f"env.data_dir={_mnist_dir(tmp_path)}")
    settings = to_settings(compose(overrides))
    built = build(settings)
    train(built.task, built.loss, built.optimizer, steps=2, epochs=built.epochs, log_every=1,
          on_log=lambda step, logged: None)   # the optimizer now has state (moments, momentum buffers)
    checkpoint.save(tmp_path, 1, "ident", built.task, built.optimizer, chunk=0, chunks=[[0, 1]])
    raw = torch.load(tmp_path / checkpoint.CHECKPOINT, map_location="cpu", weights_only=True)
    assert raw["identity"] == "ident" and raw["step"] == 1 and raw["chunks"] == [[0, 1]]
    # the state restores into a fresh build: same parameters, same next random draws
    state = checkpoint.load(tmp_path, "ident")
    fresh = build(settings)
    assert checkpoint.restore(state, fresh.task, fresh.optimizer) == 2
    for a, b in zip(built.task.parameters(), fresh.task.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), raw["torch_rng"])


def test_planted_checkpoint_would_run_code_under_a_full_unpickle(tmp_path):
    """The plant used below is real: an unrestricted load creates the marker."""
    marker = tmp_path / "marker"
    torch.save({"identity": "x", "payload": WritesMarker(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_planted_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    torch.save({"identity": "ident", "step": 3, "task": WritesMarker(marker)}, tmp_path / checkpoint.CHECKPOINT)
    assert checkpoint.load(tmp_path, "ident") is None
    assert not marker.exists()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and str(tmp_path / checkpoint.CHECKPOINT) in lines[0]


def test_resume_refuses_a_planted_checkpoint_and_starts_afresh(tmp_path, monkeypatch, capsys):
    """A killed run's checkpoint is replaced by one whose unpickling would write a marker file:
    the rerun warns once, never creates the marker, and ends exactly as an uninterrupted run."""
    from bench.families import tabular
    from bench.records import read_metrics
    from bench.run import execute

    base = ["experiment=tabular_single", "algorithm=dg", "run.seeds=2", "run.steps=12", "logger=none",
            "run.checkpoint_every=4"]
    execute(compose([*base, f"run.root={tmp_path / 'straight'}"]))
    real = tabular.TabularSingleTask.rollout

    def dying(self, step):
        if step == 9:
            raise KeyboardInterrupt("simulated kill")
        return real(self, step)

    monkeypatch.setattr(tabular.TabularSingleTask, "rollout", dying)
    with pytest.raises(KeyboardInterrupt):
        execute(compose([*base, f"run.root={tmp_path / 'runs'}"]))
    monkeypatch.setattr(tabular.TabularSingleTask, "rollout", real)
    (run_dir,) = (tmp_path / "runs" / "tabular_single" / "quick").iterdir()
    path = run_dir / checkpoint.CHECKPOINT
    good = torch.load(path, weights_only=True)
    marker = tmp_path / "marker"
    torch.save({**good, "task": WritesMarker(marker)}, path)   # same identity: it would be resumed from
    capsys.readouterr()

    summary = execute(compose([*base, f"run.root={tmp_path / 'runs'}"]))
    assert not marker.exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "refused" in line]
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert summary["status"] == "completed" and summary.get("resumed_after_step") is None
    (straight,) = (tmp_path / "straight" / "tabular_single" / "quick").iterdir()

    def rows(d):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(d)]

    assert rows(run_dir) == rows(straight)
    assert not path.exists()


def test_no_unrestricted_unpickling_in_the_code():
    """Files from elsewhere never run code: no weights_only=False, pickle.load(s), np.load(allow_pickle=True)."""
    pattern = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True|yaml\.load\(|"
                         r"yaml\.unsafe_load|torch\.load\((?![^)]*weights_only\s*=\s*True)")
    offenders = []
    for folder in ("algorithms", "bench", "envs"):
        for path in (REPO / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, offenders
