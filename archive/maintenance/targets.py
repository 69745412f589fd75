"""Where retired jobs go: a target archive for `json`, a file location (folder or bucket) for Parquet files.

The location also keeps the copy marker, so a daily `copy` run only handles jobs that aged since the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from archive.backends.factory import open_archive
from archive.backends.fsutil import atomic_write, ensure_dir, read_bytes
from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.maintenance.policy import RetentionPolicy
from archive.paths import check_name

#: Name of the copy marker: the cutoff (Unix time) up to which jobs were copied.
COPY_MARKER = ".copy-marker"
_MISSING = {"NoSuchKey", "404", "NotFound"}


class Location(Protocol):
    """A flat place for named files ('/'-separated names): a local folder or an S3 bucket."""

    def read(self, name: str) -> bytes | None:
        """A file's bytes, None when missing."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Write a whole file; readers see the old file or the new one."""
        ...

    def exists(self, name: str) -> bool:
        """Whether a file is there."""
        ...


def _checked(name: str) -> list[str]:
    """The parts of a '/'-separated name, each checked to stay inside the target (the marker is ours)."""
    parts = name.split("/")
    for part in parts:
        if part != COPY_MARKER:
            check_name(part, "target file name part")
    return parts


class FileLocation:
    """A local (or network) folder; files are written to a temp file, synced and renamed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileLocation({str(self.root)!r})"

    def read(self, name: str) -> bytes | None:
        return read_bytes(self.root.joinpath(*_checked(name)))

    def write(self, name: str, data: bytes) -> None:
        path = self.root.joinpath(*_checked(name))
        ensure_dir(path.parent)
        atomic_write(path, data)

    def exists(self, name: str) -> bool:
        return self.root.joinpath(*_checked(name)).is_file()


class S3Location:
    """A bucket; a PUT replaces an object whole, so no temp objects are needed."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.bucket = policy.target_bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=policy.target_endpoint or None,
            region_name=policy.target_region or "us-east-1",
            aws_access_key_id=policy.target_access_key or None,
            aws_secret_access_key=policy.target_secret_key or None,
            config=Config(s3={"addressing_style": "path" if policy.target_use_path_style else "auto"},
                          retries={"max_attempts": 5, "mode": "standard"}),
        )

    def __repr__(self) -> str:
        return f"S3Location('s3://{self.bucket}')"

    def _fail(self, name: str, exc: Exception) -> ArchiveError:
        return ArchiveError(f"s3://{self.bucket}/{name}: {exc}")

    def read(self, name: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key="/".join(_checked(name)))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise self._fail(name, exc) from None
        except BotoCoreError as exc:
            raise self._fail(name, exc) from None

    def write(self, name: str, data: bytes) -> None:
        content = "application/vnd.apache.parquet" if name.endswith(".parquet") else "application/octet-stream"
        try:
            self._client.put_object(Bucket=self.bucket, Key="/".join(_checked(name)), Body=data,
                                    ContentType=content)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(name, exc) from None

    def exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key="/".join(_checked(name)))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return False
            raise self._fail(name, exc) from None
        except BotoCoreError as exc:
            raise self._fail(name, exc) from None
        return True

    def close(self) -> None:
        self._client.close()


def open_location(policy: RetentionPolicy) -> FileLocation | S3Location:
    """The folder or bucket the retention settings name (Parquet files and the copy marker)."""
    if policy.target_kind == "s3":
        return S3Location(policy)
    return FileLocation(policy.path)


def open_target_archive(policy: RetentionPolicy) -> ArchiveBackend:
    """The archive that `format: json` copies jobs into, in the same layout as the source."""
    settings: dict[str, Any]
    if policy.target_kind == "s3":
        settings = {"kind": "s3", "bucket": policy.target_bucket, "endpoint": policy.target_endpoint,
                    "region": policy.target_region, "access_key": policy.target_access_key,
                    "secret_key": policy.target_secret_key, "use_path_style": policy.target_use_path_style}
    else:
        settings = {"kind": "file", "path": policy.path}
    return open_archive(settings)


def read_marker(location: Location) -> int:
    """The cutoff of the last completed copy run (0 when none or unreadable: copy everything)."""
    raw = location.read(COPY_MARKER)
    text = raw.decode("ascii", "replace").strip() if raw else ""
    return int(text) if text.isdigit() else 0


def write_marker(location: Location, cutoff: int) -> None:
    location.write(COPY_MARKER, str(cutoff).encode())
