"""Checkpoints and pending retries of emitting agents, in one small SQLite file.

An emitting agent appends its output events with ids derived from their cause, so appending again
after a crash is a no-op: the log itself de-duplicates. The checkpoint may therefore live beside the
log rather than in it, and be written after the append; on Kafka the same holds per partition.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.events import Event
from streams.runtime import quarantine
from streams.runtime.quarantine import Action, AgentRequest, QuarantinedEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (agent TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    agent TEXT NOT NULL,
    subject TEXT NOT NULL,
    cause_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    due REAL NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (agent, subject)
);
"""


@dataclass(frozen=True)
class Pending:
    """Work an agent must try again: which subject, caused by which event, how often tried, when next."""

    subject: str
    cause_id: str
    attempt: int
    due: float
    reason: str


class AgentStateStore:
    """Durable checkpoint and retry queue per agent; every change is one committed transaction."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)
        for statement in quarantine.SCHEMA:
            self._conn.execute(statement)
        self._lock = threading.Lock()

    def checkpoint(self, agent: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT position FROM checkpoint WHERE agent = ?", (agent,)).fetchone()
        return int(row[0]) if row else 0

    def commit(self, agent: str, position: int | None, upserts: Iterable[Pending] = (),
               removals: Iterable[str] = ()) -> None:
        """Advance the checkpoint (if given) and change pending work, atomically."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for p in upserts:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?)",
                        (agent, p.subject, p.cause_id, p.attempt, p.due, p.reason),
                    )
                for subject in removals:
                    self._conn.execute("DELETE FROM pending WHERE agent = ? AND subject = ?", (agent, subject))
                if position is not None:
                    self._conn.execute("INSERT OR REPLACE INTO checkpoint VALUES (?, ?)", (agent, position))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def pending(self, agent: str, due_before: float | None = None) -> list[Pending]:
        """Pending work of an agent, oldest due first; only what is due when `due_before` is given."""
        sql = "SELECT subject, cause_id, attempt, due, reason FROM pending WHERE agent = ?"
        args: tuple[object, ...] = (agent,)
        if due_before is not None:
            sql += " AND due <= ?"
            args = (agent, due_before)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY due", args).fetchall()
        return [Pending(*row) for row in rows]

    # -- quarantine (see streams.runtime.quarantine) ----------------------------------------------

    def _execute(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def skip(self, agent: str, event: Event, error: str, attempts: int) -> None:
        """Quarantine `event` and move the agent's checkpoint to it (never back), in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                quarantine.put(self._execute, agent, event, error, attempts, time.time())
                self._conn.execute(
                    "INSERT INTO checkpoint VALUES (?, ?) ON CONFLICT (agent) DO UPDATE"
                    " SET position = MAX(position, excluded.position)", (agent, event.position or 0),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def release(self, agent: str, position: int) -> None:
        with self._lock:
            quarantine.release(self._execute, agent, position)

    def quarantined(self, agent: str) -> list[QuarantinedEvent]:
        with self._lock:
            return quarantine.entries(self._execute, agent)

    def requests(self, agent: str) -> list[AgentRequest]:
        with self._lock:
            return quarantine.requests(self._execute, agent)

    def file_request(self, agent: str, position: int, action: Action) -> None:
        with self._lock:
            quarantine.file_request(self._execute, agent, position, action, time.time())

    def settle_request(self, agent: str, position: int) -> None:
        with self._lock:
            quarantine.settle(self._execute, agent, position)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class StoredAgent:
    """One agent's part of the store, as `ccstream agents` sees it beside a server (see api.agents)."""

    def __init__(self, state: AgentStateStore, name: str) -> None:
        self.state = state
        self.name = name

    def checkpoint(self) -> int:
        return self.state.checkpoint(self.name)

    def quarantined(self) -> list[QuarantinedEvent]:
        return self.state.quarantined(self.name)

    def requests(self) -> list[AgentRequest]:
        return self.state.requests(self.name)

    def file_request(self, position: int, action: Action) -> None:
        self.state.file_request(self.name, position, action)
