import pytest
import torch

from algorithms.aggregate import AGGREGATIONS, aggregate, weighted_mean

D = torch.float64


def _loop_reference(x, m, mode, w, constant):
    """Plain-Python reduction following the module docstring literally."""
    three_d = x.dim() == 3
    G = x.shape[0]
    seqs = []  # (group index, weight, [(x, m) per token])
    for idx in range(G):
        rows = range(x.shape[1]) if three_d else [None]
        for k in rows:
            xs = x[idx, k] if three_d else x[idx]
            ms = m[idx, k] if three_d else m[idx]
            ws = (w[idx, k] if three_d else w[idx]) if w is not None else 1.0
            seqs.append((idx, float(ws), [(float(a), float(b)) for a, b in zip(xs, ms)]))
    S = [sum(a * b for a, b in toks) for _, _, toks in seqs]
    L = [sum(b for _, b in toks) for _, _, toks in seqs]
    W = [ws for _, ws, _ in seqs]
    if mode == "token_mean":
        den = sum(wi * li for wi, li in zip(W, L))
        return sum(wi * si for wi, si in zip(W, S)) / den if den > 0 else 0.0
    if mode == "seq_mean_token_mean":
        v = [si / li if li > 0 else 0.0 for si, li in zip(S, L)]
        return sum(wi * vi for wi, vi in zip(W, v)) / sum(W)
    if mode == "seq_sum":
        return sum(wi * si for wi, si in zip(W, S)) / sum(W)
    if mode == "group_sum":
        total, groups = 0.0, set()
        for (g, wi, _), si in zip(seqs, S):
            total += wi * si
            if wi > 0:
                groups.add(g)
        return total / max(len(groups), 1)
    if mode == "constant":
        return sum(wi * si for wi, si in zip(W, S)) / constant
    raise AssertionError(mode)


def _inputs(shape, seed, empty_row):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=D)
    m = (torch.rand(*shape, generator=g) < 0.6).to(D)
    m[..., 0] = 1.0
    if empty_row:  # an all-masked sequence: defined for every mode (token mean := 0, still counted)
        m.view(-1, shape[-1])[1] = 0.0
    w = torch.rand(*shape[:-1], generator=g, dtype=D) + 0.05
    return x, m, w


@pytest.mark.parametrize("mode", AGGREGATIONS)
@pytest.mark.parametrize("shape", [(5, 6), (3, 4, 5)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("empty_row", [False, True])
def test_against_loop_reference(mode, shape, weighted, empty_row):
    if mode == "group_sum" and len(shape) == 2:
        pytest.skip("group_sum needs [G, K, T]")
    x, m, w = _inputs(shape, seed=len(shape) * 7 + int(weighted), empty_row=empty_row)
    w = w if weighted else None
    got = aggregate(x, m, mode, weights=w, constant=17.0)
    expected = _loop_reference(x, m, mode, w, 17.0)
    assert got.dim() == 0
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_group_sum_weighting_and_zero_weight_groups():
    x = torch.ones(3, 2, 1, dtype=D)
    m = torch.ones_like(x)
    w = torch.tensor([[1.0, 0.5], [0.0, 0.0], [2.0, 0.0]], dtype=D)
    # group 1 has no weight: absent, so normaliser = 2 groups
    assert aggregate(x, m, "group_sum", weights=w).item() == pytest.approx((1.5 + 2.0) / 2)
    assert aggregate(x, m, "group_sum").item() == pytest.approx(2.0)
    zero = aggregate(x.requires_grad_(), m, "group_sum", weights=torch.zeros(3, 2, dtype=D))
    assert zero.item() == 0.0 and zero.requires_grad


def test_distinct_modes_differ():
    x, m, w = _inputs((3, 4, 5), seed=3, empty_row=False)
    values = {mode: aggregate(x, m, mode, constant=10.0).item() for mode in AGGREGATIONS}
    assert len({round(v, 10) for v in values.values()}) == len(AGGREGATIONS)


def test_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError) as e:
        aggregate(x, torch.ones_like(x), "mean")
    for mode in AGGREGATIONS:
        assert mode in str(e.value)
    with pytest.raises(ValueError, match="group_sum"):
        aggregate(x, torch.ones_like(x), "group_sum")
    with pytest.raises(ValueError, match="constant"):
        aggregate(x, torch.ones_like(x), "constant")
    with pytest.raises(ValueError, match="mask"):
        aggregate(x, torch.ones(3, 2), "token_mean")
    with pytest.raises(ValueError, match="weights"):
        aggregate(x, torch.ones_like(x), "seq_sum", weights=torch.ones(3))


def test_weighted_mean():
    v = torch.tensor([1.0, 3.0], dtype=D)
    assert weighted_mean(v).item() == 2.0
    assert weighted_mean(v, torch.tensor([3.0, 1.0], dtype=D)).item() == pytest.approx(1.5)
    assert weighted_mean(v, torch.zeros(2, dtype=D)).item() == 0.0


@pytest.mark.parametrize("mode", AGGREGATIONS)
@pytest.mark.parametrize("shape", [(5, 6), (3, 4, 5), (3, 4, 1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_no_mask_is_an_all_ones_mask(mode, shape, weighted):
    """mask=None (no padding) gives the value and gradient of an all-ones mask, bit for bit."""
    if mode == "group_sum" and len(shape) == 2:
        pytest.skip("group_sum needs [G, K, T]")
    x, _, w = _inputs(shape, seed=11, empty_row=False)
    w = w if weighted else None
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with_ones = aggregate(a, torch.ones_like(x), mode, weights=w, constant=7.0)
    without = aggregate(b, None, mode, weights=w, constant=7.0)
    assert torch.equal(with_ones, without)
    with_ones.backward()
    without.backward()
    assert torch.equal(a.grad, b.grad)
