"""Benchmark: start/stop latency at 16 clients, alone and while 8 clients run heavy reads.

    .venv/bin/python bench/mixed_load.py [--runs 3] [--seconds 8] [--pythonpath /tmp/base]

Heavy reads are `GET /api/jobs/{id}?all-metrics=true` of running jobs on `--hosts` nodes whose last
`--hours` hours of every fritz metric are in the embedded metric store, and `GET /api/jobs/` with
`with-metadata=true&items-per-page=--page` over `--list-jobs` jobs with a 2 KB job script each. Writers
and readers are keep-alive connections of bench/lean_http.py; readers run in a process of their own
so their answers (megabytes) cost the writers' client nothing. `--pythonpath` runs the server from
another checkout (e.g. `git worktree add /tmp/base HEAD`) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (puts the repo on sys.path)
import httpx
import orjson
import uvloop
from common import Meter, machine_line, median, percentile, print_table
from lean_http import LeanConnection
from rest_intake import BASE_START, JSON_HEADERS, run_clients

from tests.support.server import FRITZ_MAIN_HOSTS, CcstreamServer, stop_payload

NODE_METRICS = ("cpu_load", "mem_used", "ib_recv", "ib_xmit", "ib_recv_pkts", "ib_xmit_pkts", "nfs4_read",
                "nfs4_write", "nfs4_total")
HW_METRICS = ("cpu_user", "flops_any", "flops_sp", "flops_dp", "clock", "ipc", "vectorization_ratio")
SOCKET_METRICS = ("mem_bw", "cpu_power", "mem_power")
SCRIPT = "#!/bin/bash\n#SBATCH --nodes=1\n" + "srun ./a.out --input data.h5 # padding\n" * 50


@dataclass
class ReadResult:
    """What the reader process saw: answers by kind, their latencies (ms) and non-2xx statuses."""

    answered: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    bytes: int = 0


def metric_lines(hosts: list[str], start: int, steps: int) -> list[bytes]:
    """Every fritz metric of `hosts` at its native scope, one sample per 60 s, in 20,000-line batches."""
    batches, buf = [], []
    for k in range(steps):
        t = start + 60 * k
        for i, h in enumerate(hosts):
            buf.extend(f"{m},hostname={h},type=node,type-id=0 value={(i + k) % 90 + 1.5} {t}" for m in NODE_METRICS)
            buf.extend(f"{m},hostname={h},type=hwthread,type-id={c} value={(c + k) % 50 + 0.5} {t}"
                       for m in HW_METRICS for c in range(72))
            buf.extend(f"{m},hostname={h},type=socket,type-id={s} value={k % 40 + 2.5} {t}"
                       for m in SOCKET_METRICS for s in range(2))
            if len(buf) >= 20_000:
                batches.append(("\n".join(buf) + "\n").encode())
                buf = []
    if buf:
        batches.append(("\n".join(buf) + "\n").encode())
    return batches


def big_job(job_id: int, hosts: list[str], start: int) -> dict[str, object]:
    return {"jobId": job_id, "user": "bigu", "project": "big", "cluster": "fritz", "partition": "multinode",
            "numNodes": len(hosts), "numHwthreads": 72 * len(hosts), "walltime": 86400 * 2, "exclusive": 1,
            "submitTime": start - 60, "startTime": start, "resources": [{"hostname": h} for h in hosts],
            "metaData": {"jobName": f"big-{job_id}"}}


async def _prepare(server: CcstreamServer, hosts: int, hours: int, list_jobs: int) -> list[int]:
    """Metrics of the big jobs' hosts, the big running jobs, then `list_jobs` finished jobs with scripts."""
    url = httpx.URL(server.base_url)
    headers = {"Authorization": f"Bearer {server.token}", **JSON_HEADERS}
    names = FRITZ_MAIN_HOSTS[:hosts]
    steps = hours * 60
    start = (int(time.time()) - steps * 60) // 60 * 60
    conns = [LeanConnection(url.host, url.port or 80, headers) for _ in range(4)]
    batches = metric_lines(names, start, steps)

    async def writer(conn: LeanConnection, mine: list[bytes]) -> None:
        for body in mine:
            status, answer = await conn.request("POST", "/api/write/?cluster=fritz", body)
            assert status == 200, answer[:300]

    await asyncio.gather(*(writer(c, batches[i::4]) for i, c in enumerate(conns)))
    ids = []
    for n in range(4):
        status, answer = await conns[0].request("POST", "/api/jobs/start_job/",
                                                orjson.dumps(big_job(800_000_000 + n, names, start)))
        assert status == 201, answer
        ids.append(orjson.loads(answer)["id"])
    counter = iter(range(list_jobs))

    async def lister(conn: LeanConnection) -> None:
        for n in counter:
            t = BASE_START - 10_000_000 + n * 10
            body = {"jobId": 700_000_000 + n, "user": f"u{n % 50}", "project": f"p{n % 20}", "cluster": "fritz",
                    "partition": "singlenode", "numNodes": 1, "numHwthreads": 72, "walltime": 3600,
                    "submitTime": t - 60, "startTime": t, "resources": [{"hostname": FRITZ_MAIN_HOSTS[n % 880]}],
                    "metaData": {"jobName": f"list-{n}", "jobScript": SCRIPT}}
            status, answer = await conn.request("POST", "/api/jobs/start_job/", orjson.dumps(body))
            assert status == 201, answer
            status, answer = await conn.request("POST", "/api/jobs/stop_job/",
                                                orjson.dumps(stop_payload(700_000_000 + n, t, t + 600)))
            assert status == 200, answer

    await asyncio.gather(*(lister(c) for c in conns))
    for conn in conns:
        await conn.close()
    return ids


async def _readers(base_url: str, token: str, readers: int, seconds: float, job_ids: list[int], page: int,
                   start_at: float) -> ReadResult:
    result = ReadResult()
    url = httpx.URL(base_url)
    conns = [LeanConnection(url.host, url.port or 80, {"Authorization": f"Bearer {token}"}) for _ in range(readers)]
    for conn in conns:
        await conn.connect()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds

    async def reader(i: int, conn: LeanConnection) -> None:
        n = 0
        while time.monotonic() < deadline:
            if i % 2 == 0:
                path = f"/api/jobs/{job_ids[(i // 2 + n) % len(job_ids)]}?all-metrics=true"
            else:
                path = f"/api/jobs/?with-metadata=true&items-per-page={page}&page={1 + n % 3}"
            n += 1
            t = time.perf_counter()
            status, body = await conn.request("GET", path)
            result.latencies.append((time.perf_counter() - t) * 1000)
            result.bytes += len(body)
            if status == 200:
                result.answered += 1
            else:
                result.refused[status] = result.refused.get(status, 0) + 1
                await asyncio.sleep(0.05)  # a refused client backs off a little, as a real one would

    await asyncio.gather(*(reader(i, c) for i, c in enumerate(conns)))
    for conn in conns:
        await conn.close()
    return result


def run_readers(base_url: str, token: str, readers: int, seconds: float, job_ids: list[int], page: int,
                start_at: float) -> ReadResult:
    """One reader process: `readers` connections alternating job-metric and list reads."""
    return uvloop.run(_readers(base_url, token, readers, seconds, job_ids, page, start_at))


def one_run(server: CcstreamServer, pool: ProcessPoolExecutor, args: argparse.Namespace, job_ids: list[int],
            first_job: int, with_readers: bool) -> dict[str, float]:
    start_at = time.time() + 1.0
    reads = None
    assert server.proc is not None
    with Meter(server.proc.pid) as meter:
        if with_readers:
            reads = pool.submit(run_readers, server.base_url, server.token, args.readers, args.seconds, job_ids,
                                args.page, start_at)
        writes = pool.submit(run_clients, server.base_url, server.token, args.writers, args.seconds, first_job,
                             start_at)
        written = writes.result()
        read = reads.result() if reads is not None else ReadResult()
    wall = meter.wall - 1.0
    return {
        "events_s": written.acked / args.seconds,
        "p50": percentile(written.latencies, 50),
        "p99": percentile(written.latencies, 99),
        "max": max(written.latencies, default=float("nan")),
        "write_failed": written.failed,
        "reads_s": read.answered / args.seconds,
        "read_p50": percentile(read.latencies, 50),
        "read_p99": percentile(read.latencies, 99),
        "read_mb_s": read.bytes / args.seconds / 1e6,
        "refused": sum(read.refused.values()),
        "refused_kinds": " ".join(f"{k}:{v}" for k, v in sorted(read.refused.items())) or "-",
        "server_cpu": meter.other_cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario; the table shows medians")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--hosts", type=int, default=16, help="nodes of each big job")
    parser.add_argument("--hours", type=int, default=12, help="hours of metric data of the big jobs")
    parser.add_argument("--list-jobs", type=int, default=10_000, help="finished jobs with a job script")
    parser.add_argument("--page", type=int, default=2_000, help="items-per-page of the list reads")
    parser.add_argument("--pythonpath", help="run the server from this checkout instead (baseline)")
    parser.add_argument("--config", default="{}", help="JSON merged into the server's config.json sections, "
                        "e.g. '{\"reads\": {\"workers\": 2}}'")
    args = parser.parse_args()
    print(machine_line())
    workdir = Path(tempfile.mkdtemp(prefix="ccstream-mixed-"))
    env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else None
    server = CcstreamServer(workdir / "ccstream", extra_env=env)
    pool = ProcessPoolExecutor(2)
    rows = []
    try:
        server.prepare()
        config = orjson.loads((server.workdir / "config.json").read_bytes())
        for section, values in orjson.loads(args.config).items():
            config[section] = {**config.get(section, {}), **values}
        (server.workdir / "config.json").write_bytes(orjson.dumps(config))
        server.start()
        began = time.perf_counter()
        job_ids = uvloop.run(_prepare(server, args.hosts, args.hours, args.list_jobs))
        print(f"prepared {args.hosts} hosts x {args.hours} h of metrics, {len(job_ids)} big jobs, "
              f"{args.list_jobs} listed jobs in {time.perf_counter() - began:.0f} s", flush=True)
        run_clients(server.base_url, server.token, 4, 1.0, 900_000_000, 0)  # warm-up
        first_job = 1
        results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.runs):
            for with_readers in (False, True):
                r = one_run(server, pool, args, job_ids, first_job, with_readers)
                first_job += 20_000_000
                results[with_readers].append(r)
                print(f"  {'with' if with_readers else 'without'} readers: {r['events_s']:.0f} events/s, "
                      f"p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms, reads {r['reads_s']:.1f}/s "
                      f"(refused {r['refused_kinds']})", flush=True)
        for with_readers, runs in results.items():
            rows.append([f"{args.writers} writers" + (f" + {args.readers} readers" if with_readers else "")]
                        + [median([r[k] for r in runs]) for k in
                           ("events_s", "p50", "p99", "max", "reads_s", "read_p50", "read_p99", "read_mb_s",
                            "refused", "server_cpu")]
                        + [sum(int(r["write_failed"]) for r in runs)])
    finally:
        server.stop()
        pool.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nstart/stop latency with and without heavy reads, medians of {args.runs} runs of {args.seconds:.0f} s"
          f" (server from {args.pythonpath or 'this checkout'}; {os.cpu_count()} cores)")
    print_table(["scenario", "start+stop events/s", "p50 ms", "p99 ms", "max ms", "reads/s", "read p50 ms",
                 "read p99 ms", "read MB/s", "reads refused", "server CPU", "write non-2xx"], rows)


if __name__ == "__main__":
    main()
