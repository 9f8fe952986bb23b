"""AdamW with Nesterov momentum (NAdam without a momentum-decay schedule).

Per parameter, at step t = 1, 2, … with gradient g:

    m ← β1 m + (1 − β1) g
    v ← β2 v + (1 − β2) g²
    m̂ = β1 · m / (1 − β1^{t+1}) + (1 − β1) · g / (1 − β1^t)     (Nesterov look-ahead)
    v̂ = v / (1 − β2^t)
    p ← p − lr · ( m̂ / (sqrt(v̂) + ε) + λ p )                    (decoupled weight decay)

This is Dozat's NAdam with a constant β1 (as in optax's ``adamw(nesterov=True)``),
not torch's ``NAdam``, whose μ_t schedule (momentum_decay) changes β1 per step.
Defaults: lr 1e-3, β = (0.9, 0.999), ε = 1e-8, λ = 0 (no weight decay).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch


class AdamWNesterov(torch.optim.Optimizer):
    """See the module docstring for the exact update."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient (the module docstring's arithmetic, per
        parameter, run as ``torch._foreach`` operations over the parameters sharing a step count)."""
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            by_step: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, ps in by_step.items():
                g = [p.grad for p in ps]
                m = [self.state[p]["exp_avg"] for p in ps]
                v = [self.state[p]["exp_avg_sq"] for p in ps]
                torch._foreach_mul_(m, b1)
                torch._foreach_add_(m, g, alpha=1.0 - b1)
                torch._foreach_mul_(v, b2)
                torch._foreach_addcmul_(v, g, g, value=1.0 - b2)
                m_hat = torch._foreach_mul(m, b1 / (1.0 - b1 ** (t + 1)))
                torch._foreach_add_(m_hat, torch._foreach_mul(g, (1.0 - b1) / (1.0 - b1 ** t)))
                denom = torch._foreach_div(v, 1.0 - b2 ** t)
                torch._foreach_sqrt_(denom)
                torch._foreach_add_(denom, group["eps"])
                if group["weight_decay"]:
                    torch._foreach_mul_(ps, 1.0 - group["lr"] * group["weight_decay"])
                torch._foreach_addcdiv_(ps, m_hat, denom, value=-group["lr"])
        return loss
