import math

import pytest
import torch

from algorithms.shaping import (
    advantage,
    grpo_advantage,
    leave_one_out_advantage,
    standardise_scores,
    success_fail_means,
    zero_variance_groups,
)

D = torch.float64


def test_standardise_one_hot_over_ten():
    u = standardise_scores(torch.eye(10, dtype=D)[0])
    expected = torch.full((10,), -1.0 / 3.0, dtype=D)
    expected[0] = 3.0
    torch.testing.assert_close(u, expected)
    assert math.isclose(math.exp(u[0] - u[1]), math.exp(10 / 3), rel_tol=1e-12)
    assert math.isclose(math.exp(10 / 3), 28.03, abs_tol=5e-3)


def test_standardise_equal_and_tiny_variance_keep_centred_scores():
    s = torch.tensor([[2.0, 2.0, 2.0], [0.0, 1e-8, 0.0]], dtype=D)
    u = standardise_scores(s)
    torch.testing.assert_close(u[0], torch.zeros(3, dtype=D))
    torch.testing.assert_close(u[1], s[1] - s[1].mean())  # sd ≤ eps -> u = c, not c/sd


def test_standardise_population_std_over_last_dim():
    s = torch.randn(4, 5, dtype=D)
    c = s - s.mean(-1, keepdim=True)
    torch.testing.assert_close(standardise_scores(s), c / c.std(-1, unbiased=False, keepdim=True))


def test_weights_equal_repetition():
    """Integer weights = repeating a candidate that many times."""
    s = torch.tensor([1.0, -0.5, 2.0], dtype=D)
    w = torch.tensor([1.0, 3.0, 2.0], dtype=D)
    rep = torch.tensor([1.0, -0.5, -0.5, -0.5, 2.0, 2.0], dtype=D)
    torch.testing.assert_close(standardise_scores(s, weights=w), standardise_scores(rep)[[0, 1, 4]])
    torch.testing.assert_close(grpo_advantage(s, weights=w), grpo_advantage(rep)[[0, 1, 4]])
    torch.testing.assert_close(standardise_scores(s, weights=5 * w), standardise_scores(s, weights=w))


def test_grpo_advantage_formula_and_zero_variance():
    s = torch.randn(3, 6, dtype=D)
    expected = (s - s.mean(-1, keepdim=True)) / (s.std(-1, unbiased=False, keepdim=True) + 1e-8)
    torch.testing.assert_close(grpo_advantage(s), expected)
    assert torch.equal(grpo_advantage(torch.ones(2, 4, dtype=D)), torch.zeros(2, 4, dtype=D))


def test_weighted_grpo_advantage_tabular_values():
    p = 0.1
    pi = torch.tensor([p] + [0.9 / 9] * 9, dtype=D)
    a = grpo_advantage(torch.eye(10, dtype=D)[0], weights=pi)
    assert math.isclose(a[0].item(), math.sqrt((1 - p) / p), rel_tol=1e-6)
    assert math.isclose(a[1].item(), -math.sqrt(p / (1 - p)), rel_tol=1e-6)


def test_zero_variance_groups():
    s = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 5e-7, 0.0], [0.0, 0.0, 0.0]], dtype=D)
    # relative test on the spread: a lone 5e-7 among zeros is a real difference, an all-zero group is flat
    assert zero_variance_groups(s).tolist() == [True, False, False, True]
    # the reference rule (rtol=None): std ≤ eps, absolute
    assert zero_variance_groups(s, rtol=None).tolist() == [True, False, True, True]
    # weights: a group whose live candidates agree has zero variance
    w = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=D)
    assert zero_variance_groups(s, weights=w).tolist() == [True, True, True, True]
    assert zero_variance_groups(s, weights=w, rtol=None).tolist() == [True, True, True, True]


def test_leave_one_out_hand_example():
    a = leave_one_out_advantage(torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=D))
    torch.testing.assert_close(a, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3], dtype=D))
    with pytest.raises(ValueError, match="K >= 2"):
        leave_one_out_advantage(torch.ones(3, 1))


def test_success_fail_means_ignore_zero_variance_groups():
    v = torch.tensor([[0.7, 0.1, 0.2], [5.0, 5.0, 5.0]], dtype=D)
    s = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=D)
    succ, fail = success_fail_means(v, s)
    assert succ.item() == pytest.approx(0.7)
    assert fail.item() == pytest.approx(0.15)
    assert succ.dim() == 0 and not succ.requires_grad


def _loop_batch_mean(r, m, w):
    N, T = r.shape
    b = torch.zeros(T, dtype=D)
    for t in range(T):
        num = sum(w[n] * m[n, t] * r[n, t] for n in range(N))
        den = sum(w[n] * m[n, t] for n in range(N))
        b[t] = num / den if den > 0 else 0.0
    return r - b


@pytest.mark.parametrize("weighted", [False, True])
def test_batch_mean_advantage_matches_loop(weighted):
    torch.manual_seed(0)
    r = torch.randn(5, 4, dtype=D)
    m = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=D)
    w = torch.rand(5, dtype=D) + 0.1 if weighted else torch.ones(5, dtype=D)
    got = advantage(r, m, "batch_mean", weights=w if weighted else None)
    real = m > 0
    torch.testing.assert_close(got[real], _loop_batch_mean(r, m, w)[real])
    assert torch.all(got[~real] == 0)  # padding carries no advantage


def test_other_baselines():
    r = torch.randn(3, 2, dtype=D)
    m = torch.ones(3, 2, dtype=D)
    torch.testing.assert_close(advantage(r, m, "constant", constant=0.5), r - 0.5)
    b = torch.randn(3, 2, dtype=D)
    torch.testing.assert_close(advantage(r, m, "expected", baseline=b), r - b)
    v = torch.randn(3, dtype=D, requires_grad=True)
    a = advantage(r, m, "learned", values=v)
    torch.testing.assert_close(a, r - v.detach()[:, None])
    assert not a.requires_grad  # sg[values]


def test_baseline_errors_name_the_field():
    r, m = torch.zeros(2, 2), torch.ones(2, 2)
    with pytest.raises(ValueError, match="baseline"):
        advantage(r, m, "expected")
    with pytest.raises(ValueError, match="values"):
        advantage(r, m, "learned")
    with pytest.raises(ValueError, match="batch_mean"):
        advantage(r, m, "nope")
