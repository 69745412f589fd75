"""Importing cc-backend's job database: the known lookups, tags, users, idempotence, versions, job_cache."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from projections import queries
from replay.import_db import DbImportError, import_database
from streams.log import EventLog, SQLiteEventLog
from tests.archive.conftest import SPECS
from tests.archive.test_import_archive import project

JOB_DB = SPECS / "db" / "cc-backend-test-job.db"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    impl = SQLiteEventLog(tmp_path / "events.db")
    yield impl
    impl.close()


@pytest.fixture
def db_copy(tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copyfile(JOB_DB, target)
    target.chmod(0o644)
    return target


@pytest.fixture
def imported(log: EventLog, tmp_path: Path) -> Iterator[Engine]:
    import_database(JOB_DB, log)
    engine = project(log, tmp_path / "job.db")
    yield engine
    engine.dispose()


def test_known_lookups_by_database_id(imported: Engine) -> None:
    with imported.connect() as conn:
        job = queries.find_job(conn, 345)
        assert job is not None
        assert (job["job_id"], job["cluster"], job["start_time"]) == (398800, "fritz", 1675954712)
        other = queries.find_job(conn, 338)
        assert other is not None and other["job_id"] == 398793
        assert queries.count_jobs(conn) == 544


def test_job_facts_are_kept(imported: Engine) -> None:
    with imported.connect() as conn:
        job = queries.find_job(conn, 345)
    assert job is not None
    facts = (job["job_state"], job["duration"], job["walltime"], job["monitoring_status"])
    assert facts == ("completed", 208, 86340, 3)
    assert (job["energy"], job["smt"], job["num_hwthreads"], job["shared"]) == (55.38, 0, 72, "none")
    assert orjson.loads(job["energy_footprint"]) == {"cpu_power": 52.85, "mem_power": 2.53}
    assert orjson.loads(job["footprint"]) == {
        "cpu_load_avg": 45.212, "flops_any_avg": 2788005.899, "mem_bw_avg": 95194.898, "mem_used_avg": 18.355}
    assert orjson.loads(job["meta_data"])["jobName"] == "ams_pipeline"
    assert orjson.loads(job["resources"])[0]["hostname"] == "f0953"


def test_tags_with_their_scope(imported: Engine) -> None:
    with imported.connect() as conn:
        tags = queries.tags_of(conn, [1, 317, 525])
    simple = {job: sorted((t["type"], t["name"], t["scope"]) for t in ts) for job, ts in tags.items()}
    assert simple == {
        1: [("testtype", "testtag_1766478865138821000", "global"),
            ("testtype", "testtag_1766564387168131000", "global")],
        317: [("app", "vasp", "global")],
        525: [("app", "python", "demo")],
    }


def test_users_keep_their_password_hash(imported: Engine) -> None:
    with imported.connect() as conn:
        user = queries.find_user(conn, "demo")
    assert user is not None
    assert user["password"] == "$2a$10$M9pRk3cfefX1L5fTwuGzR.ecqpBS4A77r.K/2U9SMjmOsCodLzZiy"
    assert orjson.loads(user["roles"]) == ["admin", "api"]


def test_report_counts_what_was_left_out(log: EventLog) -> None:
    report = import_database(JOB_DB, log)
    assert (report.seen, report.imported, report.failed) == (544, 544, 0)
    assert report.extra["users"] == 1
    assert report.skipped["UI configuration rows (no event type for them)"] == 2
    assert "2 UI configuration rows" in report.summary()


def test_importing_twice_appends_nothing(log: EventLog) -> None:
    import_database(JOB_DB, log)
    head = log.head()
    again = import_database(JOB_DB, log)
    assert log.head() == head
    assert (again.imported, again.unchanged, again.events_appended, again.extra["users"]) == (0, 544, 0, 0)


def test_schema_11_imports_too(db_copy: Path, log: EventLog) -> None:
    with sqlite3.connect(db_copy) as conn:
        conn.execute("UPDATE schema_migrations SET version = 11")
    assert import_database(db_copy, log).imported == 544


@pytest.mark.parametrize(("sql", "message"), [
    ("UPDATE schema_migrations SET version = 9", "schema version 9"),
    ("UPDATE schema_migrations SET dirty = 1", "did not finish"),
    ("DROP TABLE schema_migrations", "not a cc-backend job database"),
])
def test_other_versions_are_refused(db_copy: Path, log: EventLog, sql: str, message: str) -> None:
    with sqlite3.connect(db_copy) as conn:
        conn.execute(sql)
    with pytest.raises(DbImportError, match=message):
        import_database(db_copy, log)
    assert log.head() == 0


def test_tags_without_a_scope_column_are_global(db_copy: Path, log: EventLog, tmp_path: Path) -> None:
    with sqlite3.connect(db_copy) as conn:
        conn.execute("ALTER TABLE tag DROP COLUMN tag_scope")
    import_database(db_copy, log)
    engine = project(log, tmp_path / "job.db")
    with engine.connect() as conn:
        assert queries.tags_of(conn, [525])[525][0]["scope"] == "global"
    engine.dispose()


def test_uncommitted_cached_jobs_are_imported_without_their_cache_id(
    db_copy: Path, log: EventLog, tmp_path: Path
) -> None:
    columns = "job_id, cluster, subcluster, start_time, hpc_user, project, duration, walltime, job_state," \
              " resources, num_nodes, shared"
    with sqlite3.connect(db_copy) as conn:
        conn.execute(f"INSERT INTO job_cache (id, {columns}) VALUES (1, 777, 'fritz', 'main', 1700000000, 'u', 'p',"
                     " 0, 3600, 'running', '[{\"hostname\": \"f0001\"}]', 1, 'none')")
        conn.execute(f"INSERT INTO job_cache (id, {columns}) SELECT 2, {columns} FROM job WHERE id = 345")
    report = import_database(db_copy, log)
    assert (report.seen, report.imported) == (545, 545)  # the cached copy of job 345 is not read again
    engine = project(log, tmp_path / "job.db")
    with engine.connect() as conn:
        cached = queries.find_job_by_key(conn, "fritz", 777, 1700000000)
        assert cached is not None and cached["job_state"] == "running" and cached["id"] > 544
        assert queries.count_jobs(conn) == 545
    engine.dispose()
