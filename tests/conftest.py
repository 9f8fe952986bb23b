"""Repository-wide test settings.

* one torch thread per process (2-core CI machines);
* W&B offline and quiet: no test may touch the network;
* an autouse fixture makes every socket connection and name lookup fail, so a
  test that tries to reach the network fails loudly instead of hanging.
"""
import os
import socket

import pytest

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


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
