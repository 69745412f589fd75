"""`replay verify`: rebuild into a temporary file up to the live model's checkpoint and compare the two.

Comparing at the same log position is what makes the check exact while the server keeps writing: the
live file is read inside one read transaction (a WAL snapshot), and the rebuilt file is caught up to the
checkpoint of that snapshot before the canonical dumps are merged.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from replay.dump import Comparison, compare
from replay.rebuild import Progress, RebuildError, Until, load
from replay.registry import ReadModel
from streams.log import EventLog


@dataclass(frozen=True)
class Verified:
    """The outcome of one verify: the position compared at and every difference found."""

    model: str
    position: int
    comparison: Comparison
    seconds: float

    @property
    def ok(self) -> bool:
        return self.comparison.total == 0


def stored_checkpoint(conn: sqlite3.Connection, name: str) -> int:
    """The checkpoint a read-model file stores for `name` (0 when it has none yet)."""
    try:
        row = conn.execute("SELECT position FROM ccstream_checkpoint WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # not a read-model file (no checkpoint table)
        return 0
    return int(row[0]) if row else 0


def _readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def verify(
    log: EventLog, model: ReadModel, live: Path, *, limit: int = 50, progress: Progress | None = None
) -> Verified:
    """Rebuild `model` up to the live file's checkpoint and compare canonical dumps."""
    if not live.exists():
        raise RebuildError(f"{live}: no such database file; start the server or run `ccstream replay rebuild`")
    started = time.perf_counter()
    conn = _readonly(live)
    try:
        position = stored_checkpoint(conn, model.name)
        with tempfile.TemporaryDirectory(dir=live.parent, prefix=f".{live.name}.verify-") as tmp:
            scratch = Path(tmp) / "rebuilt.db"
            load(log, model, scratch, until=Until(position=position), progress=progress)
            conn.execute("BEGIN")  # one snapshot of the live file for the checkpoint and every table
            try:
                now = stored_checkpoint(conn, model.name)
                if now != position:
                    position = load(log, model, scratch, until=Until(position=now), fresh=now < position)
                rebuilt = _readonly(scratch)
                try:
                    comparison = compare(conn, rebuilt, model.tables, limit)
                finally:
                    rebuilt.close()
            finally:
                conn.execute("ROLLBACK")
    finally:
        conn.close()
    return Verified(model.name, position, comparison, time.perf_counter() - started)
