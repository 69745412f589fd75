"""Checkpoints and pending retries of emitting agents, in one small SQLite file.

An emitting agent appends its output events with ids derived from their cause, so appending again
after a crash is a no-op: the log itself de-duplicates. The checkpoint may therefore live beside the
log rather than in it, and be written after the append; on Kafka the same holds per partition.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
