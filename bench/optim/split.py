"""Named parameter splits between Muon and AdamW-Nesterov, and the optimizer builder.

A model may expose ``parameter_roles() -> {name: role}`` (the transformer
does: attention, ffn, head, embedding, norm, bias). Models without it get the
generic roles ``matrix`` (ndim ≥ 2) and ``vector``. A split maps role → group:

* ``reference`` — the reference code: attention q/k/v/out weights (3-D kernels
  there) → AdamW; every other matrix (FFN, head, token and position
  embeddings) → Muon; biases and LayerNorm → AdamW.
* ``all-matrices`` — every 2-D weight, attention included, → Muon.

Embedding tables are laid out [in, out] for Muon's fan ratio (see
:mod:`bench.optim.muon`). No gradient clipping anywhere.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from bench.optim.adamw_nesterov import AdamWNesterov
from bench.optim.muon import NS_COEFFS, Muon

MUON, ADAMW = "muon", "adamw"

_COMMON = {"ffn": MUON, "head": MUON, "embedding": MUON, "matrix": MUON, "norm": ADAMW, "bias": ADAMW,
           "vector": ADAMW, "value": ADAMW}  # "value": a learned baseline V(x) beside the policy (sequence family)

SPLITS: Mapping[str, Mapping[str, str]] = {
    "reference": {**_COMMON, "attention": ADAMW},
    "all-matrices": {**_COMMON, "attention": MUON},
}

# Muon's fan_out/fan_in orientation by role (torch Linear weights are [out, in])
_LAYOUT = {"embedding": "in_out"}


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """The model's own roles if it defines ``parameter_roles``, else matrix/vector by ndim."""
    if hasattr(model, "parameter_roles"):
        return model.parameter_roles()
    return {n: ("matrix" if p.dim() >= 2 else "vector") for n, p in model.named_parameters()}


def assign(model: nn.Module, split: str) -> list[tuple[str, str]]:
    """[(parameter name, "muon" | "adamw")] in ``named_parameters`` order; ValueError on an unknown split."""
    if split not in SPLITS:
        raise ValueError(f"unknown optimizer split {split!r}; valid: {sorted(SPLITS)}")
    table, roles = SPLITS[split], parameter_roles(model)
    return [(name, table[roles[name]]) for name, _ in model.named_parameters()]


class SplitOptimizer:
    """Steps several optimizers as one (Muon + AdamW); exposes the usual methods."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        """All param groups of all inner optimizers (e.g. for lr schedules)."""
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> list[dict]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: Sequence[dict]) -> None:
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)


def build_optimizer(model: nn.Module, split: str = "reference", lr: float = 1e-3, muon_momentum: float = 0.95,
                    ns_steps: int = 5, ns_coeffs: Sequence[float] = NS_COEFFS,
                    adam_betas: Sequence[float] = (0.9, 0.999), adam_eps: float = 1e-8, nesterov: bool = True,
                    ) -> tuple[SplitOptimizer, list[tuple[str, str]]]:
    """Muon (Nesterov unless ``nesterov=False``) on the split's matrices, AdamW-Nesterov (no weight
    decay) on the rest, same lr. ``model`` is anything with ``named_parameters()`` (and optionally
    ``parameter_roles()``), e.g. a task holding seed-stacked parameters.

    Returns (optimizer, [(name, group)]) — the list is for the run record.
    """
    assignment = assign(model, split)
    params, roles = dict(model.named_parameters()), parameter_roles(model)
    muon_groups: dict[str, list] = {}
    adam_params = []
    for name, group in assignment:
        if group == MUON:
            muon_groups.setdefault(_LAYOUT.get(roles[name], "out_in"), []).append(params[name])
        else:
            adam_params.append(params[name])
    optimizers: list[torch.optim.Optimizer] = []
    if muon_groups:
        optimizers.append(Muon([{"params": ps, "layout": lay} for lay, ps in muon_groups.items()], lr=lr,
                               momentum=muon_momentum, nesterov=nesterov, ns_steps=ns_steps, ns_coeffs=ns_coeffs))
    if adam_params:
        optimizers.append(AdamWNesterov(adam_params, lr=lr, betas=adam_betas, eps=adam_eps, weight_decay=0.0))
    return SplitOptimizer(optimizers), assignment
