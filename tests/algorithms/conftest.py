"""Shared fixtures for the algorithm tests: one torch thread, float64 builders."""
from __future__ import annotations

import pytest
import torch

from algorithms.batch import GroupBatch, TrajectoryBatch

torch.set_num_threads(1)


def _mask(shape, gen, min_len=1):
    """Right-padded {0,1} mask with at least ``min_len`` real tokens per row."""
    T = shape[-1]
    lengths = torch.randint(min_len, T + 1, shape[:-1], generator=gen)
    return (torch.arange(T) < lengths[..., None]).to(torch.float64)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def make_group_batch(gen):
    """factory(G, K, T, ...) -> GroupBatch with a leaf ``logp`` (requires grad)."""

    def factory(G=3, K=4, T=3, *, weights=False, masked=True, at_snapshot=True, binary=False, ref=False):
        logp = -torch.rand(G, K, T, generator=gen, dtype=torch.float64) * 2.0
        logp.requires_grad_(True)
        old = logp.detach().clone() if at_snapshot else logp.detach() - 0.3 * torch.randn(G, K, T, generator=gen, dtype=torch.float64)
        if binary:
            scores = (torch.rand(G, K, generator=gen) < 0.5).to(torch.float64)
        else:
            scores = torch.randn(G, K, generator=gen, dtype=torch.float64)
        return GroupBatch(
            logp=logp,
            logp_old=old,
            scores=scores,
            mask=_mask((G, K, T), gen) if masked else None,
            weights=torch.rand(G, K, generator=gen, dtype=torch.float64) + 0.1 if weights else None,
            logp_ref=logp.detach() - 0.2 * torch.randn(G, K, T, generator=gen, dtype=torch.float64) if ref else None,
        )

    return factory


@pytest.fixture
def make_traj_batch(gen):
    """factory(N, T, ...) -> TrajectoryBatch with a leaf ``logp`` (requires grad)."""

    def factory(N=6, T=4, *, weights=False, at_snapshot=True, values=False, ref=False, baseline=False):
        logp = -torch.rand(N, T, generator=gen, dtype=torch.float64) * 2.0
        logp.requires_grad_(True)
        old = logp.detach().clone() if at_snapshot else logp.detach() - 0.3 * torch.randn(N, T, generator=gen, dtype=torch.float64)
        return TrajectoryBatch(
            logp=logp,
            logp_old=old,
            rewards=torch.randn(N, T, generator=gen, dtype=torch.float64),
            mask=_mask((N, T), gen),
            weights=torch.rand(N, generator=gen, dtype=torch.float64) + 0.1 if weights else None,
            baseline=torch.randn(N, T, generator=gen, dtype=torch.float64) if baseline else None,
            values=torch.randn(N, generator=gen, dtype=torch.float64).requires_grad_(True) if values else None,
            logp_ref=logp.detach() - 0.2 * torch.randn(N, T, generator=gen, dtype=torch.float64) if ref else None,
            scores=torch.randn(N, generator=gen, dtype=torch.float64) if (ref or values) else None,
        )

    return factory
