"""The embedded event log: an append-only SQLite file with group commit.

One writer thread owns the only write connection. Appends from any thread or coroutine queue up;
the writer takes everything queued, writes it in one transaction and commits once, so one fsync
(`synchronous=FULL` in WAL mode) makes a whole group durable before any of them is acknowledged.
Reads use one read-only connection per thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.events import Event
from streams.events.codec import decode_data, encode_data
from streams.log.protocol import AppendResult, LogClosed, StoredEvent

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position     INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    subject      TEXT NOT NULL,
    time         REAL NOT NULL,
    source       TEXT NOT NULL,
    causation_id TEXT,
    data         BLOB NOT NULL,
    recorded_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject, position);
CREATE INDEX IF NOT EXISTS events_type ON events (type, position);
"""

_COLUMNS = "position, id, type, version, subject, time, source, causation_id, data, recorded_at"
_INSERT = (
    "INSERT INTO events (id, type, version, subject, time, source, causation_id, data, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_MAX_GROUP = 1024
_POLL_SECONDS = 0.25


@dataclass
class _Request:
    events: Sequence[Event]
    done: concurrent.futures.Future[list[AppendResult]] = field(default_factory=concurrent.futures.Future)


def _row_to_event(row: tuple[Any, ...]) -> Event:
    position, id_, type_, version, subject, time_, source, causation_id, data, recorded_at = row
    return Event(
        id=str(id_),
        type=str(type_),
        subject=str(subject),
        data=decode_data(data),
        version=int(version),
        time=float(time_),
        source=str(source),
        causation_id=causation_id,
        position=int(position),
        recorded_at=float(recorded_at),
    )


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteEventLog:
    """Append-only SQLite event log, durable before acknowledgement, with group commit."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(self.path, readonly=False)
        self._writer.executescript(SCHEMA)
        self._local = threading.local()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._head = self._read_head(self._writer)
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="event-log-writer", daemon=True)
        self._thread.start()

    # -- appending -------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        return self._submit(events).result()

    async def append_async(self, events: Sequence[Event]) -> list[AppendResult]:
        return await asyncio.wrap_future(self._submit(events))

    def _submit(self, events: Sequence[Event]) -> concurrent.futures.Future[list[AppendResult]]:
        if self._closed:
            raise LogClosed("event log is closed")
        request = _Request(list(events))
        if not request.events:
            request.done.set_result([])
            return request.done
        self._queue.put(request)
        return request.done

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
            self._write_group(group)

    def _write_group(self, group: list[_Request]) -> None:
        conn = self._writer
        outcomes: list[list[AppendResult] | BaseException] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            for request in group:
                conn.execute("SAVEPOINT request")
                try:
                    outcomes.append([self._insert(conn, event, now) for event in request.events])
                    conn.execute("RELEASE request")
                except Exception as exc:  # one bad request must not fail its group
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    outcomes.append(exc)
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("event log commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for request in group:
                request.done.set_exception(exc)
            return
        head = self._read_head(conn)
        with self._changed:
            self._head = head
            self._changed.notify_all()
        for request, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                request.done.set_exception(outcome)
            else:
                request.done.set_result(outcome)

    @staticmethod
    def _insert(conn: sqlite3.Connection, event: Event, now: float) -> AppendResult:
        cursor = conn.execute(
            _INSERT,
            (
                event.id, event.type, event.version, event.subject, event.time, event.source,
                event.causation_id, encode_data(event.data), now,
            ),
        )
        if cursor.rowcount == 1 and cursor.lastrowid is not None:
            return AppendResult(cursor.lastrowid, False)
        row = conn.execute("SELECT position FROM events WHERE id = ?", (event.id,)).fetchone()
        return AppendResult(int(row[0]), True)

    # -- reading ---------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True)
            self._local.conn = conn
        return conn

    @staticmethod
    def _read_head(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    def read(self, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?", (after, limit)
        )
        return [_row_to_event(row) for row in rows]

    def read_types(self, types: Collection[str], after: int = 0, limit: int = 1000) -> list[Event]:
        wanted = sorted(set(types))
        marks = ", ".join("?" for _ in wanted)
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE type IN ({marks}) AND position > ? ORDER BY position LIMIT ?",
            (*wanted, after, limit),
        )
        return [_row_to_event(row) for row in rows]

    def read_stored(self, after: int = 0, limit: int = 10000) -> list[StoredEvent]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?", (after, limit)
        )
        return [StoredEvent._make(row) for row in rows]

    def read_subject(self, subject: str) -> list[Event]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE subject = ? ORDER BY position", (subject,)
        )
        return [_row_to_event(row) for row in rows]

    def read_prefix_stored(self, prefix: str) -> list[StoredEvent]:
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE subject >= ? AND subject < ? ORDER BY position",
            (prefix, prefix + "\U0010ffff"),
        )
        return [StoredEvent._make(row) for row in rows]

    def read_prefix(self, prefix: str) -> list[Event]:
        # A range scan on the subject index; '\U0010ffff' sorts after every character of a subject.
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE subject >= ? AND subject < ? ORDER BY position",
            (prefix, prefix + "\U0010ffff"),
        )
        return [_row_to_event(row) for row in rows]

    def get(self, event_id: str) -> Event | None:
        row = self._reader().execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _row_to_event(row)

    def head(self) -> int:
        """The head as this process knows it, refreshed from the file for appends by other processes."""
        disk = self._read_head(self._reader())
        with self._changed:
            if disk > self._head:
                self._head = disk
            return self._head

    def wait(self, after: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                remaining = deadline - time.monotonic()
                if self._head > after or self._closed or remaining <= 0:
                    return self._head
                # Poll the file now and then: another process (the CLI) may have appended.
                self._changed.wait(min(remaining, _POLL_SECONDS))
            if self.head() > after:
                return self.head()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        with self._changed:
            self._changed.notify_all()
