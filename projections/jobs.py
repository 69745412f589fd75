"""Job table handlers: started, stopped, parked stops, metadata and deletion."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from projections import schema
from projections.handlers import HandlerTable
from projections.keys import JOB_KEY_SQL, job_key_clause, job_row_id
from projections.tags import attach_tag
from streams.events import Event, parse_job_subject


def _json_or_none(value: object) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value).decode()


def job_start_values(d: dict[str, Any]) -> dict[str, Any]:
    """The job row of a `job.started` payload; replay's bulk loader writes the very same row."""
    meta = d.get("metaData") or {}
    values = {
        "job_id": d["jobId"],
        "cluster": d["cluster"],
        "subcluster": d["subCluster"],
        "submit_time": d.get("submitTime") or 0,
        "start_time": d["startTime"],
        "hpc_user": d["user"],
        "project": d["project"],
        "cluster_partition": d.get("partition") or "",
        "array_job_id": d.get("arrayJobId") or 0,
        "duration": d.get("duration") or 0,
        "walltime": d.get("walltime") or 0,
        "job_state": "running",
        "meta_data": _json_or_none(meta) if meta else None,
        "resources": orjson.dumps(d["resources"]).decode(),
        "num_nodes": d["numNodes"],
        "num_hwthreads": d.get("numHwthreads") or 0,
        "num_acc": d.get("numAcc") or 0,
        "smt": d.get("smt", 1),
        "shared": d.get("shared") or "none",
        "monitoring_status": d.get("monitoringStatus", 1),
        "energy": d.get("energy") or 0.0,
        "energy_footprint": _json_or_none(d.get("energyFootprint")),
        "footprint": _json_or_none(d.get("footprint")),
    }
    if d.get("dbId") is not None:
        values["id"] = d["dbId"]
    return values


#: Key in `Connection.info` under which a batch collects the database ids of the jobs it inserts, so that
#: the API can answer start_job with the id without asking the database again.
STARTED_IDS = "ccstream.started_ids"


#: Rows per statement of the job writes below (two dozen parameters each: far under SQLite's 32,766).
_ROWS_PER_STATEMENT = 256
#: UPDATE … FROM came with SQLite 3.33 (2020); with an older library (RHEL 8 ships 3.26), and for a
#: single job, stops are updated one row at a time.
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)
_STOP_JOB_SQL = f"UPDATE job SET job_state = ?, duration = ? WHERE {JOB_KEY_SQL}"
_ARCHIVED_SQL = (
    f"UPDATE job SET monitoring_status = 3, footprint = ?, energy_footprint = ?, energy = ? WHERE {JOB_KEY_SQL}"
)
#: An archived job's statistics, kept only while its row exists (parameters: the key, the JSON, the key).
STATISTICS_SQL = (
    "INSERT INTO ccstream_job_statistics (cluster, job_id, start_time, statistics)"
    f" SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM job WHERE {JOB_KEY_SQL})"
    " ON CONFLICT (cluster, job_id, start_time) DO UPDATE SET statistics = excluded.statistics"
)
_DROP_STATISTICS_SQL = f"DELETE FROM ccstream_job_statistics WHERE {JOB_KEY_SQL}"


def statistics_parameters(subject: str, statistics: dict[str, Any]) -> tuple[Any, ...]:
    """STATISTICS_SQL's parameters for a job subject."""
    key = parse_job_subject(subject)
    return (*key, orjson.dumps(statistics).decode(), *key)


@cache
def _insert_jobs_sql(columns: tuple[str, ...], rows: int) -> str:
    """Plain SQL for `rows` job rows: the hot path of the live projection skips statement compilation."""
    row = f"({', '.join('?' * len(columns))})"
    # Only a job already stored under its key is passed over (an event applied again); a database id that
    # another job holds (an imported id) is an error, reported with the event, never a silently lost job.
    return (f"INSERT INTO job ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"
            " ON CONFLICT (job_id, cluster, start_time) DO NOTHING")


@cache
def _stop_jobs_sql(rows: int) -> str:
    """Plain SQL setting state and duration of `rows` jobs, each given as (state, duration, cluster, id, start)."""
    return (
        "UPDATE job SET job_state = v.column1, duration = v.column2"
        f" FROM (VALUES {', '.join(['(?, ?, ?, ?, ?)'] * rows)}) AS v"
        " WHERE job.cluster = v.column3 AND job.job_id = v.column4 AND job.start_time = v.column5"
    )


class JobIdTaken(ValueError):
    """An imported job keeps a database id that another job already has (live projection and rebuild alike)."""

    def __init__(self, subject: str, db_id: int, holder: str | None) -> None:
        super().__init__(f"{subject} keeps database id {db_id}, which {holder or 'another job'} already has")


#: The job that holds a database id, for the message of JobIdTaken.
HOLDER_SQL = "SELECT cluster, job_id, start_time FROM job WHERE id = ?"


def holder_of(row: Sequence[object] | None) -> str | None:
    """A job subject from a HOLDER_SQL row."""
    if row is None:
        return None
    cluster, job_id, start_time = row
    return f"job/{cluster}/{job_id}/{start_time}"


def _insert_jobs(conn: Connection, events: Sequence[Event]) -> None:
    """The job rows of `job.started` events whose rows have the same columns, one INSERT per 256.

    New rows get consecutive ids in order, so the ids for the start_job answers follow from `lastrowid`.
    """
    ids = conn.info.get(STARTED_IDS)
    for start in range(0, len(events), _ROWS_PER_STATEMENT):
        chunk = events[start:start + _ROWS_PER_STATEMENT]
        rows = [job_start_values(e.data) for e in chunk]
        try:
            result = conn.exec_driver_sql(
                _insert_jobs_sql(tuple(rows[0]), len(rows)), tuple(value for row in rows for value in row.values())
            )
        except IntegrityError as exc:
            taken = [(e.subject, row["id"]) for e, row in zip(chunk, rows, strict=True) if "id" in row]
            if len(chunk) == 1 and taken and "job.id" in str(exc.orig):
                subject, db_id = taken[0]
                holder = holder_of(conn.exec_driver_sql(HOLDER_SQL, (db_id,)).fetchone())
                raise JobIdTaken(subject, db_id, holder) from None
            raise  # several rows: the runner narrows the batch down to the one at fault
        if ids is not None and result.rowcount == len(chunk) and result.lastrowid:
            first = result.lastrowid - len(chunk) + 1
            ids.update((e.subject, first + i) for i, e in enumerate(chunk))


def _stop_jobs(conn: Connection, events: Sequence[Event]) -> None:
    """State and duration of the jobs of `job.stopped` events (one per job), one UPDATE per 256."""
    rows = []
    for event in events:
        p = job_stop_params(event.subject, event.data)
        rows.append((p["new_state"], p["new_duration"], p["key_cluster"], p["key_job_id"], p["key_start_time"]))
    if len(rows) == 1 or not _UPDATE_FROM:
        conn.exec_driver_sql(_STOP_JOB_SQL, rows[0] if len(rows) == 1 else rows)  # a list: executemany
        return
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_stop_jobs_sql(len(chunk)), tuple(value for row in chunk for value in row))


def record_job_start(conn: Connection, event: Event) -> None:
    _insert_jobs(conn, [event])
    tags = event.data.get("tags") or []
    if tags:
        job_id = job_row_id(conn, event.subject)
        if job_id is not None:
            for t in tags:
                attach_tag(conn, job_id, t["type"], t["name"], t.get("scope") or "global")


def can_record_together(event: Event) -> bool:
    """Whether an event may go through `record_job_starts` / `record_job_stops` with others of its type:
    a start without tags or an imported database id, a stop that resolves no parked stop."""
    if event.type == "job.started":
        return not event.data.get("tags") and event.data.get("dbId") is None
    return event.type == "job.stopped" and not event.data.get("parkedStopId")


def record_job_starts(conn: Connection, events: Sequence[Event]) -> None:
    """Several `record_job_start`s (events `can_record_together`) in one INSERT per 256 jobs.

    The live projection applies the starts of a whole batch at once: each statement is a round of giving
    up and winning back the interpreter lock, which on a busy server costs more than SQLite's work.
    """
    _insert_jobs(conn, events)


def record_job_stops(conn: Connection, events: Sequence[Event]) -> None:
    """Several `record_job_stop`s (events `can_record_together`, one per job) in one UPDATE per 256 jobs."""
    _stop_jobs(conn, events)


def job_stop_params(subject: str, d: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the stop statement for a `job.stopped` event; replay's bulk loader takes the same."""
    cluster, job_id, start_time = parse_job_subject(subject)
    return {"key_cluster": cluster, "key_job_id": job_id, "key_start_time": start_time,
            "new_state": d["jobState"], "new_duration": d["duration"]}


def record_job_stop(conn: Connection, event: Event) -> None:
    d = event.data
    _stop_jobs(conn, [event])
    if d.get("parkedStopId"):
        conn.execute(delete(schema.parked_stop).where(schema.parked_stop.c.event_id == d["parkedStopId"]))


def record_parked_stop(conn: Connection, event: Event) -> None:
    d = event.data
    conn.execute(
        sqlite_insert(schema.parked_stop)
        .values(
            event_id=event.id,
            cluster=d["cluster"],
            job_id=d["jobId"],
            start_time=d.get("startTime"),
            job_state=d["jobState"],
            stop_time=d["stopTime"],
            received_at=event.time,
        )
        .on_conflict_do_nothing()
    )


def record_parked_stop_expiry(conn: Connection, event: Event) -> None:
    conn.execute(delete(schema.parked_stop).where(schema.parked_stop.c.event_id == event.data["parkedStopId"]))


def record_metadata(conn: Connection, event: Event) -> None:
    clause = job_key_clause(event.subject)
    raw = conn.execute(select(schema.job.c.meta_data).where(clause)).scalar()
    meta = orjson.loads(raw) if raw else {}
    meta[event.data["key"]] = event.data["value"]
    conn.execute(update(schema.job).where(clause).values(meta_data=orjson.dumps(meta).decode()))


def record_job_deletion(conn: Connection, event: Event) -> None:
    job_id = job_row_id(conn, event.subject)
    if job_id is None:
        return
    conn.execute(delete(schema.jobtag).where(schema.jobtag.c.job_id == job_id))
    conn.execute(delete(schema.job).where(schema.job.c.id == job_id))
    conn.exec_driver_sql(_DROP_STATISTICS_SQL, parse_job_subject(event.subject))


def record_archived(conn: Connection, event: Event) -> None:
    d = event.data
    conn.exec_driver_sql(_ARCHIVED_SQL, (
        _json_or_none(d.get("footprint") or None), _json_or_none(d.get("energyFootprint") or None),
        d.get("energy") or 0.0, *parse_job_subject(event.subject),
    ))
    if d.get("statistics"):
        conn.exec_driver_sql(STATISTICS_SQL, statistics_parameters(event.subject, d["statistics"]))
    else:
        conn.exec_driver_sql(_DROP_STATISTICS_SQL, parse_job_subject(event.subject))


def record_archiving_failed(conn: Connection, event: Event) -> None:
    if event.data.get("final"):
        conn.execute(update(schema.job).where(job_key_clause(event.subject)).values(monitoring_status=2))


#: The duration worker's update: every running job's duration as of the event's `asOf`.
DURATIONS_SQL = "UPDATE job SET duration = MAX(? - start_time, 0) WHERE job_state = 'running'"
_FOOTPRINT_SQL = (
    "UPDATE job SET footprint = ?, energy_footprint = ?, energy = ?"
    f" WHERE job_state = 'running' AND {JOB_KEY_SQL}"
)


def record_durations_updated(conn: Connection, event: Event) -> None:
    """cc-backend's `UpdateDuration`: `now - start_time` for the running jobs, `now` being the event's."""
    conn.exec_driver_sql(DURATIONS_SQL, (event.data["asOf"],))


def footprint_values(d: dict[str, Any]) -> tuple[str | None, str | None, float]:
    """The footprint, energy footprint and energy columns of a `job.footprint_updated` payload."""
    return (_json_or_none(d.get("footprint") or None), _json_or_none(d.get("energyFootprint") or None),
            d.get("energy") or 0.0)


def record_footprint_updated(conn: Connection, event: Event) -> None:
    """A running job's footprint so far; a job stopped meanwhile keeps what its stop and archive set."""
    conn.exec_driver_sql(_FOOTPRINT_SQL, (*footprint_values(event.data), *parse_job_subject(event.subject)))


HANDLERS: HandlerTable = {
    "job.started": record_job_start,
    "job.stopped": record_job_stop,
    "job.stop_parked": record_parked_stop,
    "job.parked_stop_expired": record_parked_stop_expiry,
    "job.metadata_updated": record_metadata,
    "job.deleted": record_job_deletion,
    "job.archived": record_archived,
    "job.archiving_failed": record_archiving_failed,
    "job.durations_updated": record_durations_updated,
    "job.footprint_updated": record_footprint_updated,
}

