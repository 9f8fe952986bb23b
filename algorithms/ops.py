"""Small numerical primitives shared by losses and tasks."""
from __future__ import annotations

import torch
from torch import Tensor


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log softmax(x) along ``dim``: x − m − log Σ exp(x − m), m = sg[max x].

    Same values and gradient as :func:`torch.log_softmax`; written out because
    the fused CPU kernel is several times slower on short rows (e.g. 10 or 100
    actions × many contexts), which dominates the tabular bandits. Entries at
    the dtype's minimum (masked candidates) get probability 0.
    """
    shifted = x - x.detach().amax(dim, keepdim=True)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """softmax(x) = exp(log_softmax(x)) (see :func:`log_softmax`)."""
    return log_softmax(x, dim).exp()
