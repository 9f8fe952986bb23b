"""Per-seed random streams.

Every seed owns independent ``torch.Generator`` streams named by purpose
("init", "sample", "prompts", ...), derived from (seed, stream) by SHA-256, so
that (a) a seed run inside a batch of seeds draws exactly what it draws alone
and (b) for a given seed every algorithm gets the same initial weights and the
same prompt stream (common random numbers)."""
from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """63-bit integer seed for (seed, stream)."""
    digest = hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def to_device(x: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """Move numbers drawn on a CPU stream to ``device`` without a host sync: to CUDA through
    pinned memory with ``non_blocking=True`` (a plain copy from pageable memory waits for the
    device's queue); unchanged on CPU."""
    device = torch.device(device)
    if device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def generators(seeds: list[int], stream: str, device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per seed for the named stream."""
    return [torch.Generator(device=device).manual_seed(stream_seed(s, stream)) for s in seeds]
