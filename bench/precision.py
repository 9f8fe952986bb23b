"""Numeric precision and compilation switches of a run (``run.autocast``, ``run.tf32``, ``run.compile``).

All three are opt-in and off by default, so the default run is plain fp32 eager
PyTorch on every device:

* ``run.autocast=bf16`` — the rollout and the training forward run under
  ``torch.autocast(device_type, torch.bfloat16)``: matrix products in bf16 with
  fp32 accumulation, parameters, optimizer state and gradients stay fp32; the
  log-softmax of every policy is taken in fp32 (the families call ``.float()``
  before it) so the losses see fp32 log-probabilities. The backward pass and the
  optimizer step run outside the autocast region, as PyTorch recommends.
* ``run.tf32=true`` — CUDA only: fp32 matrix products and convolutions may use
  TF32 tensor cores (``torch.backends.cuda.matmul.allow_tf32``,
  ``torch.backends.cudnn.allow_tf32``). Ignored on CPU (recorded as such).
* ``run.compile=true`` — the per-epoch function *batch fields → per-seed losses*
  (the policy's training forward and the loss) goes through ``torch.compile``;
  the first steps pay the compilation. Off by default: on a small CPU the
  compile time exceeds what short runs save.

Each switch changes numbers, so each is part of a run's identity hash; the
resolved values (and ``torch.get_float32_matmul_precision()``) are written to
``provenance.json`` under ``precision``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch

AUTOCAST_DTYPES: dict[str, Any] = {"none": None, "bf16": torch.bfloat16}
"""``run.autocast`` value → autocast dtype (None: no autocast)."""


@dataclass(frozen=True)
class Precision:
    """Resolved precision switches of one run on one device."""

    device: str = "cpu"
    autocast: str = "none"
    tf32: bool = False
    compile: bool = False

    @property
    def device_type(self) -> str:
        return torch.device(self.device).type

    def autocast_context(self) -> ContextManager:
        """``torch.autocast`` for the configured dtype, or a no-op context."""
        dtype = AUTOCAST_DTYPES[self.autocast]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def provenance(self) -> dict[str, Any]:
        """What ``provenance.json`` records under ``precision``."""
        return {"autocast": self.autocast, "tf32": self.tf32 and self.device_type == "cuda",
                "tf32_requested": self.tf32, "compile": self.compile,
                "float32_matmul_precision": torch.get_float32_matmul_precision()}


def configure(run: Any) -> Precision:
    """The :class:`Precision` of typed run settings (``run.autocast`` is validated against
    :data:`AUTOCAST_DTYPES` when the config is turned into settings); applies the global TF32 flags."""
    p = Precision(device=run.device, autocast=run.autocast, tf32=bool(run.tf32), compile=bool(run.compile))
    if p.device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = p.tf32
        torch.backends.cudnn.allow_tf32 = p.tf32
    return p


def epoch_loss(task: Any, loss_fn: Callable, precision: Precision = Precision()) -> Callable:
    """The per-epoch function ``rollout → (per-seed losses [S], diagnostics)``:
    ``loss_fn(task.batch_fields(rollout))`` under the autocast context, compiled
    with ``torch.compile`` when ``precision.compile`` is set."""
    def forward(rollout: Any):
        with precision.autocast_context():
            return loss_fn(task.batch_fields(rollout))
    return torch.compile(forward) if precision.compile else forward
