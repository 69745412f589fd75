"""`main.nodestate-retention`: node-state history older than `age` hours leaves the job database.

cc-backend deletes the rows hourly (`policy: delete`), or first writes them to Parquet files in a
folder or S3 bucket (`policy: move`) and deletes them once the files are written. Here the
`node_state` table is a read model of `node.states_reported` events, which stay in the log: deleting
rows behind the projection's back would bring them back with the next rebuild. So the task appends a
`node.states_retired` event ("rows older than T are gone") that the projection applies in log order,
live and in a rebuild alike (`projections.nodes.record_node_states_retired`). With `move`, the event
is appended only after every Parquet file is complete at the target (written to a temp file and
renamed, or PUT whole to S3), so the rows are deleted only once they are safe elsewhere; a failed
write leaves the rows and the next hourly run tries again.

Rows are read once the job database has caught up with the log (up to a minute's wait; else the run
is left to the next hour), so nothing reported before the run is deleted unwritten. A report that
arrives during the run with a time stamp already older than the cutoff (a report `age` hours late)
can be deleted without being moved; its event stays in the log.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, select

from archive.maintenance.policy import RetentionPolicy
from archive.maintenance.targets import open_location
from projections import schema
from streams.events import new_event
from streams.log import EventLog

log = logging.getLogger(__name__)

SOURCE = "task:nodestate-retention"
SUBJECT = "node-states"
POLICIES = ("delete", "move")
#: cc-backend's default file size limit when `max-file-size-mb` is 0 or less.
DEFAULT_MAX_FILE_SIZE_MB = 128
#: How long a run waits for the job database to catch up with the log before it reads the rows.
CATCH_UP_TIMEOUT = 60.0

#: cc-backend's `ParquetNodeStateRow` columns (pkg/archive/parquet/nodestate_schema.go).
SCHEMA = pa.schema([
    ("time_stamp", pa.int64()), ("node_state", pa.string()), ("health_state", pa.string()),
    ("health_metrics", pa.string()), ("cpus_allocated", pa.int32()), ("memory_allocated", pa.int64()),
    ("gpus_allocated", pa.int32()), ("jobs_running", pa.int32()), ("hostname", pa.string()),
    ("cluster", pa.string()), ("subcluster", pa.string()),
])
_SORT = [("cluster", "ascending"), ("subcluster", "ascending"), ("hostname", "ascending"),
         ("time_stamp", "ascending")]


class RetentionSettingsError(ValueError):
    """A `main.nodestate-retention` section that cannot work; the message names the key."""


@dataclass(frozen=True)
class NodeStateRetention:
    """The checked settings: policy, age in hours, and for `move` the target and file size limit."""

    policy: str
    age_hours: int
    target: RetentionPolicy | None
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings: Any) -> NodeStateRetention:
        key = "main.nodestate-retention"
        if settings.policy not in POLICIES:
            raise RetentionSettingsError(f"{key}.policy: {settings.policy!r} is not delete or move")
        if settings.age <= 0:
            raise RetentionSettingsError(f"{key}.age: must be > 0 hours, got {settings.age}")
        mb = settings.max_file_size_mb if settings.max_file_size_mb > 0 else DEFAULT_MAX_FILE_SIZE_MB
        target = None
        if settings.policy == "move":
            if settings.target_kind not in ("file", "s3"):
                raise RetentionSettingsError(f"{key}.target-kind: {settings.target_kind!r} is not file or s3")
            if settings.target_kind == "file" and not settings.target_path:
                raise RetentionSettingsError(f"{key}: policy move to file needs target-path")
            if settings.target_kind == "s3" and not settings.target_bucket:
                raise RetentionSettingsError(f"{key}: policy move to s3 needs target-bucket")
            target = RetentionPolicy(
                policy="move", format="parquet", target_kind=settings.target_kind, target_path=settings.target_path,
                target_endpoint=settings.target_endpoint, target_bucket=settings.target_bucket,
                target_access_key=settings.target_access_key, target_secret_key=settings.target_secret_key,
                target_region=settings.target_region, target_use_path_style=settings.target_use_path_style,
            )
        return cls(settings.policy, settings.age, target, mb * 1024 * 1024)

    def describe(self) -> str:
        where = f" to {self.target.target_kind}" if self.target is not None else ""
        return f"{self.policy}{where}, older than {self.age_hours}h"


def rows_before(engine: Engine, cutoff: int) -> list[dict[str, Any]]:
    """The node-state rows older than `cutoff` with their node's names, in cc-backend's Parquet columns."""
    ns, node = schema.node_state, schema.node
    stmt = (select(ns.c.time_stamp, ns.c.node_state, ns.c.health_state, ns.c.health_metrics, ns.c.cpus_allocated,
                   ns.c.memory_allocated, ns.c.gpus_allocated, ns.c.jobs_running, node.c.hostname, node.c.cluster,
                   node.c.subcluster)
            # Outer: a row whose node row is missing is still moved before it is deleted.
            .outerjoin(node, node.c.id == ns.c.node_id).where(ns.c.time_stamp < cutoff))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def row_size(row: dict[str, Any]) -> int:
    """cc-backend's size estimate of a row (fixed numeric part plus the strings)."""
    strings = ("node_state", "health_state", "health_metrics", "hostname", "cluster", "subcluster")
    return 100 + sum(len(row[k] or "") for k in strings)


def split_rows(rows: Sequence[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Rows in files of at most `max_bytes` by the estimate (a row is never split; one file at least)."""
    files: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        grow = row_size(row)
        if current and size + grow > max_bytes:
            files.append(current)
            current, size = [], 0
        current.append(row)
        size += grow
    if current:
        files.append(current)
    return files


def parquet_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """One zstd Parquet file of rows, sorted as cc-backend sorts them."""
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA).sort_by(_SORT)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def file_names(cutoff: int, count: int) -> list[str]:
    """cc-backend's `cc-nodestate-<date>-<NNN>.parquet`, with the cutoff added: hourly runs of one day
    would otherwise write the same names and replace each other's files."""
    date = time.strftime("%Y-%m-%d", time.gmtime(cutoff))
    return [f"cc-nodestate-{date}-{cutoff}-{n:03d}.parquet" for n in range(1, count + 1)]


class NodeStateRetentionTask:
    """One process's node-state retention: settings, the log to append to, the database to read."""

    def __init__(self, settings: Any, events: EventLog, reader: Engine,
                 caught_up: Callable[[int, float], bool] | None = None) -> None:
        # Checked now: a bad section should stop the start, not fail silently every hour.
        self.config = NodeStateRetention.from_settings(settings)
        self.events = events
        self.reader = reader
        #: Waits until the job database shows the log position (the projection runner's `wait_for`).
        self.caught_up = caught_up

    def describe(self) -> str:
        return self.config.describe()

    def run(self, now: int) -> dict[str, Any] | None:
        """One run: rows older than now - age retired (moved first with `move`); the event's payload,
        or None when there was nothing to retire or the job database was behind the log."""
        cutoff = int(now) - self.config.age_hours * 3600
        if self.caught_up is not None and not self.caught_up(self.events.head(), CATCH_UP_TIMEOUT):
            log.warning("node-state retention skipped: the job database is behind the log")
            return None
        rows = rows_before(self.reader, cutoff)
        if not rows:
            return None
        location = self._move(rows, cutoff) if self.config.target is not None else []
        data = {"before": cutoff, "policy": self.config.policy, "rows": len(rows), "location": location}
        self.events.append([new_event("node.states_retired", SUBJECT, data, source=SOURCE)])
        log.info("node-state retention: %s %d row(s) older than %d", self.config.policy, len(rows), cutoff)
        return data

    def _move(self, rows: Sequence[dict[str, Any]], cutoff: int) -> list[str]:
        assert self.config.target is not None
        chunks = split_rows(rows, self.config.max_file_bytes)
        names = file_names(cutoff, len(chunks))
        target = open_location(self.config.target)
        try:
            for name, chunk in zip(names, chunks, strict=True):
                target.write(name, parquet_bytes(chunk))
        finally:
            target.close()
        return names
