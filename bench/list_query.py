"""Benchmark: build a 1M-job read model from the SQLite log (append + projection speed), then time GET /api/jobs/."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path)
import httpx
from common import Meter, machine_line, median, percentile, print_table

from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.clusters import ClusterRegistry
from streams.events import Event, derived_event_id, job_subject, new_event
from streams.ingest.intake import JobIntake
from streams.ingest.requests import parse_start
from streams.log import MemoryEventLog, SQLiteEventLog
from streams.runtime import AgentRunner
from tests.support.server import FRITZ_MAIN_HOSTS, CcstreamServer

CLUSTERS = ("fritz", "alex", "emmy")
HOSTS = {
    "fritz": FRITZ_MAIN_HOSTS,
    "alex": [f"a0{rack}2{n}" for rack in range(1, 5) for n in range(1, 10)],
    "emmy": [f"w11{n}" for n in range(27, 46)],
}
T0 = 1_600_000_000
STATES = ("completed", "completed", "completed", "failed", "cancelled", "timeout")


def templates(archive: Path) -> dict[str, dict[str, Any]]:
    """One `job.started` payload per cluster, normalised by the real intake (subcluster and defaults)."""
    intake = JobIntake(MemoryEventLog(), ClusterRegistry.load(archive))
    out = {}
    for cluster in CLUSTERS:
        body = {
            "jobId": 1, "user": "u", "project": "p", "cluster": cluster, "partition": "main", "numNodes": 1,
            "numHwthreads": 72, "walltime": 86400, "startTime": T0, "submitTime": T0 - 60,
            "resources": [{"hostname": HOSTS[cluster][0]}], "metaData": {"jobName": "bench"},
        }
        out[cluster] = intake.normalise_start(parse_start(body))
    return out


def job_events(first: int, count: int, running_every: int, tmpl: dict[str, dict[str, Any]]) -> list[Event]:
    """Starts of jobs first..first+count, then the stops of all but every `running_every`-th."""
    starts, stops = [], []
    for i in range(first, first + count):
        cluster = CLUSTERS[i % len(CLUSTERS)]
        start = T0 + i * 3
        data = dict(tmpl[cluster])
        data.update(
            jobId=i, startTime=start, submitTime=start - 60, user=f"user{i % 500}", project=f"proj{i % 100}",
            resources=[{"hostname": HOSTS[cluster][i % len(HOSTS[cluster])]}],
        )
        subject = job_subject(cluster, i, start)
        starts.append(new_event("job.started", subject, data, id=derived_event_id("job.started", subject, i),
                                source="bench", at=float(start)))
        if i % running_every:
            state, duration = STATES[i % len(STATES)], 60 + i % 7200
            stop = {"jobState": state, "stopTime": start + duration, "duration": duration, "parkedStopId": None}
            stops.append(new_event("job.stopped", subject, stop,
                                   id=derived_event_id("job.stopped", subject, state, start + duration),
                                   source="bench", at=float(start + duration)))
    return starts + stops


def build(server: CcstreamServer, jobs: int, batch: int, running_every: int) -> list[list[object]]:
    """Append the events in large batches, then let the projection build job.db; returns table rows."""
    tmpl = templates(server.workdir / "var" / "job-archive")
    log = SQLiteEventLog(server.event_db)
    appended = 0
    try:
        with Meter() as append:
            for first in range(0, jobs, batch):
                events = job_events(first, min(batch, jobs - first), running_every, tmpl)
                log.append(events)
                appended += len(events)
        engine = writer_engine(server.job_db)
        try:
            runner = AgentRunner(log, JobDatabaseProjection(engine))
            with Meter() as project:
                runner.run_until_caught_up()
        finally:
            engine.dispose()
    finally:
        log.close()
    return [
        [f"append (generate + SQLiteEventLog.append, batches of {batch})", appended, append.wall,
         appended / append.wall, append.foreign_cores(append.own_cpu)],
        ["projection replay (AgentRunner + JobDatabaseProjection)", appended, project.wall,
         appended / project.wall, project.foreign_cores(project.own_cpu)],
    ]


QUERIES: list[tuple[str, dict[str, str]]] = [
    ("cluster=fritz&state=running", {"cluster": "fritz", "state": "running"}),
    ("state=running (all clusters)", {"state": "running"}),
    ("cluster=alex&state=completed", {"cluster": "alex", "state": "completed"}),
    ("cluster=emmy (any state)", {"cluster": "emmy"}),
    ("user=user42", {"user": "user42"}),
    ("project=proj10&state=running", {"project": "proj10", "state": "running"}),
    ("start-time window of 1 day", {"start-time": f"{T0 + 1_000_000}-{T0 + 1_086_400}"}),
    ("cluster=fritz&state=running&page=200", {"cluster": "fritz", "state": "running", "page": "200"}),
    ("cluster=fritz&state=running, 100/page", {"cluster": "fritz", "state": "running", "items-per-page": "100"}),
]


def measure(server: CcstreamServer, requests: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as http:
        for n, (label, params) in enumerate(QUERIES):
            count = requests if n == 0 else max(requests // 3, 20)
            for _ in range(5):  # warm the page cache and connection
                http.get("/api/jobs/", params=params).raise_for_status()
            latencies, items = [], 0
            for _ in range(count):
                t = time.perf_counter()
                resp = http.get("/api/jobs/", params=params)
                latencies.append((time.perf_counter() - t) * 1000)
                resp.raise_for_status()
                items = resp.json()["items"]
            rows.append([label, count, items, median(latencies), percentile(latencies, 99), max(latencies)])
    return rows


def count_jobs(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        total = conn.execute("SELECT COUNT(*) FROM job").fetchone()[0]
        running = conn.execute("SELECT COUNT(*) FROM job WHERE job_state = 'running'").fetchone()[0]
    return int(total), int(running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the read model (default 1,000,000)")
    parser.add_argument("--running-every", type=int, default=10, help="every n-th job stays running (default 10)")
    parser.add_argument("--batch", type=int, default=20_000, help="jobs per log append (default 20,000)")
    parser.add_argument("--requests", type=int, default=300, help="requests of the main query (default 300)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the built installation here and reuse it on the next run (default: temporary)")
    args = parser.parse_args()
    print(machine_line())
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="ccstream-bench-")) if temporary else args.workdir
    server = CcstreamServer(workdir / "ccstream")
    try:
        if server.job_db.exists() and count_jobs(server.job_db)[0] >= args.jobs:
            server.token = server._cli("jwt", "admin").strip().splitlines()[-1]
            print(f"reusing the read model in {server.workdir}")
        else:
            if server.workdir.exists():
                shutil.rmtree(server.workdir)
            server.prepare(CLUSTERS)
            print(f"building {args.jobs:,} jobs in {server.workdir} ...", flush=True)
            print_table(["build step", "events", "seconds", "events/s", "other procs"],
                        build(server, args.jobs, args.batch, args.running_every))
        total, running = count_jobs(server.job_db)
        size = server.job_db.stat().st_size / 2**20
        print(f"\njob.db: {total:,} jobs, {running:,} running, {size:,.0f} MiB")
        server.start()
        with Meter(server.proc.pid if server.proc else None) as meter:
            rows = measure(server, args.requests)
        print(f"\nGET /api/jobs/ over HTTP, one client, sequential; aim: < 50 ms "
              f"(other procs: {meter.foreign_cores(meter.own_cpu, meter.other_cpu):.2f} cores)")
        print_table(["query", "requests", "items", "p50 ms", "p99 ms", "max ms"], rows)
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
