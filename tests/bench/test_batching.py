"""Seed chunks: automatic choice from a one-seed memory probe, chunked runs equal to
batched ones, and a run killed inside its second chunk resumes without loss or duplicates."""
from __future__ import annotations

import json

import pytest

from bench import batching
from bench.cli import compose
from bench.records import read_metrics
from bench.run import execute
from bench.schema import to_settings

TABULAR = ["experiment=tabular_single", "algorithm=tpo", "run.seeds=5", "run.steps=12", "run.log_every=1",
           "logger=none"]
SEQUENCE = ["experiment=table3_terminal", "algorithm=tpo", "env.horizon=3", "env.k=4", "run.seeds=1",
            "logger=none", "hydra.sweeper.params={}"]


def _rows(root, experiment):
    (run,) = (root / experiment / "quick").iterdir()
    rows = {(r["step"], r["seed"]): {k: v for k, v in r.items() if not k.startswith("time/")}
            for r in read_metrics(run)}
    return run, rows


def test_auto_seeds_per_batch_arithmetic():
    assert batching.auto_seeds_per_batch(20, per_seed=10**9, available=10 * 10**9) == 5   # ⌊0.5·10/1⌋
    assert batching.auto_seeds_per_batch(20, per_seed=10**9, available=10**8) == 1        # never below one
    assert batching.auto_seeds_per_batch(20, per_seed=10**6, available=10**12) == 20      # never above n
    assert batching.auto_seeds_per_batch(7, per_seed=10**9, available=None) == 7          # unknown memory: all
    assert batching.chunks([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]


def test_probe_counts_activations_that_grow_with_the_batch():
    """The one-seed probe sees the training forward's saved tensors: bytes grow linearly in the
    batch on top of the fixed parameter/optimizer part."""
    b8, b16, b32 = (batching.bytes_per_seed(to_settings(compose([*SEQUENCE, f"env.batch_size={b}"])))
                    for b in (8, 16, 32))
    assert 0 < b8 < b16 < b32
    assert b32 - b16 == pytest.approx(2 * (b16 - b8), rel=0.2)


def test_saved_activation_bytes_counts_a_matmul():
    import torch

    w = torch.randn(64, 32, requires_grad=True)
    x = torch.randn(100, 64)
    _, n = batching.saved_activation_bytes(lambda a: (a @ w).sum(), x)
    assert n >= x.numel() * 4   # the input of the product is saved for w's gradient


def test_chunked_run_equals_batched_run(tmp_path):
    execute(compose([*TABULAR, f"run.root={tmp_path / 'batched'}"]))
    execute(compose([*TABULAR, "run.seeds_per_batch=2", f"run.root={tmp_path / 'chunked'}"]))
    run_b, batched = _rows(tmp_path / "batched", "tabular_single")
    run_c, chunked = _rows(tmp_path / "chunked", "tabular_single")
    assert run_b.name == run_c.name                          # chunking is not part of the identity
    assert json.loads((run_c / "provenance.json").read_text())["seed_chunks"] == [[0, 1], [2, 3], [4]]
    assert sorted(batched) == sorted(chunked) and len(chunked) == 5 * 12
    for key, row in batched.items():
        for k, v in row.items():
            assert chunked[key][k] == pytest.approx(v, rel=1e-5, abs=1e-7), (key, k)


def test_auto_mode_splits_when_memory_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(batching, "bytes_per_seed", lambda settings: 1000)
    monkeypatch.setattr(batching, "available_bytes", lambda device: 4000)   # room for ⌊0.5·4000/1000⌋ = 2 seeds
    summary = execute(compose([*TABULAR, f"run.root={tmp_path}"]))
    run, rows = _rows(tmp_path, "tabular_single")
    assert summary["status"] == "completed"
    assert json.loads((run / "provenance.json").read_text())["seed_chunks"] == [[0, 1], [2, 3], [4]]
    assert len(rows) == len(read_metrics(run)) == 5 * 12     # every (step, seed) once


def test_kill_inside_second_chunk_resumes_without_loss_or_duplicates(interrupt_and_rerun):
    from bench.families import tabular

    base = [*TABULAR, "run.seeds_per_batch=2", "run.checkpoint_every=4"]
    # killed the 2nd time a rollout reaches step 9: in chunk [2, 3], whose step-7 checkpoint survives
    summary, run, _, resumed, straight = interrupt_and_rerun(base, "tabular_single", tabular.TabularSingleTask, 9,
                                                             occurrence=2)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 7
    assert len(read_metrics(run)) == 5 * 12 and resumed == straight
