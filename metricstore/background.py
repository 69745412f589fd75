"""The store's background threads: WAL flushes; retention, memory cap, archive and snapshots."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from metricstore import snapshot
from metricstore.maintenance import Expired, apply_memory_cap, apply_retention, free
from metricstore.parquet import write_archive
from metricstore.wal import KIND_FREE, WalWriter

if TYPE_CHECKING:
    from metricstore.store import MetricStore

log = logging.getLogger(__name__)


class Runtime:
    """Owns the WAL writer and the thread. `start` restores synchronously, so a started store has its data."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self.settings = store.settings
        self.directory = Path(self.settings.checkpoints.directory)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_snapshot = store.monotonic()
        self._last_maintenance = store.monotonic()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        with self.store.lock:
            next_seq, result = snapshot.restore(self.store, self.directory, self.settings.restore_seconds)
            self.store.wal = WalWriter(self.directory, next_seq, self.store.fsync)
        counters = self.store.counters
        counters.set("last_restore_seconds", round(time.perf_counter() - began, 3))
        counters.set("wal_torn_bytes", result.torn_bytes)
        counters.set("wal_replayed_records", result.records)
        if result.torn_bytes:
            log.warning("metric store WAL: ignored a torn tail of %d bytes (crash during a write)",
                        result.torn_bytes)
        # Two threads: the WAL flush must keep its period while a multi-second snapshot is written.
        self._threads = [threading.Thread(target=self._flush_loop, name="metricstore-wal", daemon=True),
                         threading.Thread(target=self._work_loop, name="metricstore-maintenance", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        wal = self.store.wal
        if wal is not None:
            wal.close()
            self.store.wal = None

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.settings.flush_seconds):
            try:
                wal = self.store.wal
                if wal is not None:
                    wal.flush()
            except Exception:  # the thread must survive a failing disk; the error is logged
                log.exception("metric store WAL flush failed")

    def _work_loop(self) -> None:
        while not self._stop.wait(min(1.0, self.settings.flush_seconds)):
            try:
                self.tick()
            except Exception:
                log.exception("metric store background step failed")

    def tick(self) -> None:
        """Maintenance (`cleanup.interval`) and snapshots (`checkpoints.interval`) when they are due."""
        now = self.store.monotonic()
        if now - self._last_maintenance >= self.settings.maintenance_seconds:
            self._last_maintenance = now
            self.maintain()
        if now - self._last_snapshot >= self.settings.snapshot_seconds:
            self._last_snapshot = now
            self.snapshot()

    def maintain(self) -> None:
        """Retention and memory cap under the lock (cheap); the Parquet archive outside it."""
        archive = self.settings.cleanup_mode == "archive"
        with self.store.lock:
            expired = apply_retention(self.store, archive)
            expired += apply_memory_cap(self.store, self.settings.memory_cap_bytes, archive)
        self._archive(expired)

    def _archive(self, expired: list[Expired]) -> None:
        if not expired:
            return
        files, values = write_archive(Path(self.settings.cleanup_directory), expired)
        counters = self.store.counters
        counters.set("archived_files", counters.values["archived_files"] + files)
        counters.set("archived_samples", counters.values["archived_samples"] + values)

    def snapshot(self) -> Path:
        """Rotate the WAL and capture references under the lock, then write without holding it."""
        began = time.perf_counter()
        wal = self.store.wal
        assert wal is not None, "snapshot needs a started store"
        with self.store.lock:
            seq = wal.rotate()
            plan = snapshot.capture(self.store, seq)
        path = snapshot.write_snapshot(self.directory, plan)
        snapshot.remove_older(self.directory, seq)
        self.store.counters.set("last_checkpoint", int(time.time()))
        self.store.counters.set("last_checkpoint_seconds", round(time.perf_counter() - began, 3))
        return path


def free_logged(store: MetricStore, selectors: list[list[str]], to: int) -> int:
    """`/api/free/`: free under the lock and log the call so a restore frees the same data."""
    with store.lock:
        count = free(store, selectors, to)
        if store.wal is not None:
            store.wal.append(KIND_FREE, orjson.dumps({"selectors": selectors, "to": to}))
    return count
