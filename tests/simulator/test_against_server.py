"""A short accelerated simulation against a real server and a real nats-server, over REST and over NATS."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.natsserver import nats_server
from tests.support.server import CcstreamServer, ccstream_executable

TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "clusters"


def install(server: CcstreamServer, nats_url: str) -> None:
    archive = server.workdir / "var" / "job-archive"
    for name in ("atlas", "nova"):
        (archive / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATES / f"{name}.json", archive / name / "cluster.json")
    config_path = server.workdir / "config.json"
    config = json.loads(config_path.read_text())
    config["main"]["api-subjects"] = {"subject-job-event": "cc.job.event", "subject-node-state": "cc.node.state"}
    config["nats"] = {"address": nats_url, "mode": "core"}
    config["metric-store"] = {"nats-subscriptions": [{"subscribe-to": "hpc-metrics"}]}
    config["archiver"] = {"retry-backoff": 1}
    config_path.write_text(json.dumps(config))


def simulate(server: CcstreamServer, *args: str) -> str:
    done = subprocess.run(
        [ccstream_executable(), "--log-level", "warning", "simulate", "--url", server.base_url,
         "--token", server.token, "--speed", "900", "--duration", "10800", "--seed", "5", *args],
        cwd=server.workdir, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def jobs(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = http.get("/api/jobs/", params={"items-per-page": 10000, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["jobs"])


def test_simulation_over_rest_and_nats(tmp_path: Path) -> None:
    start = int(time.time()) - 4 * 3600  # the simulated hours end in the past: the metric store takes them
    with nats_server(tmp_path / "nats") as nats, CcstreamServer(tmp_path / "srv") as server:
        server.prepare(clusters=())
        install(server, nats.url)
        server.start()
        rest = simulate(server, "--cluster", str(TEMPLATES / "atlas.json"), "--nodes", "8",
                        "--start", str(start))
        assert "errors: 0" in rest, rest
        via_nats = simulate(server, "--cluster", str(TEMPLATES / "nova.json"), "--nodes", "4",
                            "--start", str(start), "--transport", "nats", "--metrics", "nats",
                            "--nats-url", nats.url)
        assert "errors: 0" in via_nats, via_nats

        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                atlas, nova = jobs(http, cluster="atlas"), jobs(http, cluster="nova")
                finished = [j for j in atlas + nova if j["jobState"] != "running"]
                if atlas and nova and finished and all(j["monitoringStatus"] == 3 for j in finished):
                    break
                assert time.monotonic() < deadline, "jobs did not arrive or were not archived"
                time.sleep(0.5)
            assert any(j["jobState"] == "running" for j in atlas)
            assert {j["jobState"] for j in finished} <= {"completed", "failed", "cancelled", "timeout",
                                                           "out-of-memory", "node_fail"}
            for job in finished:
                footprint = job["footprint"] or {}
                assert 0 <= footprint.get("cpu_load_avg", 0) <= 144, job
                assert footprint.get("mem_used_max", 0) <= 512, job
            assert any((j["footprint"] or {}).get("flops_any_avg", 0) > 1 for j in finished)

            states = http.get("/api/nodestate/", params={"cluster": "atlas"})
            assert states.status_code == 200 and states.json()["count"] == 8
            running = next(j for j in atlas if j["jobState"] == "running")
            data = http.get(f"/api/jobs/{running['id']}", params={"all-metrics": "true"}).json()["data"]
            loads = next(d for d in data if d["name"] == "cpu_load")["metric"]["series"][0]["data"]
            assert any(v is not None and v > 0 for v in loads)
