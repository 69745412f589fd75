"""Retention (sparing hosts of running jobs), the memory cap, and the Parquet archive round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from metricstore.parquet import read_archive
from metricstore.ports import StaticRunningJobHosts
from metricstore.store import MetricStore
from tests.metricstore.conftest import T0
from tests.support.wait import eventually


def fill_hours(store: MetricStore, hours: int, hosts: tuple[str, ...] = ("f0649", "f0650")) -> None:
    for k in range(hours * 60):
        ts = T0 + 60 * k
        body = "".join(f"cpu_load,cluster=fritz,hostname={h} value={k} {ts}\n"
                       f"mem_bw,cluster=fritz,hostname={h},type=socket,type-id=1 value={k / 2} {ts}\n"
                       for h in hosts)
        assert store.ingest_lines(body.encode()).accepted == 2 * len(hosts)


def present(store: MetricStore, host: str, start: int, stop: int) -> int:
    bid, row = store.levels("fritz", host, "cpu_load")[""]
    values, _ = store.read(bid, np.array([row]), start, stop)
    return int(np.count_nonzero(~np.isnan(values)))


def test_retention_keeps_hosts_of_running_jobs_and_archives(make_store, clock, tmp_path: Path) -> None:
    clock.now = T0 + 6 * 3600
    running = StaticRunningJobHosts({"fritz": {"f0649"}})
    store = make_store({"retention-in-memory": "2h", "cleanup": {"mode": "archive",
                                                                 "directory": str(tmp_path / "archive")}},
                       running_jobs=running)
    store.start()
    try:
        fill_hours(store, 6)
        store.maintain()
        assert present(store, "f0649", T0, T0 + 6 * 3600) == 6 * 60  # running job: everything kept
        kept = present(store, "f0650", T0, T0 + 6 * 3600)
        assert 2 * 60 <= kept <= 3 * 60  # the window plus at most one partly expired chunk
        assert store.stats()["chunks_freed_by_reason"].get("retention_partial", 0) > 0
        running.hosts["fritz"] = set()  # the job ended
        store.maintain()
        assert present(store, "f0649", T0, T0 + 6 * 3600) == kept
        table = read_archive(tmp_path / "archive")
        assert store.stats()["archived_samples"] == table.num_rows > 0
    finally:
        store.close()
    assert table.column_names == ["cluster", "hostname", "metric", "scope", "scope_id", "timestamp",
                                  "frequency", "value"]
    rows = table.to_pylist()
    cpu = [r for r in rows if r["hostname"] == "f0650" and r["metric"] == "cpu_load"]
    assert cpu[0] == {"cluster": "fritz", "hostname": "f0650", "metric": "cpu_load", "scope": "node",
                      "scope_id": "", "timestamp": T0, "frequency": 60, "value": 0.0}
    assert [r["value"] for r in cpu] == [float(k) for k in range(len(cpu))]  # sorted by time, no gaps
    mem = [r for r in rows if r["metric"] == "mem_bw"]
    assert {(r["scope"], r["scope_id"]) for r in mem} == {("socket", "1")}
    # each archived value equals what was ingested at its timestamp
    assert all(r["value"] == (r["timestamp"] - T0) / 60 / 2 for r in mem)
    files = sorted((tmp_path / "archive" / "fritz").glob("*.parquet"))
    assert files and pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_memory_cap_frees_the_oldest_first(make_store, clock) -> None:
    clock.now = T0 + 6 * 3600
    store = make_store({"memory-cap": 0.0001})  # ~107 kB: a handful of chunks
    fill_hours(store, 6, hosts=tuple(f"h{i}" for i in range(40)))
    before = store.memory_bytes()
    store.maintain()
    after = store.memory_bytes()
    assert after < before and after <= store.settings.memory_cap_bytes
    assert store.stats()["chunks_freed_by_reason"]["memory_cap"] > 0
    assert present(store, "h0", T0, T0 + 3600) == 0  # oldest hour gone
    assert present(store, "h0", T0 + 5 * 3600, T0 + 6 * 3600) == 60  # newest kept


def test_cleanup_and_checkpoint_intervals_drive_the_background_thread(make_store, clock, tmp_path: Path) -> None:
    """Nothing but the background thread runs maintenance and snapshots here; its clock is the test's."""
    clock.now = T0 + 6 * 3600
    ticks = [0.0]
    store = make_store({"retention-in-memory": "2h", "cleanup": {"mode": "delete", "interval": "5m"},
                        "checkpoints": {"directory": str(tmp_path / "checkpoints"), "interval": "30m"}},
                       monotonic=lambda: ticks[0])
    store.start()
    try:
        fill_hours(store, 6)
        assert present(store, "f0650", T0, T0 + 6 * 3600) == 6 * 60
        ticks[0] = 5 * 60.0  # cleanup.interval passed: retention runs in the background
        eventually(lambda: present(store, "f0650", T0, T0 + 6 * 3600) <= 3 * 60, 30, "retention applied")
        # the same step found the checkpoint not due yet
        assert store.stats()["last_checkpoint"] is None
        ticks[0] = 30 * 60.0
        eventually(lambda: store.stats()["last_checkpoint"] is not None, 30, "a snapshot written")
        assert len(list((tmp_path / "checkpoints").glob("snapshot-*"))) == 1
    finally:
        store.close()


def test_legacy_archive_interval_drives_the_cleanup_without_a_cleanup_section() -> None:
    from metricstore.settings import MetricStoreSettings

    legacy = MetricStoreSettings.model_validate({"archive": {"interval": "2h", "directory": "/a"}})
    assert legacy.maintenance_seconds == 7200 and legacy.cleanup_mode == "archive"
    both = MetricStoreSettings.model_validate({"archive": {"interval": "2h"}, "cleanup": {"interval": "10m"}})
    assert both.maintenance_seconds == 600
