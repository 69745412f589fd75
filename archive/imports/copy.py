"""Copying imported jobs into the configured archive, so that every job the log calls archived has its data.

`ccstream import-archive OTHER_PATH` appends `job.archived` events for jobs that live in OTHER_PATH.
The server reads metric data only from the configured archive: without a copy, those jobs are listed
as archived but their data cannot be found. Each job is therefore written into the configured
archive, through its backend's store API (every backend's stores are all-or-nothing per file),
before its events are appended; a job already there with the same content is left alone, so an
import run twice writes nothing the second time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.backends.file import FileArchive
from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.backends.sqlite import SQLiteArchive
from archive.paths import VERSION, InvalidName, JobKey

#: Key of ImportReport.extra counting the jobs written into the configured archive.
COPIED = "jobs copied into the archive"
#: Key of ImportReport.extra counting the cluster.json files written into the configured archive.
CLUSTERS_COPIED = "cluster files copied"


def archive_identity(backend: ArchiveBackend) -> tuple[str, ...]:
    """What names an archive's storage: two backends with equal identities read the same files."""
    if isinstance(backend, FileArchive):
        return ("file", str(backend.root.resolve()))
    if isinstance(backend, SQLiteArchive):
        return ("sqlite", str(backend.path.resolve()))
    if backend.kind == "s3":  # not isinstance: importing the S3 backend loads boto3, for S3 archives only
        return ("s3", *(str(getattr(backend, name, "")) for name in ("endpoint", "bucket", "prefix")))
    return (backend.kind, repr(backend))


def same_archive(source: ArchiveBackend, target: ArchiveBackend) -> bool:
    """Whether importing from `source` reads the configured archive `target` itself (nothing to copy)."""
    return archive_identity(source) == archive_identity(target)


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest existing ancestor: where a file archive's directories would be made."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(target: ArchiveBackend) -> None:
    """Refuse, before anything is imported, a configured archive the jobs cannot be copied into.

    A file archive must be (or be creatable in) a writable directory; any backend must answer, and
    when it already holds clusters its format version must be the one this program writes.
    """
    if isinstance(target, FileArchive):
        place = _nearest_existing(target.root)
        if not place.is_dir() or not os.access(place, os.W_OK | os.X_OK):
            raise ArchiveError(
                f"cannot copy the imported jobs into the configured archive {target!r}: {place} is not writable"
            )
    try:
        clusters = target.clusters()
        if clusters and target.version() != VERSION:
            raise ArchiveError(f"{target!r}: archive version {target.version()}, this program writes {VERSION}")
    except ArchiveError as exc:
        raise ArchiveError(f"cannot copy the imported jobs into the configured archive: {exc}") from None


@dataclass
class ArchiveCopier:
    """Writes jobs and cluster files of a source archive into the configured archive, skipping identical ones."""

    source: ArchiveBackend
    target: ArchiveBackend

    def copy_clusters(self) -> int:
        """Store each source cluster.json the target lacks; returns how many were written.

        A cluster the target already has is kept: it is the configuration the server runs with.
        """
        present = set(self.target.clusters())
        copied = 0
        for name in self.source.clusters():
            if name not in present:
                self.target.store_cluster(self.source.load_cluster(name))
                copied += 1
        return copied

    def copy_job(self, key: JobKey, meta: dict[str, Any], data: dict[str, Any] | None) -> bool:
        """Store one job in the target unless it is there with equal meta and data; True when written.

        Raises ArchiveError (or InvalidName) when the job cannot be read or written: the caller then
        leaves the job out of the log.
        """
        if data is None:
            data = self.source.load_data(*key)
        if self._holds(key, meta, data):
            return False
        self.target.store_job(meta, data)
        return True

    def _holds(self, key: JobKey, meta: dict[str, Any], data: dict[str, Any]) -> bool:
        try:
            return self.target.load_meta(*key) == meta and self.target.load_data(*key) == data
        except (ArchiveError, InvalidName):  # missing or unreadable there: (re)write it
            return False
