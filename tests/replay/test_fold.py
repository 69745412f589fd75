"""Job rows folded in memory equal what the handlers leave in the table, event by event and file by file."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.exc import SQLAlchemyError

from projections import jobs
from projections.db import create_schema, writer_engine
from projections.jobdb import JobDatabaseProjection
from replay import fold
from replay.bulk import JobDatabaseBulkLoader
from replay.rebuild import load, read_pages
from replay.registry import ReadModel
from streams.events import Event, job_subject, new_event
from streams.log import MemoryEventLog, SQLiteEventLog
from tests.replay.conftest import compare_files, project
from tests.replay.factory import T0, _started, bulk_jobs, mixed_log

SUBJECT = job_subject("fritz", 7, T0)

#: Start payloads with optional fields present, absent and null, and values `or` turns into defaults.
STARTS: dict[str, dict[str, Any]] = {
    "plain": _started(7, T0),
    "full": _started(7, T0, submitTime=T0 - 5, arrayJobId=3, duration=12, numAcc=2, smt=2, shared="multi_user",
                     monitoringStatus=0, energy=1.5, footprint={"flops_any_avg": 0.3},
                     energyFootprint={"cpu": 0.25}, statistics={"x": 1}, requestedMemory=5),
    "sparse": {"jobId": 7, "user": "u", "project": "p", "cluster": "fritz", "subCluster": "main", "numNodes": 1,
               "startTime": T0, "resources": [{"hostname": "f0101"}]},
    "nulls": _started(7, T0, submitTime=None, partition=None, arrayJobId=None, walltime=None, metaData=None,
                      numHwthreads=None, numAcc=None, shared=None, energy=None, footprint=None,
                      energyFootprint=None, dbId=None),
    "empty": _started(7, T0, metaData={}, footprint={}, energyFootprint={}, energy=0, partition=""),
    "imported": _started(7, T0, dbId=42, metaData={"jobName": "x", "jobScript": "#!/bin/sh"}),
    "explicit null smt": _started(7, T0, smt=None, monitoringStatus=None),
}

EDITS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "stop": [("job.stopped", {"jobState": "completed", "stopTime": T0 + 9, "duration": 9})],
    "metadata twice": [("job.metadata_updated", {"key": "issues", "value": "io"}),
                       ("job.metadata_updated", {"key": "jobName", "value": "renamed"}),
                       ("job.metadata_updated", {"key": "issues", "value": "none"})],
    "archived": [("job.stopped", {"jobState": "failed", "stopTime": T0 + 3, "duration": 3}),
                 ("job.archived", {"footprint": {"mem_used_max": 2.0}, "energyFootprint": {"cpu": 0.5},
                                   "energy": 0.5, "location": "x"})],
    "archived empty": [("job.archived", {"footprint": {}, "energyFootprint": {}, "energy": 0})],
    "archiving failed": [("job.archiving_failed", {"reason": "x", "attempt": 1, "final": False}),
                         ("job.archiving_failed", {"reason": "x", "attempt": 5, "final": True})],
    "footprint while running": [("job.footprint_updated", {"footprint": {"flops_any_avg": 1.5},
                                                           "energyFootprint": {"power": 0.2}, "energy": 0.2,
                                                           "asOf": T0 + 5}),
                                ("job.footprint_updated", {"footprint": {"flops_any_avg": 2.5},
                                                           "energyFootprint": {}, "energy": 0, "asOf": T0 + 9})],
    "footprint after the stop": [("job.stopped", {"jobState": "completed", "stopTime": T0 + 9, "duration": 9}),
                                 ("job.footprint_updated", {"footprint": {"flops_any_avg": 9.0},
                                                            "energyFootprint": {}, "energy": 1.0, "asOf": T0 + 10})],
}

EDIT_FOLDS = {"job.metadata_updated": fold.metadata_updated, "job.archived": fold.archived,
              "job.archiving_failed": fold.archiving_failed, "job.footprint_updated": fold.footprint_updated}

#: Per-metric statistics as a `job.archived` carries them (meta.json's shape).
STATS = {"cpu_load": {"unit": {"base": ""}, "avg": 1.5, "min": 0.5, "max": 2.0}}


def _stored(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM job ORDER BY id").fetchall()


def by_handlers(path: Path, events: list[Event]) -> list[tuple[Any, ...]]:
    """The job table the live projection leaves after `events`."""
    engine = writer_engine(path)
    try:
        JobDatabaseProjection(engine).apply([e.recorded(n + 1, e.time) for n, e in enumerate(events)])
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:
        return _stored(conn)


def by_folding(path: Path, events: list[Event]) -> list[tuple[Any, ...]]:
    """The job table after folding `events` into one row and inserting it as the bulk loader does."""
    started = fold.start_row(events[0].data)
    assert started is not None
    key, row = started
    assert key == (events[0].data["cluster"], events[0].data["jobId"], events[0].data["startTime"])
    for e in events[1:]:
        if e.type == "job.stopped":
            params = jobs.job_stop_params(e.subject, e.data)
            row = fold.stopped(row, params["new_state"], params["new_duration"])
        else:
            row = EDIT_FOLDS[e.type](row, e.data)
    engine = writer_engine(path)
    create_schema(engine)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute(fold.INSERT_JOB_SQL, row)
        return _stored(conn)


def outcome(build: Callable[[Path, list[Event]], list[tuple[Any, ...]]], path: Path, events: list[Event]) -> object:
    """The rows, or the database's complaint (a null smt fails NOT NULL either way)."""
    try:
        return build(path, events)
    except (sqlite3.Error, SQLAlchemyError) as exc:
        return str(getattr(exc, "orig", exc))


@pytest.mark.parametrize("start", STARTS)
def test_start_row_is_the_handlers_row(start: str) -> None:
    values = jobs.job_start_values(STARTS[start])
    started = fold.start_row(STARTS[start])
    assert started is not None
    key, row = started
    held = {name: None if name in fold._NULLABLE and value == fold.NULL else value
            for name, value in zip(fold.JOB_COLUMNS, row, strict=True)}
    assert held == {"id": None, **values}
    assert key == (values["cluster"], values["job_id"], values["start_time"])


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("edits", EDITS)
def test_folded_row_equals_the_handlers_row(start: str, edits: str, tmp_path: Path) -> None:
    events = [new_event("job.started", SUBJECT, STARTS[start])]
    events += [new_event(type_, SUBJECT, data) for type_, data in EDITS[edits]]
    assert outcome(by_folding, tmp_path / "folded.db", events) == outcome(by_handlers, tmp_path / "live.db", events)


@pytest.mark.parametrize("data", [
    _started(7, T0, tags=[{"type": "app", "name": "vasp"}]),  # tag rows need the job's id
    {**_started(7, T0), "jobId": 7.0},  # a float key: SQLite and Python compare it differently
    {**_started(7, T0), "startTime": True},
    _started(7, T0, dbId=""),  # a string id could be mistaken for NULL
    {"jobId": 7, "cluster": "fritz", "startTime": T0},  # incomplete: the handler raises its own error
])
def test_unusual_starts_go_to_the_handler(data: dict[str, Any]) -> None:
    assert fold.start_row(data) is None


def _conflicts_and_orderings() -> list[Event]:
    """Events whose outcome depends on order: starts of jobs already written, taken ids, early stops."""
    def start(job: int, **extra: Any) -> Event:
        return new_event("job.started", job_subject("fritz", job, T0), _started(job, T0, **extra))

    def on(job: int, type_: str, data: dict[str, Any], start_time: int | str = T0) -> Event:
        return new_event(type_, f"job/fritz/{job}/{start_time}", data)

    stop = {"jobState": "failed", "stopTime": T0 + 5, "duration": 5}
    return [
        start(1), start(2), on(1, "job.stopped", {**stop, "jobState": "completed"}), start(3), start(4),
        # A second start of a job already written: ignored, but what follows applies to the stored row.
        start(1, user="intruder"), on(1, "job.stopped", stop),
        on(1, "job.metadata_updated", {"key": "k", "value": "v"}),
        on(1, "job.archived", {"footprint": {"a": 1.0}, "energyFootprint": {}, "energy": 2.0, "statistics": STATS}),
        # An imported job whose id is taken: ignored, and its stop and statistics find no row.
        start(5, dbId=1), on(5, "job.stopped", stop), on(5, "job.archived", {"statistics": STATS}),
        start(6, dbId=900), start(7),  # the next free id follows the imported one
        on(6, "job.stopped", stop), on(6, "job.archived", {"statistics": STATS}),
        on(8, "job.stopped", stop), start(8),  # a stop before its start changes nothing
        on(9, "job.stopped", stop, start_time="*"), start(9),
        new_event("job.stop_parked", "job/fritz/10/*", {"cluster": "fritz", "jobId": 10, "jobState": "failed",
                                                         "stopTime": T0 + 4}, id="parked-10"),
        start(10), on(10, "job.tag_added", {"type": "app", "name": "vasp"}),
        on(10, "job.stopped", {**stop, "parkedStopId": "parked-10"}),
        start(11), on(11, "job.deleted", {"reason": "x"}), start(12), start(11), on(11, "job.stopped", stop),
        start(13, tags=[{"type": "class", "name": "big"}]), on(12, "job.tag_removed", {"type": "app", "name": "vasp"}),
        on(4, "job.archiving_failed", {"reason": "x", "attempt": 3, "final": True}), on(2, "job.stopped", stop),
        on(3, "job.deleted", {"reason": "x"}), start(14), on(14, "job.stopped", stop),
        # Statistics go with their job's deletion, and with a later archiving that has none.
        on(13, "job.stopped", stop), on(13, "job.archived", {"statistics": STATS}), on(13, "job.deleted", {}),
        on(14, "job.archived", {"statistics": STATS}), on(14, "job.archived", {"statistics": {}}),
    ]


@pytest.mark.parametrize(("page", "hold", "batch"), [(1, 0, 1), (3, 1, 1), (4, 2, 3), (7, 100, 10), (1000, 0, 2)])
def test_any_hold_and_page_size_give_the_live_database(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path, page: int, hold: int, batch: int,
) -> None:
    log.append(_conflicts_and_orderings())
    log.append(bulk_jobs(100, 40))
    live, rebuilt = tmp_path / "live.db", tmp_path / "rebuilt.db"
    project(log, live, batch_size=5)
    loader = JobDatabaseBulkLoader(rebuilt, hold=hold, batch=batch)
    try:
        for records in read_pages(log, 0, page=page):
            loader.load(records)
        loader.finish()
        assert loader.checkpoint() == log.head()
    finally:
        loader.close()
    assert compare_files(live, rebuilt, jobdb).total == 0
    with sqlite3.connect(rebuilt) as conn:
        first = conn.execute("SELECT hpc_user, job_state, meta_data FROM job WHERE job_id = 1").fetchone()
        assert first == ("user1", "failed", '{"jobName":"bulk-1","k":"v"}')
        assert conn.execute("SELECT COUNT(*) FROM ccstream_parked_stop").fetchone() == (0,)
        stored = conn.execute("SELECT job_id, statistics FROM ccstream_job_statistics WHERE job_id < 100").fetchall()
        assert [(job, orjson.loads(raw)) for job, raw in stored] == [(1, STATS), (6, STATS)]


def test_small_holds_on_a_realistic_log(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    mixed_log(log, intake=60, bulk=300, edit=400)
    small = dataclasses.replace(jobdb, loader=lambda path, size: JobDatabaseBulkLoader(path, hold=7, batch=3))
    live, rebuilt = tmp_path / "live.db", tmp_path / "rebuilt.db"
    project(log, live)
    assert load(log, small, rebuilt) == log.head()
    assert compare_files(live, rebuilt, jobdb).total == 0


def test_logs_other_than_sqlite_are_read_whole(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    mixed_log(log, intake=20, bulk=100, edit=150)
    memory = MemoryEventLog()
    memory.append([e for e in log.read(0, 100_000)])
    assert load(memory, jobdb, tmp_path / "memory.db") == load(log, jobdb, tmp_path / "sqlite.db") == log.head()
    assert compare_files(tmp_path / "memory.db", tmp_path / "sqlite.db", jobdb).total == 0
