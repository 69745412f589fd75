"""Benchmark: the server's peak memory for a `/api/query/` with `from=0` (cc-metric-store pads to `from`),
and for a page of all jobs with their metadata.

    .venv/bin/python bench/query_bounds.py [--series 1 4] [--list-jobs 20000] [--runs 3] [--pythonpath /tmp/base]

Each run starts a fresh `ccstream serve` (tests/support/server.py), writes one `cpu_load` sample per
series a minute ago, then asks for those series from 0 to now: padded from 1970 at 60 s, that is
29 M points (about 150 MB of JSON) per series. The figure is the server's peak resident memory
(VmHWM) after the query, against the same before it. `--pythonpath` runs the server from another
checkout (`git worktree add /tmp/base HEAD`) for the figure before the change; with many series
that one needs several GB per series. `--list-jobs N` then does the same for
`GET /api/jobs/?with-metadata=true&items-per-page=N` over N finished jobs with a 2 KB job script.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repo on sys.path)
import httpx
import orjson
from common import machine_line, median, print_table

from tests.support.server import FRITZ_MAIN_HOSTS, CcstreamServer


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measured(server: CcstreamServer, http: httpx.Client, method: str, path: str,
             body: bytes = b"") -> dict[str, float]:
    """Status, answer size, seconds and the server's peak memory before and after one request."""
    assert server.proc is not None
    before = peak_rss_mb(server.proc.pid)
    began = time.perf_counter()
    size = 0
    with http.stream(method, path, content=body) as answer:
        for piece in answer.iter_bytes():
            size += len(piece)
        status = answer.status_code
    elapsed = time.perf_counter() - began
    after = peak_rss_mb(server.proc.pid)
    return {"status": status, "bytes": size, "seconds": elapsed, "before": before, "after": after,
            "growth": after - before}


def list_run(jobs: int, pythonpath: str | None) -> dict[str, float]:
    """A fresh server with `jobs` finished jobs (each with a 2 KB script); then one page of them all."""
    import asyncio

    from mixed_load import SCRIPT
    from rest_intake import BASE_START

    from tests.support.server import start_payload, stop_payload

    workdir = Path(tempfile.mkdtemp(prefix="ccstream-bounds-"))
    server = CcstreamServer(workdir / "ccstream", extra_env={"PYTHONPATH": pythonpath} if pythonpath else None)
    try:
        server.prepare()
        server.start()

        async def fill() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=60) as client:
                numbers = iter(range(jobs))

                async def one() -> None:
                    for n in numbers:
                        t = BASE_START + 10 * n
                        body = {**start_payload(n + 1, t, host_index=n),
                                "metaData": {"jobName": f"j{n}", "jobScript": SCRIPT}}
                        assert (await client.post("/api/jobs/start_job/", json=body)).status_code == 201
                        stop = stop_payload(n + 1, t, t + 600)
                        assert (await client.post("/api/jobs/stop_job/", json=stop)).status_code == 200

                await asyncio.gather(*(one() for _ in range(16)))

        asyncio.run(fill())
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=600) as http:
            http.get("/api/jobs/?with-metadata=true&items-per-page=10")  # warm-up, small
            return measured(server, http, "GET", f"/api/jobs/?with-metadata=true&items-per-page={jobs}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def one_run(series: int, pythonpath: str | None) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="ccstream-bounds-"))
    server = CcstreamServer(workdir / "ccstream", extra_env={"PYTHONPATH": pythonpath} if pythonpath else None)
    try:
        server.prepare()
        server.start()
        now = int(time.time())
        hosts = FRITZ_MAIN_HOSTS[:series]
        lines = "".join(f"cpu_load,cluster=fritz,hostname={h},type=node value=42.5 {now - 60}\n" for h in hosts)
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=600) as http:
            assert http.post("/api/write/", content=lines).status_code == 200
            body = {"cluster": "fritz", "to": now, "queries": [{"metric": "cpu_load", "host": h} for h in hosts]}
            http.post("/api/query/", content=orjson.dumps({**body, "from": now - 600}))  # warm-up, small
            return measured(server, http, "POST", "/api/query/", orjson.dumps({**body, "from": 0}))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--list-jobs", type=int, default=0, help="also: a page of this many jobs with metadata")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pythonpath", help="run the server from this checkout instead (baseline)")
    args = parser.parse_args()
    print(machine_line())
    rows = []
    for series in args.series:
        runs = [one_run(series, args.pythonpath) for _ in range(args.runs)]
        print(f"  {series} series: " + ", ".join(f"{r['after']:.0f} MiB peak" for r in runs), flush=True)
        rows.append([f"/api/query/ from=0, {series} series", int(runs[0]["status"])]
                    + [median([r[k] for r in runs]) for k in ("bytes", "seconds", "before", "after", "growth")])
    if args.list_jobs:
        runs = [list_run(args.list_jobs, args.pythonpath) for _ in range(args.runs)]
        print(f"  {args.list_jobs} jobs: " + ", ".join(f"{r['after']:.0f} MiB peak" for r in runs), flush=True)
        rows.append([f"/api/jobs/ {args.list_jobs} with metadata", int(runs[0]["status"])]
                    + [median([r[k] for r in runs]) for k in ("bytes", "seconds", "before", "after", "growth")])
    print(f"\nmedians of {args.runs} fresh servers (server from {args.pythonpath or 'this checkout'})")
    print_table(["request", "status", "answer bytes", "seconds", "peak RSS before MiB", "peak RSS after MiB",
                 "growth MiB"], rows)


if __name__ == "__main__":
    main()
