"""Fixtures of the archive tests: every backend kind over real storage, and jobs from the reference archive."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.backends import ArchiveBackend, open_archive
from tests.support.s3server import S3Server, s3, s3_bucket  # noqa: F401  (fixtures)
from tests.support.specs import find_specs

SPECS = find_specs()
REFERENCE_ARCHIVE = SPECS / "archive"
EXAMPLE_JOB = SPECS / "examples" / "job-archive" / "fritz" / "398" / "764" / "1675954353"
BACKENDS = ("file", "s3", "sqlite")


def small_job(
    job_id: int = 398764, start: int = 1675954353, cluster: str = "fritz", **overrides: Any
) -> dict[str, Any]:
    """The reference fritz job's meta.json with a new identity."""
    meta = orjson.loads((EXAMPLE_JOB / "meta.json").read_bytes())
    meta.update(jobId=job_id, startTime=start, cluster=cluster, **overrides)
    return meta


def small_data() -> dict[str, Any]:
    """The reference fritz job's data.json (about 1 kB encoded: stored uncompressed)."""
    data: dict[str, Any] = orjson.loads((EXAMPLE_JOB / "data.json").read_bytes())
    return data


def big_data(hosts: int = 4, samples: int = 200) -> dict[str, Any]:
    """data.json well over 2,000 bytes encoded: stored gzipped."""
    data = copy.deepcopy(small_data())
    series = data["cpu_load"]["node"]["series"][0]
    data["cpu_load"]["node"]["series"] = [
        {**series, "hostname": f"f{n:04d}", "data": [float(i % 17) for i in range(samples)]} for n in range(hosts)
    ]
    return data


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveBackend]:
    """An empty archive of each kind: a directory, a bucket on a real S3 server, a SQLite file."""
    if request.param == "file":
        impl = open_archive({"kind": "file", "path": str(tmp_path / "archive")})
    elif request.param == "sqlite":
        impl = open_archive({"kind": "sqlite", "db-path": str(tmp_path / "archive.db")})
    else:
        server: S3Server = request.getfixturevalue("s3")
        impl = open_archive(server.settings(server.create_bucket()))
    yield impl
    impl.close()


@pytest.fixture
def reference_copy(tmp_path: Path) -> Path:
    """A writable copy of the reference archive (cc-backend wrote it)."""
    target = tmp_path / "reference"
    shutil.copytree(REFERENCE_ARCHIVE, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    target.chmod(0o755)
    return target
