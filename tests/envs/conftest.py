"""Test settings for tests/envs.

* one torch thread (small CPU machines; deterministic timings);
* no network: an autouse fixture makes every socket connection / name lookup fail,
  so no test here (e.g. the MNIST download tests) can reach the internet.
"""
import socket

import pytest
import torch

torch.set_num_threads(1)


class NetworkBlocked(OSError):
    """Raised instead of opening a network connection during tests."""


def _blocked(*args, **kwargs):
    raise NetworkBlocked("network access is disabled in tests (tests/envs/conftest.py)")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make every socket connection / name lookup fail for the duration of each test."""
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)
    yield
