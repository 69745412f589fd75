"""Compression and retention with S3 (a real moto server) and SQLite archives, as sources and as targets."""

from __future__ import annotations

from pathlib import Path

from archive.backends import FileArchive, JobKey, SQLiteArchive, open_archive
from archive.maintenance import compress_archive, read_jobs, retire_jobs
from archive.maintenance.targets import COPY_MARKER
from tests.archive.test_maintenance import NOW, OLD, RECENT, fill, keys, policy
from tests.support.s3server import S3Server

RECENT_KEYS = {JobKey("fritz", j, s) for j, s in RECENT}


def _s3_target(s3: S3Server, bucket: str) -> dict[str, object]:
    return {"target_kind": "s3", "target_bucket": bucket, "target_endpoint": s3.endpoint,
            "target_region": s3.region, "target_access_key": s3.access_key, "target_secret_key": s3.secret_key,
            "target_use_path_style": True}


def test_s3_source_compress_then_move_json_to_a_folder(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.create_bucket()
    source = open_archive(s3.settings(bucket))
    try:
        stored = fill(source, OLD + RECENT)
        compressed = compress_archive(source, 7, now=NOW)
        assert (compressed.examined, compressed.compressed, compressed.failed) == (4, 4, 0)
        objects = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
        assert f"{JobKey('fritz', *OLD[0]).directory()}/data.json.gz" in objects
        report = retire_jobs(source, policy(policy="move", target_path=str(tmp_path / "t")), now=NOW)
        assert (report.copied, report.deleted, report.failed) == (4, 4, 0)
        assert keys(source) == RECENT_KEYS
        target = FileArchive(tmp_path / "t")
        assert {k: (target.load_meta(*k), target.load_data(*k)) for k in keys(target)} == {
            k: v for k, v in stored.items() if k not in RECENT_KEYS
        }
    finally:
        source.close()


def test_move_parquet_into_a_bucket(s3: S3Server, tmp_path: Path) -> None:
    source = FileArchive(tmp_path / "archive")
    stored = fill(source, OLD + RECENT)
    bucket = s3.create_bucket()
    report = retire_jobs(source, policy(policy="move", format="parquet", **_s3_target(s3, bucket)), now=NOW)
    assert (report.copied, report.deleted, report.failed, len(report.files)) == (4, 4, 0, 1)
    raw = s3.client().get_object(Bucket=bucket, Key=report.files[0])["Body"].read()
    assert {JobKey.from_meta(m): (m, d) for m, d in read_jobs(raw)} == {
        k: v for k, v in stored.items() if k not in RECENT_KEYS
    }
    assert s3.client().head_object(Bucket=bucket, Key="fritz/cluster.json")["ContentLength"] > 0
    assert keys(source) == RECENT_KEYS


def test_copy_json_into_a_bucket_keeps_a_marker_there(s3: S3Server, tmp_path: Path) -> None:
    source = FileArchive(tmp_path / "archive")
    fill(source, OLD + RECENT)
    bucket = s3.create_bucket()
    rule = policy(policy="copy", **_s3_target(s3, bucket))
    first = retire_jobs(source, rule, now=NOW)
    again = retire_jobs(source, rule, now=NOW)
    assert (first.copied, again.copied, again.skipped) == (4, 0, 4)
    marker = s3.client().get_object(Bucket=bucket, Key=COPY_MARKER)["Body"].read()
    assert int(marker) == NOW - 7 * 86_400
    target = open_archive(s3.settings(bucket))
    try:
        assert keys(target) == {JobKey("fritz", j, s) for j, s in OLD}
        assert target.clusters() == ["fritz"]
    finally:
        target.close()
    assert len(keys(source)) == 6


def test_sqlite_source_compress_delete_and_move_parquet(tmp_path: Path) -> None:
    source = SQLiteArchive(tmp_path / "archive.db")
    try:
        stored = fill(source, OLD + RECENT)
        compressed = compress_archive(source, 7, now=NOW)
        assert (compressed.compressed, compress_archive(source, 7, now=NOW).compressed) == (4, 0)
        assert all(source.load_data(*k) == data for k, (_, data) in stored.items())
        moved = retire_jobs(source, policy(policy="move", format="parquet", target_path=str(tmp_path / "pq"),
                                           age=35), now=NOW)
        assert (moved.copied, moved.deleted) == (1, 1)  # only job 3000 is older than 35 days
        deleted = retire_jobs(source, policy(), now=NOW)
        assert (deleted.deleted, deleted.failed) == (3, 0)
        assert keys(source) == RECENT_KEYS
        [(meta, data)] = read_jobs((tmp_path / "pq" / moved.files[0]).read_bytes())
        assert (meta, data) == stored[JobKey("fritz", *OLD[2])]
    finally:
        source.close()
