"""Where retired jobs go: a target archive for `json`, a file location (folder or bucket) for Parquet files.

The location also keeps the copy marker, so a daily `copy` run only handles jobs that aged since the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from archive.backends.factory import open_archive
from archive.backends.fsutil import atomic_write, ensure_dir, read_bytes
from archive.backends.protocol import ArchiveBackend
from archive.maintenance.policy import RetentionPolicy
from archive.paths import check_name

#: Name of the copy marker: the cutoff (Unix time) up to which jobs were copied.
COPY_MARKER = ".copy-marker"


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

    def close(self) -> None:
        """Release connections."""
        ...


def checked_parts(name: str) -> list[str]:
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
        return read_bytes(self.root.joinpath(*checked_parts(name)))

    def write(self, name: str, data: bytes) -> None:
        path = self.root.joinpath(*checked_parts(name))
        ensure_dir(path.parent)
        atomic_write(path, data)

    def exists(self, name: str) -> bool:
        return self.root.joinpath(*checked_parts(name)).is_file()

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""


def open_location(policy: RetentionPolicy) -> Location:
    """The folder or bucket the retention settings name (Parquet files and the copy marker)."""
    if policy.target_kind == "s3":
        from archive.maintenance.s3 import S3Location  # boto3 is heavy: load it only for S3 targets

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
