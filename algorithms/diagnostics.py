"""Whether losses compute their diagnostics (the no-grad summaries they return beside the loss).

The on-policy loop turns them off on the steps it does not log (for tasks that log only on its cadence,
:func:`bench.loop.train`), so a step that is not recorded does not pay for summaries nobody reads. A loss
that honours the switch returns ``{}`` as its diagnostics while it is off; its loss value and gradient never
depend on it. On by default.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

_STATE = {"enabled": True}


def enabled() -> bool:
    """True unless inside ``computed(False)``."""
    return _STATE["enabled"]


@contextlib.contextmanager
def computed(on: bool) -> Iterator[None]:
    """Turn the diagnostics on or off inside the block (restored after it, also on an exception)."""
    before = _STATE["enabled"]
    _STATE["enabled"] = bool(on)
    try:
        yield
    finally:
        _STATE["enabled"] = before
