"""Retention and the job database: include-db appends job.deleted that the read model applies; omit-tagged asks it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from archive.backends import FileArchive, JobKey
from archive.maintenance import PolicyError, deletion_event_id, retire_jobs
from projections import queries
from projections.db import reader_engine, writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.events import job_subject, new_event
from streams.log import SQLiteEventLog
from streams.runtime import AgentRunner
from tests.archive.test_maintenance import NOW, OLD, RECENT, fill, keys, policy

TAGGED = (JobKey("fritz", *OLD[1]), JobKey("fritz", *RECENT[0]))


@dataclass
class World:
    """An archive, the event log that knows its jobs, and the job database projected from it."""

    archive: FileArchive
    log: SQLiteEventLog
    db: Path
    reader: Engine

    def catch_up(self) -> None:
        engine = writer_engine(self.db)
        try:
            AgentRunner(self.log, JobDatabaseProjection(engine)).run_until_caught_up()
        finally:
            engine.dispose()

    def in_db(self) -> set[JobKey]:
        with self.reader.connect() as conn:
            rows = queries.jobs_started_before(conn, 2**62, omit_tagged=False)
        return {JobKey(r["cluster"], r["job_id"], r["start_time"]) for r in rows}

    def tagged(self, before: int) -> list[tuple[str, int, int]]:
        with self.reader.connect() as conn:
            return queries.tagged_job_keys(conn, before)


def _started(meta: dict[str, Any]) -> dict[str, Any]:
    names = ("jobId", "user", "project", "cluster", "subCluster", "partition", "numNodes", "numHwthreads",
             "shared", "walltime", "startTime", "resources", "metaData")
    return {name: meta[name] for name in names}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    archive = FileArchive(tmp_path / "archive")
    stored = fill(archive, OLD + RECENT)
    log = SQLiteEventLog(tmp_path / "events.db")
    events = []
    for key, (meta, _) in stored.items():
        subject = job_subject(*key)
        events.append(new_event("job.started", subject, _started(meta), source="test"))
        events.append(new_event("job.stopped", subject, {"jobState": "completed", "stopTime": key.start_time + 177,
                                                         "duration": 177}, source="test"))
    events += [new_event("job.tag_added", job_subject(*k), {"type": "app", "name": "vasp"}) for k in TAGGED]
    log.append(events)
    world = World(archive, log, tmp_path / "job.db", reader_engine(tmp_path / "job.db"))
    world.catch_up()
    assert world.in_db() == keys(archive)
    yield world
    world.reader.dispose()
    log.close()


def test_include_db_deletes_retired_jobs_from_the_read_model(world: World) -> None:
    head = world.log.head()
    report = retire_jobs(world.archive, policy(include_db=True), events=world.log, now=NOW)
    assert (report.deleted, report.db_deleted, report.failed) == (4, 4, 0)
    appended = world.log.read(after=head)
    assert {e.type for e in appended} == {"job.deleted"} and {e.source for e in appended} == {"agent:retention"}
    assert {e.id for e in appended} == {deletion_event_id(JobKey("fritz", j, s)) for j, s in OLD}
    world.catch_up()
    assert world.in_db() == {JobKey("fritz", j, s) for j, s in RECENT}


def test_rerun_appends_no_second_deletion(world: World) -> None:
    retire_jobs(world.archive, policy(include_db=True), events=world.log, now=NOW)
    head = world.log.head()
    fill(world.archive, OLD)  # the same jobs are found in the archive again (say, restored from a backup)
    again = retire_jobs(world.archive, policy(include_db=True), events=world.log, now=NOW)
    assert (again.deleted, again.db_deleted) == (4, 0)
    assert world.log.head() == head


def test_omit_tagged_keeps_tagged_jobs_in_archive_and_database(world: World, tmp_path: Path) -> None:
    rule = policy(policy="move", omit_tagged=True, include_db=True, target_path=str(tmp_path / "t"))
    report = retire_jobs(world.archive, rule, events=world.log, tagged=world.tagged, now=NOW)
    assert (report.examined, report.copied, report.deleted, report.db_deleted) == (4, 3, 3, 3)
    assert report.skip_reasons == {"tagged": 1}
    world.catch_up()
    kept = {JobKey("fritz", *OLD[1])} | {JobKey("fritz", j, s) for j, s in RECENT}
    assert keys(world.archive) == kept and world.in_db() == kept
    assert keys(FileArchive(tmp_path / "t")) == {JobKey("fritz", j, s) for j, s in OLD} - kept


def test_without_include_db_or_with_copy_the_database_keeps_its_jobs(world: World, tmp_path: Path) -> None:
    retire_jobs(world.archive, policy(policy="copy", include_db=True, target_path=str(tmp_path / "c")),
                events=world.log, now=NOW)
    retire_jobs(world.archive, policy(include_db=False), events=world.log, now=NOW)
    world.catch_up()
    assert len(keys(world.archive)) == 2 and len(world.in_db()) == 6


def test_log_that_refuses_the_events_keeps_the_jobs(world: World) -> None:
    world.log.close()
    report = retire_jobs(world.archive, policy(include_db=True), events=world.log, now=NOW)
    assert (report.deleted, report.failed) == (0, 4)
    assert "appending job.deleted failed, job kept" in report.failures[0]
    assert len(keys(world.archive)) == 6


def test_missing_parts_are_refused_before_anything_changes(world: World) -> None:
    with pytest.raises(PolicyError, match="omit-tagged"):
        retire_jobs(world.archive, policy(omit_tagged=True), now=NOW)
    with pytest.raises(PolicyError, match="include-db"):
        retire_jobs(world.archive, policy(include_db=True), now=NOW)
    with pytest.raises(PolicyError, match="target-path"):
        retire_jobs(world.archive, policy(policy="move"), now=NOW)
    assert len(keys(world.archive)) == 6
