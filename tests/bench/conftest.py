"""Test settings: one torch thread (small CPU machines; deterministic timings)."""
import torch

torch.set_num_threads(1)
