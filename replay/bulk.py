"""Bulk loading of the job database for rebuilds: the handlers' own logic, held back and batched.

The incremental projection issues one statement per event, which is what a live server needs (small
batches, every index maintained). A rebuild writes millions of rows into a scratch file nobody reads
yet, so this loader trades that for throughput without changing a single row:

- Job rows are held in memory, in the order of their starts, and the job's stop, metadata and archive
  events are folded into the held row (replay/fold.py): most jobs go into the file once, final, instead
  of an INSERT and an UPDATE per event. Held rows are written oldest first with `executemany`, so
  SQLite hands out the ids it handed out to the live projection (the next free id is the largest + 1).
- A held row whose key or id is already taken in the file makes that plain INSERT raise: the handler's
  INSERT ... ON CONFLICT DO NOTHING did nothing either, so the events folded into the row are then
  applied to the stored row by their handlers, in log order.
- Stops of jobs not held are collected for one `executemany` UPDATE, run before any held row is written
  (a stop that came before its job's start must not stop it) and before any handler runs.
- Events of other tables (users, nodes, parked stops, tag deletion) go through their handlers at once;
  a tag edit first writes the held rows up to its job (it needs the job's id), and everything else
  (deletions, starts with tags, types without a fast path) first writes all of them: a deletion changes
  the next free id, so no held row may be written after it that the live projection wrote before.
- A fast path is used only while HANDLERS still maps the type to that very handler: swap a handler and
  the loader falls back to it. What fold.py does in place of a job handler, tests/replay/test_fold.py
  compares with that handler, event type by event type.
- The whole load is one transaction, committed with the checkpoint by `finish`. All of it runs on the
  caller's thread: a writer thread (or a reader thread) made it slower, as sqlite3 hands the GIL over
  for every row it steps through, and the threads then wait for each other row by row.
- The scratch file runs without journal or fsync, secondary indexes of the big tables are created
  after the load, and CHECK constraints are verified once at the end by the rebuild's check
  (per-row CHECK evaluation rebuilds the IN-list of `job_state` for every row).
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from projections import jobs, nodes, schema, tags, users
from projections.db import create_schema
from projections.handlers import Handler, HandlerTable
from projections.jobdb import HANDLERS, JobDatabaseProjection
from projections.keys import JOB_KEY_SQL
from replay import fold
from replay.fold import JobKey, Raw, Row
from replay.pages import Page, page_of
from streams.events import Event, parse_job_subject
from streams.events.codec import unreadable
from streams.events.payloads import CURRENT_VERSION
from streams.log import StoredEvent
from streams.runtime import quarantine
from streams.runtime.runner import is_transient

#: Bytes of a database file read through a memory map: building the indexes reads the whole job table
#: once per index, a third faster from the map than through read() calls.
MMAP_SIZE = 1 << 31
#: Pragmas of a scratch file: the log can rebuild it, so nothing here needs to survive a crash.
BULK_PRAGMAS = (
    "journal_mode=OFF",
    "synchronous=OFF",
    "locking_mode=EXCLUSIVE",
    "temp_store=MEMORY",
    "cache_size=-262144",
    "threads=2",
    f"mmap_size={MMAP_SIZE}",
    "foreign_keys=ON",
    "ignore_check_constraints=ON",
)
#: Tables whose secondary indexes no handler needs for its lookups: built once after a load from 0.
DEFERRED_INDEX_TABLES = ("job", "node_state")
#: Job rows held in memory at most (under 1 KB each). A job whose stop comes more than this many
#: starts after its own is written running, and updated at its stop.
HOLD = 100_000
#: Held rows written per `executemany` once more than HOLD are held.
BATCH = 10_000

_READ_CHECKPOINT = "SELECT position FROM ccstream_checkpoint WHERE name = ?"
_WRITE_CHECKPOINT = (
    "INSERT INTO ccstream_checkpoint (name, position) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)
_STOP_SQL = f"UPDATE job SET job_state = ?, duration = ? WHERE {JOB_KEY_SQL}"
_UNPARK_SQL = "DELETE FROM ccstream_parked_stop WHERE event_id = ?"
#: sqlite3 error names of a taken key or id (anything else a held row runs into is an error).
_ID = fold.JOB_COLUMNS.index("id")
_TAKEN = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})

# How the loader treats an event type whose handler is still the one named in _ROUTES.
_START, _STOP, _EDIT, _TAG, _ELSEWHERE = "start", "stop", "edit", "tag", "elsewhere"
_ROUTES: dict[str, tuple[Handler, str]] = {
    "job.started": (jobs.record_job_start, _START),
    "job.stopped": (jobs.record_job_stop, _STOP),
    "job.metadata_updated": (jobs.record_metadata, _EDIT),
    "job.archived": (jobs.record_archived, _EDIT),
    "job.archiving_failed": (jobs.record_archiving_failed, _EDIT),
    "job.footprint_updated": (jobs.record_footprint_updated, _EDIT),
    "job.tag_added": (tags.record_tag_added, _TAG),
    "job.tag_removed": (tags.record_tag_removed, _TAG),
    "job.stop_parked": (jobs.record_parked_stop, _ELSEWHERE),
    "tag.created": (tags.record_tag_created, _ELSEWHERE),
    "tag.deleted": (tags.record_tag_deleted, _ELSEWHERE),
    "user.created": (users.record_user_created, _ELSEWHERE),
    "user.updated": (users.record_user_updated, _ELSEWHERE),
    "user.deleted": (users.record_user_deleted, _ELSEWHERE),
    "user.configuration_updated": (users.record_configuration_updated, _ELSEWHERE),
    "node.states_reported": (nodes.record_node_states, _ELSEWHERE),
    "node.states_retired": (nodes.record_node_states_retired, _ELSEWHERE),
}
_EDITS: dict[str, Callable[[Row, dict[str, Any]], Row]] = {
    "job.metadata_updated": fold.metadata_updated,
    "job.archived": fold.archived,
    "job.archiving_failed": fold.archiving_failed,
    "job.footprint_updated": fold.footprint_updated,
}

if set(fold.JOB_COLUMNS) != {column.name for column in schema.job.columns}:  # start_row builds rows of them
    raise RuntimeError("the job table's columns changed: replay/fold.py must build rows with them")

#: An event folded into a held row: its position, and how to read it whole should its handler need it.
Folded = tuple[int, Callable[[int], StoredEvent]]


class JobDatabaseBulkLoader:
    """Loads stored events into a job database file; `finish` stores them and the checkpoint."""

    name = JobDatabaseProjection.name

    def __init__(
        self, path: str | Path, handlers: HandlerTable = HANDLERS, *, page_size: int | None = None,
        hold: int = HOLD, batch: int = BATCH,
    ) -> None:
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
        self._routes = {type_: route for type_, (handler, route) in _ROUTES.items() if handlers.get(type_) is handler}
        # Predecoded starts and stops stand for their handlers' work: only while those are the known ones.
        self._predecoded = self._routes.get("job.started") is _START and self._routes.get("job.stopped") is _STOP
        self._hold, self._batch = hold, max(1, batch)
        self._held: OrderedDict[JobKey, Row] = OrderedDict()
        #: The start events of held rows that keep an imported id, should that id be taken (quarantined then).
        self._id_starts: dict[JobKey, tuple[int, Callable[[int], StoredEvent]]] = {}
        self._folded: dict[JobKey, list[Folded]] = {}
        #: STATISTICS_SQL parameters of held rows' `job.archived`: written once their rows are.
        self._held_statistics: dict[JobKey, tuple[Any, ...]] = {}
        self._stops: list[tuple[Any, ...]] = []
        self._unparks: list[tuple[Any, ...]] = []
        self._conn: Connection | None = None
        self._collector_was_on = False
        self._deferred: list[str] = []
        self._stored = self._position = self.checkpoint()
        if self._stored == 0:
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
        """Position of the last event stored in the file; loaded events are stored by `finish`."""
        row = self._raw.execute(_READ_CHECKPOINT, (self.name,)).fetchone()
        return int(row[0]) if row and row[0] else 0

    def load(self, records: Page | Sequence[StoredEvent]) -> None:
        """Apply events in the load's transaction; job rows may stay held until a later load or `finish`."""
        page = records if isinstance(records, Page) else page_of(records)
        if not page:
            return
        self._load(self._transaction(), page)
        while len(self._held) > self._hold:
            self._write_held(count=self._batch)
        self._write_updates()
        self._position = page.last

    def _transaction(self) -> Connection:
        """The load's one transaction, begun with its first page (the collector rests until its end).

        With cyclic garbage collection on, the collector passes over every new page, every held row and
        now and then every object of the process: a quarter of a rebuild's CPU. The fast paths make
        no reference cycles, and reference counting frees everything else at once; the few cycles the
        handlers leave wait for `finish` or `close`.
        """
        if self._conn is None:
            self._collector_was_on = self._collector_was_on or gc.isenabled()
            gc.disable()
            self._conn = self.engine.connect()
            self._conn.begin()
        return self._conn

    def _end_transaction(self) -> None:
        if self._conn is not None:
            self._conn.close()  # rolls back what `finish` did not commit
            self._conn = None
        if self._collector_was_on:
            self._collector_was_on = False
            gc.enable()

    def _load(self, conn: Connection, page: Page) -> None:
        held, folded, fetch = self._held, self._folded, page.fetch
        routes, handlers, stops, unparks = self._routes, self.handlers, self._stops, self._unparks
        rows, decoded = page.rows, page.decoded
        if decoded is not None and not self._predecoded:  # the payloads of predecoded rows were left out
            rows, decoded = [row if row[4] else (*row[:4], fetch(row[0]).data) for row in rows], None
        for raw, pre in zip(rows, decoded or itertools.repeat(None), strict=False):
            _position, type_, version, subject, payload = raw
            if pre is None:
                if version != CURRENT_VERSION.get(type_):
                    record = fetch(raw[0]).event()  # decoded and lifted as every reader of the log sees it
                    if (reason := unreadable(record)) is not None:
                        # What the live projection quarantines unapplied, a rebuild records the same way.
                        quarantine.put(self._raw.execute, self.name, record, reason, 1, 0.0)
                        continue
                    version, data = record.version, record.data
                elif type_ in handlers:
                    data = orjson.loads(payload)
                else:
                    continue
                route = routes.get(type_)
                if route is _START:
                    pre = fold.start_row(data)
                    if pre is None:
                        self._write_held()
                        self._apply(conn, raw, version, data, fetch)
                        continue
                elif route is _STOP:
                    pre = fold.stop_of(subject, data)
                else:
                    self._route(conn, route, raw, version, data, fetch)
                    continue
            if len(pre) == 2:  # a start: key and row; a stop has four fields
                key, row = pre
                if key not in held:  # else the handler's INSERT would do nothing
                    held[key] = row
                    if row[_ID] != fold.NULL:
                        self._id_starts[key] = (raw[0], fetch)
            else:
                key, state, duration, parked = pre
                current = held.get(key)
                if current is None:
                    stops.append((state, duration, *key))
                else:
                    held[key] = fold.stopped(current, state, duration)
                    folded.setdefault(key, []).append((raw[0], fetch))
                if parked:
                    unparks.append((parked,))

    def _route(
        self, conn: Connection, route: str | None, raw: Raw, version: int, data: dict[str, Any],
        fetch: Callable[[int], StoredEvent],
    ) -> None:
        """An event other than a start or stop: folded into a held row, or applied by its handler."""
        subject = raw[3]
        if route is _EDIT:
            job = _held_key(subject, self._held)
            if job is not None:
                self._held[job] = _EDITS[raw[1]](self._held[job], data)
                if raw[1] == "job.archived":
                    self._hold_statistics(job, subject, data)
                self._folded.setdefault(job, []).append((raw[0], fetch))
                return
            # Not held: the job's row is in the file, or nowhere, and the handler finds it there.
        elif route is _TAG:
            job = _held_key(subject, self._held)
            if job is not None:
                self._write_held(through=job)
        elif route is not _ELSEWHERE:
            self._write_held()
        self._apply(conn, raw, version, data, fetch)

    def _apply(
        self, conn: Connection, raw: Raw, version: int, data: dict[str, Any], fetch: Callable[[int], StoredEvent]
    ) -> None:
        """The event's handler, after the collected stops (the held rows it needs are written already)."""
        handler = self.handlers.get(raw[1])
        if handler is not None:
            self._write_updates()
            event = _event(fetch(raw[0]), version, data)
            conn.exec_driver_sql("SAVEPOINT bulk_handler")
            try:
                handler(conn, event)
            except Exception as exc:  # what the live projection quarantines after its tries, quarantined here
                conn.exec_driver_sql("ROLLBACK TO bulk_handler")
                if is_transient(exc):  # the disk or the file failed, not the event: the rebuild fails
                    raise
                quarantine.put(self._raw.execute, self.name, event, f"{type(exc).__name__}: {exc}", 1, 0.0)
            conn.exec_driver_sql("RELEASE bulk_handler")

    def _hold_statistics(self, job: JobKey, subject: str, data: dict[str, Any]) -> None:
        """`record_archived`'s statistics of a held row, kept until the row is written."""
        if data.get("statistics"):
            self._held_statistics[job] = jobs.statistics_parameters(subject, data["statistics"])
        else:
            self._held_statistics.pop(job, None)

    def _write_updates(self) -> None:
        """Run the collected stops of jobs not held, and their deletions of parked stops."""
        if self._stops:
            self._raw.executemany(_STOP_SQL, self._stops)
            self._stops.clear()
        if self._unparks:
            self._raw.executemany(_UNPARK_SQL, self._unparks)
            self._unparks.clear()

    def _write_held(self, *, count: int | None = None, through: JobKey | None = None) -> None:
        """Write held rows, oldest first: `count` of them, those up to and including `through`, or all."""
        self._write_updates()
        held, folded = self._held, self._folded
        keys: list[JobKey] = []
        rows: list[Row] = []
        while held and (count is None or len(keys) < count):
            key, row = held.popitem(last=False)
            keys.append(key)
            rows.append(row)
            if key == through:
                break
        if keys:
            self._insert(keys, rows, {key: folded.pop(key) for key in keys if key in folded})
            statistics = [self._held_statistics.pop(key) for key in keys if key in self._held_statistics]
            if statistics:
                self._raw.executemany(jobs.STATISTICS_SQL, statistics)
            if self._id_starts:
                for key in keys:
                    self._id_starts.pop(key, None)

    def _insert(self, keys: list[JobKey], rows: list[Row], folded: dict[JobKey, list[Folded]]) -> None:
        done = 0
        while done < len(rows):
            before = self._raw.total_changes
            try:
                self._raw.executemany(fold.INSERT_JOB_SQL, itertools.islice(rows, done, None))
                return
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorname not in _TAKEN:
                    raise
                done += self._raw.total_changes - before
                if "job.id" in str(exc):
                    self._quarantine_taken_id(keys[done], rows[done])
            self._replay_folded(folded.get(keys[done], []))
            done += 1

    def _quarantine_taken_id(self, key: JobKey, row: Row) -> None:
        """A start keeps an id another job holds: quarantined as the live projection quarantines it."""
        position, fetch = self._id_starts[key]
        record = fetch(position)
        db_id = int(row[_ID])
        holder = jobs.holder_of(self._raw.execute(jobs.HOLDER_SQL, (db_id,)).fetchone())
        error = jobs.JobIdTaken(record.subject, db_id, holder)
        quarantine.put(self._raw.execute, self.name, record.event(), f"{type(error).__name__}: {error}", 1, 0.0)

    def _replay_folded(self, events: list[Folded]) -> None:
        """A held job's start found its key or id taken: its later events apply to the stored row."""
        assert self._conn is not None
        for position, fetch in events:
            event = fetch(position).event()
            self.handlers[event.type](self._conn, event)

    def finish(self) -> None:
        """Write the held rows and the checkpoint, commit, then create the deferred indexes."""
        if self._conn is not None or self._position > self._stored:
            conn = self._transaction()
            self._write_held()
            self._write_updates()
            if self._position > self._stored:
                conn.exec_driver_sql(_WRITE_CHECKPOINT, (self.name, self._position))
            conn.commit()
            self._end_transaction()
            self._stored = self._position
        for sql in self._deferred:
            self._raw.execute(sql)
        self._deferred = []

    def close(self) -> None:
        """Release the file; what was loaded but not finished is dropped."""
        self._end_transaction()
        self.engine.dispose()
        self._raw.close()


def _held_key(subject: str, held: OrderedDict[JobKey, Row]) -> JobKey | None:
    """The key of a job subject if its row is held; None also for subjects the handler must judge."""
    try:
        key = parse_job_subject(subject)
    except ValueError:
        return None
    return key if key in held else None


def _event(record: StoredEvent, version: int, data: dict[str, Any]) -> Event:
    return Event(
        id=record.id, type=record.type, subject=record.subject, data=data, version=version, time=record.time,
        source=record.source, causation_id=record.causation_id, position=record.position,
        recorded_at=record.recorded_at,
    )
