"""The in-memory metric store: series index, ingest of line-protocol batches, and raw reads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
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

log = logging.getLogger(__name__)

UNKNOWN_METRIC = -1
CACHE_LIMIT = 4_000_000  # raw series strings remembered per default cluster before the cache is reset
FUTURE_TOLERANCE = 600  # seconds a sample may lie ahead of the clock (clock skew between nodes)

Levels = dict[str, tuple[int, int]]  # level -> (block id, row)


class MetricStore:
    """Holds every node's recent series. Thread-safe: one lock guards the index and the buffers;
    parsing happens outside it. Persistence and maintenance live in `persist` and `maintenance`."""

    def __init__(self, settings: MetricStoreSettings, clusters: Iterable[Mapping[str, Any]], *,
                 running_jobs: RunningJobHosts | None = None, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.catalogue = Catalogue(clusters, settings.metrics)
        self.running_jobs = running_jobs or NoRunningJobs()
        self.clock = clock
        self.lock = threading.RLock()
        self.blocks: list[Block] = []
        self.keys: list[list[tuple[str, str, str]]] = []  # per block, per row: (host, level, metric)
        self.index: dict[str, dict[str, dict[str, Levels]]] = {}  # cluster -> host -> metric -> levels
        self.counters = Counters()
        self.wal: WalWriter | None = None
        self._block_ids: dict[tuple[str, int], int] = {}
        self._cache: dict[str | None, dict[str, int | LineError]] = {}
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

    # ----------------------------------------------------------------- index
    def block_id(self, cluster: str, frequency: int) -> int:
        """The block for (cluster, frequency), created on first use."""
        key = (cluster, frequency)
        bid = self._block_ids.get(key)
        if bid is None:
            bid = self._block_ids[key] = len(self.blocks)
            self.blocks.append(Block(cluster, frequency, self.settings.retention_seconds))
            self.keys.append([])
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
        levels[level] = (bid, row)
        return bid, row

    def metric_info(self, cluster: str, metric: str) -> MetricInfo | None:
        return self.catalogue.metric(cluster, metric)

    def _resolve(self, raw: str, default_cluster: str | None, new_rows: list[list[Any]]) -> int | LineError:
        try:
            key = parse_series(raw, default_cluster)
        except LineError as exc:
            return exc
        if not self.catalogue.knows_cluster(key.cluster):
            return LineError("unknown_cluster", f"unknown cluster {key.cluster!r} (no cluster.json, no metrics)")
        info = self.catalogue.metric(key.cluster, key.metric)
        if info is None:
            return UNKNOWN_METRIC
        known = self.index.get(key.cluster, {}).get(key.host, {}).get(key.metric, {}).get(key.level)
        bid, row = known or self.define_row(key.cluster, info.frequency, key.host, key.level, key.metric)
        if known is None:
            new_rows.append([bid, key.cluster, info.frequency, row, key.host, key.level, key.metric])
        return (bid << 32) | row

    def _codes(self, batch: ParsedBatch, default_cluster: str | None) -> list[int | LineError]:
        cache = self._cache.get(default_cluster)
        if cache is None or len(cache) > CACHE_LIMIT:
            cache = self._cache[default_cluster] = {}
        codes: list[int | LineError | None] = list(map(cache.get, batch.series))
        if None in codes:
            new_rows: list[list[Any]] = []
            for i, code in enumerate(codes):
                if code is None:
                    code = codes[i] = cache[batch.series[i]] = self._resolve(batch.series[i], default_cluster,
                                                                             new_rows)
            if new_rows and self.wal is not None:
                self.wal.append(KIND_ROWS, orjson.dumps(new_rows))
        return codes  # type: ignore[return-value]

    # ----------------------------------------------------------------- ingest
    def ingest_lines(self, data: bytes, default_cluster: str | None = None) -> IngestReport:
        """Store a batch of line protocol. Bad lines are reported with their numbers; the rest is kept."""
        now = int(self.clock())
        batch = parse_fast(data) or parse_lines(data, now)
        with self.lock:
            codes = self._codes(batch, default_cluster)
            if batch.lines is None and any(isinstance(c, LineError) for c in codes):
                batch = parse_lines(data, now)  # only the per-line parser knows line numbers
                codes = self._codes(batch, default_cluster)
            report = self._store_batch(batch, codes, now)
        self.counters.add_report(report)
        return report

    def _store_batch(self, batch: ParsedBatch, codes: list[int | LineError], now: int) -> IngestReport:
        report = IngestReport(errors=list(batch.errors))
        n = len(batch.values)
        if n == 0:
            return report
        code_arr = np.fromiter((c if isinstance(c, int) else -2 for c in codes), np.int64, len(codes))
        per_sample = code_arr[batch.series_idx]
        bad = per_sample == -2
        if bad.any():
            for i in np.nonzero(bad)[0]:
                err = codes[batch.series_idx[i]]
                assert isinstance(err, LineError) and batch.lines is not None
                report.errors.append((int(batch.lines[i]), err.reason, str(err)))
        unknown = per_sample == UNKNOWN_METRIC
        if unknown.any():
            report.dropped_unknown_metric = int(np.count_nonzero(unknown))
            for s in np.unique(batch.series_idx[unknown]):
                report.unknown_metrics.add(batch.series[s].split(",", 1)[0])
        future = batch.times > now + FUTURE_TOLERANCE
        if future.any():
            for i in np.nonzero(future & (per_sample >= 0))[0]:
                line = int(batch.lines[i]) if batch.lines is not None else 0
                report.errors.append((line, "future_timestamp",
                                      f"timestamp {int(batch.times[i])} is more than {FUTURE_TOLERANCE}s ahead"))
        good = (per_sample >= 0) & ~future
        self._write(per_sample[good], batch.times[good], batch.values[good].astype(np.float32), report)
        report.errors.sort()
        return report

    def _write(self, codes: np.ndarray, times: np.ndarray, values: np.ndarray, report: IngestReport) -> None:
        if codes.size == 0:
            return
        bids = codes >> 32
        rows = codes & 0xFFFFFFFF
        lo, hi = int(bids.min()), int(bids.max())
        for bid in ([lo] if lo == hi else np.unique(bids).tolist()):
            sel = None if lo == hi else bids == bid
            r, t, v = (rows, times, values) if sel is None else (rows[sel], times[sel], values[sel])
            self.write_samples(int(bid), r, t, v, report)

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
        """Hosts that ever sent data for the cluster, sorted."""
        return sorted(self.index.get(cluster, {}))

    def read(self, bid: int, rows: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, int]:
        """Values of `rows` at start, start+f, ... < stop, cut after the block's newest slot.
        Returns (2-D float32 array, number of steps)."""
        block = self.blocks[bid]
        f = block.frequency
        steps = max(0, -(-(stop - start) // f))
        phase = np.maximum(block.phase[rows], 0)
        first = (start - phase + f // 2) // f
        if block.head < 0:
            steps = 0
        elif len(rows):
            steps = min(steps, max(0, int(block.head - first.min()) + 1))
        return block.read(rows, first, steps), steps

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
            }
        return {**self.counters.as_dict(), **gauges}
