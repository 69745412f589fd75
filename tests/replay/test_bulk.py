"""The bulk loader writes exactly what the handlers write: same rows, same ids, same checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from replay.bulk import JobDatabaseBulkLoader
from replay.rebuild import RebuildError, check, load
from replay.registry import ReadModel
from streams.events import new_event
from streams.log import SQLiteEventLog
from tests.replay.conftest import compare_files, project
from tests.replay.factory import T0, bulk_jobs, edits, mixed_log, oddities


def test_bulk_rebuild_equals_incremental_projection(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    subjects = mixed_log(log, intake=300, bulk=2000, edit=1500)
    live, rebuilt = tmp_path / "live.db", tmp_path / "rebuilt.db"
    assert project(log, live, batch_size=97) == log.head()
    assert load(log, jobdb, rebuilt) == log.head()
    comparison = compare_files(live, rebuilt, jobdb)
    assert comparison.total == 0, [d.describe() for d in comparison.differences]
    rows = check(rebuilt, jobdb, log.head())
    assert rows["job"] > 2000 and rows["jobtag"] > 100 and rows["hpc_user"] > 0 and rows["node_state"] > 0
    assert rows["ccstream_parked_stop"] == 0 and len(subjects) == 2300


def test_pages_of_any_size_give_the_same_database(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    # A stop and a later start of the same job in one page must keep their order; page edges must not matter.
    log.append(oddities() + bulk_jobs(1, 300))
    log.append(edits([e.subject for e in log.read(0, 10_000) if e.type == "job.started"], 300))
    whole = tmp_path / "whole.db"
    load(log, jobdb, whole)
    loader = JobDatabaseBulkLoader(tmp_path / "paged.db")
    try:
        after = 0
        while records := log.read_stored(after, 7):
            loader.load(records)
            after = records[-1].position
        loader.finish()
    finally:
        loader.close()
    assert compare_files(whole, tmp_path / "paged.db", jobdb).total == 0
    conn = sqlite3.connect(whole)
    states = dict(conn.execute("SELECT job_id, job_state FROM job WHERE job_id IN (77, 78) AND start_time = ?", (T0,)))
    ids = [r[0] for r in conn.execute("SELECT id FROM job WHERE job_id = 78 AND start_time = ?", (T0,))]
    conn.close()
    assert states == {77: "running", 78: "running"}
    assert ids != [5_000_000]  # the imported row was deleted; its restart got a fresh id


def test_bulk_file_has_every_index_and_check_constraint(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    log.append(bulk_jobs(1, 50))
    live, rebuilt = tmp_path / "live.db", tmp_path / "rebuilt.db"
    project(log, live)
    load(log, jobdb, rebuilt)
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
    with sqlite3.connect(live) as a, sqlite3.connect(rebuilt) as b:
        assert a.execute(schema).fetchall() == b.execute(schema).fetchall()
    bad = new_event("job.started", f"job/fritz/1/{T0}", {**log.read(0, 1)[0].data, "jobId": 999, "shared": "x"})
    log.append([bad])  # CHECK (shared IN ...) fails: the handler raises, the bulk load's check must too
    load(log, jobdb, tmp_path / "bad.db")  # CHECKs are skipped while loading, and verified by the check
    with pytest.raises(RebuildError, match="CHECK constraint failed in job"):
        check(tmp_path / "bad.db", jobdb, log.head())
