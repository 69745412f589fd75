"""Archiver throughput and CPU per job, against a real in-process metric store.

`--scenario full` (the default) archives 4-node 24-hour atlas jobs with every metric in the store.
`--scenario empty` archives 1-node fritz jobs like the REST benchmark's (tests/support/server.py
start_payload) against a store without data, which is what most jobs of that benchmark meet: the
cost there is planning, reading nothing, statistics and writing the two files, not the series.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive.agentstate import AgentStateStore  # noqa: E402
from archive.archiver import Archiver  # noqa: E402
from archive.backends.file import FileArchive  # noqa: E402
from metricstore.settings import MetricStoreSettings  # noqa: E402
from metricstore.source import InProcessMetricSource  # noqa: E402
from metricstore.store import MetricStore  # noqa: E402
from replay.simulator.metrics import NodeAgents  # noqa: E402
from replay.simulator.model import SimJob  # noqa: E402
from replay.simulator.topology import machine_from_cluster  # noqa: E402
from streams.clusters import ClusterRegistry  # noqa: E402
from streams.events import job_subject, new_event  # noqa: E402
from streams.log import MemoryEventLog  # noqa: E402
from streams.runtime import AgentRunner  # noqa: E402
from tests.support.server import specs_dir, start_payload, stop_payload  # noqa: E402

DAY = 86400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["full", "empty"], default="full")
    parser.add_argument("--jobs", type=int, help="jobs archived per run (default 6 full, 300 empty)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--detail", choices=["full", "node"], default="full", help="samples per native scope")
    args = parser.parse_args()
    if args.scenario == "empty":
        return empty_scenario(args.jobs or 300, args.runs)
    return full_scenario(args.jobs or 6, args.runs, args.detail)


def empty_scenario(jobs: int, runs: int) -> int:
    """1-node fritz jobs, no metric data: CPU milliseconds per archived job (this process, user+system)."""
    cluster = json.loads((specs_dir() / "archive" / "fritz" / "cluster.json").read_text())
    start = int(time.time()) - 3600
    with tempfile.TemporaryDirectory() as tmp:
        settings = MetricStoreSettings.model_validate({"checkpoints": {"directory": f"{tmp}/ckpt"}})
        store = MetricStore(settings, [cluster])
        clusters = ClusterRegistry.from_dicts([cluster])
        cpu_ms, rates = [], []
        for run in range(runs):
            log = MemoryEventLog()
            for k in range(jobs):
                subject = job_subject("fritz", k + 1, start)
                begin = start_payload(k + 1, start, host_index=k)
                stop = {**stop_payload(k + 1, start, start + 600), "duration": 600}
                log.append([new_event("job.started", subject, begin, source="bench"),
                            new_event("job.stopped", subject, stop)])
            archiver = Archiver(log, FileArchive(Path(tmp) / f"archive{run}"), InProcessMetricSource(store),
                                clusters, AgentStateStore(Path(tmp) / f"a{run}.db"))
            cpu0, t0 = sum(os.times()[:2]), time.perf_counter()
            AgentRunner(log, archiver, batch_size=100).run_until_caught_up()
            elapsed, cpu = time.perf_counter() - t0, sum(os.times()[:2]) - cpu0
            archived = sum(1 for e in log.read(0, 10 * jobs) if e.type == "job.archived")
            assert archived == jobs, archived
            cpu_ms.append(1000 * cpu / jobs)
            rates.append(jobs / elapsed)
            print(f"run {run + 1}: {jobs} jobs in {elapsed:.2f} s = {rates[-1]:.1f} jobs/s, "
                  f"{cpu_ms[-1]:.2f} CPU ms/job")
        print(f"cores: {os.cpu_count()}; median: {statistics.median(cpu_ms):.2f} CPU ms/job, "
              f"{statistics.median(rates):.1f} jobs/s (1 node fritz, scopes node+core, no metric data)")
    return 0


def full_scenario(jobs: int, runs: int, detail: str) -> int:
    """4-node 24-hour atlas jobs with every metric in the store: archived jobs per second."""
    cluster = json.loads((ROOT / "configs" / "clusters" / "atlas.json").read_text())
    machine = machine_from_cluster(cluster, 4)
    end = int(time.time()) - 600
    start = end - DAY
    job = SimJob(job_id=1, array_job_id=0, user="u", project="p", partition="multinode", num_nodes=4,
                 threads_per_node=machine.threads_per_node, accelerators_per_node=0, shared="none",
                 submit_time=start, duration=DAY, walltime=DAY, final_state="completed", profile="compute",
                 app="gromacs", start_time=start, hosts=machine.hosts,
                 hwthreads={h: machine.hwthreads for h in machine.hosts})
    with tempfile.TemporaryDirectory() as tmp:
        settings = MetricStoreSettings.model_validate({"checkpoints": {"directory": f"{tmp}/ckpt"},
                                                       "retention-in-memory": "48h"})
        store = MetricStore(settings, [cluster])
        agents = NodeAgents(machine, 1, detail)
        t0 = time.perf_counter()
        samples = 0
        for t in range(start, end, 60):
            lines = agents.lines(t, [job])
            samples += len(lines)
            store.ingest_lines("\n".join(lines).encode(), None)
        print(f"cores: {os.cpu_count()}; ingested {samples} samples of 4 nodes x 24 h in "
              f"{time.perf_counter() - t0:.1f} s")
        rates, cpu_s = [], []
        for run in range(runs):
            log = MemoryEventLog()
            for k in range(jobs):
                subject = job_subject("atlas", 100 + k, start)
                body = {"jobId": 100 + k, "user": "u", "project": "p", "cluster": "atlas", "subCluster": "main",
                        "numNodes": 4, "startTime": start, "resources": [{"hostname": h} for h in machine.hosts]}
                log.append([new_event("job.started", subject, body, source="bench"),
                            new_event("job.stopped", subject, {"jobState": "completed", "stopTime": end,
                                                               "duration": end - start})])
            archiver = Archiver(log, FileArchive(Path(tmp) / f"archive{run}"), InProcessMetricSource(store),
                                ClusterRegistry.from_dicts([cluster]), AgentStateStore(Path(tmp) / f"a{run}.db"))
            cpu0, t0 = sum(os.times()[:2]), time.perf_counter()
            AgentRunner(log, archiver).run_until_caught_up()
            elapsed, cpu = time.perf_counter() - t0, sum(os.times()[:2]) - cpu0
            archived = sum(1 for e in log.read(0, 10_000) if e.type == "job.archived")
            assert archived == jobs, archived
            rates.append(jobs / elapsed)
            cpu_s.append(cpu / jobs)
            print(f"run {run + 1}: {jobs} jobs in {elapsed:.2f} s = {rates[-1]:.2f} jobs/s, {cpu_s[-1]:.2f} CPU s/job")
        print(f"median: {statistics.median(rates):.2f} jobs/s, {statistics.median(cpu_s):.2f} CPU s/job "
              f"(4 nodes x 24 h, scopes node+core, detail {detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
