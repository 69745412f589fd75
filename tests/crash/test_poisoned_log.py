"""A real server over a log that holds poison events: it binds and answers at once, quarantines them, lets an
operator skip what blocks it, and stops promptly on SIGTERM in every state.

The poison is appended to the log file directly, as an older build or someone else's export would have
put it there (intake refuses it today: tests/api/test_poison.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from streams.events import job_subject, new_event
from streams.log import SQLiteEventLog
from tests.support.server import CcstreamServer, start_payload

#: Seconds SIGTERM may take to stop the server, in any state (agents blocked, catching up, idle).
STOP_BOUND = 10.0


def poison(event_db: Path) -> int:
    """Appends two poison events; the position of the first."""
    log = SQLiteEventLog(event_db)
    try:
        data = {**start_payload(7, 1_700_000_000), "jobId": 2**63, "subCluster": "main"}
        results = log.append([
            new_event("job.started", job_subject("fritz", 2**63, 1_700_000_000), data, id="poison-int"),
            new_event("job.teleported", "job/fritz/8/1", {}, id="poison-type"),
        ])
    finally:
        log.close()
    return results[0].position


def configure(server: CcstreamServer, **agents: Any) -> None:
    path = server.workdir / "config.json"
    config = json.loads(path.read_text())
    config["agents"] = agents
    path.write_text(json.dumps(config, indent=2))


def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for a condition (bounded), never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def agents_status(server: CcstreamServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.base_url}/api/admin/status", headers=server.headers, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["agents"])


def terminate_within_bound(server: CcstreamServer) -> None:
    assert server.proc is not None
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        server.kill9()
        raise AssertionError(f"SIGTERM did not stop the server within {STOP_BOUND}s:\n{server.output_tail()}") from None
    assert time.monotonic() - began < STOP_BOUND


def test_poison_is_quarantined_and_intake_goes_on(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "srv").prepare()
    poison(server.event_db)
    configure(server, **{"max-attempts": 2, "max-backoff": 0.05})
    server.start()
    try:
        eventually(lambda: agents_status(server)[0]["quarantined"] == 2)
        [jobdb] = [a for a in agents_status(server) if a["name"] == "jobdb"]
        assert {q["event_id"] for q in jobdb["quarantine"]} == {"poison-int", "poison-type"}
        response = httpx.post(f"{server.base_url}/api/jobs/start_job/", json=start_payload(1, 1_700_000_100),
                              headers=server.headers, timeout=30)
        assert response.status_code == 201 and response.json()["id"] > 0, response.text
        # The operator's view from beside the server.
        done = subprocess.run([server._exe, "agents", "status"], cwd=server.workdir, capture_output=True,
                              text=True, timeout=60, check=True)
        assert "jobdb: checkpoint" in done.stdout and "2 quarantined" in done.stdout, done.stdout
        assert "unknown event type 'job.teleported'" in done.stdout
    finally:
        terminate_within_bound(server)


def test_a_blocked_server_starts_serves_is_unblocked_by_a_skip_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "srv").prepare()
    first = poison(server.event_db)
    configure(server, **{"max-attempts": 1000, "max-backoff": 0.05})
    server.start()  # /healthz answers although the job database is blocked on the first poison event
    try:
        eventually(lambda: agents_status(server)[0]["blocked_at"] == first)
        response = httpx.post(f"{server.base_url}/api/jobs/start_job/", json=start_payload(2, 1_700_000_200),
                              headers=server.headers, timeout=30)
        assert response.status_code == 201, response.text
        assert f"held up at log position {first}" in response.json()["warning"]
        done = subprocess.run([server._exe, "agents", "skip", str(first)], cwd=server.workdir, capture_output=True,
                              text=True, timeout=60, check=True)
        assert "skipped and quarantined" in done.stdout, done.stdout + done.stderr
        response = httpx.post(f"{server.base_url}/api/admin/agents/jobdb/skip/{first + 1}", headers=server.headers,
                              timeout=30)
        assert response.status_code == 200 and response.json()["settled"], response.text
        eventually(lambda: agents_status(server)[0]["lag"] == 0)
        listed = httpx.get(f"{server.base_url}/api/jobs/?cluster=fritz", headers=server.headers, timeout=10)
        assert [j["jobId"] for j in listed.json()["jobs"]] == [2]
    finally:
        terminate_within_bound(server)


def test_sigterm_stops_a_server_whose_agent_is_blocked(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "srv").prepare()
    first = poison(server.event_db)
    configure(server, **{"max-attempts": 1000, "max-backoff": 30})
    server.start()
    try:
        eventually(lambda: agents_status(server)[0]["blocked_at"] == first)
    finally:
        terminate_within_bound(server)


def test_a_skip_filed_while_the_server_is_down_is_carried_out_when_it_runs(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "srv").prepare()
    first = poison(server.event_db)
    configure(server, **{"max-attempts": 1000, "max-backoff": 0.05})
    for position in (first, first + 1):
        done = subprocess.run([server._exe, "agents", "skip", str(position), "--wait", "0"], cwd=server.workdir,
                              capture_output=True, text=True, timeout=60, check=True)
        assert "is filed" in done.stdout, done.stdout + done.stderr
    listed = subprocess.run([server._exe, "agents", "status"], cwd=server.workdir, capture_output=True, text=True,
                            timeout=60, check=True)
    assert f"requested: skip of position {first}" in listed.stdout, listed.stdout
    server.start()
    try:
        # The unknown type is quarantined at once; the skip filed for it is then moot and settled too.
        eventually(lambda: agents_status(server)[0]["lag"] == 0 and agents_status(server)[0]["requests"] == [])
        [jobdb] = [a for a in agents_status(server) if a["name"] == "jobdb"]
        assert jobdb["quarantined"] == 2
        assert any("skipped by an operator" in q["error"] for q in jobdb["quarantine"])
    finally:
        terminate_within_bound(server)
