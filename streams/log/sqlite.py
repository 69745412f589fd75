"""The embedded event log: an append-only SQLite file with group commit.

One writer thread owns the only write connection. Appends from any thread or coroutine queue up;
the writer takes everything queued, writes it in one transaction and commits once, so one fsync
(`synchronous=FULL` in WAL mode) makes a whole group durable before any of them is acknowledged.
Reads use one read-only connection per thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.events import Event
from streams.events.codec import as_read, decode_data, encode_data, lift
from streams.log.protocol import AppendResult, LogClosed, StoredEvent
from streams.log.tail import RecentEvents

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
#: Rows per INSERT statement: 9 parameters each, well under SQLite's limit of 32,766.
_ROWS_PER_INSERT = 1024
#: Parameters per row of the group INSERT: its ordinal in the group, then `_row_of`'s eight columns.
_ROW_PARAMS = 9
_POLL_SECONDS = 0.25


Outcome = list[AppendResult] | BaseException


def _bucket(count: int) -> int:
    """The power of two at or above `count`: group statements come in few sizes and stay prepared."""
    return 1 << (count - 1).bit_length()


@functools.cache
def _insert_new_sql(rows: int) -> str:
    """INSERT of up to `rows` rows (ordinal, id, type, version, subject, time, source, causation_id, data;
    padding rows are all NULL), skipping ids already stored, numbering the others densely after the head
    in ordinal order and inserting them in that order. The first parameter is `recorded_at`."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO events (position, id, type, version, subject, time, source, causation_id, data, recorded_at)"
        " SELECT (SELECT COALESCE(MAX(position), 0) FROM events) + row_number() OVER (ORDER BY v.column1),"
        " v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, ?"
        f" FROM (VALUES {values}) AS v"
        " WHERE v.column2 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.id = v.column2)"
        " ORDER BY v.column1"
    )


@dataclass
class _Request:
    """One append: a thread waits on `done`, a coroutine on `awaited` (a future of `loop`)."""

    events: Sequence[Event]
    done: concurrent.futures.Future[list[AppendResult]] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    awaited: asyncio.Future[list[AppendResult]] | None = None


def _settle(future: concurrent.futures.Future[list[AppendResult]] | asyncio.Future[list[AppendResult]],
            outcome: Outcome) -> None:
    if future.done():  # an awaiting coroutine was cancelled; the append stands all the same
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(answers: list[tuple[asyncio.Future[list[AppendResult]], Outcome]]) -> None:
    for future, outcome in answers:
        _settle(future, outcome)


def _row_to_event(row: tuple[Any, ...]) -> Event:
    position, id_, type_, version, subject, time_, source, causation_id, data, recorded_at = row
    return lift(Event(
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
    ))


def _row_of(event: Event) -> tuple[Any, ...]:
    """An event's stored columns from `id` to `causation_id` and `data` (position and time added by the writer)."""
    return (
        event.id, event.type, event.version, event.subject, event.time, event.source, event.causation_id,
        encode_data(event.data),
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
        #: What this handle wrote lately, for in-process agents (guarded by `_changed`).
        self._recent = RecentEvents()
        self._closed = False
        self._commit_listeners: list[Callable[[int], None]] = []
        self._thread = threading.Thread(target=self._write_loop, name="event-log-writer", daemon=True)
        self._thread.start()

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(head)` in the writer thread after each group is committed and answered.

        For an in-process agent that must follow the log closely (the job database, which read-your-
        writes answers wait for): it applies the new events without waiting for its own thread to be
        scheduled. A listener must be quick, and must not append to this log: that would wait for the
        very thread it runs in, so it is refused.
        """
        self._commit_listeners.append(listener)

    # -- appending -------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        self._check_open()
        if not events:
            return []
        request = _Request(list(events), done=concurrent.futures.Future())
        self._submit(request)
        assert request.done is not None
        return request.done.result()

    async def append_async(self, events: Sequence[Event]) -> list[AppendResult]:
        """Append without blocking the loop. The writer answers on the caller's loop itself, once per
        group (not a concurrent future, its lock and a callback per request)."""
        self._check_open()
        if not events:
            return []
        loop = asyncio.get_running_loop()
        request = _Request(list(events), loop=loop, awaited=loop.create_future())
        self._submit(request)
        assert request.awaited is not None
        return await request.awaited

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("event log is closed")

    def _submit(self, request: _Request) -> None:
        self._check_open()
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("a commit listener must not append to the log it listens to")
        self._queue.put(request)

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
            try:
                self._write_group(group)
            except Exception as exc:  # the writer must outlive any failure: nobody may wait forever
                log.exception("event log writer failed on a group of %d appends", len(group))
                self._answer(group, [exc] * len(group))

    def _write_group(self, group: list[_Request]) -> None:
        """Write and commit a group. Fast path: the whole group is one INSERT statement that skips ids
        already stored and numbers the new rows densely after the head, committed on its own (autocommit),
        so a group costs one SQLite call. Every call gives up the interpreter lock and must win it back
        from the event loop; on a busy server that, not SQLite, is what a group costs. If the group fails
        as a whole, it is written again request by request so one bad request fails alone."""
        encoded: list[list[tuple[Any, ...]] | BaseException] = []
        for request in group:
            try:
                encoded.append([_row_of(event) for event in request.events])
            except Exception as exc:  # an unencodable payload fails its own request only
                encoded.append(exc)
        distinct: dict[str, tuple[Any, ...]] = {}
        for rows in encoded:
            if isinstance(rows, list):
                for row in rows:
                    distinct.setdefault(row[0], row)
        now = time.time()
        try:
            positions = self._insert_new(self._writer, list(distinct.values()), now)
        except Exception:
            if self._writer.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the slow path reports what is wrong
                    self._writer.execute("ROLLBACK")
            self._write_group_isolated(group)
            return
        outcomes: list[Outcome] = []
        stored: list[Event] = []
        sizes: list[int] = []
        for request, rows in zip(group, encoded, strict=True):
            if isinstance(rows, BaseException):
                outcomes.append(rows)
                continue
            results = []
            for event, row in zip(request.events, rows, strict=True):
                position, fresh = positions[row[0]]
                results.append(AppendResult(position, not fresh))
                if fresh:
                    positions[row[0]] = (position, False)  # a second copy in this group is a duplicate
                    # As readers decode it from the file, not as the producer built it: live agents
                    # and a replay of the log must see the same payload.
                    stored.append(as_read(event, row[-1], position, now))
                    sizes.append(len(row[-1]))
            outcomes.append(results)
        # New rows were numbered in the order of their first copy in the group, so `stored` ascends.
        head = (stored[-1].position or 0) if stored else 0
        self._finish(group, outcomes, head, (stored, sizes))

    @staticmethod
    def _insert_new(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], now: float) -> dict[str, tuple[int, bool]]:
        """Insert the rows whose ids are not stored yet; {id: (position, newly inserted)} for every row.

        Up to `_ROWS_PER_INSERT` rows are one autocommit statement (atomic and, with `synchronous=FULL`,
        durable when it returns); more are several statements in one transaction. The new rows of a
        statement are numbered in order after the head, so the last one is its `lastrowid`.
        """
        positions: dict[str, tuple[int, bool]] = {}
        if not rows:
            return positions
        chunks = [rows[i:i + _ROWS_PER_INSERT] for i in range(0, len(rows), _ROWS_PER_INSERT)]
        if len(chunks) > 1:
            conn.execute("BEGIN IMMEDIATE")
        for chunk in chunks:
            size = _bucket(len(chunk))
            params: list[Any] = [now]
            for ordinal, row in enumerate(chunk):
                params.append(ordinal)
                params.extend(row)
            params.extend([None] * (_ROW_PARAMS * (size - len(chunk))))
            cursor = conn.execute(_insert_new_sql(size), params)
            inserted, last = cursor.rowcount, cursor.lastrowid or 0
            if inserted == len(chunk):
                first = last - inserted + 1
                positions.update((row[0], (first + i, True)) for i, row in enumerate(chunk))
            else:  # some were stored before: ask where everything is
                old_head = last - inserted if inserted > 0 else None
                ids = [row[0] for row in chunk]
                marks = ", ".join("?" for _ in ids)
                for id_, position in conn.execute(f"SELECT id, position FROM events WHERE id IN ({marks})", ids):
                    positions[id_] = (position, old_head is not None and position > old_head)
        if conn.in_transaction:
            conn.execute("COMMIT")
        return positions

    def _write_group_isolated(self, group: list[_Request]) -> None:
        """The slow path: one savepoint per request, so a request that cannot be stored fails alone."""
        conn = self._writer
        outcomes: list[Outcome] = []
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
            self._answer(group, [exc] * len(group))
            return
        self._finish(group, outcomes, self._read_head(conn), None)

    def _finish(
        self, group: list[_Request], outcomes: list[Outcome], head: int,
        stored: tuple[list[Event], list[int]] | None,
    ) -> None:
        """Publish the new head and events with their sizes (None: not known here), then answer the group."""
        with self._changed:
            if stored is None:
                self._recent.clear()
            else:
                self._recent.extend(*stored)
            self._head = max(self._head, head)
            self._changed.notify_all()
        self._answer(group, outcomes)
        for listener in self._commit_listeners:
            try:
                listener(self._head)
            except Exception:  # a listener's failure is its own; the writer goes on
                log.exception("event log commit listener %r failed", listener)

    @staticmethod
    def _answer(group: list[_Request], outcomes: Sequence[Outcome]) -> None:
        """Threads are woken one by one; coroutines with one call per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[AppendResult]], Outcome]]] = {}
        for request, outcome in zip(group, outcomes, strict=True):
            if request.done is not None:
                _settle(request.done, outcome)
            elif request.loop is not None and request.awaited is not None:
                by_loop.setdefault(request.loop, []).append((request.awaited, outcome))
        for loop, answers in by_loop.items():
            # The loop may have closed meanwhile (its server stopped); nobody is left to answer then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, answers)

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
        with self._changed:
            recent = self._recent.after(after, limit)
        if recent:
            return recent
        rows = self._reader().execute(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?", (after, limit)
        )
        return [_row_to_event(row) for row in rows]

    def read_types(self, types: Collection[str], after: int = 0, limit: int = 1000) -> list[Event]:
        with self._changed:
            recent = self._recent.of_types(types, after, limit)
        if recent:
            return recent
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
                # Our own writer notifies; only a wait that times out polls the file, for appends by
                # another process (the CLI).
                if self._changed.wait(min(remaining, _POLL_SECONDS)):
                    continue
            head = self.head()
            if head > after:
                return head

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        with self._changed:
            self._changed.notify_all()
