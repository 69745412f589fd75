"""Archiver throughput: jobs per second for 4-node 24-hour jobs, metrics from a real in-process metric store."""

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

DAY = 86400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6, help="jobs archived per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--detail", choices=["full", "node"], default="full", help="samples per native scope")
    args = parser.parse_args()
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
        agents = NodeAgents(machine, 1, args.detail)
        t0 = time.perf_counter()
        samples = 0
        for t in range(start, end, 60):
            lines = agents.lines(t, [job])
            samples += len(lines)
            store.ingest_lines("\n".join(lines).encode(), None)
        print(f"cores: {os.cpu_count()}; ingested {samples} samples of 4 nodes x 24 h in "
              f"{time.perf_counter() - t0:.1f} s")
        rates = []
        for run in range(args.runs):
            log = MemoryEventLog()
            for k in range(args.jobs):
                subject = job_subject("atlas", 100 + k, start)
                body = {"jobId": 100 + k, "user": "u", "project": "p", "cluster": "atlas", "subCluster": "main",
                        "numNodes": 4, "startTime": start, "resources": [{"hostname": h} for h in machine.hosts]}
                log.append([new_event("job.started", subject, body, source="bench"),
                            new_event("job.stopped", subject, {"jobState": "completed", "stopTime": end,
                                                               "duration": end - start})])
            archiver = Archiver(log, FileArchive(Path(tmp) / f"archive{run}"), InProcessMetricSource(store),
                                ClusterRegistry.from_dicts([cluster]), AgentStateStore(Path(tmp) / f"a{run}.db"))
            t0 = time.perf_counter()
            AgentRunner(log, archiver).run_until_caught_up()
            elapsed = time.perf_counter() - t0
            archived = sum(1 for e in log.read(0, 10_000) if e.type == "job.archived")
            assert archived == args.jobs, archived
            rates.append(args.jobs / elapsed)
            print(f"run {run + 1}: {args.jobs} jobs in {elapsed:.2f} s = {rates[-1]:.2f} jobs/s")
        print(f"median: {statistics.median(rates):.2f} jobs/s (4 nodes x 24 h, scopes node+core, detail {args.detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
