"""Zero-variance groups through the task families (docs/paper-map.md §1, §7): the DRO-V/KTO score
normalisation of the sequence and MNIST families, the mechanism diagnostic's GRPO direction, and the
tabular bandits — equal scores give exactly zero signal, ``algorithm.zero_var_rtol`` reaches the
normalisation (``null`` = the reference rule), and non-degenerate tabular runs do not move."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.build import build
from bench.cli import compose
from bench.families import mnist_mechanism as mech
from bench.loop import train
from bench.schema import to_settings
from envs.mnist import MNIST_FILES, write_idx

TINY_SEQ = ["env=reversal", "model=transformer", "optim=muon", "logger=none", "env.horizon=3", "env.vocab=2",
            "env.batch_size=8", "env.k=4", "run.progress=false"]


def settings(*overrides: str):
    return to_settings(compose(["logger=none", "run.progress=false", *overrides]))


# -- sequence family: DRO-V / KTO scores -------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["dro_v", "kto"])
def test_sequence_equal_scores_normalise_to_exactly_zero(algorithm):
    task = build(settings(*TINY_SEQ, f"algorithm={algorithm}", "run.seeds=2")).task
    ro, _ = task.rollout(0)
    ro.scores = torch.full_like(ro.scores, 2 / 3)        # k/H with H = 3: its mean over 8 is one ulp off
    assert torch.all(task.batch_fields(ro)["scores"] == 0)
    ref = build(settings(*TINY_SEQ, f"algorithm={algorithm}", "run.seeds=2", "algorithm.zero_var_rtol=null")).task
    ro_ref, _ = ref.rollout(0)
    ro_ref.scores = torch.full_like(ro_ref.scores, 2 / 3)
    assert torch.any(ref.batch_fields(ro_ref)["scores"] != 0)    # the reference rule keeps the mean residue


def test_sequence_scores_with_a_spread_are_standardised():
    task = build(settings(*TINY_SEQ, "algorithm=dro_v", "run.seeds=2")).task
    ro, _ = task.rollout(0)
    ro.scores = torch.arange(16, dtype=torch.float32).reshape(2, 8) / 3
    sc = task.batch_fields(ro)["scores"]
    c = ro.scores - ro.scores.mean(-1, keepdim=True)
    torch.testing.assert_close(sc, c / c.pow(2).mean(-1, keepdim=True).sqrt())


# -- MNIST family: DRO-V / KTO scores ------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Four tiny IDX files (200 train / 40 test random 28x28 images)."""
    d = tmp_path_factory.mktemp("zv_mnist")
    rng = np.random.default_rng(1)
    for (img_name, lbl_name), n in (((MNIST_FILES[0], MNIST_FILES[1]), 200), ((MNIST_FILES[2], MNIST_FILES[3]), 40)):
        write_idx(d / f"{img_name}.gz", rng.integers(0, 255, (n, 28, 28)).astype(np.uint8))
        write_idx(d / lbl_name, rng.integers(0, 10, n).astype(np.uint8))
    return d


def mnist(data_dir: Path, *extra: str):
    return settings("experiment=mnist", f"env.data_dir={data_dir}", "env.source=mnist", "env.download=false",
                    "env.eval_size=null", "run.seeds=2", *extra)


@pytest.mark.parametrize("algorithm", ["dro_v", "kto"])
def test_mnist_equal_rewards_normalise_to_exactly_zero(data_dir, algorithm):
    task = build(mnist(data_dir, f"algorithm={algorithm}")).task
    ro, _ = task.rollout(0)
    for value in (0.0, 1.0):
        ro.rewards = torch.full_like(ro.rewards, value)
        assert torch.all(task.batch_fields(ro)["scores"] == 0)
    ro.rewards = torch.full_like(ro.rewards, 2 / 3)             # equal; their mean over B = 100 is one ulp off
    assert torch.all(task.batch_fields(ro)["scores"] == 0)
    ref = build(mnist(data_dir, f"algorithm={algorithm}", "algorithm.zero_var_rtol=null")).task
    assert ref.score_params.zero_var_rtol is None
    assert torch.any(ref.batch_fields(ro)["scores"] != 0)


# -- MNIST mechanism: GRPO's population direction ------------------------------------------------
def test_mechanism_grpo_direction_is_zero_for_a_zero_variance_population():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(5, 10, generator=g, dtype=torch.float64) * 2, -1)
    labels = torch.randint(10, (5,), generator=g)
    p_y = probs.gather(-1, labels[:, None])
    e = torch.nn.functional.one_hot(labels, 10).to(probs.dtype)
    for mu in (0.3, 0.9):
        d = mech.expected_directions(probs, labels, torch.tensor(mu, dtype=torch.float64))["grpo"]
        torch.testing.assert_close(d, p_y * (e - probs) / ((mu * (1 - mu)) ** 0.5 + 1e-8), rtol=1e-12, atol=0)
    for mu in (0.0, 1.0):   # every reward equal: zero advantage, no 1/1e-8 blow-up
        d = mech.expected_directions(probs, labels, torch.tensor(mu, dtype=torch.float64))["grpo"]
        assert torch.all(d == 0)


# -- tabular bandits ----------------------------------------------------------------------------------
def _tables(*overrides: str, steps: int = 5) -> torch.Tensor:
    b = build(settings(*overrides))
    train(b.task, b.loss, b.optimizer, steps=steps, epochs=b.epochs, log_every=10 ** 9, on_log=lambda *a: None)
    return b.task.z.detach().clone()


@pytest.mark.parametrize("experiment, algorithm", [
    ("tabular_multi", "grpo"), ("tabular_multi", "tpo"), ("tabular_single", "grpo"), ("tabular_single", "tpo"),
    ("tabular_single", "pg"), ("tabular_single", "dg"),
])
def test_tabular_tables_do_not_move(experiment, algorithm):
    """Paper settings (baseline 0.5, exact weights = π): the tolerance changes no number."""
    base = (f"experiment={experiment}", f"algorithm={algorithm}", "run.seeds=3")
    torch.testing.assert_close(_tables(*base), _tables(*base, "algorithm.zero_var_rtol=null"), rtol=0, atol=0)


def test_tabular_single_all_wrong_batch_gives_zero_grpo_gradient():
    """With b = 0.1 (not exact in fp32) a batch of B equal rewards R − b used to leak an O(1) advantage."""
    grads = {}
    for rtol in ("1e-5", "null"):
        b = build(settings("experiment=tabular_single", "algorithm=grpo", "run.seeds=4", "env.reward_baseline=0.1",
                           f"algorithm.zero_var_rtol={rtol}", "algorithm.kl_beta=0.0"))
        ro, _ = b.task.rollout(0)
        losses, _ = b.loss(b.task.batch_fields(ro))
        losses.sum().backward()
        grads[rtol] = b.task.z.grad.clone()
        flat = (ro.adv == ro.adv[:, :1]).all(-1)
    assert flat.any(), "the fixture needs a seed whose first batch is all wrong (π uniform over 100 arms)"
    assert torch.all(grads["1e-5"][flat] == 0)
    assert grads["null"][flat].abs().amax() > 1e-3
    torch.testing.assert_close(grads["1e-5"][~flat], grads["null"][~flat], rtol=0, atol=0)
