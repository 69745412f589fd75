"""The S3 backend against a real S3 server on loopback: key layout, prefixes, many jobs, broken objects."""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from archive.backends import ArchiveError, JobKey, open_archive, open_location
from tests.archive.conftest import big_data, small_data, small_job
from tests.support.s3server import S3Server


def keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_keys_mirror_the_file_layout(s3: S3Server, s3_bucket: str) -> None:
    archive = open_archive(s3.settings(s3_bucket))
    archive.store_cluster({"name": "fritz"})
    archive.store_job(small_job(), small_data())
    archive.store_job(small_job(job_id=12, start=99), big_data())
    assert sorted(keys(s3, s3_bucket)) == [
        "fritz/0/012/99/data.json.gz", "fritz/0/012/99/meta.json",
        "fritz/398/764/1675954353/data.json", "fritz/398/764/1675954353/meta.json",
        "fritz/cluster.json", "version.txt",
    ]
    body = s3.client().get_object(Bucket=s3_bucket, Key="fritz/0/012/99/data.json.gz")["Body"].read()
    assert orjson.loads(gzip.decompress(body)) == big_data()


def test_a_prefix_keeps_the_archive_under_it(s3: S3Server, s3_bucket: str) -> None:
    archive = open_location(f"s3://{s3_bucket}/archives/one", s3.settings("ignored"))
    archive.store_job(small_job(), small_data())
    assert sorted(keys(s3, s3_bucket)) == [
        "archives/one/fritz/398/764/1675954353/data.json", "archives/one/fritz/398/764/1675954353/meta.json",
        "archives/one/version.txt",
    ]
    assert archive.version() == 3
    assert [e.key for e in archive.iter_jobs()] == [JobKey("fritz", 398764, 1675954353)]


def test_many_jobs_come_back_in_order(s3: S3Server, s3_bucket: str) -> None:
    archive = open_archive(s3.settings(s3_bucket))
    stored = [JobKey("fritz", n, 1000 + n) for n in range(300)]  # more than one fetch chunk
    client = s3.client()

    def put(key: JobKey) -> None:
        meta = orjson.dumps(small_job(key.job_id, key.start_time))
        client.put_object(Bucket=s3_bucket, Key=f"{key.directory()}/meta.json", Body=meta)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, stored))
    got = [e.key for e in archive.iter_jobs()]
    assert sorted(got) == sorted(stored) and len(got) == 300
    assert got == sorted(got, key=lambda k: k.directory())


def test_broken_objects_are_reported(s3: S3Server, s3_bucket: str) -> None:
    archive = open_archive(s3.settings(s3_bucket))
    archive.store_job(small_job(), big_data())
    client = s3.client()
    client.put_object(Bucket=s3_bucket, Key="fritz/0/001/5/meta.json", Body=b'{"jobId": 1,')
    client.put_object(Bucket=s3_bucket, Key="fritz/0/002/5/data.json", Body=b"{}")
    good = "fritz/398/764/1675954353/data.json.gz"
    raw = client.get_object(Bucket=s3_bucket, Key=good)["Body"].read()
    client.put_object(Bucket=s3_bucket, Key=good, Body=raw[:100])
    errors = {e.location: e.error for e in archive.iter_jobs(with_data=True) if e.error}
    assert "invalid JSON" in str(errors.pop("fritz/0/001/5"))
    assert "missing meta.json" in str(errors.pop("fritz/0/002/5"))
    assert "damaged gzip" in str(errors.pop("fritz/398/764/1675954353"))
    assert errors == {}


def test_unreachable_or_missing_bucket_is_one_clear_error(s3: S3Server) -> None:
    archive = open_archive(s3.settings("no-such-bucket"))
    with pytest.raises(ArchiveError, match="NoSuchBucket"):
        archive.store_cluster({"name": "fritz"})
    with pytest.raises(ArchiveError, match="no bucket"):
        open_archive({"kind": "s3"})
