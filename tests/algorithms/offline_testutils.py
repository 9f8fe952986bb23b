"""Shared check of the offline-loss tests: a phase loss under ``torch.func.vmap`` over stacked seeds equals a
python loop over the seeds with autograd (value, diagnostics, gradient w.r.t. the phase's network)."""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import grad, vmap


def assert_vmap_equals_per_seed_loop(loss: Callable, p: dict, b: dict, own: str, S: int) -> None:
    """``loss(nets_params, batch) -> (scalar, diagnostics)`` for one seed; ``p`` {network: {name: [S, …]}},
    ``b`` {field: [S, …]}; ``own`` the network whose gradient is compared (the others held constant)."""
    def f(owned, rest, batch):
        return loss({**rest, own: owned}, batch)

    rest = {k: v for k, v in p.items() if k != own}
    loss_v, diag_v = vmap(f, randomness="error")(p[own], rest, b)
    grad_v, _ = vmap(grad(f, has_aux=True), randomness="error")(p[own], rest, b)
    for s in range(S):
        ps = {net: {k: v[s].clone().requires_grad_(net == own) for k, v in q.items()} for net, q in p.items()}
        loss_s, diag_s = loss(ps, {k: v[s] for k, v in b.items()})
        g_s = torch.autograd.grad(loss_s, list(ps[own].values()), allow_unused=True)   # e.g. BC: log_std unused
        torch.testing.assert_close(loss_v[s], loss_s.detach())
        for (k, v), g in zip(ps[own].items(), g_s):
            torch.testing.assert_close(grad_v[k][s], torch.zeros_like(v) if g is None else g)
        assert set(diag_v) == set(diag_s)
        for k in diag_s:
            torch.testing.assert_close(diag_v[k][s], diag_s[k])
