"""Waiting for a condition in synchronous tests: bounded, polled, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Return once `condition()` holds; fail naming `what` after `timeout` seconds (a busy machine only
    makes it slower, never wrong)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:g} s"
        time.sleep(0.02)
