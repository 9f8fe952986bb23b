"""The generative policy network of the offline family: a time-conditioned MLP with per-seed STACKED parameters.

One network serves every generative policy of :mod:`algorithms.offline` (DDPM / Diffusion-QL, consistency
policies, flow matching / FQL's BC flow, GTP): ``generator(params, obs, x, t, tau) -> [N, A]``, where x is a
noisy action and t, τ are the method's times (τ is the flow map's end time, GTP only; the other methods
pass τ = 0, so its embedding is a constant input).

Architecture (Diffusion-QL's backbone: Wang, Hunt & Zhou 2023, "Diffusion Policies as an Expressive Policy
Class for Offline Reinforcement Learning", its network details: a sinusoidal time embedding of width 16
through Linear(16, 32) → Mish → Linear(32, 16), concatenated with the state and the noisy action, then three
hidden layers of 256 with Mish and a linear output), with a second, separate embedding for τ:

    e_t = Lin₂(mish(Lin₁(sin_emb(t))))      e_τ = Lin₄(mish(Lin₃(sin_emb(τ))))
    h   = [s, x, e_t, e_τ] → (Linear → Mish) × len(hidden) → Linear → [N, A]

Parameters (one list, leading seed axis S on every tensor; order fixed):
``[Wt1, bt1, Wt2, bt2, Wτ1, bτ1, Wτ2, bτ2, W1, b1, …, W_out, b_out]``, W [S, in, out], b [S, out].
Initialisation: PyTorch's ``nn.Linear`` default U(−1/√fan_in, 1/√fan_in) (as :func:`bench.models.offline.init_mlp`),
seed s drawing every tensor, in order, from its own generator.

The one-step policy of FQL (:func:`one_step_actor`) is an ordinary :func:`bench.models.offline.init_mlp`
MLP on [s, z] with a tanh output.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.models.offline import init_mlp, mlp

#: Diffusion-QL's MLP: three hidden layers of 256 with Mish, time-embedding width 16.
DEFAULT_HIDDEN = (256, 256, 256)
DEFAULT_TIME_DIM = 16
#: Largest period of the sinusoidal embedding (Transformer positional encoding; Diffusion-QL's SinusoidalPosEmb).
MAX_PERIOD = 10000.0
#: Tensors before the trunk: two embedding MLPs of two layers each (t and τ).
N_EMBED = 8


def init_generator(obs_dim: int, act_dim: int, gens: Sequence[torch.Generator],
                   hidden: Sequence[int] = DEFAULT_HIDDEN, time_dim: int = DEFAULT_TIME_DIM,
                   device: str = "cpu") -> list[Tensor]:
    """Stacked parameters of the generator (module doc for the layout), one seed per generator in ``gens``.

    obs_dim O, act_dim A ≥ 1; hidden: trunk widths (each ≥ 1); time_dim: width of each sinusoidal
    embedding, an even number ≥ 4. Returns leaf tensors with ``requires_grad=True``, leading axis S = len(gens).
    Raises ValueError naming the argument for an out-of-range width.
    """
    if obs_dim < 1 or act_dim < 1:
        raise ValueError(f"obs_dim/act_dim: must be >= 1, got {obs_dim} and {act_dim}")
    if time_dim < 4 or time_dim % 2:
        raise ValueError(f"time_dim: must be an even number >= 4, got {time_dim}")
    if not hidden or any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden: must be a non-empty list of widths >= 1, got {list(hidden)}")
    t_emb = init_mlp([time_dim, 2 * time_dim, time_dim], gens, device=device)
    tau_emb = init_mlp([time_dim, 2 * time_dim, time_dim], gens, device=device)
    trunk = init_mlp([obs_dim + act_dim + 2 * time_dim, *[int(h) for h in hidden], act_dim], gens, device=device)
    return t_emb + tau_emb + trunk


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """[sin(t·ω_k), cos(t·ω_k)], ω_k = MAX_PERIOD^(−k/(dim/2 − 1)), k = 0 … dim/2 − 1: t [N] → [N, dim]
    (frequencies from 1 down to 1/10000; Diffusion-QL's SinusoidalPosEmb)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=t.dtype, device=t.device) * (-math.log(MAX_PERIOD) / (half - 1)))
    arg = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], -1)


def generator(params: Sequence[Tensor], obs: Tensor, x: Tensor, t: Tensor, tau: Tensor) -> Tensor:
    """One seed's generator: obs [N, O], x [N, A], t [N], tau [N] → [N, A] (module doc).

    Call inside ``torch.func.vmap`` over the seed axis (or with one seed's tensors). t and τ are the
    method's own time inputs (the loss decides their scale: :mod:`algorithms.offline.generative`).
    """
    time_dim = params[0].shape[-2]
    e_t = mlp(params[0:4], sinusoidal_embedding(t, time_dim), F.mish)
    e_tau = mlp(params[4:8], sinusoidal_embedding(tau, time_dim), F.mish)
    return mlp(params[N_EMBED:], torch.cat([obs, x, e_t, e_tau], -1), F.mish)


def init_one_step_actor(obs_dim: int, act_dim: int, gens: Sequence[torch.Generator],
                        hidden: Sequence[int] = (256, 256), device: str = "cpu") -> list[Tensor]:
    """Stacked parameters of FQL's one-step policy μ(s, z): an MLP [O + A, *hidden, A] (ReLU,
    :func:`bench.models.offline.init_mlp`)."""
    return init_mlp([obs_dim + act_dim, *[int(h) for h in hidden], act_dim], gens, device=device)


def one_step_actor(params: Sequence[Tensor], obs: Tensor, z: Tensor) -> Tensor:
    """One seed's one-step policy: tanh(MLP([s, z])) ∈ [−1, 1]^A; obs [N, O], z [N, A] → [N, A]."""
    return torch.tanh(mlp(params, torch.cat([obs, z], -1)))
