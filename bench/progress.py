"""Progress display: one tqdm bar per run (step, current metric, ETA) when
stderr is a terminal; one start line and one end line per run otherwise."""
from __future__ import annotations

import sys
from typing import Optional

from tqdm.auto import tqdm


class RunProgress:
    """``with RunProgress(label, total, enabled) as p: p.update(step, {"error": 0.1})``."""

    def __init__(self, label: str, total: int, enabled: bool = True, stream=None):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.bar: Optional[tqdm] = None
        self.done = 0

    def __enter__(self) -> "RunProgress":
        if self.interactive:
            self.bar = tqdm(total=self.total, desc=self.label, file=self.stream, dynamic_ncols=True, leave=False)
        return self

    def update(self, step: int, shown: dict[str, float]) -> None:
        """Advance to ``step + 1`` steps done and show ``shown`` as the postfix."""
        if self.bar is not None:
            self.bar.update(step + 1 - self.done)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
        self.done = step + 1

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def say(msg: str) -> None:
    """One status line on stderr (shown in interactive and batch logs alike)."""
    print(msg, file=sys.stderr, flush=True)
