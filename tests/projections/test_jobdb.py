"""Events in, rows out: every job database handler, each batch applied twice to show idempotence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from projections import jobs
from projections.db import writer_engine
from projections.jobdb import HANDLERS, JobDatabaseProjection
from streams.events import PAYLOADS, Event, new_event

SUBJECT = "job/fritz/398764/1675954353"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = writer_engine(tmp_path / "job.db")
    yield eng
    eng.dispose()


@pytest.fixture
def projection(engine: Engine) -> JobDatabaseProjection:
    return JobDatabaseProjection(engine)


def started(subject: str = SUBJECT, **overrides: Any) -> dict[str, Any]:
    cluster, job_id, start = subject.split("/")[1:]
    data: dict[str, Any] = {
        "jobId": int(job_id), "user": "k106eb10", "project": "k106eb", "cluster": cluster,
        "subCluster": "main", "partition": "singlenode", "numNodes": 1, "numHwthreads": 72,
        "startTime": int(start), "walltime": 86400, "submitTime": 1675954300,
        "resources": [{"hostname": "f0649", "hwthreads": [0, 1]}], "metaData": {"jobName": "ams"},
    }
    data.update(overrides)
    return data


class Feed:
    """Numbers events like the log does and applies each batch twice."""

    def __init__(self, projection: JobDatabaseProjection) -> None:
        self.projection = projection
        self.position = 0

    def __call__(self, *specs: tuple[str, str, dict[str, Any]]) -> None:
        batch: list[Event] = []
        for type_, subject, data in specs:
            self.position += 1
            batch.append(new_event(type_, subject, data).recorded(self.position, 0.0))
        self.apply_twice(batch)

    def apply_twice(self, batch: Sequence[Event]) -> None:
        self.projection.apply(batch)
        self.projection.apply(batch)


@pytest.fixture
def feed(projection: JobDatabaseProjection) -> Feed:
    return Feed(projection)


def rows(engine: Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]


def test_every_event_type_of_the_job_database_has_a_handler() -> None:
    node_types = {"node.states_reported"}
    assert {t for t, _ in PAYLOADS} - node_types <= set(HANDLERS)


def test_schema_has_cc_backend_tables_and_version(engine: Engine, projection: JobDatabaseProjection) -> None:
    names = {r["name"] for r in rows(engine, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"job", "tag", "jobtag", "hpc_user", "configuration", "node", "node_state", "schema_migrations"} <= names
    assert rows(engine, "SELECT version FROM schema_migrations") == [{"version": 11}]


def test_job_started_inserts_a_running_job(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started()))
    [job] = rows(engine, "SELECT * FROM job")
    assert job["job_id"] == 398764 and job["cluster"] == "fritz" and job["subcluster"] == "main"
    assert job["job_state"] == "running" and job["duration"] == 0 and job["hpc_user"] == "k106eb10"
    assert job["cluster_partition"] == "singlenode" and job["num_hwthreads"] == 72 and job["submit_time"] == 1675954300
    assert orjson.loads(job["resources"]) == [{"hostname": "f0649", "hwthreads": [0, 1]}]
    assert orjson.loads(job["meta_data"]) == {"jobName": "ams"}
    assert job["shared"] == "none" and job["monitoring_status"] == 1 and job["smt"] == 1


def test_imported_job_keeps_its_database_id_and_tags(engine: Engine, feed: Feed) -> None:
    data = started(dbId=338, tags=[{"type": "app", "name": "vasp", "scope": "global"}])
    feed(("job.started", SUBJECT, data))
    assert rows(engine, "SELECT id FROM job") == [{"id": 338}]
    assert rows(engine, "SELECT job_id, tag_id FROM jobtag") == [{"job_id": 338, "tag_id": 1}]


def test_job_stopped_sets_state_and_duration(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started()),
         ("job.stopped", SUBJECT, {"jobState": "timeout", "stopTime": 1675954530, "duration": 177}))
    [job] = rows(engine, "SELECT job_state, duration FROM job")
    assert job == {"job_state": "timeout", "duration": 177}


def test_parked_stop_is_listed_until_resolved(engine: Engine, feed: Feed) -> None:
    parked = new_event("job.stop_parked", "job/fritz/398764/*", {
        "cluster": "fritz", "jobId": 398764, "startTime": None, "jobState": "failed", "stopTime": 1675954530,
    }).recorded(1, 0.0)
    feed.position = 1
    feed.apply_twice([parked])
    assert [r["event_id"] for r in rows(engine, "SELECT event_id FROM ccstream_parked_stop")] == [parked.id]
    feed(("job.started", SUBJECT, started()),
         ("job.stopped", SUBJECT, {"jobState": "failed", "stopTime": 1675954530, "duration": 177,
                                   "parkedStopId": parked.id}))
    assert rows(engine, "SELECT * FROM ccstream_parked_stop") == []
    assert rows(engine, "SELECT job_state FROM job") == [{"job_state": "failed"}]


def test_tags_added_removed_and_deleted(engine: Engine, feed: Feed) -> None:
    other = "job/fritz/1/100"
    tag = {"type": "app", "name": "gromacs", "scope": "global"}
    feed(("job.started", SUBJECT, started()), ("job.started", other, started(other)),
         ("job.tag_added", SUBJECT, tag), ("job.tag_added", other, tag),
         ("job.tag_added", SUBJECT, {**tag, "scope": "admin"}))
    assert len(rows(engine, "SELECT * FROM tag")) == 2  # the scope is part of a tag's identity
    assert len(rows(engine, "SELECT * FROM jobtag")) == 3
    feed(("job.tag_removed", SUBJECT, tag))
    assert len(rows(engine, "SELECT * FROM jobtag")) == 2
    feed(("tag.deleted", "tags", tag))
    assert [r["tag_scope"] for r in rows(engine, "SELECT tag_scope FROM tag")] == ["admin"]
    assert len(rows(engine, "SELECT * FROM jobtag")) == 1


def test_tag_events_for_unknown_jobs_change_nothing(engine: Engine, feed: Feed) -> None:
    feed(("job.tag_added", SUBJECT, {"type": "a", "name": "b", "scope": "global"}),
         ("job.tag_removed", SUBJECT, {"type": "a", "name": "b", "scope": "global"}),
         ("tag.deleted", "tags", {"type": "x", "name": "y", "scope": "global"}))
    assert rows(engine, "SELECT * FROM jobtag") == []


def test_metadata_updated_sets_and_overwrites_keys(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started(metaData={})),
         ("job.metadata_updated", SUBJECT, {"key": "issues", "value": "a"}),
         ("job.metadata_updated", SUBJECT, {"key": "issues", "value": "b"}),
         ("job.metadata_updated", SUBJECT, {"key": "note", "value": "c"}))
    [job] = rows(engine, "SELECT meta_data FROM job")
    assert orjson.loads(job["meta_data"]) == {"issues": "b", "note": "c"}


def test_job_deleted_removes_job_and_its_tags(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started()), ("job.tag_added", SUBJECT, {"type": "a", "name": "b", "scope": "g"}),
         ("job.deleted", SUBJECT, {"reason": "test"}))
    assert rows(engine, "SELECT * FROM job") == []
    assert rows(engine, "SELECT * FROM jobtag") == []


def test_users_created_updated_deleted(engine: Engine, feed: Feed) -> None:
    feed(("user.created", "users/demo", {"username": "demo", "password": "hash", "roles": ["user"],
                                         "projects": [], "name": "Demo", "email": "d@x", "authSource": 0}))
    [user] = rows(engine, "SELECT * FROM hpc_user")
    assert user == {"username": "demo", "password": "hash", "ldap": 0, "name": "Demo", "roles": '["user"]',
                    "email": "d@x", "projects": "[]"}
    feed(("user.updated", "users/demo", {"username": "demo", "roles": ["user", "manager"], "projects": ["p1"]}))
    [user] = rows(engine, "SELECT roles, projects FROM hpc_user")
    assert user == {"roles": '["user","manager"]', "projects": '["p1"]'}
    feed(("user.deleted", "users/demo", {"username": "demo"}))
    assert rows(engine, "SELECT * FROM hpc_user") == []


def test_checkpoint_is_committed_with_the_rows(engine: Engine, projection: JobDatabaseProjection, feed: Feed) -> None:
    assert projection.checkpoint() == 0
    feed(("job.started", SUBJECT, started()))
    assert projection.checkpoint() == 1


def test_failing_batch_leaves_neither_rows_nor_checkpoint(engine: Engine, projection: JobDatabaseProjection) -> None:
    good = new_event("job.started", SUBJECT, started()).recorded(1, 0.0)
    bad = new_event("job.stopped", SUBJECT, {"jobState": "completed"}).recorded(2, 0.0)  # no duration
    with pytest.raises(KeyError):
        projection.apply([good, bad])
    assert rows(engine, "SELECT * FROM job") == []
    assert projection.checkpoint() == 0


def test_job_archived_records_footprint_energy_and_status(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started()),
         ("job.stopped", SUBJECT, {"jobState": "completed", "stopTime": 1675954530, "duration": 177}),
         ("job.archived", SUBJECT, {"statistics": {}, "footprint": {"flops_any_avg": 1.5},
                                    "energyFootprint": {"cpu_power": 0.25}, "energy": 0.25, "location": "x"}))
    [job] = rows(engine, "SELECT monitoring_status, footprint, energy_footprint, energy FROM job")
    assert job == {"monitoring_status": 3, "footprint": '{"flops_any_avg":1.5}',
                   "energy_footprint": '{"cpu_power":0.25}', "energy": 0.25}


def test_final_archiving_failure_marks_the_job(engine: Engine, feed: Feed) -> None:
    feed(("job.started", SUBJECT, started()),
         ("job.archiving_failed", SUBJECT, {"reason": "x", "attempt": 1, "final": False}))
    assert rows(engine, "SELECT monitoring_status FROM job") == [{"monitoring_status": 1}]
    feed(("job.archiving_failed", SUBJECT, {"reason": "x", "attempt": 5, "final": True}))
    assert rows(engine, "SELECT monitoring_status FROM job") == [{"monitoring_status": 2}]


def _mixed_batch() -> list[tuple[str, str, dict[str, Any]]]:
    """Starts and stops the projection writes together, interleaved with events it must write one by one."""
    subjects = [f"job/fritz/{n}/{1675954353 + n}" for n in range(1, 9)]
    return [
        ("job.started", subjects[0], started(subjects[0])),
        ("job.started", subjects[1], started(subjects[1])),
        ("job.stopped", subjects[0], {"jobState": "completed", "stopTime": 1675958000, "duration": 3646}),
        ("job.started", subjects[2], started(subjects[2], tags=[{"type": "app", "name": "vasp", "scope": "global"}])),
        ("job.stopped", subjects[2], {"jobState": "failed", "stopTime": 1675958000, "duration": 3644}),
        ("job.metadata_updated", subjects[1], {"key": "issues", "value": "slow"}),
        ("job.started", subjects[3], started(subjects[3])),
        ("job.stopped", subjects[3], {"jobState": "timeout", "stopTime": 1675958000, "duration": 3643}),
        ("job.deleted", subjects[3], {}),
        ("job.started", subjects[3], started(subjects[3], project="again")),
        ("job.started", subjects[4], started(subjects[4])),
        ("job.stopped", subjects[4], {"jobState": "cancelled", "stopTime": 1675958000, "duration": 3642}),
        ("job.stopped", subjects[1], {"jobState": "completed", "stopTime": 1675958000, "duration": 3645}),
    ]


def _job_table(engine: Engine) -> list[dict[str, Any]]:
    return rows(engine, "SELECT * FROM job ORDER BY id")


@contextmanager
def _fed_both_ways(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """The mixed batch fed one event per batch into one file and as one batch into another."""
    one_by_one = writer_engine(tmp_path / "single.db")
    together = writer_engine(tmp_path / "batch.db")
    try:
        single, batched = Feed(JobDatabaseProjection(one_by_one)), Feed(JobDatabaseProjection(together))
        for spec in _mixed_batch():
            single(spec)
        batched(*_mixed_batch())
        yield one_by_one, together
    finally:
        one_by_one.dispose()
        together.dispose()


def test_batch_written_together_equals_events_written_one_by_one(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    written_together: list[int] = []
    record_job_starts = jobs.record_job_starts

    def counting(conn: Any, events: Sequence[Event]) -> None:
        written_together.append(len(events))
        record_job_starts(conn, events)

    monkeypatch.setattr(jobs, "record_job_starts", counting)
    with _fed_both_ways(tmp_path) as (one_by_one, together):
        # Written together: s1, s2 (and s1's stop); s4 with its stop; s4 again after its deletion, s5 (stops too).
        assert written_together == [2, 1, 2]
        assert _job_table(together) == _job_table(one_by_one)
        assert len(_job_table(together)) == 5
        tags = "SELECT job_id, tag_id FROM jobtag ORDER BY job_id"
        assert rows(together, tags) == rows(one_by_one, tags) != []


def test_stops_are_written_row_by_row_with_sqlite_before_3_33(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_UPDATE_FROM", False)
    with _fed_both_ways(tmp_path) as (one_by_one, together):
        assert _job_table(together) == _job_table(one_by_one)
        assert {r["job_state"] for r in _job_table(together)} == {"completed", "failed", "cancelled", "running"}


def test_starts_written_together_report_their_database_ids(engine: Engine, projection: JobDatabaseProjection,
                                                           feed: Feed) -> None:
    subjects = [f"job/fritz/{n}/{1675954353 + n}" for n in range(1, 6)]
    feed(("job.started", subjects[0], started(subjects[0])))
    feed(*(("job.started", s, started(s)) for s in subjects[1:]))
    ids = {r["job_id"]: r["id"] for r in rows(engine, "SELECT id, job_id FROM job")}
    for subject in subjects:
        assert projection.recent_id(subject) == ids[int(subject.split("/")[2])]
