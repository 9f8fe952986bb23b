"""Repository-wide test settings.

* one torch thread per process (2-core CI machines);
* W&B offline and quiet: no test may touch the network;
* an autouse fixture makes every socket connection and name lookup fail, so a
  test that tries to reach the network fails loudly instead of hanging;
* an autouse fixture seeds torch, numpy and ``random`` before every test from the
  test's own node id, so every random draw in a test is reproducible whatever
  order or subset of tests runs.
"""
import os
import random
import socket
import zlib

import pytest

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def seed_of_test(nodeid: str) -> int:
    """The seed of one test: CRC-32 of its pytest node id (stable across runs and orderings)."""
    return zlib.crc32(nodeid.encode("utf-8"))


@pytest.fixture(autouse=True)
def seeded_rngs(request):
    """Seed torch (CPU and CUDA), numpy and ``random`` before each test."""
    import numpy as np

    seed = seed_of_test(request.node.nodeid)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    yield


class NetworkBlocked(OSError):
    """Raised instead of opening a network connection during tests."""


def _blocked(*args, **kwargs):
    raise NetworkBlocked("network access is disabled in tests (tests/conftest.py)")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every socket connection / name lookup fails for the duration of each test
    (Unix-domain sockets, used by local process pools, stay allowed)."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, address)
        return _blocked()

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)
    yield
