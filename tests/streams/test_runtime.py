"""The agent runner: batches from the checkpoint, retry without skipping, lag, read-your-writes waits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from streams.events import Event, new_event
from streams.log import MemoryEventLog
from streams.runtime import AgentRunner


class Recorder:
    """A real in-memory agent: keeps what it applied and its checkpoint, can be told to fail."""

    name = "recorder"

    def __init__(self, fail_on: set[int] | None = None, failures: int = 0) -> None:
        self.applied: list[int] = []
        self.position = 0
        self.fail_on = fail_on or set()
        self.failures_left = failures
        self.batches: list[int] = []

    def checkpoint(self) -> int:
        return self.position

    def apply(self, events: Sequence[Event]) -> None:
        positions = [e.position or 0 for e in events]
        if self.failures_left and self.fail_on & set(positions):
            self.failures_left -= 1
            raise RuntimeError(f"cannot apply {sorted(self.fail_on & set(positions))}")
        self.applied.extend(positions)
        self.batches.append(len(events))
        self.position = positions[-1]


def fill(log: MemoryEventLog, n: int) -> None:
    log.append([new_event("job.deleted", f"job/c/{i}/1", {"reason": ""}) for i in range(n)])


def test_catches_up_in_batches_from_checkpoint() -> None:
    log = MemoryEventLog()
    fill(log, 25)
    agent = Recorder()
    agent.position = 5
    runner = AgentRunner(log, agent, batch_size=10)
    assert runner.run_until_caught_up() == 25
    assert agent.applied == list(range(6, 26))
    assert agent.batches == [10, 10]


def test_failure_is_retried_not_skipped_and_reported() -> None:
    log = MemoryEventLog()
    fill(log, 6)
    agent = Recorder(fail_on={4}, failures=3)
    runner = AgentRunner(log, agent, batch_size=10, max_backoff=0.01)
    runner.run_until_caught_up()
    assert agent.applied == [1, 2, 3, 4, 5, 6]
    status = runner.status()
    assert status.lag == 0 and status.blocked_at is None
    assert status.last_error is not None and "cannot apply [4]" in status.last_error


def test_blocked_agent_reports_position_and_lag() -> None:
    log = MemoryEventLog()
    fill(log, 5)
    agent = Recorder(fail_on={3}, failures=10**6)
    runner = AgentRunner(log, agent, batch_size=10, max_backoff=0.01)
    runner.step()  # the whole batch fails
    runner.step()  # narrowed to one event at a time: 1 succeeds
    runner.step()  # 2 succeeds
    runner.step()  # 3 fails on its own
    runner.step()  # and again: it is never skipped
    status = runner.status()
    assert status.checkpoint == 2 and status.blocked_at == 3 and status.lag == 3
    assert status.failures >= 1


def test_thread_follows_appends_and_wakes_waiters() -> None:
    log = MemoryEventLog()
    agent = Recorder()
    runner = AgentRunner(log, agent)
    runner.start()
    try:
        fill(log, 3)
        assert runner.wait_for(3, timeout=5)
        assert runner.status().running
    finally:
        runner.stop()
    assert not runner.status().running


def test_async_wait_for_position() -> None:
    log = MemoryEventLog()
    runner = AgentRunner(log, Recorder())
    runner.start()

    async def scenario() -> tuple[bool, bool]:
        threading.Timer(0.05, lambda: fill(log, 2)).start()
        reached = await runner.wait_for_async(2, timeout=5)
        never = await runner.wait_for_async(99, timeout=0.05)
        return reached, never

    try:
        assert asyncio.run(scenario()) == (True, False)
    finally:
        runner.stop()


def test_async_waits_timed_out_or_cancelled_leave_no_waiter_behind() -> None:
    runner = AgentRunner(MemoryEventLog(), Recorder())

    async def scenario() -> None:
        assert not await runner.wait_for_async(5, timeout=0.01)
        waiting = asyncio.create_task(runner.wait_for_async(5, timeout=30))
        await asyncio.sleep(0.01)
        assert len(runner._async_waiters) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())
    assert runner._async_waiters == []


def test_wait_for_times_out() -> None:
    runner = AgentRunner(MemoryEventLog(), Recorder())
    started = time.monotonic()
    assert not runner.wait_for(1, timeout=0.05)
    assert time.monotonic() - started < 2


def test_type_filtered_runner_sees_only_its_types_and_reports_no_false_lag() -> None:
    log = MemoryEventLog()
    fill(log, 3)
    log.append([new_event("job.stopped", "job/c/9/1", {"jobState": "completed", "stopTime": 2, "duration": 1})])
    fill(log, 2)
    agent = Recorder()
    runner = AgentRunner(log, agent, types={"job.stopped"})
    runner.run_until_caught_up()
    runner.step()  # nothing more of its type: scanned up to the head
    assert agent.applied == [4]
    assert runner.status().lag == 0


def test_apply_committed_applies_a_small_step_in_the_callers_thread() -> None:
    log = MemoryEventLog()
    agent = Recorder()
    runner = AgentRunner(log, agent)
    fill(log, 3)
    runner.apply_committed(log.head())
    assert agent.applied == [1, 2, 3] and runner.position == 3
    runner.apply_committed(log.head())  # nothing new: nothing applied
    assert agent.batches == [3]


def test_apply_committed_leaves_long_gaps_and_failures_to_the_agents_thread() -> None:
    from streams.runtime.runner import INLINE_LIMIT

    log = MemoryEventLog()
    agent = Recorder(fail_on={INLINE_LIMIT + 2}, failures=1)
    runner = AgentRunner(log, agent, batch_size=INLINE_LIMIT)
    fill(log, INLINE_LIMIT + 1)
    runner.apply_committed(log.head())
    assert agent.applied == [], "too far behind: the agent's thread catches up"
    runner.step()
    runner.apply_committed(log.head())
    assert runner.position == INLINE_LIMIT + 1
    fill(log, 1)
    began = time.monotonic()
    runner.apply_committed(log.head())  # fails: recorded, but no back-off in the caller's thread
    assert time.monotonic() - began < 0.04
    assert runner.status().failures == 1 and runner.position == INLINE_LIMIT + 1
    fill(log, 1)
    runner.apply_committed(log.head())
    assert runner.position == INLINE_LIMIT + 1, "a failing agent is retried by its own thread only"
    runner.start()
    try:
        assert runner.wait_for(INLINE_LIMIT + 3, timeout=5)
    finally:
        runner.stop()
    runner.apply_committed(log.head() + 1)  # stopped: never applies
    assert agent.applied == list(range(1, INLINE_LIMIT + 4))
