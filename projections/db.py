"""SQLite engines for read models: one writer with BEGIN IMMEDIATE, read-only connections for queries."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.pool import StaticPool

from projections.schema import DDL, SCHEMA_VERSION
from streams.runtime import quarantine


@dataclass(frozen=True)
class SqliteTuning:
    """Memory and connection limits of a job database's connections (cc-backend's `main.db-config`).

    The defaults are ccstream's: SQLite's own page cache (2 MB per connection) and no heap limit, a read
    pool of up to 15 connections of which 5 are kept idle, kept for as long as they are idle.
    """

    #: PRAGMA cache_size in KiB per connection; 0: SQLite's default.
    cache_size_kib: int = 0
    #: PRAGMA soft_heap_limit in bytes, process-wide; 0: no limit.
    soft_heap_limit_bytes: int = 0
    #: PRAGMA busy_timeout of read connections, in milliseconds.
    busy_timeout_ms: int = 30_000
    #: Read connections open at most (idle plus in use); a read beyond waits for one.
    max_open: int = 15
    #: Read connections kept open while idle; the others are closed when given back.
    max_idle: int = 5
    #: Seconds an idle read connection may wait in the pool; an older one is closed and replaced when next
    #: taken. 0: no limit.
    max_idle_seconds: float = 0.0
    #: Seconds a read waits for a connection when `max_open` are in use.
    pool_timeout: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def memory_pragmas(self) -> list[str]:
        """The pragmas every connection of the file gets, the writer's included."""
        out = []
        if self.cache_size_kib:
            out.append(f"PRAGMA cache_size=-{self.cache_size_kib}")  # negative: KiB, not pages
        if self.soft_heap_limit_bytes:
            out.append(f"PRAGMA soft_heap_limit={self.soft_heap_limit_bytes}")
        return out

    def reader_pragmas(self) -> list[str]:
        """The pragmas of every read-only connection."""
        return [f"PRAGMA busy_timeout={self.busy_timeout_ms}", "PRAGMA query_only=ON", *self.memory_pragmas()]


DEFAULT_TUNING = SqliteTuning()


def _on_connect_writer(dbapi_conn: sqlite3.Connection, _record: Any, *, lock_wait: float,
                       tuning: SqliteTuning) -> None:
    # Let SQLAlchemy's `begin` event issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    # New files only (an existing file keeps its page size). Every commit of the live projection writes
    # each page it touched to the WAL, and a job row touches a page in each of the job table's two dozen
    # indexes: 1 KiB pages make that commit about 40% cheaper than SQLite's default 4 KiB (measured, with
    # a few jobs per commit), while `GET /api/jobs/` on a million jobs stays within a few milliseconds.
    cursor.execute("PRAGMA page_size=1024")
    cursor.execute("PRAGMA journal_mode=WAL")
    # The log can rebuild a read model, so losing the last commits on power loss is acceptable.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(lock_wait * 1000)}")
    for pragma in tuning.memory_pragmas():
        cursor.execute(pragma)
    cursor.close()


def _on_connect_reader(dbapi_conn: sqlite3.Connection, _record: Any, *, tuning: SqliteTuning) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    for pragma in tuning.reader_pragmas():
        cursor.execute(pragma)
    cursor.close()


def writer_engine(path: str | Path, *, lock_wait: float = 30.0, tuning: SqliteTuning = DEFAULT_TUNING) -> Engine:
    """The single write connection of a read-model file, transactions begin IMMEDIATE.

    `lock_wait`: seconds a transaction waits for another writer of the file (`replay rebuild`'s swap,
    a CLI catching up) before it fails and its agent retries. `tuning` gives its page cache and the heap
    limit; its busy timeout is `lock_wait`, not the readers'.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    event.listen(engine, "connect", functools.partial(_on_connect_writer, lock_wait=lock_wait, tuning=tuning))

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reader_engine(path: str | Path, tuning: SqliteTuning = DEFAULT_TUNING) -> Engine:
    """A pool of read-only connections for queries; WAL lets them read while the writer writes.

    At most `tuning.max_open` connections exist at once; `max_idle` of them stay open between reads, and one
    idle longer than `max_idle_seconds` is closed and replaced by a fresh one when next taken, so a
    connection's page cache does not outlive the work that filled it by more than that.
    """
    idle = max(1, min(tuning.max_idle, tuning.max_open))
    engine = create_engine(
        f"sqlite:///file:{path}?mode=ro&uri=true",
        connect_args={"check_same_thread": False},
        pool_size=idle, max_overflow=tuning.max_open - idle, pool_timeout=tuning.pool_timeout,
    )
    event.listen(engine, "connect", functools.partial(_on_connect_reader, tuning=tuning))
    if tuning.max_idle_seconds > 0:
        _expire_idle(engine, tuning)
    return engine


def _expire_idle(engine: Engine, tuning: SqliteTuning) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = tuning.clock()

    @event.listens_for(engine, "checkout")
    def _fresh_enough(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and tuning.clock() - since > tuning.max_idle_seconds:
            record.info.pop("idle_since")
            # The pool closes this connection and hands out a new one (SQLAlchemy's disconnect handling).
            raise exc.DisconnectionError("idle longer than max-idle-time")


def create_schema(engine: Engine) -> None:
    """Create cc-backend's tables (if missing) and record the schema version it corresponds to."""
    with engine.begin() as conn:
        for statement in DDL.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        for statement in quarantine.SCHEMA:  # what the projection skipped, beside its checkpoint
            conn.exec_driver_sql(statement)
        conn.execute(
            text("INSERT OR IGNORE INTO schema_migrations (version, dirty) VALUES (:v, 0)"),
            {"v": SCHEMA_VERSION},
        )
