"""The SQLite backend: cc-backend's table layout, and broken rows reported while walking."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from archive.backends import SQLiteArchive
from tests.archive.conftest import big_data, small_data, small_job


def test_uses_cc_backends_tables(tmp_path: Path) -> None:
    archive = SQLiteArchive(tmp_path / "a.db")
    archive.store_job(small_job(), small_data())
    archive.store_job(small_job(job_id=1, start=1), big_data())
    archive.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(jobs)")]
    assert columns == [
        "id", "job_id", "cluster", "start_time", "meta_json", "data_json", "data_compressed", "created_at",
        "updated_at",
    ]
    assert conn.execute("SELECT value FROM metadata WHERE key = 'version'").fetchone() == ("3",)
    flags = conn.execute("SELECT job_id, data_compressed FROM jobs ORDER BY job_id").fetchall()
    assert flags == [(1, 1), (398764, 0)]


def test_broken_rows_are_reported(tmp_path: Path) -> None:
    archive = SQLiteArchive(tmp_path / "a.db")
    archive.store_job(small_job(), small_data())
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute(
        "INSERT INTO jobs (job_id, cluster, start_time, meta_json, data_json, created_at, updated_at)"
        " VALUES (1, 'fritz', 2, X'7B22', NULL, 0, 0), (3, '../x', 4, X'7B7D', NULL, 0, 0)"
    )
    conn.commit()
    entries = list(archive.iter_jobs())
    assert [e.ok for e in entries] == [True, False, False]
    assert "invalid JSON" in str(entries[1].error)
    assert "must not contain" in str(entries[2].error)
