"""`ccstream import-archive OTHER_PATH` copies the jobs into the configured archive, or refuses up front.

The server reads an archived job's data only from the configured archive: jobs imported from
elsewhere must be there before their events are appended, or their metric data cannot be loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.backends import FileArchive, JobKey, open_archive
from archive.imports.copy import ArchiveCopier, same_archive
from tests.archive.conftest import REFERENCE_ARCHIVE, small_data, small_job
from tests.archive.test_cli_imports import head, run, write_config
from tests.support.s3server import S3Server


def file_states(root: Path) -> dict[str, tuple[int, int]]:
    """Inode and modification time of every file: a rewrite (temp file and rename) changes both."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def keys(archive: FileArchive) -> list[JobKey]:
    return sorted(archive.iter_keys())


def test_import_from_another_directory_copies_jobs_and_clusters(
    reference_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-archive", str(reference_copy)) == 0
    out = capsys.readouterr().out
    assert "2 jobs: 2 imported" in out
    assert "also 3 cluster files copied, 2 jobs copied into the archive" in out
    source, target = FileArchive(reference_copy), FileArchive(tmp_path / "archive")
    assert keys(target) == keys(source) and len(keys(target)) == 2
    for key in keys(source):
        assert target.load_meta(*key) == source.load_meta(*key)
        assert target.load_data(*key) == source.load_data(*key)
        assert (tmp_path / "archive" / key.directory() / "data.json.gz").is_file()  # cc-backend's layout
    assert target.clusters() == ["alex", "emmy", "fritz"] and target.version() == 3
    assert target.load_cluster("emmy") == source.load_cluster("emmy")


def test_importing_again_rewrites_nothing(reference_copy: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-archive", str(reference_copy)) == 0
    capsys.readouterr()
    before = file_states(tmp_path / "archive")
    assert run(config, "import-archive", str(reference_copy)) == 0
    out = capsys.readouterr().out
    assert "0 imported, 2 already there" in out and "copied" not in out
    assert file_states(tmp_path / "archive") == before
    assert head(tmp_path) == 6


def test_a_job_that_differs_in_the_configured_archive_is_rewritten(
    reference_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-archive", str(reference_copy)) == 0
    target = FileArchive(tmp_path / "archive")
    key = keys(target)[0]
    (tmp_path / "archive" / key.directory() / "data.json.gz").unlink()  # e.g. lost to an earlier failure
    capsys.readouterr()
    assert run(config, "import-archive", str(reference_copy)) == 0
    assert "also 1 jobs copied into the archive" in capsys.readouterr().out
    assert target.load_data(*key) == FileArchive(reference_copy).load_data(*key)


def test_importing_the_configured_archive_itself_copies_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    FileArchive(archive).store_job(small_job(), small_data())
    before = file_states(archive)
    config = write_config(tmp_path)
    spelled_otherwise = tmp_path / "archive" / ".." / "archive"
    assert run(config, "import-archive", str(spelled_otherwise)) == 0
    out = capsys.readouterr().out
    assert "1 jobs: 1 imported" in out and "copied" not in out
    assert file_states(archive) == before


def test_a_configured_archive_that_cannot_be_written_is_refused_before_importing(
    reference_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = write_config(tmp_path, {"kind": "file", "path": str(blocker / "archive")})
    assert run(config, "import-archive", str(reference_copy)) == 1
    err = capsys.readouterr().err
    assert "cannot copy the imported jobs into the configured archive" in err
    assert f"{blocker} is not writable" in err
    assert head(tmp_path) == 0


def test_a_missing_bucket_is_refused_before_importing(
    reference_copy: Path, tmp_path: Path, s3: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, s3.settings("no-such-bucket"))
    assert run(config, "import-archive", str(reference_copy)) == 1
    err = capsys.readouterr().err
    assert "cannot copy the imported jobs into the configured archive" in err and "NoSuchBucket" in err
    assert head(tmp_path) == 0


def test_import_into_a_configured_s3_archive(
    reference_copy: Path, tmp_path: Path, s3: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = s3.settings(s3.create_bucket())
    config = write_config(tmp_path, settings)
    assert run(config, "import-archive", str(reference_copy)) == 0
    assert "2 jobs copied into the archive" in capsys.readouterr().out
    target, source = open_archive(settings), FileArchive(reference_copy)
    try:
        for key in keys(source):
            assert target.load_data(*key) == source.load_data(*key)
        assert target.clusters() == ["alex", "emmy", "fritz"]
    finally:
        target.close()


def test_same_archive_compares_resolved_locations(tmp_path: Path, s3: S3Server) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert same_archive(FileArchive(tmp_path / "link"), FileArchive(tmp_path / "a"))
    assert not same_archive(FileArchive(tmp_path / "a"), FileArchive(tmp_path / "b"))
    bucket = s3.create_bucket()
    one, two, other = (open_archive(s3.settings(b)) for b in (bucket, bucket, s3.create_bucket()))
    assert same_archive(one, two) and not same_archive(one, other)
    assert not same_archive(one, FileArchive(tmp_path / "a"))


def test_a_cluster_the_configured_archive_has_is_kept(tmp_path: Path) -> None:
    target = FileArchive(tmp_path / "target")
    own = {**FileArchive(REFERENCE_ARCHIVE).load_cluster("emmy"), "metricConfig": []}
    target.store_cluster(own)
    assert ArchiveCopier(FileArchive(REFERENCE_ARCHIVE), target).copy_clusters() == 2
    assert target.load_cluster("emmy") == own
