"""Snapshots + write-ahead log: restore after close, after a torn record, and after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from metricstore.store import MetricStore
from metricstore.wal import list_segments
from tests.metricstore import crash_writer
from tests.metricstore.conftest import T0

ROOT = Path(__file__).resolve().parents[2]


def series(store: MetricStore, cluster: str, host: str, metric: str, level: str, start: int, stop: int) -> list:
    bid, row = store.levels(cluster, host, metric)[level]
    values, _ = store.read(bid, np.array([row]), start, stop)
    return [None if np.isnan(v) else float(v) for v in values[0]]


def lines(k0: int, k1: int) -> bytes:
    out = []
    for k in range(k0, k1):
        out.append(f"cpu_load,cluster=fritz,hostname=f0649 value={k} {T0 + 60 * k}")
        out += [f"flops_any,cluster=fritz,hostname=f0649,type=hwthread,type-id={h} value={h * k} {T0 + 60 * k}"
                for h in range(4)]
    return ("\n".join(out) + "\n").encode()


def test_restore_from_snapshot_and_wal(make_store, clock) -> None:
    clock.now = T0 + 6000
    store = make_store()
    store.start()
    store.ingest_lines(lines(0, 50))
    store.checkpoint()
    store.ingest_lines(lines(50, 90))
    store.ingest_lines(b"cpu_load,cluster=fritz,hostname=f0650 value=7 1675954380\n")  # a row after the snapshot
    assert store.free([["fritz", "f0649", "hwthread3"]], T0 + 60 * 95) > 0
    before = {lvl: series(store, "fritz", "f0649", "flops_any", lvl, T0, T0 + 60 * 90)
              for lvl in ("hwthread0", "hwthread3")}
    store.close()

    again = make_store()
    again.start()
    try:
        assert series(again, "fritz", "f0649", "cpu_load", "", T0, T0 + 60 * 90) == [float(k) for k in range(90)]
        for lvl, values in before.items():
            assert series(again, "fritz", "f0649", "flops_any", lvl, T0, T0 + 60 * 90) == values
        assert all(v is None for v in before["hwthread3"])
        assert series(again, "fritz", "f0650", "cpu_load", "", T0, T0 + 60) == [7.0]
        assert again.stats()["wal_replayed_records"] > 0
    finally:
        again.close()


def test_torn_last_record_is_ignored(make_store, tmp_path: Path) -> None:
    store = make_store()
    store.start()
    store.ingest_lines(lines(0, 3))
    store.close()
    (_seq, last), *_ = reversed(list_segments(tmp_path / "checkpoints"))
    intact = last.read_bytes()
    store = make_store()
    store.start()
    store.ingest_lines(lines(3, 4))
    store.close()
    (_seq, newest), *_ = reversed(list_segments(tmp_path / "checkpoints"))
    data = newest.read_bytes()
    newest.write_bytes(data[:-7])  # the last record loses its tail, as in a crash mid-write
    restored = make_store()
    restored.start()
    try:
        assert restored.stats()["wal_torn_bytes"] > 0
        assert series(restored, "fritz", "f0649", "cpu_load", "", T0, T0 + 240)[:3] == [0.0, 1.0, 2.0]
        assert intact  # earlier segment untouched
    finally:
        restored.close()


def test_kill_9_loses_at_most_one_flush_interval(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    base = int(time.time()) - 3000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "tests.metricstore.crash_writer", str(directory), str(base)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    acks: list[tuple[int, float]] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            k, t = line.split()
            acks.append((int(k), float(t)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + 30
    while time.time() < deadline and (not acks or acks[-1][1] - acks[0][1] < 3.5):
        time.sleep(0.05)
    assert acks, "the writer never acknowledged a batch"
    os.kill(child.pid, signal.SIGKILL)
    killed_at = time.time()
    child.wait()
    reader.join(timeout=5)
    assert any((directory / p).is_dir() for p in os.listdir(directory) if p.startswith("snapshot-"))

    store = MetricStore(crash_writer.settings(str(directory)), [])
    store.start()
    try:
        must_have = [k for k, t in acks if t < killed_at - 1.0 - 0.25]  # flush interval + scheduling slack
        assert len(must_have) > 50
        last = acks[-1][0]
        for host in range(crash_writer.HOSTS):
            got = series(store, "c", f"h{host}", "seq", "", base, base + last + 1)
            missing = [k for k in must_have if got[k] != float(k)]
            assert not missing, f"h{host}: lost {len(missing)} acknowledged samples, first {missing[:5]}"
    finally:
        store.close()
