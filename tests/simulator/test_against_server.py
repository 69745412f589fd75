"""A short accelerated simulation against a real server and a real nats-server, over REST and over NATS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.natsserver import nats_server
from tests.support.server import CcstreamServer, ccstream_executable

TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "clusters"


def install_clusters(server: CcstreamServer, *names: str) -> None:
    """The shipped cluster templates as the server's clusters (before it starts)."""
    archive = server.workdir / "var" / "job-archive"
    for name in names:
        (archive / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATES / f"{name}.json", archive / name / "cluster.json")


def install(server: CcstreamServer, nats_url: str) -> None:
    install_clusters(server, "atlas", "nova")
    config_path = server.workdir / "config.json"
    config = json.loads(config_path.read_text())
    config["main"]["api-subjects"] = {"subject-job-event": "cc.job.event", "subject-node-state": "cc.node.state"}
    config["nats"] = {"address": nats_url, "mode": "core"}
    config["metric-store"] = {"nats-subscriptions": [{"subscribe-to": "hpc-metrics"}]}
    config["archiver"] = {"retry-backoff": 1}
    config_path.write_text(json.dumps(config))


def run_simulate(server: CcstreamServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`ccstream simulate` against the server, whatever its exit status."""
    return subprocess.run(
        [ccstream_executable(), "--log-level", "warning", "simulate", "--url", server.base_url,
         "--token", server.token, "--seed", "5", *args],
        cwd=server.workdir, capture_output=True, text=True, timeout=300, check=False,
    )


def simulate(server: CcstreamServer, *args: str) -> str:
    done = run_simulate(server, "--speed", "900", "--duration", "10800", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def report_numbers(report: str, label: str) -> tuple[int, int]:
    """(sent, acknowledged) of one line of the simulator's report."""
    found = re.search(rf"^{label}: (\d+) sent, (\d+) acknowledged", report, re.MULTILINE)
    assert found is not None, report
    return int(found[1]), int(found[2])


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


def test_accelerated_run_from_the_default_start_sends_no_sample_the_store_refuses(tmp_path: Path) -> None:
    """At 60x from the default start, simulated time once ran ahead of the wall clock by up to 59 s a
    second, and the metric store refused every sample more than 600 s in the future. 900 simulated
    seconds lead by 885 s at the end: the old start would have had samples refused."""
    with CcstreamServer(tmp_path / "srv") as server:
        server.prepare(clusters=())
        install_clusters(server, "atlas")
        server.start()
        done = run_simulate(server, "--cluster", str(TEMPLATES / "atlas.json"), "--nodes", "2",
                            "--speed", "60", "--duration", "900")
        assert done.returncode == 0, done.stderr
        sent, acknowledged = report_numbers(done.stdout, "metric samples")
        assert sent > 0 and acknowledged == sent, done.stdout
        assert "errors: 0" in done.stdout, done.stdout


def test_a_cluster_the_server_does_not_have_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with CcstreamServer(tmp_path / "srv") as server:
        server.prepare(clusters=())
        install_clusters(server, "atlas")
        server.start()
        done = run_simulate(server, "--cluster", str(TEMPLATES / "nova.json"), "--nodes", "2",
                            "--speed", "900", "--duration", "3600", "--start", str(int(time.time()) - 7200))
        assert done.returncode != 0, done.stdout
        message = done.stderr.strip().splitlines()
        assert len(message) == 1 and "nova" in message[0] and "atlas" in message[0], done.stderr
        assert done.stdout == ""
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as http:
            assert jobs(http) == []
            states = http.get("/api/nodestate/", params={"cluster": "nova"})
            assert states.status_code != 200 or states.json()["count"] == 0, states.text
