"""Networks of the offline family: MLPs with per-seed STACKED parameters, applied per seed.

Parameters carry a leading seed axis S (critics also an ensemble axis C after it); the offline loop maps
the per-seed forward functions over S with ``torch.func.vmap``, so every seed's outputs and gradients are
the ones it would get alone. Inside vmap a forward sees one seed's tensors:

* :func:`mlp` — ``x [N, in] → [N, out]``, ReLU between layers, linear last layer;
* :func:`ensemble_mlp` — ``x [N, in] → [C, N, out]`` for C independent MLPs (twin critics);
* :func:`gaussian_log_prob` — the Gaussian actor's log π(a|s).

Initialisation is PyTorch's ``nn.Linear`` default, U(−1/√fan_in, 1/√fan_in) for weights and biases (the
networks of TD3+BC, IQL and CORL are built from ``nn.Linear``), drawn per seed from its own generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0   # IQL / CORL Gaussian policy: log σ clipped to [−20, 2]


@dataclass(frozen=True)
class OfflineMlpConfig:
    """Widths of the offline networks (TD3+BC, IQL, CORL: two hidden layers of 256).

    actor_hidden:  hidden widths of the policy (deterministic or Gaussian).
    critic_hidden: hidden widths of each Q network of the twin critic.
    value_hidden:  hidden widths of V(s) (IQL).
    n_critics:     size of the Q ensemble (2: clipped double Q).
    generator_hidden: trunk widths of the generative policies' network (diffusion, consistency, flow, GTP:
                   :mod:`bench.models.generative`; Diffusion-QL's backbone, 3 × 256 Mish).
    time_dim:      width of each sinusoidal time embedding of that network (even, ≥ 4).
    """

    name: str = "offline_mlp"
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256], metadata={"ge": 1})
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256], metadata={"ge": 1})
    value_hidden: list[int] = field(default_factory=lambda: [256, 256], metadata={"ge": 1})
    n_critics: int = field(default=2, metadata={"ge": 1})
    generator_hidden: list[int] = field(default_factory=lambda: [256, 256, 256], metadata={"ge": 1})
    time_dim: int = field(default=16, metadata={"ge": 4})


def init_mlp(sizes: Sequence[int], gens: Sequence[torch.Generator], ensemble: int = 0,
             device: str = "cpu") -> list[Tensor]:
    """[W1, b1, …] with W_l [S, (C,) in, out], b_l [S, (C,) out] (C = ``ensemble`` when > 0); seed s draws
    every layer, in order, from ``gens[s]`` (on CPU), U(−1/√fan_in, 1/√fan_in)."""
    lead = (ensemble,) if ensemble else ()
    params: list[Tensor] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        ws, bs = [], []
        for g in gens:
            ws.append((torch.rand(*lead, fan_in, fan_out, generator=g) * 2 - 1) * bound)
            bs.append((torch.rand(*lead, fan_out, generator=g) * 2 - 1) * bound)
        params += [torch.stack(ws).to(device), torch.stack(bs).to(device)]
    return [p.requires_grad_(True) for p in params]


def mlp(params: Sequence[Tensor], x: Tensor, activation: Callable[[Tensor], Tensor] = torch.relu) -> Tensor:
    """One seed's MLP: x [N, in] → [N, out]; h ← activation(h W + b) (default ReLU) except after the last layer."""
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            h = activation(h)
    return h


def ensemble_mlp(params: Sequence[Tensor], x: Tensor) -> Tensor:
    """One seed's ensemble of C MLPs (W [C, in, out], b [C, out]) on shared x [N, in] → [C, N, out]."""
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1][:, None, :]   # [N,in]@[C,in,out] broadcasts to [C,N,out]
        if i < n - 1:
            h = torch.relu(h)
    return h


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Σ_a log N(a; μ, σ²) with σ = exp(clip(log_std, −20, 2)): mean, actions [N, A], log_std [A] → [N]."""
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
