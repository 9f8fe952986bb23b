"""Muon: momentum + Newton–Schulz orthogonalisation for matrix parameters.

For a matrix parameter W with gradient G (trailing two dims; leading dims, if
any, are independent matrices, e.g. stacked seeds), each step does

    m ← μ m + (1 − μ) G                      (EMA momentum buffer, m_0 = 0)
    u = μ m + (1 − μ) G                      (Nesterov look-ahead)
    O = NS_s(u)                              (≈ U Vᵀ for u = U Σ Vᵀ)
    W ← W − lr · sqrt(max(1, fan_out/fan_in)) · O

NS_s: X_0 = u / (‖u‖_F + ε) (so every singular value ≤ 1); work on the wide
orientation (transpose when rows > cols, so X Xᵀ is the smaller Gram matrix);
then s times  A = X Xᵀ,  X ← a X + (b A + c A²) X  with (a, b, c) =
(3.4445, −4.7750, 2.0315). On each singular value σ this is the odd quintic
φ(σ) = aσ + bσ³ + cσ⁵; its steep slope at 0 inflates small σ and it oscillates
around 1, so after 5 steps the singular values lie roughly in [0.7, 1.2]
rather than exactly at 1.

The EMA form differs from the "sum" form (m ← μ m + G) only by the factor
(1 − μ), which the Frobenius normalisation removes, so both give the same
update. Defaults: lr 1e-3, μ = 0.95, Nesterov, 5 steps, no weight decay.

fan_in/fan_out: a torch Linear weight is laid out [out, in] (``layout="out_in"``,
fan_out = rows); an embedding table [V, d] acts as a map from a one-hot V-vector
to d, i.e. [in, out] (``layout="in_out"``, fan_out = cols). Set ``layout`` per
param group.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import Tensor

NS_COEFFS = (3.4445, -4.7750, 2.0315)
LAYOUTS = ("out_in", "in_out")


def newton_schulz(g: Tensor, steps: int = 5, coeffs: Sequence[float] = NS_COEFFS, eps: float = 1e-7) -> Tensor:
    """Approximate orthogonalisation U Vᵀ of g [..., m, n] (see module docstring)."""
    a, b, c = coeffs
    x = g / (torch.linalg.matrix_norm(g, keepdim=True) + eps)
    tall = g.shape[-2] > g.shape[-1]
    if tall:
        x = x.transpose(-2, -1)
    for _ in range(steps):
        A = x @ x.transpose(-2, -1)
        x = a * x + (b * A + c * (A @ A)) @ x
    return x.transpose(-2, -1) if tall else x


def muon_scale(shape: Sequence[int], layout: str = "out_in") -> float:
    """sqrt(max(1, fan_out/fan_in)) for a matrix of the given trailing shape and layout."""
    rows, cols = shape[-2], shape[-1]
    fan_out, fan_in = {"out_in": (rows, cols), "in_out": (cols, rows)}[layout]
    return math.sqrt(max(1.0, fan_out / fan_in))


class Muon(torch.optim.Optimizer):
    """Muon for matrix parameters (ndim ≥ 2; the trailing two dims are the matrix).

    Group options: lr (1e-3), momentum μ (0.95), nesterov (True), ns_steps (5),
    ns_coeffs ((3.4445, −4.7750, 2.0315)), layout ("out_in" | "in_out").
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, ns_coeffs: Sequence[float] = NS_COEFFS, layout: str = "out_in") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; valid: {list(LAYOUTS)}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        ns_coeffs=tuple(ns_coeffs), layout=layout)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() < 2:
                    raise ValueError(f"Muon needs matrices (ndim >= 2), got a parameter of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        """One Muon update of every parameter that has a gradient."""
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(mu).add_(p.grad, alpha=1.0 - mu)
                u = p.grad * (1.0 - mu) + buf * mu if group["nesterov"] else buf
                o = newton_schulz(u, group["ns_steps"], group["ns_coeffs"])
                p.add_(o.to(p.dtype), alpha=-group["lr"] * muon_scale(p.shape, group["layout"]))
        return loss
