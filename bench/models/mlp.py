"""The MNIST-bandit policy: a ReLU MLP with per-seed STACKED parameters.

Every parameter carries a leading seed axis S (``W: [S, fan_in, fan_out]``,
``b: [S, fan_out]``) and the forward pass is a batched matmul
(``torch.baddbmm``) over that axis, so S seeds train in one process and each
seed's output and gradient are exactly those it would get alone (no
cross-seed term exists; Adam is elementwise, hence per-seed exact too).

Initialisation (TPO paper, MNIST contextual bandit; docs/paper-map.md §4): weights
LeCun normal — a normal truncated at ±2σ with σ rescaled so that Var = 1/fan_in (:func:`bench.models.transformer.lecun_normal_`)
— and zero biases; each seed draws from its own generator, so a seed's initial
weights do not depend on which other seeds share the batch.

Value function (DRO-V's V(x), REINFORCE's learned baseline): a SEPARATE MLP on
the same input (default 784-50-50-1, same initialisation, own "value_init"
stream). Chosen over a head on the policy's last hidden layer so that fitting V
never moves the policy's features: the policy gradient of every method is the
same whether or not a value net exists (DRO, Richemond et al. 2024: V(x) is a
separate value network; docs/paper-map.md §2). Built only for algorithms that read ``values``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor

from bench.models.transformer import lecun_normal_


@dataclass(frozen=True)
class MlpModelConfig:
    """ReLU MLP policy for the MNIST bandit (paper: 784-50-50-10).

    hidden:       hidden layer widths of the policy (input 784 and the 10 classes are fixed by the data).
    value_hidden: hidden widths of the separate value MLP (output 1), built only when the
                  algorithm needs V(x) (DRO-V, PG with ``baseline=learned``).
    """

    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [50, 50], metadata={"ge": 1})
    value_hidden: list[int] = field(default_factory=lambda: [50, 50], metadata={"ge": 1})


def init_stacked_mlp(sizes: Sequence[int], generators: Sequence[torch.Generator], device: str = "cpu",
                     dtype: torch.dtype = torch.float32) -> list[Tensor]:
    """[W1, b1, W2, b2, …] with W_l [S, sizes[l], sizes[l+1]] (LeCun normal per seed) and b_l = 0 [S, sizes[l+1]].

    Seed s draws all its layers, in order, from ``generators[s]`` (on CPU, then moved)."""
    params: list[Tensor] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        ws = []
        for g in generators:
            w = torch.empty(fan_out, fan_in, dtype=dtype)  # torch Linear layout for lecun_normal_
            ws.append(lecun_normal_(w, g).t())
        params.append(torch.stack(ws).to(device).contiguous().requires_grad_(True))
        params.append(torch.zeros(len(generators), fan_out, dtype=dtype, device=device, requires_grad=True))
    return params


def mlp_forward(params: Sequence[Tensor], x: Tensor) -> Tensor:
    """Outputs [S, N, out] of the stacked MLP on inputs x [S, N, in] (or [N, in], shared by all seeds).

    h ← relu(h W_l + b_l) for every layer but the last, which is linear."""
    n_layers = len(params) // 2
    h = x if x.dim() == 3 else x.expand(params[0].shape[0], *x.shape)
    for layer in range(n_layers):
        w, b = params[2 * layer], params[2 * layer + 1]
        h = torch.baddbmm(b[:, None, :], h, w)
        if layer < n_layers - 1:
            h = torch.relu(h)
    return h


class StackedMlp:
    """A stacked-parameter MLP: ``params`` (leaves with grad) and ``__call__(x) -> [S, N, out]``."""

    def __init__(self, sizes: Sequence[int], generators: Sequence[torch.Generator], device: str = "cpu"):
        self.sizes = tuple(int(s) for s in sizes)
        self.params = init_stacked_mlp(self.sizes, generators, device)

    def __call__(self, x: Tensor, params: Optional[Sequence[Tensor]] = None) -> Tensor:
        return mlp_forward(self.params if params is None else params, x)

    def snapshot(self) -> list[Tensor]:
        """Detached copies of the current parameters (e.g. a fixed reference policy)."""
        return [p.detach().clone() for p in self.params]

    @property
    def n_params(self) -> int:
        """Parameters per seed."""
        return sum(p[0].numel() for p in self.params)
