"""The in-memory metric store: series index, ingest of line-protocol batches, and raw reads."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import orjson

from metricstore.block import Block
from metricstore.clusters import Catalogue, MetricInfo
from metricstore.counters import Counters, IngestReport
from metricstore.lineproto import ParsedBatch, parse_fast, parse_lines
from metricstore.ports import Clock, NoRunningJobs, RunningJobHosts, system_clock
from metricstore.series import LineError, parse_series
from metricstore.settings import MetricStoreSettings
from metricstore.wal import KIND_ROWS, KIND_SAMPLES, WalWriter, encode_samples
from streams.unknownhosts import UnknownHosts

log = logging.getLogger(__name__)

UNKNOWN_METRIC = -1
CACHE_LIMIT = 4_000_000  # raw series strings remembered per default cluster before the cache is reset
FUTURE_TOLERANCE = 600  # seconds a sample may lie ahead of the clock (clock skew between nodes)

Levels = dict[str, tuple[int, int]]  # level -> (block id, row)


class MetricStore:
    """Holds every node's recent series. Thread-safe: one lock guards the index and the buffers;
    parsing happens outside it. Persistence and maintenance live in `persist` and `maintenance`."""

    def __init__(self, settings: MetricStoreSettings, clusters: Iterable[Mapping[str, Any]], *,
                 running_jobs: RunningJobHosts | None = None, clock: Clock = system_clock,
                 monotonic: Callable[[], float] = time.monotonic, fsync: Callable[[int], None] = os.fsync) -> None:
        self.settings = settings
        #: Seconds for the background intervals (flush, cleanup, checkpoints); `clock` is sample time.
        self.monotonic = monotonic
        self.catalogue = Catalogue(clusters, settings.metrics)
        self.running_jobs = running_jobs or NoRunningJobs()
        self.clock = clock
        self.fsync = fsync  # the write-ahead log's fsync (a seam: tests count the calls)
        self.lock = threading.RLock()
        self.blocks: list[Block] = []
        self.keys: list[list[tuple[str, str, str]]] = []  # per block, per row: (host, level, metric)
        self.index: dict[str, dict[str, dict[str, Levels]]] = {}  # cluster -> host -> metric -> levels
        self.counters = Counters()
        #: Hosts whose lines are stored although no subcluster nodelist of their cluster lists them.
        self.unknown_hosts = UnknownHosts("metric store")
        self._outside: list[bytearray] = []  # per block, per row: 1 when the row's host is outside the nodelists
        self._outside_rows: list[int] = []  # per block: how many such rows (0: nothing to count)
        self.wal: WalWriter | None = None
        self._block_ids: dict[tuple[str, int], int] = {}
        self._cache: dict[str | None, dict[str, int]] = {}
        self._errors: list[LineError] = []
        self._runtime: Any = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Restore from disk, open the write-ahead log and start the background thread."""
        from metricstore.background import Runtime

        if self._runtime is None:
            self._runtime = Runtime(self)
            self._runtime.start()

    def close(self) -> None:
        """Stop the background thread after a final WAL flush (a snapshot is not needed: the WAL has it)."""
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None

    def free(self, selectors: list[list[str]], to: int) -> int:
        """Free the selected series' data older than `to` (logged to the WAL); returns buffers freed."""
        from metricstore.background import free_logged

        return free_logged(self, selectors, to)

    def checkpoint(self) -> None:
        """Take a snapshot now (normally the background thread does, every `checkpoints.interval`)."""
        if self._runtime is None:
            raise RuntimeError("checkpoint needs a started store")
        self._runtime.snapshot()

    def maintain(self) -> None:
        """Apply retention and the memory cap now (normally every `cleanup.interval`)."""
        if self._runtime is not None:
            self._runtime.maintain()
            return
        from metricstore.maintenance import apply_memory_cap, apply_retention

        with self.lock:
            apply_retention(self, archive=False)
            apply_memory_cap(self, self.settings.memory_cap_bytes, archive=False)

    def flush(self) -> None:
        """Write the pending WAL records now."""
        if self.wal is not None:
            self.wal.flush()

    # ----------------------------------------------------------------- index
    def block_id(self, cluster: str, frequency: int) -> int:
        """The block for (cluster, frequency), created on first use."""
        key = (cluster, frequency)
        bid = self._block_ids.get(key)
        if bid is None:
            bid = self._block_ids[key] = len(self.blocks)
            self.blocks.append(Block(cluster, frequency, self.settings.retention_seconds))
            self.keys.append([])
            self._outside.append(bytearray())
            self._outside_rows.append(0)
        return bid

    def define_row(self, cluster: str, frequency: int, host: str, level: str, metric: str) -> tuple[int, int]:
        """(block id, row) of a series, creating it if new. Caller holds the lock."""
        levels = self.index.setdefault(cluster, {}).setdefault(host, {}).setdefault(metric, {})
        found = levels.get(level)
        if found is not None:
            return found
        bid = self.block_id(cluster, frequency)
        row = self.blocks[bid].add_rows(1)
        self.keys[bid].append((host, level, metric))
        outside = self.catalogue.outside_nodelists(cluster, host)
        self._outside[bid].append(outside)
        self._outside_rows[bid] += outside
        levels[level] = (bid, row)
        return bid, row

    def metric_info(self, cluster: str, metric: str) -> MetricInfo | None:
        return self.catalogue.metric(cluster, metric)

    def _resolve(self, raw: str, default_cluster: str | None, new_rows: list[list[Any]]) -> int:
        """Code of a series string: >= 0 is (block << 32 | row), -1 an unknown metric, below that an error."""
        try:
            key = parse_series(raw, default_cluster)
        except LineError as exc:
            return self._error_code(exc)
        if not self.catalogue.knows_cluster(key.cluster):
            return self._error_code(LineError("unknown_cluster",
                                              f"unknown cluster {key.cluster!r} (no cluster.json, no metrics)"))
        info = self.catalogue.metric(key.cluster, key.metric)
        if info is None:
            return UNKNOWN_METRIC
        known = self.index.get(key.cluster, {}).get(key.host, {}).get(key.metric, {}).get(key.level)
        if known is not None:
            bid, row = known
        else:
            bid, row = self.define_row(key.cluster, info.frequency, key.host, key.level, key.metric)
            new_rows.append([bid, key.cluster, info.frequency, row, key.host, key.level, key.metric])
        return (bid << 32) | row

    def _error_code(self, exc: LineError) -> int:
        self._errors.append(exc)
        return -1 - len(self._errors)

    def _codes(self, batch: ParsedBatch, default_cluster: str | None) -> np.ndarray:
        """One code per entry of `batch.series`, from the cache of known series strings when possible."""
        cache = self._cache.get(default_cluster)
        if cache is None or len(cache) > CACHE_LIMIT or len(self._errors) > CACHE_LIMIT:
            if len(self._errors) > CACHE_LIMIT:
                self._cache, self._errors = {}, []
            cache = self._cache[default_cluster] = {}
        codes: list[int | None] = list(map(cache.get, batch.series))
        if None in codes:
            new_rows: list[list[Any]] = []
            for i, code in enumerate(codes):
                if code is None:
                    raw = batch.series[i]
                    code = cache.get(raw)
                    if code is None:
                        code = cache[raw] = self._resolve(raw, default_cluster, new_rows)
                    codes[i] = code
            if new_rows and self.wal is not None:
                self.wal.append(KIND_ROWS, orjson.dumps(new_rows))
        return np.array(codes, dtype=np.int64)

    # ----------------------------------------------------------------- ingest
    def ingest_lines(self, data: bytes, default_cluster: str | None = None) -> IngestReport:
        """Store a batch of line protocol. Bad lines are reported with their numbers; the rest is kept."""
        now = int(self.clock())
        batch = parse_fast(data) or parse_lines(data, now)
        with self.lock:
            codes = self._codes(batch, default_cluster)
            if batch.lines is None and codes.size and (
                    codes.min() < UNKNOWN_METRIC or batch.times.max() > now + FUTURE_TOLERANCE):
                batch = parse_lines(data, now)  # only the per-line parser knows line numbers
                codes = self._codes(batch, default_cluster)
            report = self._store_batch(batch, codes, now)
            if self.wal is not None:
                report.wal_mark = self.wal.appended
        self.counters.add_report(report)
        return report

    def wait_durable(self, report: IngestReport) -> None:
        """Block until the batch's write-ahead log records are fsync'ed (the `durable` write mode); the
        fsync is shared with every batch logged meanwhile. Raises OSError/WalClosed when that fails."""
        wal = self.wal
        if wal is not None and report.wal_mark:
            wal.wait_durable(report.wal_mark)

    def _store_batch(self, batch: ParsedBatch, codes: np.ndarray, now: int) -> IngestReport:
        report = IngestReport(errors=list(batch.errors))
        if len(batch.values) == 0:
            return report
        per_sample = codes[batch.series_idx]
        bad = per_sample < UNKNOWN_METRIC
        if bad.any():
            assert batch.lines is not None
            for i in np.nonzero(bad)[0]:
                err = self._errors[-2 - int(per_sample[i])]
                report.errors.append((int(batch.lines[i]), err.reason, str(err)))
        unknown = per_sample == UNKNOWN_METRIC
        if unknown.any():
            report.dropped_unknown_metric = int(np.count_nonzero(unknown))
            for s in np.unique(batch.series_idx[unknown]):
                report.unknown_metrics.add(batch.series[s].split(",", 1)[0])
        good = per_sample >= 0
        future = batch.times > now + FUTURE_TOLERANCE
        if future.any():
            for i in np.nonzero(future & good)[0]:
                line = int(batch.lines[i]) if batch.lines is not None else 0
                report.errors.append((line, "future_timestamp",
                                      f"timestamp {int(batch.times[i])} is more than {FUTURE_TOLERANCE}s ahead"))
            good &= ~future
        if good.all():
            self._write(per_sample, batch.times, batch.values.astype(np.float32), report)
        else:
            self._write(per_sample[good], batch.times[good], batch.values[good].astype(np.float32), report)
        report.errors.sort()
        return report

    def _write(self, codes: np.ndarray, times: np.ndarray, values: np.ndarray, report: IngestReport) -> None:
        if codes.size == 0:
            return
        bids = codes >> 32
        rows = codes & 0xFFFFFFFF
        lo, hi = int(bids.min()), int(bids.max())
        if lo == hi:
            self._count_outside(lo, rows)
            self.write_samples(lo, rows, times, values, report)
            return
        for bid in np.unique(bids).tolist():
            sel = bids == bid
            self._count_outside(int(bid), rows[sel])
            self.write_samples(int(bid), rows[sel], times[sel], values[sel], report)

    def _count_outside(self, bid: int, rows: np.ndarray) -> None:
        """Count the samples of hosts outside their cluster's nodelists, per host (free when there are none)."""
        if not self._outside_rows[bid]:
            return
        flags = np.frombuffer(self._outside[bid], np.uint8)
        hit = rows[flags[rows] == 1]
        if not hit.size:
            return
        cluster, keys = self.blocks[bid].cluster, self.keys[bid]
        per_host: dict[str, int] = {}
        found, counts = np.unique(hit, return_counts=True)
        for row, count in zip(found.tolist(), counts.tolist(), strict=True):
            host = keys[row][0]
            per_host[host] = per_host.get(host, 0) + count
        for host, count in per_host.items():
            self.unknown_hosts.record(cluster, host, count)

    def write_samples(self, bid: int, rows: np.ndarray, times: np.ndarray, values: np.ndarray,
                      report: IngestReport | None = None) -> None:
        """Write resolved samples to a block and log them; also the replay and bulk-load entry point."""
        block = self.blocks[bid]
        result = block.write(rows, block.slots_for(rows, times), values)
        if self.wal is not None:
            self.wal.append(KIND_SAMPLES, encode_samples(bid, rows, times, values))
        if report is not None:
            report.accepted += result.accepted
            report.dropped_old += result.too_old

    # ----------------------------------------------------------------- reads
    def levels(self, cluster: str, host: str, metric: str) -> Levels | None:
        return self.index.get(cluster, {}).get(host, {}).get(metric)

    def hosts(self, cluster: str) -> list[str]:
        """Hosts that ever sent data for the cluster, sorted (taken under the lock: ingest adds hosts)."""
        with self.lock:
            return sorted(self.index.get(cluster, {}))

    def first_slots(self, bid: int, rows: np.ndarray, start: int) -> np.ndarray:
        """Each row's slot holding time `start` (rows differ by their phase)."""
        block = self.blocks[bid]
        f = block.frequency
        return (start - np.maximum(block.phase[rows], 0) + f // 2) // f

    def steps(self, bid: int, rows: np.ndarray, start: int, stop: int) -> int:
        """How many values per row `read` gives for start, start+f, ... < stop: cut after the newest slot."""
        block = self.blocks[bid]
        steps = max(0, -(-(stop - start) // block.frequency))
        if block.head < 0:
            return 0
        if len(rows):
            steps = min(steps, max(0, int(block.head - self.first_slots(bid, rows, start).min()) + 1))
        return steps

    def read(self, bid: int, rows: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, int]:
        """Values of `rows` at start, start+f, ... < stop, cut after the block's newest slot.
        Returns (2-D float32 array, number of steps). Caller holds the lock."""
        steps = self.steps(bid, rows, start, stop)
        return self.blocks[bid].read(rows, self.first_slots(bid, rows, start), steps), steps

    def head_slot(self, cluster: str, frequency: int) -> int | None:
        """The newest slot written for the cluster at this frequency; None when it has no data."""
        with self.lock:
            bid = self._block_ids.get((cluster, frequency))
            head = -1 if bid is None else self.blocks[bid].head
        return None if head < 0 else head

    def last_seen(self, bid: int, rows: np.ndarray) -> np.ndarray:
        """Unix time of each row's newest sample (-1 when it never had one)."""
        block = self.blocks[bid]
        last = block.last[rows]
        return np.where(last >= 0, last * block.frequency + np.maximum(block.phase[rows], 0), -1)

    # ----------------------------------------------------------------- observability
    def memory_bytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    def stats(self) -> dict[str, Any]:
        """Counters and gauges as a plain dict (mounted by the admin endpoint and /api/debug/)."""
        with self.lock:
            gauges = {
                "memory_bytes": self.memory_bytes(),
                "series": sum(b.nrows for b in self.blocks),
                "chunks": sum(len(b.chunks) for b in self.blocks),
                "blocks": len(self.blocks),
                "hosts": sum(len(h) for h in self.index.values()),
                "clusters": sorted(self.index),
                "write_mode": self.settings.write_mode,
                "wal_fsyncs": self.wal.fsyncs if self.wal is not None else 0,
            }
        gauges["unknown_hosts"] = self.unknown_hosts.snapshot()
        return {**self.counters.as_dict(), **gauges}
