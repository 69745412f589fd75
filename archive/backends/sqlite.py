"""The SQLite archive: every job's meta and data as blobs in one file, laid out as cc-backend's sqlite backend."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from archive.backends.codec import decode_object, decode_version, encode_data, encode_json, gzip_bytes
from archive.backends.protocol import ArchiveEntry, ArchiveError, JobNotFound
from archive.paths import VERSION, InvalidName, JobKey, check_name, key_for_store

# cc-backend's schema, so either program can open the other's archive file.
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    meta_json BLOB NOT NULL,
    data_json BLOB,
    data_compressed BOOLEAN DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE(job_id, cluster, start_time)
);
CREATE INDEX IF NOT EXISTS idx_jobs_cluster ON jobs(cluster);
CREATE INDEX IF NOT EXISTS idx_jobs_start_time ON jobs(start_time);
CREATE INDEX IF NOT EXISTS idx_jobs_lookup ON jobs(cluster, job_id, start_time);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    config_json BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_KEY = "cluster = ? AND job_id = ? AND start_time = ?"
_PAGE = 1000


class SQLiteArchive:
    """One SQLite file; writes are transactions, so readers never see half a job."""

    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            # The archive holds the only copy of a job's metric data: commit durably.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO metadata (key, value) VALUES ('version', ?)", (str(VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{self.path}: cannot open SQLite archive: {exc}") from None

    def __repr__(self) -> str:
        return f"SQLiteArchive({str(self.path)!r})"

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                count = self._conn.execute(sql, args).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return int(count)

    # -- archive and clusters ---------------------------------------------------------------------

    def version(self) -> int:
        row = self._one("SELECT value FROM metadata WHERE key = 'version'")
        if row is None:
            raise ArchiveError(f"{self.path}: no version recorded")
        return decode_version(str(row[0]).encode(), f"{self.path}: metadata.version")

    def clusters(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT name FROM clusters ORDER BY name")]

    def load_cluster(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT config_json FROM clusters WHERE name = ?", (check_name(name, "cluster"),))
        if row is None:
            raise JobNotFound(f"{self.path}: no such cluster {name!r}")
        return decode_object(bytes(row[0]), f"{self.path}: cluster {name}")

    def store_cluster(self, cluster: Mapping[str, Any]) -> None:
        name = check_name(cluster.get("name"), "cluster name")
        self._write(
            "INSERT INTO clusters (name, config_json, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET config_json = excluded.config_json, updated_at = excluded.updated_at",
            (name, encode_json(cluster), int(time.time())),
        )

    # -- jobs --------------------------------------------------------------------------------------

    def _row(self, columns: str, cluster: str, job_id: int, start_time: int) -> tuple[Any, ...]:
        key = JobKey.of(cluster, job_id, start_time)
        row = self._one(f"SELECT {columns} FROM jobs WHERE {_KEY}", tuple(key))
        if row is None:
            raise JobNotFound(f"{self.path}: no such job {key}")
        return row

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        (raw,) = self._row("meta_json", cluster, job_id, start_time)
        return decode_object(bytes(raw), f"{self.path}: {cluster}/{job_id}/{start_time} meta")

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        (raw,) = self._row("data_json", cluster, job_id, start_time)
        if raw is None:
            raise JobNotFound(f"{self.path}: job {cluster}/{job_id}/{start_time} has no data")
        return decode_object(bytes(raw), f"{self.path}: {cluster}/{job_id}/{start_time} data")

    def store_job(self, meta: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        key = key_for_store(meta)
        raw, gzipped = encode_data(data)
        now = int(time.time())
        self._write(
            "INSERT INTO jobs (job_id, cluster, start_time, meta_json, data_json, data_compressed, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, cluster, start_time) DO UPDATE SET"
            " meta_json = excluded.meta_json, data_json = excluded.data_json,"
            " data_compressed = excluded.data_compressed, updated_at = excluded.updated_at",
            (key.job_id, key.cluster, key.start_time, encode_json(meta), raw, gzipped, now, now),
        )
        return key.directory()

    def store_meta(self, meta: Mapping[str, Any]) -> str:
        key = key_for_store(meta)
        changed = self._write(
            f"UPDATE jobs SET meta_json = ?, updated_at = ? WHERE {_KEY}",
            (encode_json(meta), int(time.time()), *key),
        )
        if not changed:
            raise JobNotFound(f"{self.path}: no such job {key}")
        return key.directory()

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        key = JobKey.of(cluster, job_id, start_time)
        return self._one(f"SELECT 1 FROM jobs WHERE {_KEY}", tuple(key)) is not None

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        key = JobKey.of(cluster, job_id, start_time)
        return self._write(f"DELETE FROM jobs WHERE {_KEY}", tuple(key)) > 0

    def compress_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        key = JobKey.of(cluster, job_id, start_time)
        row = self._one(f"SELECT data_json, data_compressed FROM jobs WHERE {_KEY}", tuple(key))
        if row is None or row[0] is None or row[1]:
            return False
        raw = row[0]
        changed = self._write(
            f"UPDATE jobs SET data_json = ?, data_compressed = 1 WHERE {_KEY} AND data_compressed = 0",
            (gzip_bytes(bytes(raw)), *key),
        )
        return changed > 0

    # -- walking -----------------------------------------------------------------------------------

    def iter_keys(self, *, started_before: int | None = None) -> Iterator[JobKey]:
        limit = started_before if started_before is not None else 2**62
        for cluster, job_id, start in self._all(
            "SELECT cluster, job_id, start_time FROM jobs WHERE start_time < ? ORDER BY id", (limit,)
        ):
            try:
                yield JobKey.of(cluster, job_id, start)
            except InvalidName:
                continue

    def iter_jobs(self, *, with_data: bool = False) -> Iterator[ArchiveEntry]:
        columns = "id, cluster, job_id, start_time, meta_json" + (", data_json" if with_data else "")
        after = 0
        while True:
            # Page by rowid so no lock or cursor is held while the caller works on an entry.
            rows = self._all(f"SELECT {columns} FROM jobs WHERE id > ? ORDER BY id LIMIT {_PAGE}", (after,))
            if not rows:
                return
            for row in rows:
                after = int(row[0])
                yield _entry(row, with_data)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _entry(row: tuple[Any, ...], with_data: bool) -> ArchiveEntry:
    cluster, job_id, start = row[1], row[2], row[3]
    location = f"{cluster}/{job_id}/{start}"
    try:
        key = JobKey.of(cluster, job_id, start)
    except InvalidName as exc:
        return ArchiveEntry(location, error=f"{location}: {exc}")
    location = key.directory()
    try:
        meta = decode_object(bytes(row[4]), f"{location}: meta")
        data = None
        if with_data:
            if row[5] is None:
                raise JobNotFound(f"{location}: no data")
            data = decode_object(bytes(row[5]), f"{location}: data")
    except ArchiveError as exc:
        return ArchiveEntry(location, key, error=str(exc))
    return ArchiveEntry(location, key, meta, data)
