"""What the file archive syncs, and when: every file before its rename, each directory once per job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archive.backends import FileArchive, fsutil
from tests.archive.conftest import big_data, small_data, small_job


def record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsync'ed from now on, in order (resolved through /proc, so temp files show as such)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", fsync)
    return synced


def test_a_new_job_syncs_both_files_then_its_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(job_id=1), small_data())  # root, cluster and first levels now exist
    synced = record_syncs(monkeypatch)
    archive.store_job(small_job(job_id=2, start=5), small_data())
    level1, level2 = str(tmp_path / "fritz" / "0"), str(tmp_path / "fritz" / "0" / "002")
    job_dir = f"{level2}/5"
    files = [p for p in synced if os.path.basename(p).startswith(".")]
    assert [os.path.basename(p).split(".")[1:3] for p in files] == [["data", "json"], ["meta", "json"]]
    # new directories: their parents once each; the job directory once, after both files
    assert [p for p in synced if p not in files] == [level1, level2, job_dir]
    assert synced[-1] == job_dir


def test_rewriting_a_job_syncs_no_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(), big_data())
    synced = record_syncs(monkeypatch)
    archive.store_job(small_job(), small_data())  # data.json.gz replaced by data.json
    job_dir = tmp_path / "fritz" / "398" / "764" / "1675954353"
    assert sorted(p.name for p in job_dir.iterdir()) == ["data.json", "meta.json"]
    assert [p for p in synced if not os.path.basename(p).startswith(".")] == [str(job_dir)]


def test_a_removed_archive_root_gets_its_version_back(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    archive = FileArchive(root)
    archive.store_job(small_job(job_id=1), small_data())
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()
    archive.store_job(small_job(job_id=2), small_data())
    assert archive.version() == 3 and archive.exists("fritz", 2, 1675954353)


def test_make_dirs_reports_what_it_created(tmp_path: Path) -> None:
    assert fsutil.make_dirs(str(tmp_path / "a" / "b")) == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    assert fsutil.make_dirs(str(tmp_path / "a" / "b")) == []
    assert fsutil.make_dirs(str(tmp_path / "a" / "c"), durable=False) == [str(tmp_path / "a" / "c")]
    assert (tmp_path / "a" / "c").is_dir()


def test_written_files_are_world_readable_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        fsutil.atomic_write(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f").read_bytes() == b"x"
