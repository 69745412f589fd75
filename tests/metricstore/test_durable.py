"""`write-mode: durable`: a 2xx from `/api/write/` means fsync'ed, and concurrent writers share the fsync."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers
from api.metricstore_routes import build_metricstore_router
from metricstore.counters import IngestReport
from metricstore.store import MetricStore
from tests.support.server import ccstream_executable, free_port
from tests.support.specs import find_specs
from tests.support.wait import eventually

from .conftest import T0, Keys, make_auth

WRITERS = 8


class GatedFsync:
    """The store's fsync seam: counts calls, and holds the first one until released, so that the other
    writers queue up behind it (the situation group commit is for) without any timing."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(30), "the test never released the first fsync"
        os.fsync(fd)


def test_concurrent_durable_writers_share_one_fsync(make_store: Callable[..., MetricStore]) -> None:
    fsync = GatedFsync()
    store = make_store({"write-mode": "durable", "flush-interval": "1h"}, fsync=fsync)
    store.start()
    done: list[IngestReport] = []
    ingested = threading.Semaphore(0)

    def write(k: int) -> None:
        report = store.ingest_lines(f"cpu_load,cluster=fritz,hostname=f{101 + k:04d} value={k} {T0}\n".encode())
        ingested.release()
        store.wait_durable(report)
        done.append(report)

    try:
        first = threading.Thread(target=write, args=(0,))
        first.start()
        assert fsync.entered.wait(30), "the first durable write never reached fsync"
        others = [threading.Thread(target=write, args=(k,)) for k in range(1, WRITERS)]
        for thread in others:
            thread.start()
        for _ in range(WRITERS):
            assert ingested.acquire(timeout=30)
        assert not done, "a durable write returned before its fsync"
        fsync.release.set()
        for thread in [first, *others]:
            thread.join(30)
        assert len(done) == WRITERS and all(r.accepted == 1 for r in done)
        # One fsync for the first writer, one shared by the seven that queued behind it.
        assert fsync.calls == 2
        assert store.stats()["wal_fsyncs"] == 2
        assert store.wal is not None and store.wal.durable >= max(r.wal_mark for r in done)
    finally:
        fsync.release.set()
        store.close()


def test_buffered_write_does_not_wait_for_fsync(make_store: Callable[..., MetricStore]) -> None:
    fsync = GatedFsync()
    store = make_store({"flush-interval": "1h"}, fsync=fsync)
    store.start()
    try:
        report = store.ingest_lines(f"cpu_load,cluster=fritz,hostname=f0101 value=1 {T0}\n".encode())
        assert report.accepted == 1 and fsync.calls == 0 and store.stats()["write_mode"] == "buffered"
    finally:
        fsync.release.set()
        store.close()


@pytest.fixture
def durable_store_dir(tmp_path: Path) -> tuple[Path, str]:
    """A `ccstream init`ed directory whose metric store is durable and never flushes or snapshots by itself
    (1 h intervals): whatever survives a kill -9 is there because the 2xx waited for its fsync."""
    exe = ccstream_executable()
    subprocess.run([exe, "init"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    (tmp_path / "var" / "job-archive" / "fritz").mkdir(parents=True)
    shutil.copy(find_specs() / "archive" / "fritz" / "cluster.json", tmp_path / "var/job-archive/fritz/cluster.json")
    config = json.loads((tmp_path / "config.json").read_text())
    config["metric-store"] = {"write-mode": "durable", "flush-interval": "1h",
                              "checkpoints": {"interval": "1h", "directory": str(tmp_path / "ckpt")}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    subprocess.run([exe, "add-user", "collector:api:pw"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    token = subprocess.run([exe, "jwt", "collector"], cwd=tmp_path, check=True, capture_output=True, text=True,
                           timeout=120).stdout.strip()
    return tmp_path, token


def _start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([ccstream_executable(), "--log-level", "warning", "metricstore", "--addr",
                             f"127.0.0.1:{port}"], cwd=directory, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _ready(base: str, headers: dict[str, str], proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the metric store exited"
    try:
        return httpx.get(f"{base}/api/debug/", headers=headers).status_code == 200
    except httpx.TransportError:
        return False


def test_kill_9_after_a_durable_2xx_loses_nothing(durable_store_dir: tuple[Path, str]) -> None:
    directory, token = durable_store_dir
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    batches, hosts = 40, 10
    base_time = int(time.time()) // 60 * 60 - 60 * batches
    proc = _start(directory, port)
    try:
        eventually(lambda: _ready(base, headers, proc), timeout=60)
        with httpx.Client(headers=headers) as client:
            for k in range(batches):
                body = "".join(f"cpu_load,cluster=fritz,hostname=f{101 + h:04d},type=node value={k} "
                               f"{base_time + 60 * k}\n" for h in range(hosts))
                answer = client.post(f"{base}/api/write/", content=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["accepted"] == hosts
        os.kill(proc.pid, signal.SIGKILL)  # right after the last 2xx
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    proc = _start(directory, port)
    try:
        eventually(lambda: _ready(base, headers, proc), timeout=60)
        query = {"cluster": "fritz", "from": base_time, "to": base_time + 60 * batches, "with-stats": False,
                 "queries": [{"metric": "cpu_load", "host": f"f{101 + h:04d}"} for h in range(hosts)]}
        answer = httpx.request("GET", f"{base}/api/query/", json=query, headers=headers)
        assert answer.status_code == 200, answer.text
        for h, [result] in enumerate(answer.json()["results"]):
            assert result["data"] == [float(k) for k in range(batches)], f"host {h}: lost acknowledged samples"
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_failing_log_write_in_durable_mode_is_503_and_the_batch_is_retried(
        make_store: Callable[..., MetricStore], keys: Keys) -> None:
    failures = [OSError(5, "Input/output error")]
    calls: list[int] = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if failures:
            raise failures.pop()
        os.fsync(fd)

    store = make_store({"write-mode": "durable", "flush-interval": "1h"}, fsync=fsync)
    store.start()
    try:
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(build_metricstore_router(store, make_auth(keys)))
        http = TestClient(app)
        http.headers["Authorization"] = f"Bearer {keys.token()}"
        body = f"cpu_load,cluster=fritz,hostname=f0101 value=1 {T0}\n"
        failed = http.post("/api/write/", content=body)
        assert failed.status_code == 503
        assert failed.json()["status"] == "Service Unavailable" and "send it again" in failed.json()["error"]
        again = http.post("/api/write/", content=body.replace(" value=1", " value=2"))
        assert again.status_code == 200 and again.json()["accepted"] == 1
        assert len(calls) == 2 and store.wal is not None and store.wal.durable == store.wal.appended
    finally:
        store.close()
