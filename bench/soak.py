"""Soak: a simulated cluster of many nodes at high speed against a real server; memory and errors over time."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import CcstreamServer, ccstream_executable  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock minutes to run")
    parser.add_argument("--detail", choices=["full", "node"], default="node")
    parser.add_argument("--retention", default="2h", help="metric-store retention-in-memory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccstream-soak-"))
    server = CcstreamServer(work / "srv")
    server.prepare(clusters=())
    archive = server.workdir / "var" / "job-archive" / "atlas"
    archive.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "configs" / "clusters" / "atlas.json", archive / "cluster.json")
    config = json.loads((server.workdir / "config.json").read_text())
    config["metric-store"] = {"retention-in-memory": args.retention}
    (server.workdir / "config.json").write_text(json.dumps(config))
    server.start()
    sim_seconds = args.minutes * 60 * args.speed
    start = int(time.time()) - int(sim_seconds)  # end at now: every sample is inside the store's window
    sim = subprocess.Popen(
        [ccstream_executable(), "--log-level", "warning", "simulate", "--url", server.base_url,
         "--token", server.token, "--cluster", str(ROOT / "configs" / "clusters" / "atlas.json"),
         "--nodes", str(args.nodes), "--speed", str(args.speed), "--duration", str(sim_seconds),
         "--start", str(start), "--detail", args.detail, "--seed", "42"],
        cwd=server.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    print(f"cores: {os.cpu_count()}  nodes: {args.nodes}  speed: {args.speed}x  wall: {args.minutes} min")
    print("minute  server_rss_MiB")
    began = time.monotonic()
    samples = []
    while sim.poll() is None:
        time.sleep(30)
        assert server.proc is not None
        samples.append(rss_mb(server.proc.pid))
        print(f"{(time.monotonic() - began) / 60:6.1f}  {samples[-1]:.0f}", flush=True)
    out, err = sim.communicate()
    print(out.strip())
    if err.strip():
        print(err.strip()[-2000:])
    import httpx

    status = httpx.get(f"{server.base_url}/api/admin/status", headers=server.headers, timeout=30).json()
    print("agents:", [(a["name"], a["lag"], a["failures"]) for a in status["agents"]])
    print("metric store:", {k: status["metricStore"].get(k) for k in ("samples_accepted", "lines_rejected",
                                                                      "bytes", "buffers")})
    if samples:
        half = samples[len(samples) // 2 :]
        print(f"rss first/last/max MiB: {samples[0]:.0f}/{samples[-1]:.0f}/{max(samples):.0f}; "
              f"growth over the second half: {half[-1] - half[0]:.0f} MiB")
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0 if sim.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
