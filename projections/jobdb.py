"""The job database projection: cc-backend's job.db (jobs, tags, users) kept up to date from the log."""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from projections import jobs, nodes, tags, users
from projections.db import create_schema
from projections.handlers import HandlerTable
from streams.events import Event
from streams.runtime import CheckpointMoved, quarantine
from streams.runtime.quarantine import Action, AgentRequest, QuarantinedEvent

#: One table from event type to handler for the whole job database.
HANDLERS: HandlerTable = {**jobs.HANDLERS, **tags.HANDLERS, **users.HANDLERS, **nodes.HANDLERS}


_RECENT_IDS = 50_000
_READ_CHECKPOINT = "SELECT position FROM ccstream_checkpoint WHERE name = ?"
_WRITE_CHECKPOINT = (
    "INSERT INTO ccstream_checkpoint (name, position) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)


class StaleBatch(CheckpointMoved):
    """A batch read against a checkpoint the database no longer has; the runner re-reads and retries."""


class JobDatabaseProjection:
    """Applies batches of events to the job database and stores the checkpoint in the same commit."""

    name = "jobdb"

    def __init__(self, engine: Engine, handlers: HandlerTable = HANDLERS) -> None:
        self.engine = engine
        self.handlers = handlers
        self._recent_ids: OrderedDict[str, int] = OrderedDict()
        self.control = JobDatabaseControl(str(engine.url.database), self.name)
        #: Called after a commit that changed the user table (the API's user directory reloads then).
        self.users_changed: list[Callable[[], None]] = []
        create_schema(engine)

    def recent_id(self, subject: str) -> int | None:
        """Database id of a job this process inserted lately (None: ask the database)."""
        return self._recent_ids.get(subject)

    def checkpoint(self) -> int:
        return self.control.checkpoint()

    def _stored_checkpoint(self, conn: Connection) -> int:
        # Plain SQL: this runs in every batch's transaction, and building the statement costs more than it.
        value = conn.exec_driver_sql(_READ_CHECKPOINT, (self.name,)).scalar()
        return int(value or 0)

    def apply(self, events: Sequence[Event]) -> None:
        if not events:
            return
        started: dict[str, int] = {}
        with self.engine.begin() as conn:
            conn.info[jobs.STARTED_IDS] = started
            try:
                applied = self._apply_in(conn, events)
            finally:
                conn.info.pop(jobs.STARTED_IDS, None)
        # Only once committed: the API may answer with these ids.
        for event in applied:
            if event.type == "job.deleted":
                self._recent_ids.pop(event.subject, None)
        if any(event.type.startswith("user.") for event in applied):
            self._tell_users_changed()
        self._recent_ids.update(started)
        while len(self._recent_ids) > _RECENT_IDS:
            self._recent_ids.popitem(last=False)

    # -- quarantine (see streams.runtime.quarantine) ----------------------------------------------

    def skip(self, event: Event, error: str, attempts: int) -> None:
        with self.engine.begin() as conn:
            execute = _executor(conn)
            quarantine.put(execute, self.name, event, error, attempts, time.time())
            if (event.position or 0) > self._stored_checkpoint(conn):
                conn.exec_driver_sql(_WRITE_CHECKPOINT, (self.name, event.position or 0))

    def reapply(self, event: Event, followers: Sequence[Event]) -> None:
        started: dict[str, int] = {}
        with self.engine.begin() as conn:
            conn.info[jobs.STARTED_IDS] = started
            try:
                # The subject's later events were applied without this one; every handler applies again
                # to the same end (updates by key, tags attached once), so they are simply applied again.
                for each in (event, *followers):
                    self._apply_one(conn, each)
            finally:
                conn.info.pop(jobs.STARTED_IDS, None)
            quarantine.release(_executor(conn), self.name, event.position or 0)
        self._recent_ids.update(started)
        if any(e.type.startswith("user.") for e in (event, *followers)):
            self._tell_users_changed()

    def _tell_users_changed(self) -> None:
        for listener in self.users_changed:
            listener()

    # The writer engine is one connection for the agent's thread (and the log writer's, under the runner's
    # lock); operators and status pages ask from any thread, through a control with connections of its own.

    def quarantined(self) -> list[QuarantinedEvent]:
        return self.control.quarantined()

    def requests(self) -> list[AgentRequest]:
        return self.control.requests()

    def file_request(self, position: int, action: Action) -> None:
        self.control.file_request(position, action)

    def settle_request(self, position: int) -> None:
        self.control.settle_request(position)

    # -- applying --------------------------------------------------------------------------------

    def _apply_one(self, conn: Connection, event: Event) -> None:
        handler = self.handlers.get(event.type)
        if handler is not None:
            handler(conn, event)

    def _recordable_together(self, events: Sequence[Event], index: int) -> Sequence[Event]:
        """The run of starts and stops from `index` on that may be written all starts first, then all stops:
        each job started and stopped at most once in it, a stop never before its own start, and the
        handlers still the standard ones (a swapped handler, as in tests, gets every event itself)."""
        if (self.handlers.get("job.started") is not jobs.record_job_start
                or self.handlers.get("job.stopped") is not jobs.record_job_stop):
            return events[index:index + 1]
        started: set[str] = set()
        stopped: set[str] = set()
        end = index
        while end < len(events):
            event = events[end]
            if not jobs.can_record_together(event):
                break
            if event.type == "job.started":
                if event.subject in started or event.subject in stopped:
                    break
                started.add(event.subject)
            else:
                if event.subject in stopped:
                    break
                stopped.add(event.subject)
            end += 1
        return events[index:max(end, index + 1)]

    def _apply_in(self, conn: Connection, events: Sequence[Event]) -> Sequence[Event]:
        # The stored checkpoint, read under the write lock, decides: `replay rebuild` may have swapped
        # the file's content between the runner's read of a batch and this commit.
        stored = self._stored_checkpoint(conn)
        events = [e for e in events if e.position is None or e.position > stored]
        if not events:
            return events
        first = events[0].position
        if first is not None and first != stored + 1:
            raise StaleBatch(f"{self.name} stands at position {stored}; a batch from {first} would leave a gap")
        index = 0
        while index < len(events):
            together = self._recordable_together(events, index)
            if len(together) > 1:
                jobs.record_job_starts(conn, [e for e in together if e.type == "job.started"])
                jobs.record_job_stops(conn, [e for e in together if e.type == "job.stopped"])
                index += len(together)
                continue
            self._apply_one(conn, events[index])
            index += 1
        conn.exec_driver_sql(_WRITE_CHECKPOINT, (self.name, events[-1].position or 0))
        return events


def _executor(conn: Connection) -> quarantine.Execute:
    def execute(sql: str, params: tuple[Any, ...]) -> Any:
        return conn.exec_driver_sql(sql, params)

    return execute


class JobDatabaseControl:
    """The job database projection's checkpoint, quarantine and operators' requests, for any thread or process.

    Each call opens a short-lived connection of its own, never the projection's writer; `ccstream agents`
    uses it beside a running server without creating or migrating anything.
    """

    def __init__(self, path: str, name: str = JobDatabaseProjection.name) -> None:
        self.path = path
        self.name = name

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def checkpoint(self) -> int:
        with self._connection() as conn:
            value = conn.execute(_READ_CHECKPOINT, (self.name,)).fetchone()
        return int(value[0]) if value else 0

    def quarantined(self) -> list[QuarantinedEvent]:
        with self._connection() as conn:
            return quarantine.entries(conn.execute, self.name)

    def requests(self) -> list[AgentRequest]:
        with self._connection() as conn:
            return quarantine.requests(conn.execute, self.name)

    def file_request(self, position: int, action: Action) -> None:
        with self._connection() as conn:
            quarantine.file_request(conn.execute, self.name, position, action, time.time())

    def settle_request(self, position: int) -> None:
        with self._connection() as conn:
            quarantine.settle(conn.execute, self.name, position)
