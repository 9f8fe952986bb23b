"""Helpers shared by the algorithm tests (a uniquely named module, importable from any test)."""
from __future__ import annotations

import torch


def grad_of(loss_fn, batch, params, wrt=None):
    """Gradient of loss_fn(batch, params)[0] w.r.t. ``wrt`` (default batch.logp)."""
    wrt = batch.logp if wrt is None else wrt
    loss, _ = loss_fn(batch, params)
    (g,) = torch.autograd.grad(loss, wrt)
    return g
