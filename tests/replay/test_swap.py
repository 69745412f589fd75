"""Swapping a rebuilt job database under a running server-like runner, and the guard that makes it safe."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from projections.db import reader_engine, writer_engine
from projections.jobdb import JobDatabaseProjection, StaleBatch
from replay.rebuild import load, rebuild_live
from replay.registry import ReadModel
from streams.events import new_event
from streams.log import SQLiteEventLog
from streams.runtime import AgentRunner
from tests.replay.conftest import compare_files
from tests.replay.factory import bulk_jobs, mixed_log


def test_rebuild_swaps_in_under_a_running_runner_and_appends(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path
) -> None:
    mixed_log(log, intake=100, bulk=1500, edit=500)
    live = tmp_path / "job.db"
    engine, readers = writer_engine(live), reader_engine(live)
    runner = AgentRunner(log, JobDatabaseProjection(engine), batch_size=50)
    runner.run_until_caught_up()
    with engine.begin() as conn:  # damage the live model: the rebuild must repair it
        conn.execute(text("UPDATE job SET job_state = 'failed', duration = 1 WHERE job_state = 'completed'"))
    runner.start()
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def append() -> None:
        first = 100_000
        while not stop.is_set():
            log.append(bulk_jobs(first, 20))
            first += 20
            time.sleep(0.005)

    def read() -> None:
        try:
            while not stop.is_set():
                with readers.connect() as conn:
                    seen.append(int(conn.execute(text("SELECT COUNT(*) FROM job")).scalar() or 0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append), threading.Thread(target=read)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        result = rebuild_live(log, jobdb, live)
        time.sleep(0.3)  # the runner carries on from the swapped-in checkpoint while appends continue
    finally:
        stop.set()
        for t in threads:
            t.join()
    head = log.head()
    assert result.position > 3000 and head > result.position
    assert runner.wait_for(head, 30), runner.status()
    runner.stop()
    assert not errors and seen
    fresh = tmp_path / "fresh.db"
    assert load(log, jobdb, fresh) == head
    comparison = compare_files(live, fresh, jobdb)
    assert comparison.total == 0, [d.describe() for d in comparison.differences]
    with sqlite3.connect(live) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not list(tmp_path.glob("job.db.rebuild*"))
    engine.dispose()
    readers.dispose()


def test_projection_skips_what_it_has_and_refuses_a_gap(log: SQLiteEventLog, tmp_path: Path) -> None:
    log.append([new_event("user.created", f"users/u{n}", {"username": f"u{n}", "roles": []}) for n in range(30)])
    engine = writer_engine(tmp_path / "job.db")
    projection = JobDatabaseProjection(engine)
    projection.apply(log.read(0, 10))
    # A batch read before a swap to a file that is further along: what the file has is skipped.
    projection.apply(log.read(5, 7))
    assert projection.checkpoint() == 12
    projection.apply(log.read(0, 12))
    assert projection.checkpoint() == 12
    # A batch read before a swap to a file that is behind it would skip events: refused.
    with pytest.raises(StaleBatch):
        projection.apply(log.read(20, 5))
    assert projection.checkpoint() == 12
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM hpc_user")).scalar() == 12
    engine.dispose()
