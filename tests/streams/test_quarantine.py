"""No event can stop an agent: poison events in the log are quarantined, recorded, and can be retried or skipped.

The events here are appended to the log directly, as an older build, an import of someone else's export or
a bug would have put them there: intake refuses them today (tests/api/test_poison.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.events import Event, job_subject, new_event
from streams.log import SQLiteEventLog
from streams.runtime import AgentRunner

T0 = 1_700_000_000


def start(job_id: int, **extra: Any) -> Event:
    data = {
        "jobId": job_id, "user": "u", "project": "p", "cluster": "fritz", "subCluster": "main", "numNodes": 1,
        "startTime": T0, "resources": [{"hostname": "f0101"}], **extra,
    }
    return new_event("job.started", job_subject("fritz", job_id, T0), data, id=f"start-{job_id}")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    event_log = SQLiteEventLog(tmp_path / "events.db")
    yield event_log
    event_log.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = writer_engine(tmp_path / "job.db")
    yield eng
    eng.dispose()


def job_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text("SELECT job_id FROM job ORDER BY job_id"))]


def runner_of(log: SQLiteEventLog, engine: Engine, **kwargs: Any) -> AgentRunner:
    return AgentRunner(log, JobDatabaseProjection(engine), max_backoff=0.01, **kwargs)


def test_an_out_of_range_integer_is_quarantined_and_the_agent_goes_on(log: SQLiteEventLog, engine: Engine) -> None:
    log.append([start(1), start(2**63), start(3)])
    runner = runner_of(log, engine, max_attempts=3)
    assert runner.run_until_caught_up() == 3
    assert job_ids(engine) == [1, 3]
    [entry] = runner.quarantined()
    assert (entry.position, entry.type, entry.attempts) == (2, "job.started", 3)
    assert "OverflowError" in entry.error
    status = runner.status()
    assert status.quarantined == 1 and status.failures == 0 and status.blocked_at is None
    # The read model itself records the skip, beside its checkpoint: a new process sees it.
    assert [q.position for q in JobDatabaseProjection(engine).quarantined()] == [2]
    assert JobDatabaseProjection(engine).checkpoint() == 3


def test_unknown_types_and_newer_versions_are_quarantined_at_once(log: SQLiteEventLog, engine: Engine) -> None:
    log.append([
        new_event("job.teleported", "job/fritz/1/1", {}, id="unknown"),
        new_event("job.deleted", "job/fritz/1/1", {"reason": "x", "new": 1}, id="future", version=7),
        start(4),
    ])
    runner = runner_of(log, engine, max_attempts=100)
    assert runner.run_until_caught_up() == 3
    entries = {q.position: q for q in runner.quarantined()}
    assert sorted(entries) == [1, 2]
    assert "unknown event type 'job.teleported'" in entries[1].error and entries[1].attempts == 1
    assert "version 7" in entries[2].error
    assert job_ids(engine) == [4]


def test_an_imported_id_that_collides_is_a_recorded_conflict_not_a_lost_row(
    log: SQLiteEventLog, engine: Engine
) -> None:
    log.append([start(10, dbId=5), start(11, dbId=5), start(12)])
    runner = runner_of(log, engine, max_attempts=2)
    runner.run_until_caught_up()
    assert job_ids(engine) == [10, 12]
    [entry] = runner.quarantined()
    assert entry.position == 2 and entry.error == (
        "JobIdTaken: job/fritz/11/1700000000 keeps database id 5, which job/fritz/10/1700000000 already has")


def test_a_retry_applies_a_quarantined_event_and_the_later_events_of_its_job(
    log: SQLiteEventLog, engine: Engine
) -> None:
    subject = job_subject("fritz", 21, T0)
    log.append([
        start(20, dbId=7), start(21, dbId=7),
        new_event("job.stopped", subject, {"jobState": "failed", "stopTime": T0 + 50, "duration": 50}, id="stop-21"),
        new_event("job.tag_added", subject, {"type": "app", "name": "vasp"}, id="tag-21"),
    ])
    runner = runner_of(log, engine, max_attempts=1)
    runner.run_until_caught_up()
    assert [q.position for q in runner.quarantined()] == [2]
    # The operator frees the id, then retries the event.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM job WHERE job_id = 20"))
    runner.agent.file_request(2, "retry")
    runner.act_on_requests()
    assert runner.quarantined() == [] and runner.agent.requests() == []
    with engine.connect() as conn:
        state, duration = conn.execute(text("SELECT job_state, duration FROM job WHERE job_id = 21")).one()
        tags = conn.execute(text("SELECT t.tag_name FROM jobtag jt JOIN tag t ON t.id = jt.tag_id")).scalars().all()
    assert (state, duration, tags) == ("failed", 50, ["vasp"]), "the stop and the tag came back with the start"


def test_a_failed_retry_stays_quarantined_with_the_new_attempt(log: SQLiteEventLog, engine: Engine) -> None:
    log.append([start(2**63)])
    runner = runner_of(log, engine, max_attempts=1)
    runner.run_until_caught_up()
    runner.agent.file_request(1, "retry")
    runner.act_on_requests()
    [entry] = runner.quarantined()
    assert entry.attempts == 2 and runner.agent.requests() == []


def test_an_operator_skip_unblocks_an_agent_before_its_attempts_run_out(log: SQLiteEventLog, engine: Engine) -> None:
    log.append([start(2**63), start(31)])
    runner = runner_of(log, engine, max_attempts=1000)
    runner.step()  # the batch fails: narrowed down to one event at a time
    runner.step()  # the first event fails alone: blocked at 1
    assert runner.status().blocked_at == 1 and runner.position == 0
    runner.agent.file_request(1, "skip")
    runner.act_on_requests()
    assert runner.position == 1 and runner.agent.requests() == []
    [entry] = runner.quarantined()
    assert "skipped by an operator" in entry.error
    runner.run_until_caught_up()
    assert job_ids(engine) == [31]


def test_failures_of_the_environment_are_never_quarantined(log: SQLiteEventLog, tmp_path: Path) -> None:
    import sqlite3

    log.append([start(40)])
    slow = writer_engine(tmp_path / "job.db", lock_wait=0.01)
    runner = AgentRunner(log, JobDatabaseProjection(slow), max_attempts=1, max_backoff=0.01)
    holder = sqlite3.connect(tmp_path / "job.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for _ in range(3):
            runner.step()
        assert runner.status().failures == 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert runner.quarantined() == [], "a locked database is waited out, never blamed on the event"
    assert runner.run_until_caught_up() == 1 and job_ids(slow) == [40]
    slow.dispose()


async def test_read_your_writes_gives_up_at_once_behind_a_poison_event(log: SQLiteEventLog, engine: Engine) -> None:
    log.append([start(2**63)])
    runner = runner_of(log, engine, max_attempts=1000)
    runner.step()
    assert runner.status().blocked_at == 1
    [result] = log.append([start(50)])
    # Blocked before the awaited position: the answer comes now, not after the timeout (a regression would
    # wait the whole minute, which the bound below catches without depending on how busy the machine is).
    began = time.monotonic()
    assert await runner.wait_for_async(result.position, timeout=60) is False
    assert time.monotonic() - began < 30


def test_many_failures_in_a_row_stop_quarantining_and_leave_the_agent_blocked(
    log: SQLiteEventLog, engine: Engine
) -> None:
    from streams.runtime.runner import QUARANTINE_STREAK_LIMIT

    log.append([start(2**63 + i) for i in range(QUARANTINE_STREAK_LIMIT + 3)])
    runner = runner_of(log, engine, max_attempts=1)
    for _ in range(200):
        runner.step()
    # None of these starts fits SQLite: after the limit, the runner stops skipping and stays blocked.
    assert len(runner.quarantined()) == QUARANTINE_STREAK_LIMIT
    assert runner.status().blocked_at == QUARANTINE_STREAK_LIMIT + 1


def test_operators_look_at_the_store_from_any_thread_while_the_agent_applies(
    log: SQLiteEventLog, engine: Engine
) -> None:
    """The control never touches the projection's writer connection (a shared one, used by the agent)."""
    import threading

    runner = runner_of(log, engine)
    runner.start()
    stop = threading.Event()
    errors: list[BaseException] = []

    def ask() -> None:
        while not stop.is_set():
            try:
                runner.agent.checkpoint(), runner.agent.quarantined(), runner.agent.requests()
            except BaseException as exc:  # pragma: no cover - the failure this test is for
                errors.append(exc)
                return

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for batch in range(20):
            log.append([start(1000 + batch * 10 + i) for i in range(10)])
        assert runner.wait_for(log.head(), timeout=60)
    finally:
        stop.set()
        asker.join()
        runner.stop()
    assert errors == []
    assert len(job_ids(engine)) == 200
