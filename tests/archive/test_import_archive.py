"""Importing archives into the log: the reference archive's jobs in the job table, idempotence, broken entries."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from archive.backends import ArchiveBackend, ArchiveError, FileArchive, SQLiteArchive, open_archive
from archive.imports.walk import import_archive
from projections import queries
from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.log import EventLog, SQLiteEventLog
from streams.runtime import AgentRunner
from tests.archive.conftest import REFERENCE_ARCHIVE, big_data, small_job
from tests.support.s3server import S3Server

EMMY_JOBS = {1403244: 1608923076, 1404397: 1609300556}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    impl = SQLiteEventLog(tmp_path / "events.db")
    yield impl
    impl.close()


def project(log: EventLog, path: Path) -> Engine:
    """The job database the server would build from this log."""
    engine = writer_engine(path)
    AgentRunner(log, JobDatabaseProjection(engine)).run_until_caught_up()
    return engine


def job_row(engine: Engine, cluster: str, job_id: int, start: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = queries.find_job_by_key(conn, cluster, job_id, start)
    assert row is not None, f"{cluster}/{job_id}/{start} not in the job table"
    return dict(row)


def test_the_reference_archive_lands_in_the_job_table(log: EventLog, tmp_path: Path) -> None:
    report = import_archive(FileArchive(REFERENCE_ARCHIVE), log)
    assert (report.seen, report.imported, report.failed, report.events_appended) == (2, 2, 0, 6)
    engine = project(log, tmp_path / "job.db")
    first = job_row(engine, "emmy", 1403244, 1608923076)
    assert (first["hpc_user"], first["num_nodes"], first["job_state"], first["duration"]) == (
        "emmyUser6", 32, "completed", 86486)
    assert first["monitoring_status"] == 3
    assert orjson.loads(first["footprint"]) == {
        "cpu_load_avg": 18.4, "flops_any_avg": 225.59, "mem_bw_avg": 63.57, "mem_used_max": 37.5}
    second = job_row(engine, "emmy", 1404397, 1609300556)
    assert orjson.loads(second["footprint"]) == {
        "cpu_load_avg": 18.39, "flops_any_avg": 224.42, "mem_bw_avg": 63.23, "mem_used_max": 37.43}
    engine.dispose()


def test_importing_twice_appends_nothing(log: EventLog) -> None:
    import_archive(FileArchive(REFERENCE_ARCHIVE), log)
    head = log.head()
    again = import_archive(FileArchive(REFERENCE_ARCHIVE), log)
    assert log.head() == head
    assert (again.imported, again.unchanged, again.events_appended) == (0, 2, 0)


def _break(root: Path) -> None:
    """Three kinds of damage next to good jobs."""
    archive = FileArchive(root)
    for n in range(5):
        archive.store_job(small_job(job_id=n, start=100 + n, cluster="emmy"), big_data())
    # truncated gzip of a job whose meta.json lacks statistics (so the data must be read)
    meta = small_job(job_id=10, start=110, cluster="emmy")
    del meta["statistics"]
    archive.store_job(meta, big_data())
    gz = root / "emmy" / "0" / "010" / "110" / "data.json.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    # invalid JSON
    (root / "emmy" / "0" / "001" / "101" / "meta.json").write_bytes(b'{"jobId": 1, "cluster": "em')
    # missing meta.json
    (root / "emmy" / "0" / "002" / "102" / "meta.json").unlink()
    # a meta.json that is JSON but not a job
    (root / "emmy" / "0" / "003" / "103" / "meta.json").write_bytes(b'{"jobId": 3}')


def test_broken_entries_are_reported_and_skipped(log: EventLog, reference_copy: Path, tmp_path: Path) -> None:
    _break(reference_copy)
    report = import_archive(FileArchive(reference_copy), log)
    assert report.seen == 8
    assert report.imported == 4  # two emmy reference jobs, jobs 0 and 4
    assert report.failed == 4
    text = "\n".join(report.errors)
    assert "emmy/0/010/110" in text and "damaged gzip" in text
    assert "emmy/0/001/101" in text and "invalid JSON" in text
    assert "emmy/0/002/102: missing meta.json" in text
    assert "emmy/0/003/103" in text
    engine = project(log, tmp_path / "job.db")
    for job_id, start in [*EMMY_JOBS.items(), (0, 100), (4, 104)]:
        job_row(engine, "emmy", job_id, start)
    with engine.connect() as conn:
        assert queries.count_jobs(conn) == 4
    engine.dispose()


def _copy_reference(target: ArchiveBackend) -> None:
    source = FileArchive(REFERENCE_ARCHIVE)
    for name in source.clusters():
        target.store_cluster(source.load_cluster(name))
    for entry in source.iter_jobs(with_data=True):
        assert entry.meta is not None and entry.data is not None
        target.store_job(entry.meta, entry.data)


def _ids(log: EventLog) -> list[str]:
    return [e.id for e in log.read(limit=100)]


def test_s3_and_sqlite_archives_import_to_the_same_events(
    s3: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    file_log, s3_log, sqlite_log = (SQLiteEventLog(tmp_path / f"{n}.db") for n in ("file", "s3", "sqlite"))
    s3_archive = open_archive(s3.settings(s3_bucket))
    sqlite_archive = SQLiteArchive(tmp_path / "archive.db")
    try:
        _copy_reference(s3_archive)
        _copy_reference(sqlite_archive)
        import_archive(FileArchive(REFERENCE_ARCHIVE), file_log)
        assert import_archive(s3_archive, s3_log).imported == 2
        assert import_archive(sqlite_archive, sqlite_log).imported == 2
        assert _ids(file_log) == _ids(s3_log) == _ids(sqlite_log)
        payloads = [[e.data for e in log_.read()] for log_ in (file_log, s3_log, sqlite_log)]
        assert payloads[0] == payloads[1] == payloads[2]
    finally:
        for closable in (file_log, s3_log, sqlite_log, s3_archive, sqlite_archive):
            closable.close()


def test_another_archive_version_is_refused(log: EventLog, reference_copy: Path) -> None:
    (reference_copy / "version.txt").write_text("2\n")
    with pytest.raises(ArchiveError, match="version 2"):
        import_archive(FileArchive(reference_copy), log)
    assert log.head() == 0


def test_a_broken_cluster_json_is_reported_and_jobs_still_import(log: EventLog, reference_copy: Path) -> None:
    (reference_copy / "emmy" / "cluster.json").write_text("{")
    report = import_archive(FileArchive(reference_copy), log)
    assert report.imported == 2
    assert any("cluster emmy" in e for e in report.errors)


def test_meta_json_elsewhere_than_its_key_is_imported_with_a_warning(log: EventLog, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    shutil.copytree(REFERENCE_ARCHIVE, root, ignore=shutil.ignore_patterns("alex", "fritz"))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    moved = root / "emmy" / "1403" / "245" / "1608923076"
    moved.parent.mkdir()
    (root / "emmy" / "1403" / "244" / "1608923076").rename(moved)
    report = import_archive(FileArchive(root), log)
    assert report.imported == 2 and report.with_problems == 1
    assert "its place in the archive says emmy/1403245/1608923076" in report.problems[0]
    assert gzip.decompress((moved / "data.json.gz").read_bytes())
