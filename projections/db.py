"""SQLite engines for read models: one writer with BEGIN IMMEDIATE, read-only connections for queries."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

from projections.schema import DDL, SCHEMA_VERSION
from streams.runtime import quarantine


def _on_connect_writer(dbapi_conn: sqlite3.Connection, _record: Any, *, lock_wait: float) -> None:
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
    cursor.close()


def _on_connect_reader(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def writer_engine(path: str | Path, *, lock_wait: float = 30.0) -> Engine:
    """The single write connection of a read-model file, transactions begin IMMEDIATE.

    `lock_wait`: seconds a transaction waits for another writer of the file (`replay rebuild`'s swap,
    a CLI catching up) before it fails and its agent retries.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    event.listen(engine, "connect", functools.partial(_on_connect_writer, lock_wait=lock_wait))

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reader_engine(path: str | Path) -> Engine:
    """A pool of read-only connections for queries; WAL lets them read while the writer writes."""
    engine = create_engine(
        f"sqlite:///file:{path}?mode=ro&uri=true",
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect_reader)
    return engine


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
