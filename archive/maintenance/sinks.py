"""Writing retired jobs to the target, and saying which jobs are safely there (so a move may delete them).

A sink answers `add` and `close` with the keys whose copy is complete and verified. The JSON sink
verifies each job as it goes; the Parquet sink holds rows until a file is full, then writes it, reads
it back and compares, and only then names the file's jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from archive.backends.codec import encode_json
from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.maintenance.parquet import estimate_row_size, job_to_row, parquet_keys, rows_to_parquet
from archive.maintenance.report import MaintenanceReport
from archive.maintenance.targets import Location
from archive.paths import CLUSTER_FILE, JobKey

log = logging.getLogger(__name__)


class Sink(Protocol):
    """A retention target."""

    def add(self, key: JobKey, meta: Mapping[str, Any], data: Mapping[str, Any]) -> list[JobKey]:
        """Take one job; returns the jobs now complete in the target (raises when this job cannot be taken)."""
        ...

    def close(self) -> list[JobKey]:
        """Write what is held; returns the jobs that made it."""
        ...


class JsonSink:
    """Copies jobs into another archive in the same layout (cc-backend's `format: json`)."""

    def __init__(self, source: ArchiveBackend, target: ArchiveBackend) -> None:
        self.source = source
        self.target = target
        self._clusters: set[str] = set()

    def _copy_cluster(self, name: str) -> None:
        # The target should be a usable archive on its own: it needs the cluster.json of its jobs.
        if name in self._clusters:
            return
        self._clusters.add(name)
        try:
            self.target.store_cluster(self.source.load_cluster(name))
        except ArchiveError as exc:
            log.warning("retention: cluster %s: cluster.json not copied: %s", name, exc)

    def add(self, key: JobKey, meta: Mapping[str, Any], data: Mapping[str, Any]) -> list[JobKey]:
        self._copy_cluster(key.cluster)
        self.target.store_job(meta, data)
        if self.target.load_meta(*key) != meta or self.target.load_data(*key) != data:
            raise ArchiveError(f"{self.target!r}: the copy of job {key} reads back different; source kept")
        return [key]

    def close(self) -> list[JobKey]:
        return []


@dataclass
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: list[JobKey] = field(default_factory=list)
    size: int = 0


class ParquetSink:
    """Parquet files per cluster, `<cluster>/cc-archive-<date>-<NNN>.parquet`, each at most `max_bytes` (estimated).

    As cc-backend, each cluster's folder also gets its cluster.json. Unlike cc-backend, a file name
    already taken (a second run on one day) is never overwritten: the counter moves on.
    """

    def __init__(
        self, source: ArchiveBackend, location: Location, max_bytes: int, report: MaintenanceReport,
        *, now: float | None = None, fail: Callable[[JobKey, object], None] | None = None,
    ) -> None:
        self.source = source
        self.location = location
        self.max_bytes = max_bytes
        self.report = report
        #: Called per job of a file that could not be written (the retention run tracks them for its marker).
        self.fail = fail or report.fail
        self.date = time.strftime("%Y-%m-%d", time.localtime(now))
        self._batches: dict[str, _Batch] = {}
        self._counters: dict[str, int] = {}

    def add(self, key: JobKey, meta: Mapping[str, Any], data: Mapping[str, Any]) -> list[JobKey]:
        row = job_to_row(meta, data)
        size = estimate_row_size(row)
        held = self._batches.get(key.cluster)
        done = self._flush(key.cluster) if held and held.rows and held.size + size > self.max_bytes else []
        batch = self._batches.setdefault(key.cluster, _Batch())  # after a flush: a fresh batch
        batch.rows.append(row)
        batch.keys.append(key)
        batch.size += size
        return done

    def close(self) -> list[JobKey]:
        return [key for cluster in sorted(self._batches) for key in self._flush(cluster)]

    def _next_name(self, cluster: str) -> str:
        while True:
            self._counters[cluster] = self._counters.get(cluster, 0) + 1
            name = f"{cluster}/cc-archive-{self.date}-{self._counters[cluster]:03d}.parquet"
            if not self.location.exists(name):
                return name

    def _flush(self, cluster: str) -> list[JobKey]:
        batch = self._batches.pop(cluster, None)
        if batch is None or not batch.rows:
            return []
        name = f"{cluster}/..."
        try:
            if cluster not in self._counters:
                self._write_cluster_json(cluster)
            name = self._next_name(cluster)
            raw = rows_to_parquet(batch.rows)
            self.location.write(name, raw)
            self._verify(name, raw, batch.keys)
        except Exception as exc:  # any failure of this file: its jobs stay in the source, the run goes on
            for key in batch.keys:
                self.fail(key, f"Parquet file {name}: {exc}")
            return []
        self.report.files.append(name)
        log.info("retention: wrote %s (%d jobs, %d bytes)", name, len(batch.keys), len(raw))
        return batch.keys

    def _verify(self, name: str, raw: bytes, keys: list[JobKey]) -> None:
        back = self.location.read(name)
        if back != raw:
            raise ArchiveError(f"{name} reads back different from what was written")
        if sorted(parquet_keys(back)) != sorted(tuple(k) for k in keys):
            raise ArchiveError(f"{name} does not hold exactly the jobs written to it")

    def _write_cluster_json(self, cluster: str) -> None:
        try:
            config = self.source.load_cluster(cluster)
        except ArchiveError as exc:
            log.warning("retention: cluster %s: no cluster.json written: %s", cluster, exc)
            return
        self.location.write(f"{cluster}/{CLUSTER_FILE}", encode_json(config))
