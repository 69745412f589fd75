"""Typed, frozen settings of the metric store, read from cc-backend's `metric-store` config section."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string such as "24h", "1h30m" or "500ms" (cc-backend's config format)."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}: expected a Go duration like '24h', '30m' or '1h30m'")
    return total


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_duration(value: str | None) -> str | None:
    if value:
        parse_duration(value)
    return value


class _DurationsChecked(_Frozen):
    """Rejects malformed Go durations at load time, naming the bad value."""

    @field_validator("*", mode="after")
    @classmethod
    def _check_durations(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name in _DURATION_FIELDS and isinstance(value, str):
            _check_duration(value)
        return value


_DURATION_FIELDS = {"interval", "restore", "retention_in_memory", "flush_interval", "checkpoint_interval"}


class CheckpointSettings(_DurationsChecked):
    """Where and how often the in-memory data is snapshotted (the write-ahead log covers the gaps)."""

    file_format: Literal["wal", "npy", "json", "avro"] = Field(
        "wal",
        alias="file-format",
        description="Format of the snapshot files. ccstream writes binary snapshots (raw float32 chunks) plus a "
        "write-ahead log, which is what cc-backend's 'wal' format means; 'npy', 'json' and 'avro' are refused at "
        "start.",
    )
    interval: str = Field("1h", description="Time between two snapshots, as a Go duration ('1h', '30m').")
    directory: str = Field("./var/checkpoints", description="Directory for snapshots and the write-ahead log.")
    restore: str = Field(
        "48h", description="On start, restore data this far back from the newest restored sample."
    )


class ArchiveSettings(_DurationsChecked):
    """cc-metric-store's older `archive` section; used when `cleanup` is absent."""

    interval: str = Field("24h", description="How often expired data is archived and retention applied (legacy "
                          "section: used only without `cleanup`).")
    directory: str = Field("./var/archive", description="Where Parquet archives are written (legacy section).")
    delete_instead: bool = Field(
        False, alias="delete-instead", description="Delete expired data instead of archiving it."
    )


class CleanupSettings(_DurationsChecked):
    """What happens to data that leaves memory: archived to Parquet or deleted."""

    mode: Literal["archive", "delete"] = Field(
        "delete", description="'archive' writes expired data to Parquet (zstd) in `directory`; 'delete' drops it."
    )
    directory: str = Field("./var/archive", description="Target directory of the Parquet archive.")
    interval: str = Field(
        "1m", description="How often retention, the memory cap and the archive step are applied."
    )


class NatsSubscription(_Frozen):
    """One NATS subject carrying metric lines."""

    subscribe_to: str = Field(alias="subscribe-to", min_length=1, description="NATS subject to subscribe to.")
    cluster_tag: str | None = Field(
        None, alias="cluster-tag", description="Cluster used for lines without a `cluster` tag."
    )


class NatsConnection(_Frozen):
    """How the standalone metric store reaches NATS (in `ccstream serve` the top-level `nats` section)."""

    address: str = Field("nats://127.0.0.1:4222", description="NATS server URL.")
    username: str | None = Field(None, description="NATS user name.")
    password: str | None = Field(None, description="NATS password.")
    creds_file_path: str | None = Field(None, alias="creds-file-path", description="NATS credentials file.")


class MetricDefinition(_Frozen):
    """A metric of the standalone config (cc-metric-store's `metrics` section)."""

    frequency: int = Field(gt=0, description="Sampling interval in seconds (the buffer's slot width).")
    aggregation: Literal["sum", "avg", ""] | None = Field(
        None, description="How child levels are combined: 'sum', 'avg' or none (null / '')."
    )


class MetricStoreSettings(_DurationsChecked):
    """The `metric-store` section of config.json (cc-backend keys plus ccstream's `metrics`, `flush-interval`)."""

    checkpoints: CheckpointSettings = Field(
        default_factory=CheckpointSettings, description="Snapshot settings."
    )
    archive: ArchiveSettings | None = Field(None, description="Legacy archive section (use `cleanup`).")
    cleanup: CleanupSettings = Field(
        default_factory=CleanupSettings, description="Fate of expired data."
    )
    memory_cap: float = Field(
        0, alias="memory-cap", ge=0, description="Upper bound of buffer memory in GB; 0 means unlimited."
    )
    retention_in_memory: str = Field(
        "48h", alias="retention-in-memory", description="How long samples stay in memory (hosts of "
        "running jobs are kept longer)."
    )
    num_workers: int = Field(
        0, alias="num-workers", ge=0, description="cc-metric-store's concurrent workers "
        "for snapshot and archive files (0: its automatic choice). ccstream writes them with one background "
        "thread, so only 0 is accepted."
    )
    nats_subscriptions: tuple[NatsSubscription, ...] = Field(
        (), alias="nats-subscriptions", description="NATS subjects carrying metric lines."
    )
    nats: NatsConnection | None = Field(
        None, description="NATS connection for standalone mode (ccstream serve uses the top-level `nats`)."
    )
    metrics: dict[str, MetricDefinition] = Field(
        default_factory=dict, description="Metrics for clusters without a cluster.json (standalone mode)."
    )
    flush_interval: str = Field(
        "1s", alias="flush-interval", description="How often the write-ahead log is written and fsync'd: "
        "in the default `write-mode: buffered`, the most a kill -9 can lose."
    )
    write_mode: Literal["buffered", "durable"] = Field(
        "buffered", alias="write-mode", description="What a 2xx from `/api/write/` promises. 'buffered' "
        "(the default, as cc-metric-store): the samples are in memory and reach the write-ahead log within "
        "one `flush-interval`, so a kill -9 or power loss can lose the last interval. 'durable': the answer "
        "waits until the batch's write-ahead log records are written and fsync'ed; concurrent requests share "
        "one fsync (group commit). NATS metric lines are fire-and-forget in both modes (core NATS has no "
        "acknowledgement to delay) and reach the log within one `flush-interval`."
    )
    checkpoint_interval: str | None = Field(
        None, alias="checkpoint-interval", description="cc-backend's newer spelling of checkpoints.interval."
    )
    max_write_bytes: int = Field(
        256 * 1024 * 1024, alias="max-write-bytes", ge=1, description="Largest body of `/api/write/` (one "
        "batch of line protocol); a larger one is refused with 413 naming this setting, before it is read."
    )
    max_points_per_series: int = Field(
        1_000_000, alias="max-points-per-series", ge=1, description="Most points one series of a `/api/query/` "
        "answer may have (after resampling to the query's resolution); a query asking for more is refused with "
        "400 naming this setting. A year at 60 s is 525,600 points. Answers are written series by series, so "
        "this bounds the memory one query takes."
    )
    max_points_per_request: int = Field(
        50_000_000, alias="max-points-per-request", ge=1, description="Most points all series of one "
        "`/api/query/` request may have together (400 above): bounds the work of one request. A 1,000-node "
        "job's 24 h of 25 metrics at 60 s is 36 M."
    )

    @property
    def durable_writes(self) -> bool:
        """Whether `/api/write/` answers only after an fsync of the batch's log records."""
        return self.write_mode == "durable"

    @property
    def retention_seconds(self) -> int:
        """Retention window in whole seconds."""
        return max(1, int(parse_duration(self.retention_in_memory)))

    @property
    def flush_seconds(self) -> float:
        """WAL flush interval in seconds."""
        return max(0.001, parse_duration(self.flush_interval))

    @property
    def snapshot_seconds(self) -> float:
        """Snapshot interval in seconds."""
        return parse_duration(self.checkpoint_interval or self.checkpoints.interval)

    @property
    def restore_seconds(self) -> float:
        """How far back a restore goes."""
        return parse_duration(self.checkpoints.restore)

    @property
    def cleanup_mode(self) -> str:
        """'archive' or 'delete', honouring the legacy `archive.delete-instead`."""
        if self.archive is not None and "cleanup" not in self.model_fields_set:
            return "delete" if self.archive.delete_instead else "archive"
        return self.cleanup.mode

    @property
    def cleanup_directory(self) -> str:
        """Directory of the Parquet archive."""
        if self.archive is not None and "cleanup" not in self.model_fields_set:
            return self.archive.directory
        return self.cleanup.directory

    @property
    def maintenance_seconds(self) -> float:
        """How often retention, the memory cap and the archive step run: `cleanup.interval`, or the legacy
        `archive.interval` when only the legacy section is given (as for its mode and directory)."""
        if self.archive is not None and "cleanup" not in self.model_fields_set:
            return max(1.0, parse_duration(self.archive.interval))
        return max(1.0, parse_duration(self.cleanup.interval))

    @property
    def memory_cap_bytes(self) -> int:
        """The memory cap in bytes (0 = unlimited)."""
        return int(self.memory_cap * 1024**3)


class ExternalMetricStore(BaseModel):
    """One entry of cc-backend's `metric-store-external`: which clusters/subclusters it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    scope: str = Field("*", description="Cluster or subcluster name served by this store, or '*' for any.")
    url: str = Field(description="Base URL, e.g. http://host:8082 (the API lives under /api/).")
    token: str = Field("", description="JWT sent as `Authorization: Bearer`.")
