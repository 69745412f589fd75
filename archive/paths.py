"""Where a job lives in cc-backend's archive layout, and the name checks that keep every path inside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

#: The job archive format version this code reads and writes (cc-backend v1.5: 3).
VERSION = 3
VERSION_FILE = "version.txt"
CLUSTER_FILE = "cluster.json"
META_FILE = "meta.json"
DATA_FILE = "data.json"
DATA_GZ_FILE = "data.json.gz"

_FORBIDDEN = ("/", "\\", "\x00")
_MAX_NAME = 255


class InvalidName(ValueError):
    """A cluster, host or path component that could escape its directory or cannot be one."""


def check_name(value: object, what: str = "name") -> str:
    """The value if it is safe as one path component, else InvalidName saying why.

    Names come from scheduler payloads and foreign archives; a `..` or `/` in a cluster name would
    otherwise let a job write outside the archive root.
    """
    if not isinstance(value, str) or not value:
        raise InvalidName(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_NAME:
        raise InvalidName(f"{what} {value[:40]!r}... is longer than {_MAX_NAME} characters")
    if ".." in value or value.startswith(".") or any(c in value for c in _FORBIDDEN):
        raise InvalidName(f"{what} {value!r} must not contain '..', '/', '\\' or start with '.'")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidName(f"{what} {value!r} contains control characters")
    return value


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidName(f"{what} must be a non-negative integer, got {value!r}")
    return value


class JobKey(NamedTuple):
    """cc-backend's identity of a job: (cluster, jobId, startTime); scheduler job ids are reused."""

    cluster: str
    job_id: int
    start_time: int

    @classmethod
    def of(cls, cluster: object, job_id: object, start_time: object) -> JobKey:
        """A checked key: safe cluster name, non-negative integer id and start time."""
        return cls(
            check_name(cluster, "cluster"), _check_int(job_id, "jobId"), _check_int(start_time, "startTime")
        )

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> JobKey:
        """The key a meta.json names; InvalidName when a part is missing or unsafe."""
        return cls.of(meta.get("cluster"), meta.get("jobId"), meta.get("startTime"))

    def directory(self) -> str:
        """`<cluster>/<jobId // 1000>/<jobId % 1000 as 3 digits>/<startTime>`, '/'-separated."""
        return f"{self.cluster}/{self.job_id // 1000}/{self.job_id % 1000:03d}/{self.start_time}"

    def __str__(self) -> str:
        return f"{self.cluster}/{self.job_id}/{self.start_time}"


def key_from_parts(cluster: str, level1: str, level2: str, start: str) -> JobKey | None:
    """The key a job directory's path spells, or None when the parts are not cc-backend's layout."""
    if not (level1.isdigit() and level2.isdigit() and len(level2) == 3 and start.isdigit()):
        return None
    try:
        return JobKey.of(cluster, int(level1) * 1000 + int(level2), int(start))
    except InvalidName:
        return None


def key_for_store(meta: Mapping[str, Any]) -> JobKey:
    """The key of a meta.json about to be written, after checking its host names as well.

    Host names become path components elsewhere (metric checkpoints, retention targets), so a hostile
    one is refused before it enters the archive.
    """
    key = JobKey.from_meta(meta)
    resources = meta.get("resources")
    if not isinstance(resources, list) or not resources:
        raise InvalidName(f"job {key}: resources must be a non-empty list")
    for resource in resources:
        hostname = resource.get("hostname") if isinstance(resource, Mapping) else None
        check_name(hostname, f"job {key}: hostname")
    return key
