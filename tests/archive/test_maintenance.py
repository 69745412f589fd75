"""Compression and retention on dated file archives: each policy, dry runs, and moves that fail half-way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.backends import ArchiveBackend, FileArchive, JobKey
from archive.maintenance import RetentionPolicy, compress_archive, read_jobs, retire_jobs
from archive.maintenance.targets import COPY_MARKER
from tests.archive.conftest import REFERENCE_ARCHIVE, big_data, small_data, small_job

NOW = 1_750_000_000
DAY = 86_400
#: Jobs older than 7 days, ids in different `<jobId // 1000>` folders, and two recent ones.
OLD = [(1000, NOW - 30 * DAY), (2000, NOW - 31 * DAY), (3000, NOW - 40 * DAY), (4000, NOW - 8 * DAY)]
RECENT = [(5000, NOW - DAY), (5001, NOW - 6 * DAY)]
Jobs = dict[JobKey, tuple[dict[str, Any], dict[str, Any]]]


def fill(backend: ArchiveBackend, jobs: list[tuple[int, int]], data: dict[str, Any] | None = None) -> Jobs:
    """Store fritz jobs (and fritz's cluster.json) with these (jobId, startTime); returns what was stored."""
    backend.store_cluster(orjson.loads((REFERENCE_ARCHIVE / "fritz" / "cluster.json").read_bytes()))
    stored: Jobs = {}
    for job_id, start in jobs:
        meta, payload = small_job(job_id, start), data if data is not None else small_data()
        backend.store_job(meta, payload)
        stored[JobKey("fritz", job_id, start)] = (meta, payload)
    return stored


def keys(backend: ArchiveBackend) -> set[JobKey]:
    return set(backend.iter_keys())


def policy(**settings: Any) -> RetentionPolicy:
    """A retention policy: delete after 7 days without include-db unless overridden."""
    return RetentionPolicy(**{"policy": "delete", "age": 7, "include_db": False, **settings})


@pytest.fixture
def archive(tmp_path: Path) -> FileArchive:
    return FileArchive(tmp_path / "archive")


# -- compression --------------------------------------------------------------------------------------


def test_compression_gzips_old_plain_data_once(archive: FileArchive) -> None:
    stored = fill(archive, OLD + RECENT)
    report = compress_archive(archive, 7, now=NOW)
    assert (report.examined, report.compressed, report.skipped, report.failed) == (4, 4, 0, 0)
    for key, (_, data) in stored.items():
        folder = archive.root / key.directory()
        old = key.start_time < NOW - 7 * DAY
        assert (folder / "data.json.gz").is_file() is old
        assert (folder / "data.json").is_file() is not old
        assert archive.load_data(*key) == data
    again = compress_archive(archive, 7, now=NOW)
    assert (again.examined, again.compressed, again.skipped) == (4, 0, 4)
    assert again.skip_reasons == {"already compressed": 4}


def test_compression_age_zero_means_cc_backend_default_of_seven_days(archive: FileArchive) -> None:
    fill(archive, [(4000, NOW - 8 * DAY), (5001, NOW - 6 * DAY)])
    report = compress_archive(archive, 0, now=NOW)
    assert (report.examined, report.compressed) == (1, 1)
    assert "older than 7 days" in report.task


def test_compression_dry_run_changes_nothing(archive: FileArchive) -> None:
    fill(archive, OLD)
    report = compress_archive(archive, 7, now=NOW, dry_run=True)
    assert (report.examined, report.compressed, report.dry_run) == (4, 0, True)
    assert not list(archive.root.rglob("data.json.gz"))
    assert "(dry run)" in report.summary()


# -- retention: delete, copy, move (json) -----------------------------------------------------------------


def test_delete_removes_only_old_jobs(archive: FileArchive) -> None:
    fill(archive, OLD + RECENT)
    report = retire_jobs(archive, policy(), now=NOW)
    assert (report.examined, report.deleted, report.copied, report.failed) == (4, 4, 0, 0)
    assert keys(archive) == {JobKey("fritz", j, s) for j, s in RECENT}
    assert not (archive.root / "fritz" / "1").exists()  # emptied id folders go, as in cc-backend


def test_policy_none_does_nothing(archive: FileArchive) -> None:
    fill(archive, OLD)
    report = retire_jobs(archive, policy(policy="none"), now=NOW)
    assert report.examined == 0 and len(keys(archive)) == 4


def test_copy_json_keeps_source_and_uses_the_copy_marker(archive: FileArchive, tmp_path: Path) -> None:
    stored = fill(archive, OLD + RECENT)
    target_dir = tmp_path / "target"
    rule = policy(policy="copy", format="json", target_path=str(target_dir))
    report = retire_jobs(archive, rule, now=NOW)
    assert (report.copied, report.deleted, report.failed) == (4, 0, 0)
    target = FileArchive(target_dir)
    assert keys(target) == {JobKey("fritz", j, s) for j, s in OLD}
    for key in keys(target):
        assert (target.load_meta(*key), target.load_data(*key)) == stored[key]
    assert target.clusters() == ["fritz"] and len(keys(archive)) == 6
    assert (target_dir / COPY_MARKER).read_text() == str(NOW - 7 * DAY)
    # Two days later only the job that aged since is copied; the others are known done.
    later = retire_jobs(archive, rule, now=NOW + 2 * DAY)
    assert (later.examined, later.copied, later.skip_reasons["copied by an earlier run"]) == (5, 1, 4)
    assert JobKey("fritz", 5001, NOW - 6 * DAY) in keys(target)


def test_move_json_copies_verifies_then_deletes(archive: FileArchive, tmp_path: Path) -> None:
    stored = fill(archive, OLD + RECENT, big_data())
    rule = policy(policy="move", target_path=str(tmp_path / "target"))
    report = retire_jobs(archive, rule, now=NOW)
    assert (report.copied, report.deleted, report.failed) == (4, 4, 0)
    target = FileArchive(tmp_path / "target")
    assert keys(archive) == {JobKey("fritz", j, s) for j, s in RECENT}
    assert {k: (target.load_meta(*k), target.load_data(*k)) for k in keys(target)} == {
        k: v for k, v in stored.items() if k.job_id < 5000
    }


def test_older_location_key_is_the_target_folder(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD[:1])
    retire_jobs(archive, policy(policy="move", location=str(tmp_path / "old-style")), now=NOW)
    assert keys(FileArchive(tmp_path / "old-style")) == {JobKey("fritz", *OLD[0])}


def test_failed_copy_keeps_that_job_and_moves_the_rest(archive: FileArchive, tmp_path: Path) -> None:
    stored = fill(archive, OLD)
    target_dir = tmp_path / "target"
    (target_dir / "fritz").mkdir(parents=True)
    (target_dir / "fritz" / "2").write_text("a file where job 2000's folder must go")
    rule = policy(policy="move", target_path=str(target_dir))
    report = retire_jobs(archive, rule, now=NOW)
    assert (report.copied, report.deleted, report.failed) == (3, 3, 1)
    assert "fritz/2000/" in report.failures[0]
    assert keys(archive) == {JobKey("fritz", *OLD[1])}
    (target_dir / "fritz" / "2").unlink()
    rerun = retire_jobs(archive, rule, now=NOW)
    assert (rerun.copied, rerun.deleted, rerun.failed) == (1, 1, 0)
    target = FileArchive(target_dir)
    assert {k: (target.load_meta(*k), target.load_data(*k)) for k in keys(target)} == stored
    assert not keys(archive)


def test_move_after_an_interrupted_move_finishes_it(archive: FileArchive, tmp_path: Path) -> None:
    """A crash between copy and delete leaves the job in both archives; the next run completes the move."""
    stored = fill(archive, OLD)
    target_dir = str(tmp_path / "target")
    retire_jobs(archive, policy(policy="copy", target_path=target_dir), now=NOW)  # the copy half only
    report = retire_jobs(archive, policy(policy="move", target_path=target_dir), now=NOW)
    assert (report.copied, report.deleted, report.failed) == (4, 4, 0)
    target = FileArchive(target_dir)
    assert {k: (target.load_meta(*k), target.load_data(*k)) for k in keys(target)} == stored


def test_unreadable_job_is_reported_and_kept(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD)
    broken = JobKey("fritz", *OLD[2])
    (archive.root / broken.directory() / "data.json").write_bytes(b"{truncated")
    report = retire_jobs(archive, policy(policy="move", target_path=str(tmp_path / "t")), now=NOW)
    assert (report.deleted, report.failed) == (3, 1)
    assert "invalid JSON" in report.failures[0]
    assert keys(archive) == {broken}


# -- retention: parquet -----------------------------------------------------------------------------------


def test_move_parquet_writes_cluster_files_and_reads_back(archive: FileArchive, tmp_path: Path) -> None:
    stored = fill(archive, OLD + RECENT, big_data())
    target_dir = tmp_path / "parquet"
    rule = policy(policy="move", format="parquet", target_path=str(target_dir))
    report = retire_jobs(archive, rule, now=NOW)
    assert (report.copied, report.deleted, report.failed) == (4, 4, 0)
    assert report.files == [f"fritz/cc-archive-{_date(NOW)}-001.parquet"]
    back = read_jobs((target_dir / report.files[0]).read_bytes())
    assert {JobKey.from_meta(meta): (meta, data) for meta, data in back} == {
        k: v for k, v in stored.items() if k.job_id < 5000
    }
    assert orjson.loads((target_dir / "fritz" / "cluster.json").read_bytes())["name"] == "fritz"
    assert keys(archive) == {JobKey("fritz", j, s) for j, s in RECENT}


def test_copy_parquet_twice_a_day_never_overwrites_a_file(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD + RECENT)
    rule = policy(policy="copy", format="parquet", target_path=str(tmp_path / "pq"))
    first = retire_jobs(archive, rule, now=NOW)
    again = retire_jobs(archive, rule, now=NOW + 3600)
    assert (first.copied, again.copied) == (4, 0) and again.files == []
    (tmp_path / "pq" / COPY_MARKER).unlink()  # lost marker: everything is copied again, into a new file
    third = retire_jobs(archive, rule, now=NOW + 7200)
    assert third.files == [f"fritz/cc-archive-{_date(NOW)}-002.parquet"]
    assert len(read_jobs((tmp_path / "pq" / first.files[0]).read_bytes())) == 4


def test_failed_parquet_write_keeps_every_job_of_that_file(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD)
    target_dir = tmp_path / "pq"
    target_dir.mkdir()
    (target_dir / "fritz").write_text("not a folder")
    report = retire_jobs(archive, policy(policy="move", format="parquet", target_path=str(target_dir)), now=NOW)
    assert (report.copied, report.deleted, report.failed) == (0, 0, 4)
    assert len(keys(archive)) == 4


def test_failed_parquet_copy_holds_the_marker_back_until_it_succeeds(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD)
    target_dir = tmp_path / "pq"
    target_dir.mkdir()
    (target_dir / "fritz").write_text("not a folder")
    rule = policy(policy="copy", format="parquet", target_path=str(target_dir))
    assert retire_jobs(archive, rule, now=NOW).failed == 4
    assert int((target_dir / COPY_MARKER).read_text()) == min(start for _, start in OLD)
    (target_dir / "fritz").unlink()
    rerun = retire_jobs(archive, rule, now=NOW)
    assert (rerun.copied, rerun.failed, len(rerun.files)) == (4, 0, 1)
    assert int((target_dir / COPY_MARKER).read_text()) == NOW - 7 * DAY


def test_dry_run_touches_nothing(archive: FileArchive, tmp_path: Path) -> None:
    fill(archive, OLD + RECENT)
    rule = policy(policy="move", format="parquet", target_path=str(tmp_path / "pq"), include_db=True)
    report = retire_jobs(archive, rule, now=NOW, dry_run=True)
    assert (report.examined, report.copied, report.deleted, report.db_deleted) == (4, 4, 4, 4)
    assert len(keys(archive)) == 6 and not (tmp_path / "pq").exists()
    summary = "retention move (parquet to file, older than 7 days): examined 4, would copy 4, would delete 4"
    assert report.summary().startswith(summary)


def _date(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))
