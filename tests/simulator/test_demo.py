"""`ccstream demo`: the administrator's token, and a restart that ends the previous run's jobs and resumes."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

import httpx

from replay.simulator.demo import LIVE_CATCH_UP, jobs_to_end, live_start
from tests.support.server import ccstream_executable, free_port
from tests.support.wait import eventually


class Demo:
    """One `ccstream demo` process in `workdir`, its output collected line by line."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [ccstream_executable(), "--log-level", "warning", "demo", "--days", "0", "--seed", "3",
             "--addr", f"127.0.0.1:{port}"],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._collect, args=(self.proc.stdout,), daemon=True).start()

    def _collect(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def line_starting(self, prefix: str) -> str | None:
        return next((line for line in self.lines if line.startswith(prefix)), None)

    def stop(self) -> None:
        """Stop it as a service manager would: it shuts down and exits by the signal, as `serve` does."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=120) == -signal.SIGTERM, "\n".join(self.lines[-30:])
        assert not any("Traceback" in line for line in self.lines), "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def listening(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def running_jobs(job_db: Path) -> list[tuple[int, str, int, str]]:
    """(job id, cluster, start time, hosts as JSON) of the jobs the database shows running."""
    with sqlite3.connect(job_db) as conn:
        return list(conn.execute("SELECT job_id, cluster, start_time, resources FROM job WHERE job_state = 'running'"))


def test_the_first_run_starts_two_hours_back_and_a_restart_just_after_the_previous_run() -> None:
    assert live_start(100_000, None) == 100_000 - LIVE_CATCH_UP
    assert live_start(100_000, 99_000) == 99_001
    assert live_start(100_000, 10_000) == 100_000 - LIVE_CATCH_UP
    assert live_start(100_000, 100_000) == 100_000


def test_only_jobs_on_the_live_hosts_are_ended_and_never_before_they_started() -> None:
    jobs = [{"jobId": 1, "cluster": "atlas", "startTime": 500, "resources": [{"hostname": "a1"}]},
            {"jobId": 2, "cluster": "atlas", "startTime": 900, "resources": [{"hostname": "a2"}]},
            {"jobId": 3, "cluster": "atlas", "startTime": 100, "resources": [{"hostname": "elsewhere"}]}]
    assert jobs_to_end(jobs, {"a1", "a2"}, ended_at=800) == [
        {"jobId": 1, "cluster": "atlas", "startTime": 500, "jobState": "cancelled", "stopTime": 800},
        {"jobId": 2, "cluster": "atlas", "startTime": 900, "jobState": "cancelled", "stopTime": 901},
    ]


def test_a_restarted_demo_ends_the_previous_runs_jobs_and_books_every_node_once(tmp_path: Path) -> None:
    port = free_port()
    first = Demo(tmp_path, port)
    try:
        eventually(lambda: first.line_starting("a token of 'demo'") is not None, 120, "the demo's token")
        token = str(first.line_starting("a token of 'demo'")).rsplit(" ", 1)[1]
        assert set(claims(token)["roles"]) == {"admin", "api", "user"}
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Auth-Token": token}, timeout=30)
        eventually(lambda: listening(http), 120, "the demo server listening")
        assert http.get("/api/users/").status_code == 200  # an admin's route: the token is the administrator's

        def some_running() -> bool:
            answer = http.get("/api/jobs/", params={"state": "running", "items-per-page": 1000})
            return answer.status_code == 200 and len(answer.json()["jobs"]) > 0

        eventually(some_running, 180, "running jobs of the live clusters")
        marker = tmp_path / "var" / ".demo-live"
        eventually(marker.exists, 60, "the live clusters' record of their simulated time")
        first.stop()
    finally:
        first.kill()
    previous_end = int(marker.read_text())
    left = running_jobs(tmp_path / "var" / "job.db")
    assert left, "the first run left no job running"

    second = Demo(tmp_path, port)
    try:
        eventually(lambda: second.line_starting("ended ") is not None, 180, "the previous run's jobs ended")
        assert second.line_starting(f"ended {len(left)} jobs") is not None, second.lines
        with sqlite3.connect(tmp_path / "var" / "job.db") as conn:
            for job_id, cluster, start, _ in left:
                state, stop = conn.execute("SELECT job_state, start_time + duration FROM job WHERE job_id = ? "
                                           "AND cluster = ? AND start_time = ?", (job_id, cluster, start)).fetchone()
                assert (state, stop) == ("cancelled", max(start + 1, previous_end))
        resumed_after = max(max(start + 1, previous_end) for _, _, start, _ in left)
        eventually(lambda: len(running_jobs(tmp_path / "var" / "job.db")) > 0, 180, "the resumed run's jobs")
        for _, _, start, _ in running_jobs(tmp_path / "var" / "job.db"):
            assert start > resumed_after  # every node the old jobs held was free again when the new ones began
        second.stop()
    finally:
        second.kill()
