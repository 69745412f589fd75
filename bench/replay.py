"""Benchmark: replay speed of `ccstream replay` into SQLite, for a log of 1,000,000 jobs (2M+ events).

Run `python bench/replay.py [--jobs N] [--runs R] [--edit-every N] [--log FILE]`. The log is generated
once (start and stop of every job; with --edit-every also tags and metadata) and kept for later runs.
Each run rebuilds the job database from position 0 into a scratch file with the bulk loader and
reports, per phase: replay (read, decode, write rows; from 500,000 events on, two reading processes
read and decode while the loader writes), deferred index build, and the rebuild's check (quick_check,
foreign keys, checkpoint). The figure to compare with the target (100,000 events/s; 1M jobs in under
30 s) is the replay rate; the median of the runs is printed, along with the CPU used by the benchmark
and its reading processes, and how many cores other processes kept busy meanwhile.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path)
from common import Meter, machine_line, median, print_table

from replay.rebuild import check, read_pages, remove_database
from replay.registry import READ_MODELS
from streams.events import Event, derived_event_id, job_subject, new_event
from streams.log import SQLiteEventLog

T0 = 1_600_000_000
CLUSTERS = ("fritz", "alex", "emmy")
STATES = ("completed", "completed", "completed", "failed", "cancelled", "timeout")


def job_events(first: int, count: int, edit_every: int) -> list[Event]:
    """Starts of `count` jobs, their stops, and (with `edit_every`) a tag or metadata edit on some jobs."""
    starts: list[Event] = []
    later: list[Event] = []
    for i in range(first, first + count):
        cluster, start = CLUSTERS[i % 3], T0 + i * 3
        subject = job_subject(cluster, i, start)
        data: dict[str, Any] = {
            "jobId": i, "user": f"user{i % 500}", "project": f"proj{i % 100}", "cluster": cluster,
            "subCluster": "main", "partition": "main", "arrayJobId": 0, "numNodes": 1, "numHwthreads": 72,
            "numAcc": 0, "shared": "none", "monitoringStatus": 1, "smt": 1, "walltime": 86400,
            "requestedMemory": 0, "submitTime": start - 60, "startTime": start,
            "resources": [{"hostname": f"n{i % 900:04d}", "hwthreads": list(range(8))}],
            "metaData": {"jobName": f"bench-{i}"}, "tags": [], "footprint": None, "energyFootprint": None,
            "energy": 0.0, "statistics": None,
        }
        starts.append(new_event("job.started", subject, data, id=derived_event_id("bench", subject), at=start))
        state, duration = STATES[i % len(STATES)], 60 + i % 7200
        stop = {"jobState": state, "stopTime": start + duration, "duration": duration, "parkedStopId": None}
        later.append(new_event("job.stopped", subject, stop, id=derived_event_id("bench-stop", subject)))
        if not edit_every:
            continue
        if i % (2 * edit_every) == 0:
            later.append(new_event("job.tag_added", subject, {"type": "app", "name": f"app{i % 30}", "scope": "global"},
                                   id=derived_event_id("bench-tag", subject)))
        elif i % (2 * edit_every) == edit_every:
            later.append(new_event("job.metadata_updated", subject, {"key": "issues", "value": "slow io"},
                                   id=derived_event_id("bench-meta", subject)))
    return starts + later


def ensure_log(path: Path, jobs: int, edit_every: int) -> SQLiteEventLog:
    """The benchmark log, generated unless a complete one is already at `path`."""
    expected = 2 * jobs + (sum(1 for i in range(jobs) if i % edit_every == 0) if edit_every else 0)
    log = SQLiteEventLog(path)
    if log.head() == expected:
        return log
    if log.head():
        log.close()
        raise SystemExit(f"{path} holds {log.head():,} events, not the {expected:,} of {jobs:,} jobs: remove it")
    print(f"generating {jobs:,} jobs into {path} (kept for later runs) …", flush=True)
    started = time.perf_counter()
    for first in range(0, jobs, 20_000):
        log.append(job_events(first, min(20_000, jobs - first), edit_every))
    print(f"  {log.head():,} events in {time.perf_counter() - started:.0f} s", flush=True)
    return log


def _children_cpu() -> float:
    """User+system CPU seconds of this process's waited-for children so far."""
    times = os.times()
    return times.children_user + times.children_system


def one_run(log: SQLiteEventLog, scratch: Path) -> dict[str, float]:
    """Rebuild the job database from position 0, timing each phase."""
    model = READ_MODELS["jobdb"]
    remove_database(scratch)
    loader = model.loader(scratch, None)
    try:
        children = _children_cpu()
        with Meter() as replay:
            for records in read_pages(log, 0):  # reading processes, from PARALLEL_FROM events on
                loader.load(records)
        children = _children_cpu() - children  # the reading processes, waited for when the pages end
        with Meter() as index:
            loader.finish()
        position = loader.checkpoint()
    finally:
        loader.close()
    with Meter() as checked:
        rows = check(scratch, model, position)
    return {
        "events": position, "replay_s": replay.wall, "rate": position / replay.wall, "cpu": replay.own_cpu + children,
        "foreign": replay.foreign_cores(replay.own_cpu, children), "index_s": index.wall,
        "check_s": checked.wall, "total_s": replay.wall + index.wall + checked.wall, "jobs": rows["job"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--edit-every", type=int, default=0, metavar="N",
                        help="also a tag or metadata edit on one job in N (handled one by one by the handlers)")
    parser.add_argument("--log", type=Path, default=None, help="event log file (default: in the temp dir)")
    args = parser.parse_args()
    print(f"nproc={os.cpu_count()}  {machine_line()}", flush=True)
    name = f"ccstream-bench-replay-{args.jobs}-{args.edit_every}.db"
    path = args.log or Path(tempfile.gettempdir()) / name
    log = ensure_log(path, args.jobs, args.edit_every)
    results = []
    try:
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            for n in range(args.runs):
                result = one_run(log, Path(tmp) / "job.db")
                results.append(result)
                rate, total = result["rate"], result["total_s"]
                print(f"run {n + 1}: {rate:,.0f} events/s replay, {total:.1f} s in all", flush=True)
    finally:
        log.close()
    rows = [[f"run {n + 1}", r["events"], r["jobs"], r["replay_s"], r["rate"], r["cpu"], r["foreign"], r["index_s"],
             r["check_s"], r["total_s"]] for n, r in enumerate(results)]
    rows.append(["median", results[0]["events"], results[0]["jobs"], *[
        median([r[k] for r in results]) for k in ("replay_s", "rate", "cpu", "foreign", "index_s", "check_s", "total_s")
    ]])
    print_table(["", "events", "jobs", "replay s", "events/s", "our CPU s", "other cores busy", "indexes s",
                 "check s", "total s"], rows)


if __name__ == "__main__":
    main()
