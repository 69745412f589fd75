"""The event envelope: identity, type, subject and payload of everything that happens."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Namespace of every deterministic event id ccstream derives (uuid5).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a3e-8d0b-4c55-9a51-0c0c57e5a11a")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes

ENVELOPE_VERSION = 1


def derived_event_id(*parts: object) -> str:
    """A deterministic id from the parts that make an event unique.

    Retries of the same request and reprocessing of the same cause derive the same id, which the log
    turns into a no-op: this is what makes intake and agents idempotent.
    """
    # uuid.uuid5 spelled out (same bytes, same text): the UUID object it builds and formats costs more
    # than the hash, and the intake derives several ids per request.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def job_subject(cluster: str, job_id: int, start_time: int) -> str:
    """cc-backend identifies a job by (cluster, jobId, startTime); so does the log."""
    return f"job/{cluster}/{job_id}/{start_time}"


def job_family_prefix(cluster: str, job_id: int) -> str:
    """Prefix shared by every subject of one scheduler job id (requeues, reuse, parked stops)."""
    return f"job/{cluster}/{job_id}/"


def parse_job_subject(subject: str) -> tuple[str, int, int | None]:
    """Split a job subject into (cluster, jobId, startTime); startTime is None for `*` (unknown)."""
    kind, cluster, job_id, start = subject.split("/", 3)
    if kind != "job":
        raise ValueError(f"not a job subject: {subject!r}")
    return cluster, int(job_id), None if start == "*" else int(start)


def partition_key(subject: str) -> str:
    """Kafka partition key: all events of one scheduler job id stay in one partition, in order.

    A stop parked before its start (subject `job/<c>/<id>/*`) must meet the start in one partition,
    so the start time is left out of the key.
    """
    if subject.startswith("job/"):
        return subject.rsplit("/", 1)[0]
    return subject


@dataclass(frozen=True, slots=True)
class Event:
    """One fact. `position` and `recorded_at` are set by the log on append, never by producers."""

    id: str
    type: str
    subject: str
    data: dict[str, Any]
    version: int = 1
    time: float = field(default_factory=time.time)
    source: str = ""
    causation_id: str | None = None
    position: int | None = None
    recorded_at: float | None = None

    def recorded(self, position: int, recorded_at: float) -> Event:
        """The same event as the log stores it."""
        return Event(self.id, self.type, self.subject, self.data, self.version, self.time, self.source,
                     self.causation_id, position, recorded_at)


def new_event(
    type: str,
    subject: str,
    data: dict[str, Any],
    *,
    id: str | None = None,
    version: int = 1,
    source: str = "",
    causation_id: str | None = None,
    at: float | None = None,
) -> Event:
    """Build an event; without an explicit id a random one is used (not idempotent on retry)."""
    return Event(
        id=id or str(uuid.uuid4()),
        type=type,
        subject=subject,
        data=data,
        version=version,
        time=time.time() if at is None else at,
        source=source,
        causation_id=causation_id,
    )
