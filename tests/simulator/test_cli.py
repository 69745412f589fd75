"""Where a simulation starts: never so late that its samples would lie in the future."""

from __future__ import annotations

import pytest

from replay.simulator.cli import SimulationError, start_time

NOW = 1_800_000_000


def test_an_accelerated_run_ends_at_the_present() -> None:
    start = start_time(None, 60.0, 3600, NOW)
    assert start == NOW - 3540
    # The run takes 3600 / 60 = 60 wall seconds, during which the wall clock moves 60 s on.
    assert start + 3600 == NOW + 60


def test_real_time_or_endless_runs_start_now() -> None:
    assert start_time(None, 1.0, 3600, NOW) == NOW
    assert start_time(None, 0.5, 3600, NOW) == NOW
    assert start_time(None, 60.0, None, NOW) == NOW


def test_a_given_start_is_kept_unless_it_lies_in_the_future() -> None:
    assert start_time(NOW - 10, 60.0, 3600, NOW) == NOW - 10
    with pytest.raises(SimulationError, match="future"):
        start_time(NOW + 1, 1.0, None, NOW)
