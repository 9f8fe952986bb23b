"""How many seeds train together in one batch (``run.seeds_per_batch``; 0 = auto).

All seeds of a configuration normally run as one batch (stacked parameters, one
process). When they do not fit in memory the run is split into *chunks* of seeds
that train one after another in the same process and write into the same record
(rows carry their seed), down to one seed per chunk. Results do not depend on the
chunking: every seed draws from its own random streams, so a seed computes the
same numbers in any chunk (up to float rounding of batched kernels; tested per
family). ``seeds_per_batch`` is therefore left out of a run's identity hash.

Auto mode estimates the memory one seed needs with a one-seed probe — build the
task, draw one rollout and evaluate one epoch's loss (offline: one minibatch and
each phase's loss, the largest counted) — as

    bytes/seed = TRANSIENT × (bytes of the tensors autograd saves for the backward pass
                              + bytes of the frozen rollout)
               + 4 × parameter bytes   (parameters, gradients, two optimizer moments)

and takes ``floor(headroom · available / bytes_per_seed)`` seeds per chunk, where
``available`` is the free device memory (``torch.cuda.mem_get_info``) or the
kernel's ``MemAvailable`` on CPU, and ``headroom`` = 0.5. ``TRANSIENT`` = 3 covers
what the count omits (backward intermediates, decoding caches, vmap temporaries):
measured with ``bench-perf`` on CPU at the Table 3 setting, the peak RSS grew by
2.2–3.0× the counted bytes per added seed (TPO 140 MB vs 62 MB counted, PPO 45 vs
15, DG 39 vs 15).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Optional

import torch

HEADROOM = 0.5
TRANSIENT = 3.0


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in ``obj`` (a tensor, dataclass, mapping or sequence of them)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(tensor_bytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def saved_activation_bytes(fn, *args) -> tuple[Any, int]:
    """Run ``fn(*args)`` and count the bytes of the distinct tensors autograd saves for backward."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        try:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            seen[key] = key[1]
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. under vmap wrappers)
            seen[(id(t), 0)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return out, sum(seen.values())


def bytes_per_seed(settings: Any) -> int:
    """Estimated peak bytes of one seed of ``settings`` (one-seed probe; see module docstring)."""
    from bench.build import build
    from bench.precision import configure, epoch_loss

    one = dataclasses.replace(settings, run=dataclasses.replace(settings.run, seeds=1))
    device = torch.device(settings.run.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's RNG is untouched
        built = build(one)
        if hasattr(built.task, "sample"):   # offline loop: one minibatch, the largest phase's saved tensors
            rollout = built.task.sample(0)
            saved = max(saved_activation_bytes(built.loss, phase, built.task, rollout)[1]
                        for phase in built.loss.spec.phases)
        else:
            precision = configure(one.run)
            with precision.autocast_context():
                rollout, _ = built.task.rollout(0)
            forward = epoch_loss(built.task, built.loss, dataclasses.replace(precision, compile=False))
            _, saved = saved_activation_bytes(forward, rollout)
    params = sum(p.numel() * p.element_size() for p in built.task.parameters())
    return int(TRANSIENT * (saved + tensor_bytes(rollout))) + 4 * params


def available_bytes(device: str) -> Optional[int]:
    """Free memory on ``device``: CUDA free bytes, or the CPU's ``MemAvailable``; None if unknown."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def auto_seeds_per_batch(n_seeds: int, per_seed: int, available: Optional[int], headroom: float = HEADROOM) -> int:
    """min(n, ⌊headroom · available / per_seed⌋), at least 1 (all n when memory is unknown)."""
    if available is None or per_seed <= 0:
        return n_seeds
    return max(1, min(n_seeds, math.floor(headroom * available / per_seed)))


def seeds_per_batch(settings: Any, n_seeds: int) -> int:
    """The chunk size of a run: ``run.seeds_per_batch`` if set, else the auto choice."""
    if settings.run.seeds_per_batch > 0:
        return min(settings.run.seeds_per_batch, n_seeds)
    if n_seeds == 1:
        return 1
    return auto_seeds_per_batch(n_seeds, bytes_per_seed(settings), available_bytes(settings.run.device))


def chunks(seeds: list[int], size: int) -> list[list[int]]:
    """Consecutive chunks of ``size`` seeds (the last one may be shorter)."""
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]
