"""Benchmark: acknowledged job events per second through REST start_job/stop_job, with p50/p99 latency."""

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

from tests.support.server import CcstreamServer, start_payload, stop_payload

JSON_HEADERS = {"Content-Type": "application/json"}
BASE_START = 1_700_000_000


@dataclass
class ClientResult:
    """What one client process saw: acknowledged events, failures, latencies (ms), its CPU seconds."""

    acked: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0


async def _clients(base_url: str, token: str, concurrency: int, seconds: float, first_job: int,
                   start_at: float) -> ClientResult:
    result = ClientResult()
    url = httpx.URL(base_url)
    headers = {"Authorization": f"Bearer {token}", **JSON_HEADERS}
    connections = [LeanConnection(url.host, url.port or 80, headers) for _ in range(concurrency)]
    for connection in connections:
        await connection.connect()
        await connection.request("GET", "/healthz")
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    counter = iter(range(first_job, first_job + 10_000_000))

    async def post(connection: LeanConnection, path: str, body: bytes, expected: int) -> bool:
        t = time.perf_counter()
        status, _ = await connection.request("POST", path, body)
        result.latencies.append((time.perf_counter() - t) * 1000)
        if status == expected:
            result.acked += 1
            return True
        result.failed += 1
        return False

    async def worker(connection: LeanConnection) -> None:
        while time.monotonic() < deadline:
            job_id = next(counter)
            start = BASE_START + job_id
            start_body = orjson.dumps(start_payload(job_id, start, host_index=job_id))
            if await post(connection, "/api/jobs/start_job/", start_body, 201):
                stop_body = orjson.dumps(stop_payload(job_id, start, start + 600))
                await post(connection, "/api/jobs/stop_job/", stop_body, 200)

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    return result


def run_clients(base_url: str, token: str, concurrency: int, seconds: float, first_job: int,
                start_at: float) -> ClientResult:
    """One client process: `concurrency` connections sending start+stop pairs until `seconds` pass."""
    cpu = sum(os.times()[:2])
    result = uvloop.run(_clients(base_url, token, concurrency, seconds, first_job, start_at))
    result.cpu = sum(os.times()[:2]) - cpu
    return result


def one_run(server: CcstreamServer, concurrency: int, procs: int, seconds: float, first_job: int,
            pool: ProcessPoolExecutor | None) -> dict[str, float]:
    share = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    start_at = time.time() + (1.0 if pool else 0.0)
    assert server.proc is not None
    with Meter(server.proc.pid) as meter:
        if pool is None:
            results = [run_clients(server.base_url, server.token, concurrency, seconds, first_job, start_at)]
        else:
            futures = [
                pool.submit(run_clients, server.base_url, server.token, n, seconds, first_job + i * 5_000_000,
                            start_at)
                for i, n in enumerate(share) if n
            ]
            results = [f.result() for f in futures]
    wall = meter.wall - (1.0 if pool else 0.0)
    status = httpx.get(f"{server.base_url}/api/admin/status", headers=server.headers, timeout=30).json()
    archiver_lag = next((a["lag"] for a in status["agents"] if a["name"] == "archiver"), 0)
    latencies = [v for r in results for v in r.latencies]
    acked = sum(r.acked for r in results)
    client_cpu = sum(r.cpu for r in results) if pool else meter.own_cpu
    return {
        "events_s": acked / wall,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "failed": sum(r.failed for r in results),
        "server_cpu": meter.other_cpu / wall,
        "server_ms_event": meter.other_cpu / acked * 1000 if acked else float("nan"),
        "client_cpu": client_cpu / wall,
        "foreign": meter.foreign_cores(meter.other_cpu, client_cpu),
        "steal": meter.steal,
        "archiver_lag": archiver_lag,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--runs", type=int, default=3, help="runs per concurrency; the table shows medians")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--procs", type=int, default=1,
                        help="client processes sharing the connections (1: one asyncio client in this process)")
    args = parser.parse_args()
    print(machine_line())
    workdir = Path(tempfile.mkdtemp(prefix="ccstream-bench-"))
    server = CcstreamServer(workdir / "ccstream")
    pool = ProcessPoolExecutor(args.procs) if args.procs > 1 else None
    rows = []
    try:
        server.prepare()
        server.start()
        first_job = 1
        run_clients(server.base_url, server.token, 4, 1.0, 900_000_000, 0)  # warm-up
        for concurrency in args.concurrency:
            runs = []
            for _ in range(args.runs):
                runs.append(one_run(server, concurrency, min(args.procs, concurrency), args.seconds, first_job, pool))
                first_job += 20_000_000
            rows.append([concurrency, min(args.procs, concurrency)]
                        + [median([r[k] for r in runs]) for k in
                           ("events_s", "p50", "p99", "server_cpu", "server_ms_event", "client_cpu",
                                     "foreign", "steal", "archiver_lag")]
                        + [sum(int(r["failed"]) for r in runs)])
            print(f"  concurrency {concurrency}: " + ", ".join(f"{r['events_s']:.0f}" for r in runs) + " events/s",
                  flush=True)
    finally:
        server.stop()
        if pool is not None:
            pool.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nREST intake: start+stop pairs, medians of {args.runs} runs of {args.seconds:.0f}s "
          "(CPU columns in cores; aim: >= 3,000 events/s at 16 clients, p99 < 50 ms)")
    print("server CPU ms/event: the server's CPU per acknowledged event (1000 / it = events/s one core could do);"
          " other procs: cores busy with processes not ours; archiver lag: stop events not yet archived at the end"
          " of a run (archiving gives way to the intake and catches up afterwards)")
    print_table(["clients", "client procs", "acked events/s", "p50 ms", "p99 ms", "server CPU", "server CPU ms/event",
                 "client CPU", "other procs", "steal", "archiver lag", "non-2xx"], rows)


if __name__ == "__main__":
    main()
