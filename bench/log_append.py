"""Benchmark: raw event log appends per second, one durable appender vs many (group commit), and in memory."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import common  # noqa: F401  (puts the repo on sys.path)
from common import Meter, machine_line, median, percentile, print_table

from streams.events import Event, new_event
from streams.log import EventLog, MemoryEventLog, SQLiteEventLog

PAYLOAD = {
    "jobId": 1, "user": "alice", "project": "proj", "cluster": "fritz", "subCluster": "main", "numNodes": 1,
    "startTime": 1_700_000_000, "resources": [{"hostname": "f0101"}], "metaData": {"jobName": "bench"},
}
_ids = count()


def event() -> Event:
    n = next(_ids)
    return new_event("job.started", f"job/fritz/{n}/1700000000", PAYLOAD, id=f"bench-{n}", source="bench")


def threads(log: EventLog, workers: int, seconds: float) -> tuple[int, list[float]]:
    """`workers` threads, each appending one event at a time and waiting for it to be durable."""
    deadline = time.monotonic() + seconds
    done = [0] * workers
    latencies: list[list[float]] = [[] for _ in range(workers)]

    def work(i: int) -> None:
        while time.monotonic() < deadline:
            e = event()
            t = time.perf_counter()
            log.append([e])
            latencies[i].append((time.perf_counter() - t) * 1000)
            done[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done), [v for part in latencies for v in part]


def tasks(log: EventLog, workers: int, seconds: float) -> tuple[int, list[float]]:
    """`workers` asyncio tasks, each awaiting `append_async` of one event at a time."""

    async def run() -> tuple[int, list[float]]:
        deadline = time.monotonic() + seconds
        latencies: list[float] = []

        async def work() -> int:
            n = 0
            while time.monotonic() < deadline:
                e = event()
                t = time.perf_counter()
                await log.append_async([e])
                latencies.append((time.perf_counter() - t) * 1000)
                n += 1
            return n

        return sum(await asyncio.gather(*(work() for _ in range(workers)))), latencies

    return asyncio.run(run())


def batches(log: EventLog, size: int, seconds: float) -> tuple[int, list[float]]:
    """One appender writing `size` events per call (how importers and replay tools append)."""
    deadline = time.monotonic() + seconds
    n, latencies = 0, []
    while time.monotonic() < deadline:
        events = [event() for _ in range(size)]
        t = time.perf_counter()
        log.append(events)
        latencies.append((time.perf_counter() - t) * 1000)
        n += size
    return n, latencies


Scenario = tuple[str, Callable[[EventLog, float], tuple[int, list[float]]]]
SCENARIOS: list[Scenario] = [
    ("1 appender, durable each", lambda log, s: threads(log, 1, s)),
    ("16 threads", lambda log, s: threads(log, 16, s)),
    ("64 threads", lambda log, s: threads(log, 64, s)),
    ("256 asyncio tasks (append_async)", lambda log, s: tasks(log, 256, s)),
    ("1 appender, batches of 1000", lambda log, s: batches(log, 1000, s)),
]


def events_per_commit(path: Path) -> float:
    """Mean group size: the writer stamps one `recorded_at` on every event of one commit."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        events, commits = db.execute("SELECT COUNT(*), COUNT(DISTINCT recorded_at) FROM events").fetchone()
    return events / commits if commits else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario; the table shows medians")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    args = parser.parse_args()
    print(machine_line())
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="ccstream-bench-"))
    try:
        for kind in ("sqlite", "memory"):
            for index, (label, scenario) in enumerate(SCENARIOS):
                rates, p50s, p99s, per_commit, foreign = [], [], [], [], []
                for run in range(args.runs):
                    path = workdir / f"{kind}-{index}-{run}.db"
                    log: EventLog = SQLiteEventLog(path) if kind == "sqlite" else MemoryEventLog()
                    try:
                        with Meter() as meter:
                            appended, latencies = scenario(log, args.seconds)
                    finally:
                        log.close()
                    rates.append(appended / meter.wall)
                    p50s.append(percentile(latencies, 50))
                    p99s.append(percentile(latencies, 99))
                    foreign.append(meter.foreign_cores(meter.own_cpu))
                    if kind == "sqlite":
                        # One commit stamps one recorded_at on its whole group.
                        per_commit.append(events_per_commit(path))
                rows.append([kind, label, median(rates), median(p50s), median(p99s),
                             median(per_commit) if per_commit else float("nan"), median(foreign)])
                print(f"  {kind} {label}: " + ", ".join(f"{r:,.0f}" for r in rates) + " events/s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nEvent log appends, medians of {args.runs} runs of {args.seconds:.0f}s "
          "(latency = one append call until durable; events/commit from recorded_at)")
    print_table(["log", "appenders", "events/s", "p50 ms", "p99 ms", "events/commit", "other procs"], rows)


if __name__ == "__main__":
    main()
