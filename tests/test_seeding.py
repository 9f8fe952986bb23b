"""The autouse ``seeded_rngs`` fixture (tests/conftest.py) makes every test's random draws reproducible."""
import random
import zlib

import numpy as np
import torch



def seed_of_test(nodeid: str) -> int:
    """The contract of tests/conftest.py: CRC-32 of the test's node id."""
    return zlib.crc32(nodeid.encode("utf-8"))


def test_draws_follow_the_seed_of_this_test(request):
    seed = seed_of_test(request.node.nodeid)
    t, n, r = torch.rand(3), np.random.rand(2), random.random()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    assert torch.equal(t, torch.rand(3))
    assert np.array_equal(n, np.random.rand(2))
    assert r == random.random()


def test_seed_differs_between_tests():
    assert seed_of_test("tests/a.py::test_x") != seed_of_test("tests/a.py::test_y")
    assert seed_of_test("tests/a.py::test_x") == seed_of_test("tests/a.py::test_x")
