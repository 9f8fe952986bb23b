"""Test settings for tests/envs: one torch thread. The network is blocked for
every test by the repository-wide ``tests/conftest.py`` (autouse ``no_network``)."""
import torch

torch.set_num_threads(1)
