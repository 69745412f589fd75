"""Importing a cc-backend job database (schema 10 or 11) as events: jobs with their ids, tags and users.

Jobs keep their database ids (`dbId`), so links and bookmarks into the old installation stay valid.
UI configuration rows are counted and reported, not imported: no event type carries them yet, and
the API writes nothing but events. Event ids are the archive import's, so importing a database and
an archive of the same jobs records each job once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from archive.imports.report import ImportReport, append_jobs
from archive.imports.walk import gc_paused
from archive.jobjson import MetaError, import_event_id, started_payload
from archive.paths import InvalidName, JobKey
from streams.events import Event, derived_event_id, job_subject, new_event, validate_payload
from streams.log import EventLog

SUPPORTED_VERSIONS = (10, 11)
DB_SOURCE = "import:db"
_JOB_COLUMNS = (
    "id, job_id, cluster, subcluster, submit_time, start_time, hpc_user, project, cluster_partition, array_job_id,"
    " duration, walltime, job_state, meta_data, resources, num_nodes, num_hwthreads, num_acc, smt, shared,"
    " monitoring_status, energy, energy_footprint, footprint"
)


class DbImportError(RuntimeError):
    """The file is not a cc-backend database this importer can read; the message says why."""


def open_database(path: Path) -> sqlite3.Connection:
    """A read-only connection to a cc-backend job.db after checking its schema version."""
    if not path.is_file():
        raise DbImportError(f"{path}: no such file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT MAX(version), MAX(dirty) FROM schema_migrations").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DbImportError(f"{path}: not a cc-backend job database ({exc})") from None
    version, dirty = row[0], row[1]
    if version not in SUPPORTED_VERSIONS or dirty:
        conn.close()
        state = " (a migration did not finish)" if dirty else ""
        raise DbImportError(
            f"{path}: database schema version {version}{state}; supported: {', '.join(map(str, SUPPORTED_VERSIONS))}"
            " (migrate it with cc-backend -migrate-db first)"
        )
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _json(raw: Any) -> Any:
    """A JSON column (cc-backend stores them as TEXT or BLOB); None for NULL or empty."""
    if raw is None or raw in (b"", ""):
        return None
    return orjson.loads(raw)


def _numbers(raw: Any) -> dict[str, float] | None:
    value = _json(raw)
    if not isinstance(value, dict):
        return None
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _job_events(row: sqlite3.Row, tags: list[tuple[str, str, str]], keep_id: bool) -> list[Event]:
    """job.started (with dbId, footprint, energy), job.stopped unless running, job.tag_added per tag."""
    meta = {
        "jobId": row["job_id"], "user": row["hpc_user"], "project": row["project"], "cluster": row["cluster"],
        "subCluster": row["subcluster"], "partition": row["cluster_partition"], "arrayJobId": row["array_job_id"],
        "numNodes": row["num_nodes"], "numHwthreads": row["num_hwthreads"], "numAcc": row["num_acc"],
        "shared": row["shared"], "smt": row["smt"], "walltime": row["walltime"], "submitTime": row["submit_time"],
        "startTime": row["start_time"], "resources": _json(row["resources"]), "metaData": _json(row["meta_data"]),
    }
    key = JobKey.from_meta(meta)
    started = started_payload(meta, db_id=row["id"] if keep_id else None)
    started.update(
        monitoringStatus=row["monitoring_status"], energy=row["energy"] or 0.0,
        footprint=_numbers(row["footprint"]), energyFootprint=_numbers(row["energy_footprint"]),
    )
    subject = job_subject(*key)
    events = [new_event("job.started", subject, validate_payload("job.started", 1, started),
                        id=import_event_id(key, "started"), source=DB_SOURCE, at=float(key.start_time))]
    if row["job_state"] != "running":
        duration = int(row["duration"] or 0)
        stop = {"jobState": row["job_state"], "stopTime": key.start_time + duration, "duration": duration}
        events.append(new_event("job.stopped", subject, validate_payload("job.stopped", 1, stop),
                                id=import_event_id(key, "stopped"), source=DB_SOURCE,
                                at=float(key.start_time + duration)))
    for tag_type, name, scope in tags:
        tag = validate_payload("job.tag_added", 1, {"type": tag_type, "name": name, "scope": scope})
        events.append(new_event("job.tag_added", subject, tag, id=import_event_id(key, "tag", tag_type, name, scope),
                                source=DB_SOURCE, at=float(key.start_time)))
    return events


def _job_tags(conn: sqlite3.Connection) -> dict[int, list[tuple[str, str, str]]]:
    scope = "t.tag_scope" if "tag_scope" in _columns(conn, "tag") else "'global'"
    tags: dict[int, list[tuple[str, str, str]]] = {}
    for job_id, tag_type, name, tag_scope in conn.execute(
        f"SELECT jt.job_id, t.tag_type, t.tag_name, {scope} FROM jobtag jt JOIN tag t ON t.id = jt.tag_id"
        " ORDER BY jt.job_id, t.id"
    ):
        tags.setdefault(int(job_id), []).append((str(tag_type), str(name), str(tag_scope or "global")))
    return tags


def _job_rows(conn: sqlite3.Connection) -> Iterator[tuple[sqlite3.Row, bool]]:
    """Committed jobs (keeping their ids), then cached jobs not committed yet (schema 10's job_cache)."""
    for row in conn.execute(f"SELECT {_JOB_COLUMNS} FROM job ORDER BY id"):
        yield row, True
    if "job_cache" in _tables(conn):
        for row in conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM job_cache c WHERE NOT EXISTS (SELECT 1 FROM job j WHERE"
            " j.job_id = c.job_id AND j.cluster = c.cluster AND j.start_time = c.start_time) ORDER BY id"
        ):
            yield row, False  # their ids belong to the cache table and would clash with job ids


def _user_events(conn: sqlite3.Connection) -> list[Event]:
    events = []
    for row in conn.execute("SELECT username, password, ldap, name, roles, email, projects FROM hpc_user"):
        data = {
            "username": row["username"], "password": row["password"] or None, "roles": _json(row["roles"]) or [],
            "projects": _json(row["projects"]) or [], "name": row["name"], "email": row["email"],
            "authSource": row["ldap"] or 0,
        }
        events.append(new_event("user.created", f"users/{row['username']}", validate_payload("user.created", 1, data),
                                id=derived_event_id("import", "user", row["username"]), source=DB_SOURCE))
    return events


def _count(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def _report_skipped(conn: sqlite3.Connection, report: ImportReport) -> None:
    tables = _tables(conn)
    if "configuration" in tables:
        configuration = _count(conn, "SELECT COUNT(*) FROM configuration")
        report.skip("UI configuration rows (no event type for them)", configuration)
    report.skip("tags on no job", _count(conn, "SELECT COUNT(*) FROM tag WHERE id NOT IN (SELECT tag_id FROM jobtag)"))
    for table in ("node", "node_state"):
        if table in tables:
            report.skip(f"{table} rows", _count(conn, f"SELECT COUNT(*) FROM {table}"))


def import_database(
    path: Path, log: EventLog, *, batch_size: int = 5000, progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Append a cc-backend database's jobs, tags and users to the log; running it twice appends nothing."""
    started = time.perf_counter()
    report = ImportReport()
    with gc_paused():
        conn = open_database(path)
        try:
            tags = _job_tags(conn)
            batch: list[list[Event]] = []
            for row, keep_id in _job_rows(conn):
                report.seen += 1
                try:
                    batch.append(_job_events(row, tags.get(int(row["id"]), []) if keep_id else [], keep_id))
                except (ValidationError, MetaError, InvalidName, orjson.JSONDecodeError, TypeError) as exc:
                    report.error(f"job id {row['id']} ({row['cluster']}/{row['job_id']}): {str(exc).splitlines()[0]}")
                if len(batch) >= batch_size:
                    append_jobs(log, batch, report)
                    batch = []
                if progress is not None:
                    progress(1)
            if batch:
                append_jobs(log, batch, report)
            users = _user_events(conn)
            results = log.append(users)
            report.extra["users"] = sum(1 for r in results if not r.duplicate)
            report.extra["tag links read"] = sum(len(v) for v in tags.values())
            _report_skipped(conn, report)
        finally:
            conn.close()
    report.seconds = time.perf_counter() - started
    return report
