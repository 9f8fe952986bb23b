"""Errors of the RLVR task side. Every message is ONE line: the field, the value, and the valid
choices or the fix (a missing file names the path(s) expected and where to obtain them)."""
from __future__ import annotations

from typing import Any

__all__ = ["RLVRError", "TaskConfigError", "TaskDataNotFound", "TaskDataUnreadable", "one_line"]


class RLVRError(Exception):
    """Base class: an RLVR task, extractor or reward cannot be built or used as asked."""


class TaskConfigError(RLVRError, ValueError):
    """A bad setting: unknown task/reward/extractor/split name, unknown or out-of-range setting."""


class TaskDataNotFound(RLVRError, FileNotFoundError):
    """A data directory or file (GSM8K) is missing; the message names the path(s) expected."""


class TaskDataUnreadable(RLVRError, ValueError):
    """A data file exists but cannot be parsed (bad JSON line, missing field, no ``####`` answer)."""


def one_line(text: Any) -> str:
    """``str(text)`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())
