"""Muon: momentum + Newton–Schulz orthogonalisation for matrix parameters.

The TPO paper's reference implementation (JAX) optimises its matrices with
``optax.contrib.muon``; the default here follows that optimizer's update
(optax 0.2.5 to 0.2.8, i.e. June 2025 to March 2026, whose Muon step is the
same in all four releases) up to float round-off (see docs/paper-map.md §5
and §7). For a matrix parameter W with gradient G at step t = 1, 2, …

    m_t = μ m_{t−1} + (1 − μ) G_t                                  (EMA momentum, m_0 = 0)
    u_t = μ · m_t / (1 − μ^{t+1}) + (1 − μ) · G_t / (1 − μ^t)      (Nesterov, bias-corrected)
        = m_t / (1 − μ^t)                                          (without Nesterov)
    O_t = NS_s(u_t)                                                (≈ U Vᵀ for u_t = U Σ Vᵀ)
    W  ← W − lr · sqrt(max(1, fan_out/fan_in)) · O_t

NS_s (Newton–Schulz, ``newton_schulz``): normalise X_0 = u / (‖u‖_F + ε) so
that every singular value is ≤ 1, work on the wide orientation (transpose
when rows > cols, so X Xᵀ is the smaller Gram matrix), then s times
A = X Xᵀ, X ← a X + (b A + c A²) X with (a, b, c) = (3.4445, −4.7750, 2.0315),
and transpose back. On each singular value σ this is the odd quintic
φ(σ) = aσ + bσ³ + cσ⁵; its steep slope at 0 inflates small σ and it oscillates
around 1, so after 5 steps the singular values lie roughly in [0.7, 1.2].
Because φ is odd, NS(Xᵀ) = NS(X)ᵀ: the orientation of the stored matrix
changes only round-off, so a torch Linear weight [out, in] gets the transpose
of the update that a Flax kernel [in, out] gets.

ε matters only when ‖u‖_F is not large against it: with gradient entries
of order 1e-7 (a solved policy) ‖u‖_F is itself ~1e-6, X_0 shrinks by the
factor ‖u‖_F / (‖u‖_F + ε), and the quintic, which does not bring small
singular values to ~1 in 5 steps, passes part of that shrinkage on to O_t
(ε = 1e-7 against 1e-8 changes the update by several per cent there).

Which parameters: optax.contrib.muon (without weight-dimension numbers)
sends every 2-D parameter to this update and every other one to AdamW with
Nesterov momentum, the same ε and no weight decay
(:class:`bench.optim.adamw_nesterov.AdamWNesterov`); the named splits of
:mod:`bench.optim.split` reproduce that labelling for the reference's shapes.

Legacy variant (``bias_correction=False, eps=1e-7``, the suite's earlier
default): u_t = μ m_t + (1 − μ) G_t (Nesterov) or m_t, and ε = 1e-7. Without
bias correction the relative weight of m_t against G_t differs from the
default by (1 − μ^t)/(1 − μ^{t+1}), which tends to 1 as t grows.

fan_in/fan_out: optax reads a 2-D parameter as [fan_in, fan_out] (reduction
axis 0, output axis 1), Flax's kernel layout. A torch Linear weight is laid
out [out, in] (``layout="out_in"``: fan_out = rows); an embedding table [V, d]
maps a one-hot V-vector to d, i.e. [in, out] (``layout="in_out"``: fan_out =
cols). Set ``layout`` per param group.

Matrix views (``view=(r, c)`` per param group): the last axis (length r·c) is
read as an r × c matrix, e.g. a q/k/v bias of length d_model as the
reference's [heads, head_dim] matrix; leading axes (stacked seeds) stay batch
axes. Without a view the trailing two axes are the matrix and any leading
axes are independent matrices (optax's batch axes, mapped with vmap there).

Defaults: lr 1e-3, μ = 0.95, Nesterov, 5 steps, ε = 1e-8, bias correction on,
no weight decay.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor

NS_COEFFS = (3.4445, -4.7750, 2.0315)
LAYOUTS = ("out_in", "in_out")
EPS = 1e-8          # optax.contrib.muon's eps
LEGACY_EPS = 1e-7   # the suite's earlier Muon eps (with bias_correction=False)


def newton_schulz(g: Tensor, steps: int = 5, coeffs: Sequence[float] = NS_COEFFS, eps: float = EPS) -> Tensor:
    """Approximate orthogonalisation U Vᵀ of g [..., m, n] → [..., m, n] (module docstring: NS_s)."""
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


def matrix_shape(param_shape: Sequence[int], view: Optional[Sequence[int]] = None) -> tuple[int, int]:
    """The (rows, cols) Muon orthogonalises for a parameter: ``view`` if given, else the trailing two axes."""
    return (int(view[0]), int(view[1])) if view is not None else (param_shape[-2], param_shape[-1])


class Muon(torch.optim.Optimizer):
    """Muon for matrix parameters (see the module docstring for the exact update).

    Group options: lr (1e-3), momentum μ (0.95, in [0, 1)), nesterov (True),
    ns_steps (5), ns_coeffs ((3.4445, −4.7750, 2.0315)), eps (1e-8, > 0),
    bias_correction (True), layout ("out_in" | "in_out"), view (None or
    (rows, cols): read the last axis as that matrix).

    Raises ValueError (one line) for an unknown layout, μ outside [0, 1),
    eps ≤ 0, or a parameter that is not a matrix (ndim < 2 without a view,
    last axis ≠ rows·cols with one).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, ns_coeffs: Sequence[float] = NS_COEFFS, layout: str = "out_in",
                 eps: float = EPS, bias_correction: bool = True, view: Optional[Sequence[int]] = None) -> None:
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        ns_coeffs=tuple(ns_coeffs), layout=layout, eps=eps, bias_correction=bias_correction,
                        view=view)
        super().__init__(params, defaults)
        for group in self.param_groups:
            self._check_group(group)

    @staticmethod
    def _check_group(group: dict) -> None:
        if group["layout"] not in LAYOUTS:
            raise ValueError(f"Muon layout={group['layout']!r} is unknown; valid: {list(LAYOUTS)}")
        if not 0.0 <= group["momentum"] < 1.0:
            raise ValueError(f"Muon momentum={group['momentum']} is out of range; allowed: 0 <= momentum < 1")
        if not group["eps"] > 0.0:
            raise ValueError(f"Muon eps={group['eps']} is out of range; allowed: eps > 0")
        view = group["view"]
        if view is not None:
            group["view"] = view = (int(view[0]), int(view[1]))
        for p in group["params"]:
            if view is None and p.dim() < 2:
                raise ValueError(f"Muon needs matrices (ndim >= 2) or a view, got a parameter of shape "
                                 f"{tuple(p.shape)}")
            if view is not None and (p.dim() < 1 or p.shape[-1] != view[0] * view[1]):
                raise ValueError(f"Muon view={view} needs a last axis of {view[0] * view[1]}, got a parameter "
                                 f"of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        """One Muon update of every parameter that has a gradient.

        The arithmetic is per parameter as in the module docstring; it is batched for speed: the momentum
        updates of a group run as ``torch._foreach`` operations, and the Newton–Schulz iterations of all
        matrices of one shape (and step count) run as one batched product — every matrix is still
        orthogonalised on its own (the batch axes of ``newton_schulz``)."""
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            mu, view = group["momentum"], group["view"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["momentum_buffer"] = torch.zeros_like(p)
                state["step"] = int(state.get("step", 0)) + 1
            grads = [p.grad for p in params]
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, mu)
            torch._foreach_add_(bufs, grads, alpha=1.0 - mu)
            buckets: dict[tuple, list[int]] = {}
            for i, p in enumerate(params):
                key = (matrix_shape(p.shape, view), self.state[p]["step"], p.dtype, p.device)
                buckets.setdefault(key, []).append(i)
            for ((rows, cols), t, _, _), idx in buckets.items():
                g = [grads[i] for i in idx]
                b = [bufs[i] for i in idx]
                if group["bias_correction"]:
                    if group["nesterov"]:
                        u = torch._foreach_mul(b, mu / (1.0 - mu ** (t + 1)))
                        torch._foreach_add_(u, torch._foreach_mul(g, (1.0 - mu) / (1.0 - mu ** t)))
                    else:
                        u = torch._foreach_div(b, 1.0 - mu ** t)
                else:
                    u = torch._foreach_add(torch._foreach_mul(b, mu), torch._foreach_mul(g, 1.0 - mu)) \
                        if group["nesterov"] else b
                stacked = torch.cat([x.reshape(-1, rows, cols) for x in u])
                o = newton_schulz(stacked, group["ns_steps"], group["ns_coeffs"], group["eps"])
                alpha = -group["lr"] * muon_scale((rows, cols), group["layout"])
                ps = [params[i] for i in idx]
                torch._foreach_add_(ps, [x.reshape(q.shape).to(q.dtype) for x, q in
                                         zip(o.split([q.numel() // (rows * cols) for q in ps]), ps)], alpha=alpha)
        return loss
