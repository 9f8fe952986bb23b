"""Named parameter splits between Muon and AdamW-Nesterov, and the optimizer builder.

A model may expose ``parameter_roles() -> {name: role}`` (the transformer
does: attention, attention_bias, ffn, head, embedding, norm, bias) and
``parameter_views() -> {name: (rows, cols)}`` (the matrix shape the reference
gives a tensor that torch stores flat: the q/k/v biases, [heads, head_dim]).
Models without roles get the generic roles ``matrix`` (ndim ≥ 2) and
``vector``. A split maps role → group:

* ``reference`` — the reference code (``optax.contrib.muon``'s rule: Muon for
  every 2-D tensor as the reference's Flax model shapes it, AdamW for the rest;
  docs/paper-map.md §5, §7):

  =================================  ======================  =====
  tensor                             reference shape         group
  =================================  ======================  =====
  attention q/k/v kernels            [d, heads, head_dim]    AdamW
  attention out kernel               [heads, head_dim, d]    AdamW
  attention q/k/v biases             [heads, head_dim]       Muon
  attention out bias                 [d]                     AdamW
  FFN kernels, head kernel           [in, out]               Muon
  token / position embeddings        [V, d] / [2H, d]        Muon
  LayerNorm scale/bias, other biases 1-D                     AdamW
  =================================  ======================  =====

  A q/k/v bias (torch: a d-vector, [S, d] when stacked over seeds) is
  orthogonalised as the [heads, head_dim] matrix, read as [fan_in, fan_out]
  like any Flax 2-D parameter, so its update scale is √max(1, head_dim/heads).
* ``all-matrices`` — ``reference`` plus the attention q/k/v/out weights as
  torch's [d, d] matrices: it differs from ``reference`` only in the
  attention kernels.

Embedding tables and views are laid out [in, out] for Muon's fan ratio (see
:mod:`bench.optim.muon`). No gradient clipping anywhere.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from bench.optim.adamw_nesterov import AdamWNesterov
from bench.optim.muon import EPS, NS_COEFFS, Muon

MUON, ADAMW = "muon", "adamw"

_COMMON = {"ffn": MUON, "head": MUON, "embedding": MUON, "matrix": MUON, "norm": ADAMW, "bias": ADAMW,
           "vector": ADAMW, "value": ADAMW}  # "value": a learned baseline V(x) beside the policy (sequence family)

SPLITS: Mapping[str, Mapping[str, str]] = {
    "reference": {**_COMMON, "attention": ADAMW, "attention_bias": MUON},
    "all-matrices": {**_COMMON, "attention": MUON, "attention_bias": MUON},
}

# Muon's fan_out/fan_in orientation by role (torch Linear weights are [out, in]; views are the
# reference's Flax shapes, [in, out])
_LAYOUT = {"embedding": "in_out", "attention_bias": "in_out"}


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """The model's own roles if it defines ``parameter_roles``, else matrix/vector by ndim."""
    if hasattr(model, "parameter_roles"):
        return model.parameter_roles()
    return {n: ("matrix" if p.dim() >= 2 else "vector") for n, p in model.named_parameters()}


def parameter_views(model: nn.Module) -> dict[str, tuple[int, int]]:
    """The model's ``parameter_views()`` (name → (rows, cols) of the reference's matrix), else {}."""
    if hasattr(model, "parameter_views"):
        return {name: (int(r), int(c)) for name, (r, c) in model.parameter_views().items()}
    return {}


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
                    muon_eps: float = EPS, bias_correction: bool = True,
                    ) -> tuple[SplitOptimizer, list[tuple[str, str]]]:
    """Muon (Nesterov unless ``nesterov=False``; ``muon_eps``, ``bias_correction`` as in
    :class:`bench.optim.muon.Muon`) on the split's matrices, AdamW-Nesterov (no weight decay) on the
    rest, same lr. ``model`` is anything with ``named_parameters()`` (and optionally
    ``parameter_roles()`` and ``parameter_views()``), e.g. a task holding seed-stacked parameters
    [S, ...]: the seed axis is a batch axis of every matrix.

    Returns (optimizer, [(name, group)]) — the list is for the run record. Raises ValueError for an
    unknown split, or a Muon ``attention_bias`` parameter without a view (its matrix shape is the
    reference's [heads, head_dim], which the flat tensor does not carry).
    """
    assignment = assign(model, split)
    params, roles, views = dict(model.named_parameters()), parameter_roles(model), parameter_views(model)
    muon_groups: dict[tuple, list] = {}
    adam_params = []
    for name, group in assignment:
        if group == MUON:
            if roles[name] == "attention_bias" and name not in views:
                raise ValueError(f"parameter {name!r} (role attention_bias) has no [heads, head_dim] view; the "
                                 "model must list it in parameter_views()")
            key = (_LAYOUT.get(roles[name], "out_in"), views.get(name))
            muon_groups.setdefault(key, []).append(params[name])
        else:
            adam_params.append(params[name])
    optimizers: list[torch.optim.Optimizer] = []
    if muon_groups:
        optimizers.append(Muon([{"params": ps, "layout": lay, "view": view} for (lay, view), ps in muon_groups.items()],
                               lr=lr, momentum=muon_momentum, nesterov=nesterov, ns_steps=ns_steps,
                               ns_coeffs=ns_coeffs, eps=muon_eps, bias_correction=bias_correction))
    if adam_params:
        optimizers.append(AdamWNesterov(adam_params, lr=lr, betas=adam_betas, eps=adam_eps, weight_decay=0.0))
    return SplitOptimizer(optimizers), assignment
