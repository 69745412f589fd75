"""Benchmark: cc-backend's UI queries through `POST /query` on a read model of many jobs (default 1,000,000).

Builds (or reuses, with --workdir) the same installation as bench/list_query.py, then times each query
sequentially from one client: a job-list page of 25 with `count` for a cluster and state, for a user and
for a start-time range, `jobsStatistics` over a whole cluster (ungrouped, by USER, by PROJECT), the four
count histograms, and `histMetrics`. Quoted: p50 and p95 in ms, and the server's resident memory after.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path)
import httpx
from common import Meter, machine_line, median, percentile, print_table
from list_query import CLUSTERS, T0, build, count_jobs

from tests.support.server import CcstreamServer

JOB_LIST = """query($filter:[JobFilter!]!, $sorting:OrderByInput!, $paging:PageRequest!) {
  jobs(filter: $filter, order: $sorting, page: $paging) { items { id jobId user project cluster subCluster
  startTime duration numNodes numHWThreads numAcc walltime resources{hostname} SMT shared partition arrayJobId
  monitoringStatus state tags{id type name scope} userData{name} metaData footprint{name stat value} }
  count hasNextPage } }"""
STATISTICS = """query($filter:[JobFilter!]!, $groupBy:Aggregate) { jobsStatistics(filter: $filter, groupBy: $groupBy,
  sortBy: TOTALWALLTIME, page: {itemsPerPage: 10, page: 1}) { id name totalJobs totalUsers totalWalltime totalNodes
  totalNodeHours totalCores totalCoreHours totalAccs totalAccHours runningJobs shortJobs } }"""
HISTOGRAMS = """query($filter:[JobFilter!]!) { jobsStatistics(filter: $filter) { totalJobs shortJobs totalWalltime
  totalCoreHours totalAccHours histDuration{count value} histNumNodes{count value} histNumCores{count value}
  histNumAccs{count value} } }"""
METRIC_HISTOGRAMS = """query($filter:[JobFilter!]!) { jobsStatistics(filter: $filter, metrics: ["flops_any", "mem_bw"],
  numMetricBins: 10) { histMetrics { metric unit stat data { min max count bin } } } }"""

PAGE = {"sorting": {"field": "startTime", "type": "col", "order": "DESC"}, "paging": {"itemsPerPage": 25, "page": 1}}
FRITZ = [{"cluster": {"eq": "fritz"}}]
QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("jobs: cluster fritz, running, page of 25 + count", JOB_LIST,
     {"filter": [*FRITZ, {"state": ["running"]}], **PAGE}),
    ("jobs: user user42, page of 25 + count", JOB_LIST, {"filter": [{"user": {"eq": "user42"}}], **PAGE}),
    ("jobs: start time within one day, page of 25 + count", JOB_LIST,
     {"filter": [{"startTime": {"from": T0 + 1_000_000, "to": T0 + 1_086_400}}], **PAGE}),
    ("jobsStatistics: cluster fritz", STATISTICS, {"filter": FRITZ}),
    ("jobsStatistics: cluster fritz by USER, top 10", STATISTICS, {"filter": FRITZ, "groupBy": "USER"}),
    ("jobsStatistics: cluster fritz by PROJECT, top 10", STATISTICS, {"filter": FRITZ, "groupBy": "PROJECT"}),
    ("jobsStatistics: four count histograms, cluster fritz", HISTOGRAMS, {"filter": FRITZ}),
    ("jobsStatistics: histMetrics, cluster fritz", METRIC_HISTOGRAMS, {"filter": FRITZ}),
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send(http: httpx.Client, label: str, query: str, variables: dict[str, Any]) -> None:
    answer = http.post("/query", json={"query": query, "variables": variables})
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(f"{label}: {body['errors']}")


def measure(server: CcstreamServer, requests: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as http:
        for label, query, variables in QUERIES:
            for _ in range(3):  # warm the page cache and the connection
                send(http, label, query, variables)
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                send(http, label, query, variables)
                latencies.append((time.perf_counter() - started) * 1000)
            rows.append([label, requests, median(latencies), percentile(latencies, 95), max(latencies)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the read model (default 1,000,000)")
    parser.add_argument("--running-every", type=int, default=10, help="every n-th job stays running (default 10)")
    parser.add_argument("--batch", type=int, default=20_000, help="jobs per log append (default 20,000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per query (default 20)")
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
            build(server, args.jobs, args.batch, args.running_every)
        total, running = count_jobs(server.job_db)
        print(f"job.db: {total:,} jobs, {running:,} running")
        server.start()
        pid = server.proc.pid if server.proc else 0
        with Meter(pid or None) as meter:
            rows = measure(server, args.requests)
        print(f"\nPOST /query, one client, sequential (other procs: "
              f"{meter.foreign_cores(meter.own_cpu, meter.other_cpu):.2f} cores); server RSS after: "
              f"{rss_mib(pid):,.0f} MiB")
        print_table(["query", "requests", "p50 ms", "p95 ms", "max ms"], rows)
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
