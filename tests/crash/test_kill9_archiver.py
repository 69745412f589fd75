"""Crash the server with kill -9 while it archives: every stopped job is archived exactly once, no file torn."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.server import CcstreamServer

JOBS = 240
HOSTS = [f"f0{n}" for n in range(101, 117)]


def metric_lines(start: int, end: int) -> bytes:
    lines = []
    for t in range(start + 30, end, 60):
        for i, host in enumerate(HOSTS):
            lines.append(f"cpu_load,cluster=fritz,hostname={host},type=node,type-id=0 value={10 + i} {t}")
            lines.append(f"mem_used,cluster=fritz,hostname={host},type=node,type-id=0 value={20 + i} {t}")
            for hw in range(4):
                lines.append(f"flops_any,cluster=fritz,hostname={host},type=hwthread,type-id={hw} value=1.5 {t}")
    return "\n".join(lines).encode()


def archived_counts(server: CcstreamServer) -> Counter[str]:
    conn = sqlite3.connect(f"file:{server.event_db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT subject FROM events WHERE type = 'job.archived'").fetchall()
    finally:
        conn.close()
    return Counter(subject for (subject,) in rows)


def test_archiving_survives_kill_9(tmp_path: Path) -> None:
    now = int(time.time())
    start, stop = now - 3600, now - 600
    with CcstreamServer(tmp_path / "srv") as server:
        server.prepare()
        server.start()
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as http:
            assert http.post("/api/write/?cluster=fritz", content=metric_lines(start, stop)).status_code == 200
            time.sleep(1.5)  # past the metric store's WAL flush interval: these samples survive a crash
            for job in range(JOBS):
                hosts = [HOSTS[(job + k) % len(HOSTS)] for k in range(4)]
                body = {"jobId": 5000 + job, "user": "u", "project": "p", "cluster": "fritz", "numNodes": 4,
                        "startTime": start + job, "walltime": 7200, "resources": [{"hostname": h} for h in hosts]}
                assert http.post("/api/jobs/start_job/", json=body).status_code == 201
        # Stops trigger the archiver; kill the server again and again while it works through them. The
        # stops come in a burst, as a scheduler's end-of-jobs wave does, so the first kill finds the
        # archiver busy.
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60,
                          limits=httpx.Limits(max_connections=16)) as http:

            def stop_job(job: int) -> int:
                stop_body = {"jobId": 5000 + job, "cluster": "fritz", "jobState": "completed", "stopTime": stop}
                return http.post("/api/jobs/stop_job/", json=stop_body).status_code

            with ThreadPoolExecutor(16) as pool:
                assert set(pool.map(stop_job, range(JOBS))) == {200}
        progress = []
        for delay in (0.05, 0.3, 0.2, 0.4, 0.25):
            time.sleep(delay)
            progress.append(len(archived_counts(server)))
            server.restart()
        assert sum(done < JOBS for done in progress) >= 2, f"fewer than two kills came mid-archiving: {progress}"
        deadline = time.monotonic() + 120
        while sum(1 for n in archived_counts(server).values() if n) < JOBS:
            assert time.monotonic() < deadline, f"not all jobs archived: {len(archived_counts(server))}"
            time.sleep(0.5)
        counts = archived_counts(server)
        assert len(counts) == JOBS and set(counts.values()) == {1}, "every job archived exactly once"

        archive = server.workdir / "var" / "job-archive" / "fritz"
        metas = sorted(archive.glob("*/*/*/meta.json"))
        assert len(metas) == JOBS
        for meta_path in metas:
            meta = json.loads(meta_path.read_text())  # a torn file would not parse
            assert meta["monitoringStatus"] == 3 and meta["statistics"]["cpu_load"]["avg"] > 0
            data_path = meta_path.with_name("data.json.gz")
            raw = gzip.decompress(data_path.read_bytes()) if data_path.exists() else \
                meta_path.with_name("data.json").read_bytes()
            assert "cpu_load" in json.loads(raw)
        leftovers = [p for p in archive.rglob("*") if p.is_file() and p.name not in
                     ("meta.json", "data.json", "data.json.gz", "cluster.json")]
        # A killed writer can leave a hidden temp file behind; it is never read as data.
        assert all(p.name.startswith(".") for p in leftovers), leftovers
