"""Benchmark `ccstream import-archive`: a synthetic file archive of small jobs, imported into a fresh log.

Usage: python bench/import_archive.py [--jobs 20000] [--runs 3]

Each run imports the same archive into a new event log with the real command (`python -m api.cli
import-archive`, a new process, so start-up is included) and reports jobs/s; the figure is the median.
The command's start-up alone (`import-archive --help`) is printed too: it is part of every run's
time but not of the import. cc-backend's `-init-db` does about 2,100 jobs/s on a comparable archive.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from common import REPO, machine_line, median, print_table  # type: ignore[import-not-found]

CLUSTER = {
    "name": "benchc",
    "metricConfig": [
        {"name": "cpu_load", "unit": {"base": ""}, "scope": "node", "aggregation": "avg", "timestep": 60,
         "peak": 72, "normal": 72, "caution": 36, "alert": 1, "footprint": "avg"},
        {"name": "mem_used", "unit": {"base": "B", "prefix": "G"}, "scope": "node", "aggregation": "sum",
         "timestep": 60, "peak": 256, "normal": 128, "caution": 200, "alert": 240, "footprint": "max"},
        {"name": "cpu_power", "unit": {"base": "W"}, "scope": "socket", "aggregation": "sum", "timestep": 60,
         "peak": 500, "normal": 250, "caution": 100, "alert": 50, "energy": "power"},
    ],
    "subClusters": [{
        "name": "main", "nodes": "n[0001-1000]", "processorType": "x", "socketsPerNode": 2, "coresPerSocket": 36,
        "threadsPerCore": 1, "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 432},
        "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 9216},
        "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 350},
        "topology": {"node": list(range(72)), "socket": [list(range(36)), list(range(36, 72))]},
    }],
}


def _stat(base: str, avg: float) -> dict[str, object]:
    return {"unit": {"base": base}, "avg": avg, "min": avg / 2, "max": avg * 1.5}


def generate(root: Path, jobs: int) -> None:
    """cc-backend's layout with `jobs` small jobs (one node, three metrics, ~1 kB of data each).

    Written with plain file writes: generating is set-up, not what is measured.
    """
    (root / "benchc").mkdir(parents=True)
    (root / "version.txt").write_text("3\n")
    (root / "benchc" / "cluster.json").write_bytes(orjson.dumps(CLUSTER))
    for n in range(jobs):
        job_id, start = 1_000_000 + n, 1_700_000_000 + 37 * n
        host = f"n{n % 1000 + 1:04d}"
        meta = {
            "jobId": job_id, "user": f"user{n % 97}", "project": f"proj{n % 13}", "cluster": "benchc",
            "subCluster": "main", "partition": "work", "numNodes": 1, "numHwthreads": 72, "shared": "none",
            "monitoringStatus": 1, "walltime": 86400, "jobState": "completed", "startTime": start,
            "duration": 600 + n % 3600, "resources": [{"hostname": host}], "metaData": {"jobName": f"job{n}"},
            "statistics": {"cpu_load": _stat("", 40.0 + n % 30), "mem_used": _stat("B", 20.0 + n % 50),
                           "cpu_power": _stat("W", 150.0 + n % 90)},
        }
        data = {m: {"node": {"unit": {"base": ""}, "timestep": 60, "series": [
            {"hostname": host, "statistics": {"min": 1.0, "avg": 2.0, "max": 3.0}, "data": [1.0, 2.0, 3.0] * 10}]}}
            for m in ("cpu_load", "mem_used", "cpu_power")}
        directory = root / "benchc" / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start)
        directory.mkdir(parents=True)
        (directory / "meta.json").write_bytes(orjson.dumps(meta))
        (directory / "data.json").write_bytes(orjson.dumps(data))


def _child(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a command from the repository root: (wall s, CPU s of the child, its result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def start_up() -> tuple[float, float]:
    """Median (wall s, CPU s) of `ccstream import-archive --help`: the interpreter and the CLI's imports."""
    runs = [_child([sys.executable, "-m", "api.cli", "import-archive", "--help"])[:2] for _ in range(3)]
    return median([w for w, _ in runs]), median([c for _, c in runs])


def run_import(archive: Path, work: Path) -> tuple[float, float, str]:
    """One `ccstream import-archive` in a fresh process and event log: (wall s, CPU s, its summary line).

    The CPU seconds (user + system of the child) say what the import costs regardless of how busy
    the machine is; wall time is what an operator waits on this machine now.
    """
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    config = {"main": {"db": str(work / "job.db")}, "archive": {"kind": "file", "path": str(archive)},
              "event-log": {"kind": "sqlite", "path": str(work / "events.db")}}
    (work / "config.json").write_bytes(orjson.dumps(config))
    command = [sys.executable, "-m", "api.cli", "--config", str(work / "config.json"), "--log-level", "warning",
               "import-archive", "--no-progress"]
    wall, cpu, done = _child(command)
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stderr.strip()}")
    return wall, cpu, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), f" nproc={os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="ccstream-bench-") as tmp:
        archive = Path(tmp) / "archive"
        t = time.perf_counter()
        generate(archive, args.jobs)
        print(f"generated {args.jobs:,} jobs in {time.perf_counter() - t:.1f}s at {archive}")
        rows = []
        for run in range(1, args.runs + 1):
            wall, cpu, summary = run_import(archive, Path(tmp) / f"run{run}")
            rows.append((run, wall, args.jobs / wall, cpu, args.jobs / cpu, summary))
        print_table(["run", "wall s", "jobs/s", "cpu s", "jobs/cpu-s", "ccstream's own summary"], rows)
        print(f"median {median([r[2] for r in rows]):,.0f} jobs/s wall, {median([r[4] for r in rows]):,.0f} jobs "
              f"per CPU-second, over {args.runs} runs (process start included); cc-backend -init-db ~2,100 jobs/s")
        wall, cpu = start_up()
        print(f"of each run, the command's start-up alone: {wall:.2f}s wall, {cpu:.2f}s CPU (import-archive --help)")
        print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
