"""The engine paths' losses equal the registry losses: TPO on rows (TRL) and on verl's contiguous micro-batches,
DRO-V on rows; values and gradients within 1e-6 on fixed tensors with several groups, unequal completion lengths
and padding, and unchanged when the groups are shuffled."""
from __future__ import annotations

import pytest
import torch

from algorithms.batch import GroupBatch, TrajectoryBatch
from algorithms.dro import DROVParams, dro_v_loss, normalise_scores
from algorithms.tpo import TPOParams, tpo_loss
from bench.engines.losses import (GroupLayoutError, dro_v_loss_rows, group_order, sequence_score_advantage,
                                  tpo_loss_rows, verl_tpo_policy_loss)
from bench.engines.trl import check_layout, loss_from_trl_inputs, split_whole_groups

G, K, T = 3, 4, 5
TOL = 1e-6


def fixture(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([[5, 3, 1, 4], [2, 5, 5, 3], [4, 1, 2, 5]])          # unequal lengths, padding after
    mask = (torch.arange(T)[None, None, :] < lengths[..., None]).double()
    logp = -torch.rand(G, K, T, generator=g, dtype=torch.float64) * 2
    logp = torch.where(mask > 0, logp, torch.full_like(logp, -1e4))            # junk in the padding
    old = logp + 0.1 * torch.randn(G, K, T, generator=g, dtype=torch.float64)
    ref = logp + 0.1 * torch.randn(G, K, T, generator=g, dtype=torch.float64)
    scores = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    return logp, old, ref, mask, scores


def suite_tpo(params, logp, old, ref, mask, scores):
    x = logp.clone().requires_grad_(True)
    loss, _ = tpo_loss(GroupBatch(logp=x, logp_old=old, scores=scores, mask=mask, logp_ref=ref), params)
    loss.backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("params", [TPOParams(), TPOParams(eta=0.5, kl_beta=0.1), TPOParams(anchor=False)])
def test_tpo_rows_in_any_order_equal_the_registry_loss(params):
    logp, old, ref, mask, scores = fixture()
    want, want_grad = suite_tpo(params, logp, old, ref, mask, scores)
    flat = lambda x: x.reshape(G * K, *x.shape[2:])   # noqa: E731
    ids = torch.arange(G).repeat_interleave(K) + 10            # any integer ids
    for perm in (torch.arange(G * K), torch.randperm(G * K, generator=torch.Generator().manual_seed(1))):
        x = flat(logp)[perm].clone().requires_grad_(True)
        got, _ = tpo_loss_rows(x, flat(old)[perm], flat(mask)[perm], flat(scores)[perm], ids[perm], K, params,
                               logp_ref=flat(ref)[perm])
        got.backward()
        grad = torch.empty_like(x.grad)
        grad[perm] = x.grad                                      # back to the grouped order
        assert abs(float(got.detach() - want)) < TOL
        assert torch.allclose(grad.view(G, K, T), want_grad, atol=TOL, rtol=0)
    assert float(want) > 0 and want_grad.abs().sum() > 0      # a non-trivial case


def test_trl_inputs_path_equals_the_registry_loss_with_shuffled_groups():
    params = TPOParams(kl_beta=0.05)
    logp, old, ref, mask, scores = fixture(2)
    want, want_grad = suite_tpo(params, logp, old, ref, mask, scores)
    perm = torch.randperm(G * K, generator=torch.Generator().manual_seed(3))
    flat = lambda x: x.reshape(G * K, *x.shape[2:])[perm]   # noqa: E731
    x = flat(logp).clone().requires_grad_(True)
    inputs = {"completion_mask": flat(mask).long(), "old_per_token_logps": flat(old), "suite_ref_logps": flat(ref),
              "suite_scores": flat(scores), "suite_group_ids": (torch.arange(G * K) // K)[perm]}
    got, diags = loss_from_trl_inputs(x, inputs, "tpo", K, params)
    got.backward()
    grad = torch.empty_like(x.grad)
    grad[perm] = x.grad
    assert abs(float(got.detach() - want)) < TOL and torch.allclose(grad.view(G, K, T), want_grad, atol=TOL, rtol=0)
    assert "target_entropy" in diags


def test_verl_path_equals_the_registry_loss_and_normalises_over_the_global_batch():
    params = TPOParams()
    logp, old, _, mask, scores = fixture(4)
    want, want_grad = suite_tpo(params, logp, old, None, mask, scores)
    adv, ret = sequence_score_advantage(scores.reshape(-1, 1) * torch.eye(1, T, dtype=torch.float64),
                                        mask.reshape(G * K, T), index=[f"u{i // K}" for i in range(G * K)])
    assert torch.equal(adv, ret)
    x = logp.reshape(G * K, T).clone().requires_grad_(True)
    got, _ = verl_tpo_policy_loss(old.reshape(G * K, T), x, adv, mask.reshape(G * K, T) > 0, K, params)
    got.backward()
    assert abs(float(got.detach() - want)) < TOL and torch.allclose(x.grad.view(G, K, T), want_grad, atol=TOL, rtol=0)
    # micro-batches of whole groups on 2 ranks: Σ_micro loss · (1/dp) (FSDP's average) = the mini-batch's mean
    total = 0.0
    for rows in (slice(0, K), slice(K, 3 * K)):
        part, _ = verl_tpo_policy_loss(old.reshape(G * K, T)[rows], logp.reshape(G * K, T)[rows], adv[rows],
                                       mask.reshape(G * K, T)[rows] > 0, K, params, dp_size=2,
                                       global_batch_size=G * K)
        total += float(part) / 2
    assert abs(total - float(want)) < TOL


def test_dro_v_rows_in_any_order_equal_the_registry_loss():
    params = DROVParams(tau=0.5)
    logp, _, ref, mask, scores = fixture(5)
    n = G * K
    flat = lambda x: x.reshape(n, *x.shape[2:])   # noqa: E731
    s = normalise_scores(flat(scores), params)
    values = torch.linspace(-0.3, 0.4, n, dtype=torch.float64)

    def suite(lp, v):
        b = TrajectoryBatch(logp=lp, logp_old=flat(ref), rewards=s[:, None] * flat(mask), mask=flat(mask),
                            values=v, logp_ref=flat(ref), scores=s)
        return dro_v_loss(b, params)[0]

    x, v = flat(logp).clone().requires_grad_(True), values.clone().requires_grad_(True)
    want = suite(x, v)
    want.backward()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(6))
    y, w = flat(logp)[perm].clone().requires_grad_(True), values[perm].clone().requires_grad_(True)
    inputs = {"completion_mask": flat(mask)[perm], "suite_ref_logps": flat(ref)[perm], "suite_scores": s[perm]}
    got, _ = loss_from_trl_inputs(y, inputs, "dro_v", 1, params, values=w)
    got.backward()
    gy, gw = torch.empty_like(y.grad), torch.empty_like(w.grad)
    gy[perm], gw[perm] = y.grad, w.grad
    assert abs(float(got.detach() - want.detach())) < TOL
    assert torch.allclose(gy, x.grad, atol=TOL, rtol=0) and torch.allclose(gw, v.grad, atol=TOL, rtol=0)
    direct, _ = dro_v_loss_rows(flat(logp), flat(ref), flat(mask), s, values, params)
    assert abs(float(direct - want.detach())) < TOL


def test_split_groups_and_layouts_are_refused_in_one_line():
    with pytest.raises(GroupLayoutError, match=r"^rows=7: not a whole number of groups of K=4"):
        group_order(torch.arange(7) // 4, 4)
    with pytest.raises(GroupLayoutError, match="some group has other than K=2 rows"):
        group_order(torch.tensor([0, 0, 0, 1]), 2)
    with pytest.raises(GroupLayoutError, match="trainer.balance_batch=False"):
        sequence_score_advantage(torch.zeros(4, 2), torch.ones(4, 2), index=["a", "b", "a", "b"])
    with pytest.raises(ValueError, match=r"^per-process generation batch of 6 completions is not a whole number"):
        check_layout(6, 1, 4, "tpo")
    with pytest.raises(ValueError, match="do not divide into 2 micro-batches"):
        check_layout(12, 2, 4, "tpo")
    check_layout(6, 1, 1, "dro_v")   # single completions always fit


def test_whole_group_slices_keep_groups_together_and_cover_every_row():
    ids = torch.arange(4).repeat_interleave(3)
    batch = {"x": torch.arange(12), "texts": [str(i) for i in range(12)], "num_items_in_batch": torch.tensor(7),
             "suite_group_ids": ids}
    parts = split_whole_groups(batch, ids, 2, torch.Generator().manual_seed(0))
    assert len(parts) == 2 and sorted(torch.cat([p["x"] for p in parts]).tolist()) == list(range(12))
    for p in parts:
        assert [int(t) for t in p["texts"]] == p["x"].tolist() and int(p["num_items_in_batch"]) == 7
        group_order(p["suite_group_ids"], 3)          # whole groups only
    with pytest.raises(GroupLayoutError, match="do not divide into 3 slices"):
        split_whole_groups(batch, ids, 3)
