"""Bulk loading of the job database for rebuilds: the HANDLERS' own logic, batched into executemany.

The incremental projection issues one statement per event, which is what a live server needs (small
batches, every index maintained). A rebuild writes millions of rows into a scratch file nobody reads
yet, so this loader trades that for throughput without changing a single row:

- `job.started` rows come from `jobs.job_start_values` and `job.stopped` parameters from
  `jobs.job_stop_params`, the functions the handlers themselves use; they are collected and written
  with `executemany`. A collected stop may run after starts that came later in the log, which is only
  done when their jobs differ, so the outcome equals the sequential one.
- Every other event, and starts that carry tags, flush the collected rows first and then go through
  their HANDLERS entry on the same connection and transaction.
- The fast path is used only while HANDLERS still maps the type to that very handler: change the
  handler and the loader falls back to it, so HANDLERS stays the single source of handler logic.
- The scratch file runs without journal or fsync, secondary indexes of the big tables are created
  after the load, and CHECK constraints are verified once at the end by `integrity_check`
  (per-row CHECK evaluation rebuilds the IN-list of `job_state` for every row).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, create_engine, delete, event, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import StaticPool

from projections import jobs, schema
from projections.db import create_schema
from projections.handlers import HandlerTable
from projections.jobdb import HANDLERS, JobDatabaseProjection
from streams.events import Event
from streams.events.payloads import CURRENT_VERSION
from streams.events.upcasters import upcast
from streams.log import StoredEvent

#: Pragmas of a scratch file: the log can rebuild it, so nothing here needs to survive a crash.
BULK_PRAGMAS = (
    "journal_mode=OFF",
    "synchronous=OFF",
    "locking_mode=EXCLUSIVE",
    "temp_store=MEMORY",
    "cache_size=-262144",
    "threads=2",
    "foreign_keys=ON",
    "ignore_check_constraints=ON",
)
#: Tables whose secondary indexes no handler needs for its lookups: built once after a load from 0.
DEFERRED_INDEX_TABLES = ("job", "node_state")


class _Statement:
    """A statement compiled once; rows are bound by position, which sqlite3 does faster than by name."""

    def __init__(self, statement: Any, keys: list[str]) -> None:
        compiled = statement.compile(dialect=sqlite_dialect(paramstyle="qmark"), column_keys=keys)
        self.sql = str(compiled)
        self.row = operator.itemgetter(*compiled.positiontup)


_JOB_COLUMNS = [c.name for c in schema.job.columns]
_INSERT = _Statement(sqlite_insert(schema.job).on_conflict_do_nothing(), _JOB_COLUMNS)
_STOP = _Statement(
    update(schema.job)
    .where(
        and_(
            schema.job.c.cluster == bindparam("key_cluster"),
            schema.job.c.job_id == bindparam("key_job_id"),
            schema.job.c.start_time == bindparam("key_start_time"),
        )
    )
    .values(job_state=bindparam("new_state"), duration=bindparam("new_duration")),
    [],
)
_UNPARK = _Statement(delete(schema.parked_stop).where(schema.parked_stop.c.event_id == bindparam("id")), [])

JobKey = tuple[Any, Any, Any]


class _Pending:
    """Starts, stops and unparks collected for one executemany each, flushed in that order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.starts: list[tuple[Any, ...]] = []
        self.stops: list[tuple[Any, ...]] = []
        self.unparks: list[tuple[Any, ...]] = []
        self.stopped: set[JobKey] = set()

    def start(self, values: dict[str, Any]) -> None:
        if (values["cluster"], values["job_id"], values["start_time"]) in self.stopped:
            self.flush()  # a stop of this job came first in the log: it must run first
        values.setdefault("id", None)
        self.starts.append(_INSERT.row(values))

    def stop(self, params: dict[str, Any], parked_id: object) -> None:
        self.stops.append(_STOP.row(params))
        self.stopped.add((params["key_cluster"], params["key_job_id"], params["key_start_time"]))
        if parked_id:
            self.unparks.append((parked_id,))

    def flush(self) -> None:
        if self.starts:
            self.conn.executemany(_INSERT.sql, self.starts)
        if self.stops:
            self.conn.executemany(_STOP.sql, self.stops)
        if self.unparks:
            self.conn.executemany(_UNPARK.sql, self.unparks)
        self.starts, self.stops, self.unparks = [], [], []
        self.stopped.clear()


def _plain_key(values: dict[str, Any]) -> bool:
    # Python must compare job keys exactly as SQLite does; other types go through the handler.
    return (
        type(values["job_id"]) is int and type(values["start_time"]) is int and type(values["cluster"]) is str
    )


class JobDatabaseBulkLoader:
    """Loads stored events into a job database file, with the checkpoint in the same transaction."""

    name = JobDatabaseProjection.name

    def __init__(self, path: str | Path, handlers: HandlerTable = HANDLERS, *, page_size: int | None = None) -> None:
        self.path = Path(path)
        self.handlers = handlers
        self._raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if page_size:
            self._raw.execute(f"PRAGMA page_size={int(page_size)}")
        for pragma in BULK_PRAGMAS:
            self._raw.execute(f"PRAGMA {pragma}")
        self.engine: Engine = create_engine("sqlite://", creator=lambda: self._raw, poolclass=StaticPool)
        event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        create_schema(self.engine)
        self._projection = JobDatabaseProjection(self.engine, handlers)
        self._deferred: list[str] = []
        if self.checkpoint() == 0:
            self._defer_indexes()

    def _defer_indexes(self) -> None:
        marks = ",".join("?" * len(DEFERRED_INDEX_TABLES))
        rows = self._raw.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})"
            " ORDER BY rowid",
            DEFERRED_INDEX_TABLES,
        ).fetchall()
        for name, sql in rows:
            self._raw.execute(f'DROP INDEX "{name}"')
            self._deferred.append(sql)

    def checkpoint(self) -> int:
        return self._projection.checkpoint()

    def load(self, records: Sequence[StoredEvent]) -> None:
        """Apply stored events in one transaction and store the last position as checkpoint."""
        if not records:
            return
        with self.engine.begin() as conn:
            self._load(conn, records)
            position = records[-1].position
            stmt = sqlite_insert(schema.checkpoint).values(name=self.name, position=position)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"position": position}))

    def _load(self, conn: Connection, records: Sequence[StoredEvent]) -> None:
        pending = _Pending(conn.connection.driver_connection)  # type: ignore[arg-type]
        start_handler = self.handlers.get("job.started")
        stop_handler = self.handlers.get("job.stopped")
        fast_start = start_handler is jobs.record_job_start
        fast_stop = stop_handler is jobs.record_job_stop
        for record in records:
            type_ = record.type
            if record.version != CURRENT_VERSION.get(type_):
                version, data = upcast(type_, record.version, orjson.loads(record.data))
            else:
                handler = self.handlers.get(type_)
                if handler is None:
                    continue
                version, data = record.version, orjson.loads(record.data)
            if type_ == "job.started" and fast_start and not data.get("tags"):
                values = jobs.job_start_values(data)
                if _plain_key(values):
                    pending.start(values)
                    continue
            elif type_ == "job.stopped" and fast_stop:
                pending.stop(jobs.job_stop_params(record.subject, data), data.get("parkedStopId"))
                continue
            handler = self.handlers.get(type_)
            if handler is None:
                continue
            pending.flush()
            handler(conn, _event(record, version, data))
        pending.flush()

    def finish(self) -> None:
        """Create the deferred indexes; the file is then an ordinary job database."""
        for sql in self._deferred:
            self._raw.execute(sql)
        self._deferred = []

    def close(self) -> None:
        self.engine.dispose()
        self._raw.close()


def _event(record: StoredEvent, version: int, data: dict[str, Any]) -> Event:
    return Event(
        id=record.id, type=record.type, subject=record.subject, data=data, version=version, time=record.time,
        source=record.source, causation_id=record.causation_id, position=record.position,
        recorded_at=record.recorded_at,
    )
