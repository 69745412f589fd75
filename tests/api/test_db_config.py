"""`main.db-config`: the pragmas and pool limits read back from the job database's real connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc, text

from api.bootstrap import StartupError, job_database_tuning
from api.config import ConfigError, Settings, parse_settings
from projections.db import SqliteTuning, create_schema, reader_engine, writer_engine
from tests.api.conftest import AppFactory, Tokens

TUNED = {"main": {"db-config": {"cache-size-mb": 64, "soft-heap-limit-mb": 256, "busy-timeout-ms": 1234,
                                "max-open-connections": 4, "max-idle-connections": 2,
                                "max-idle-time-minutes": 10}}}


def pragma(conn: Any, name: str) -> int:
    """A pragma's value from a SQLAlchemy connection or a plain sqlite3 one."""
    if isinstance(conn, sqlite3.Connection):
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar())


def test_every_job_database_connection_gets_the_configured_pragmas(make_client: AppFactory, tokens: Tokens) -> None:
    client: TestClient = make_client(TUNED)
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.reader.connect() as conn:  # the read side (routes, read pool)
        assert pragma(conn, "cache_size") == -64 * 1024  # negative: KiB
        assert pragma(conn, "soft_heap_limit") == 256 * 1024 * 1024
        assert pragma(conn, "busy_timeout") == 1234
    with services.writer.connect() as conn:  # the projection: same cache, its own short lock wait
        assert pragma(conn, "cache_size") == -64 * 1024
        assert pragma(conn, "busy_timeout") == 1000
    lookup = services.job_lookup._connection()  # the stop answers' plain sqlite3 connection
    assert pragma(lookup, "cache_size") == -64 * 1024
    assert pragma(lookup, "busy_timeout") == 1234
    # the route answers through those connections
    assert client.get("/api/jobs/", headers=tokens.headers("admin")).status_code == 200


def test_without_db_config_ccstream_keeps_sqlites_cache_and_its_own_waits(make_client: AppFactory) -> None:
    services = make_client().app.state.services  # type: ignore[attr-defined]
    with services.reader.connect() as conn:
        assert pragma(conn, "cache_size") == -2000  # SQLite's default
        assert pragma(conn, "busy_timeout") == 30000
    assert services.reader.pool.size() == 5


def test_max_open_connections_bounds_the_read_connections(tmp_path: Path) -> None:
    settings = Settings.model_validate({"main": {"db-config": {"max-open-connections": 4, "max-idle-connections": 2}},
                                        "reads": {"workers": 4, "timeout": 0.2}})
    tuning = job_database_tuning(settings)
    db = tmp_path / "job.db"
    writer = writer_engine(db)
    create_schema(writer)
    writer.dispose()
    engine = reader_engine(db, tuning)
    held = [engine.connect() for _ in range(4)]
    try:
        with pytest.raises(exc.TimeoutError):  # a fifth waits reads.timeout for one, then gives up
            engine.connect()
        held.pop().close()
        with engine.connect() as conn:  # one given back: available again
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        for conn in held:
            conn.close()
    assert engine.pool.checkedin() == 2  # only max-idle-connections stay open
    engine.dispose()


def test_a_connection_idle_longer_than_max_idle_time_is_closed_and_replaced(tmp_path: Path) -> None:
    now = [1000.0]
    db = tmp_path / "job.db"
    writer = writer_engine(db)
    create_schema(writer)
    writer.dispose()
    engine = reader_engine(db, SqliteTuning(max_idle_seconds=600, clock=lambda: now[0]))

    def raw() -> sqlite3.Connection:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            assert isinstance(dbapi, sqlite3.Connection)
            return dbapi

    first = raw()
    now[0] += 599
    assert raw() is first  # idle for less than the limit: reused
    now[0] += 601
    second = raw()
    assert second is not first
    with pytest.raises(sqlite3.ProgrammingError):  # the idle one was closed, its cache released
        first.execute("SELECT 1")
    engine.dispose()


def test_fewer_read_connections_than_read_workers_is_refused_at_start() -> None:
    settings = Settings.model_validate({"main": {"db-config": {"max-open-connections": 2}}, "reads": {"workers": 4}})
    with pytest.raises(StartupError, match=r"main.db-config.max-open-connections 2 is below reads.workers \(4\)"):
        job_database_tuning(settings)


def test_negative_values_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"key 'main.db-config.cache-size-mb'"):
        parse_settings('{"main": {"db-config": {"cache-size-mb": -1}}}')
