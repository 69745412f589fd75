"""The archive port: what every job archive backend (file, S3, SQLite) offers, and its errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from archive.paths import JobKey


class ArchiveError(Exception):
    """An archive operation failed; the message names the entry and the cause."""


class JobNotFound(ArchiveError, KeyError):
    """No such job (or cluster) in the archive."""

    def __str__(self) -> str:
        # KeyError quotes its message; an operator should read it plainly.
        return str(self.args[0]) if self.args else "not found"


class CorruptEntry(ArchiveError):
    """An entry exists but cannot be read: truncated gzip, invalid JSON, not an object."""


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One job directory met while walking an archive: its meta (and data), or why it is unusable.

    Walks report broken entries instead of raising, so an import of a million jobs survives the few
    that a crash or a full disk left half-written.
    """

    location: str
    key: JobKey | None = None
    meta: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.meta is not None


class ArchiveBackend(Protocol):
    """A job archive: cluster.json files plus one meta.json and data.json per finished job.

    Every store is all-or-nothing as seen by readers: a reader finds the old entry or the new one,
    never a partial file. Keys are checked (`JobKey.of`); unsafe names raise `InvalidName`.
    """

    kind: str

    def version(self) -> int:
        """The archive format version (version.txt); ArchiveError when absent or unreadable."""
        ...

    def clusters(self) -> list[str]:
        """Names of the clusters with a cluster.json, sorted."""
        ...

    def load_cluster(self, name: str) -> dict[str, Any]:
        """A cluster.json; JobNotFound when missing, CorruptEntry when unreadable."""
        ...

    def store_cluster(self, cluster: Mapping[str, Any]) -> None:
        """Write (or replace) `<name>/cluster.json`."""
        ...

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """A job's meta.json; JobNotFound when missing, CorruptEntry when unreadable."""
        ...

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """A job's data.json (gzipped or not); JobNotFound when missing, CorruptEntry when unreadable."""
        ...

    def store_job(self, meta: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        """Write a job's data and meta (data first: a meta.json marks a complete entry); returns its location."""
        ...

    def store_meta(self, meta: Mapping[str, Any]) -> str:
        """Replace only a job's meta.json (tags or metadata changed after archiving)."""
        ...

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Whether the job's meta.json is there."""
        ...

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Remove a job's entry; False when there was none."""
        ...

    def iter_jobs(self, *, with_data: bool = False) -> Iterator[ArchiveEntry]:
        """Every job entry in a stable order; broken entries come back with `error` set."""
        ...

    def iter_keys(self, *, started_before: int | None = None) -> Iterator[JobKey]:
        """Keys of the stored jobs (optionally only those started before a Unix time), for retention."""
        ...

    def compress_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Gzip a job's data if it is stored plain; True when something changed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
