"""The dead-letter store: NATS messages (or lines of them) the intake refused, kept to inspect and retry.

Its own small SQLite file, apart from the event log: a rejected message is not a fact about the
cluster, and the log must stay free of garbage. Entries that come from a redelivered message carry
the same `key` (message id or stream sequence, plus line number), so a crash between recording the
rejection and acknowledging the message never records it twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS rejected (
    id           INTEGER PRIMARY KEY,
    key          TEXT UNIQUE,
    received_at  REAL NOT NULL,
    subject      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    raw          BLOB NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    msg_id       TEXT,
    line         INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 1,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolved_at  REAL,
    resolution   TEXT
);
CREATE INDEX IF NOT EXISTS rejected_status ON rejected (status, id);
"""

_COLUMNS = "id, key, received_at, subject, channel, raw, kind, reason, msg_id, line, attempts, status, " \
           "resolved_at, resolution"


@dataclass(frozen=True)
class DeadLetter:
    """One refused message or line: what arrived, where, why, and what became of it."""

    id: int
    key: str | None
    received_at: float
    subject: str
    #: `job` or `node`: which intake the subject feeds (kept so a retry needs no config).
    channel: str
    raw: bytes
    #: Machine-readable reason: malformed, invalid_json, unknown_field, unknown_function, invalid, ...
    kind: str
    reason: str
    msg_id: str | None
    line: int | None
    attempts: int
    status: str
    resolved_at: float | None
    resolution: str | None

    def to_json(self) -> dict[str, Any]:
        """The API form; raw bytes as text (they are line protocol, so UTF-8 unless that was the problem)."""
        return {
            "id": self.id,
            "receivedAt": self.received_at,
            "subject": self.subject,
            "channel": self.channel,
            "kind": self.kind,
            "reason": self.reason,
            "raw": self.raw.decode("utf-8", "replace"),
            "msgId": self.msg_id,
            "line": self.line,
            "attempts": self.attempts,
            "status": self.status,
            "resolvedAt": self.resolved_at,
            "resolution": self.resolution,
        }


class DeadLetterStore:
    """SQLite-backed; safe to share between threads, and between the server and the CLI (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # A dead letter replaces the message it came from, which is acknowledged right after: durable first.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def add(
        self,
        *,
        subject: str,
        channel: str,
        raw: bytes,
        kind: str,
        reason: str,
        key: str | None = None,
        msg_id: str | None = None,
        line: int | None = None,
        received_at: float | None = None,
    ) -> tuple[int, bool]:
        """Record a rejection; returns (id, new). A known `key` is the same rejection seen again."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO rejected (key, received_at, subject, channel, raw, kind, reason, msg_id, line)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, time.time() if received_at is None else received_at, subject, channel, raw, kind, reason,
                 msg_id, line),
            )
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                return int(cursor.lastrowid), True
            row = self._conn.execute("SELECT id FROM rejected WHERE key = ?", (key,)).fetchone()
            return int(row[0]), False

    def get(self, entry_id: int) -> DeadLetter | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM rejected WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Entries, oldest first; `status` is open or resolved (None: both)."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM rejected {where} ORDER BY id LIMIT ? OFFSET ?", (*args, limit, offset)
            ).fetchall()
        return [_entry(r) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of entries per status and kind."""
        with self._lock:
            rows = self._conn.execute("SELECT status, kind, COUNT(*) FROM rejected GROUP BY status, kind").fetchall()
        out: dict[str, dict[str, int]] = {}
        for status, kind, count in rows:
            out.setdefault(status, {})[kind] = int(count)
        return out

    def total(self, status: str | None = None) -> int:
        with self._lock:
            if status is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM rejected WHERE status = ?", (status,)).fetchone()[0])

    def resolve(self, entry_id: int, resolution: str) -> None:
        """Mark an entry as dealt with (its retry was accepted)."""
        with self._lock:
            self._conn.execute(
                "UPDATE rejected SET status = 'resolved', resolved_at = ?, resolution = ?, attempts = attempts + 1"
                " WHERE id = ?",
                (time.time(), resolution, entry_id),
            )

    def refused_again(self, entry_id: int, kind: str, reason: str) -> None:
        """A retry was refused too: keep the entry open with the newest reason."""
        with self._lock:
            self._conn.execute(
                "UPDATE rejected SET kind = ?, reason = ?, attempts = attempts + 1 WHERE id = ?",
                (kind, reason, entry_id),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _entry(row: tuple[Any, ...]) -> DeadLetter:
    (id_, key, received_at, subject, channel, raw, kind, reason, msg_id, line, attempts, status, resolved_at,
     resolution) = row
    return DeadLetter(
        id=int(id_), key=key, received_at=float(received_at), subject=str(subject), channel=str(channel),
        raw=bytes(raw), kind=str(kind), reason=str(reason), msg_id=msg_id, line=line, attempts=int(attempts),
        status=str(status), resolved_at=resolved_at, resolution=resolution,
    )
