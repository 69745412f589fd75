"""kill -9 of `ccstream serve` under concurrent start/stop load: every 2xx answer is in the read model once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.server import CcstreamServer, start_payload, stop_payload

JOBS = int(os.environ.get("CCSTREAM_CRASH_JOBS", "3000"))
CONCURRENCY = 16
KILLS = 3
BASE_JOB_ID = 5_000_000
BASE_START = 1_700_000_000
STATES = ("completed", "failed", "cancelled", "timeout")
#: A request that cannot get through for this long (server down, restarting) fails the test.
GIVE_UP_SECONDS = 120.0


def job_id_of(n: int) -> int:
    return BASE_JOB_ID + n


def start_time_of(n: int) -> int:
    return BASE_START + n * 7


def stop_of(n: int) -> tuple[str, int]:
    """(state, duration) of job n's stop."""
    return STATES[n % len(STATES)], 60 + n % 3600


@dataclass
class Ledger:
    """What the clients were told: acknowledged starts (with db id) and stops, and how they got there."""

    starts: dict[int, int | None] = field(default_factory=dict)
    stops: dict[int, tuple[str, int]] = field(default_factory=dict)
    acked: int = 0
    sent: int = 0
    transport_errors: int = 0
    cut_off: int = 0
    duplicates: int = 0
    unexpected: list[str] = field(default_factory=list)


class Client:
    """An adapter-like client: retries on connection errors until the server answers."""

    def __init__(self, http: httpx.AsyncClient, ledger: Ledger) -> None:
        self.http = http
        self.ledger = ledger

    async def post(self, path: str, body: dict[str, Any], expected: int) -> dict[str, Any] | None:
        content = orjson.dumps(body)
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while True:
            self.ledger.sent += 1
            try:
                resp = await self.http.post(path, content=content, headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                self.ledger.transport_errors += 1
                if not isinstance(exc, httpx.ConnectError):  # sent, then the server died before answering
                    self.ledger.cut_off += 1
                if time.monotonic() > deadline:
                    raise AssertionError(f"{path} {body.get('jobId')}: server unreachable: {exc!r}") from exc
                await asyncio.sleep(0.05)
                continue
            if resp.status_code != expected:
                self.ledger.unexpected.append(f"{path} {body.get('jobId')}: {resp.status_code} {resp.text[:200]}")
                return None
            self.ledger.acked += 1
            answer: dict[str, Any] = resp.json()
            return answer


async def run_job(client: Client, n: int) -> None:
    """Start job n, sometimes retry or race the start, stop it, sometimes retry the stop."""
    ledger = client.ledger
    job_id, start = job_id_of(n), start_time_of(n)
    body = start_payload(job_id, start, host_index=n, user=f"user{n % 17}", project=f"proj{n % 5}")
    if n % 13 == 0:  # two identical starts racing each other
        ledger.duplicates += 1
        answers = await asyncio.gather(*(client.post("/api/jobs/start_job/", body, 201) for _ in range(2)))
        answer = answers[0] or answers[1]
    else:
        answer = await client.post("/api/jobs/start_job/", body, 201)
    if answer is None:
        return
    ledger.starts[n] = answer.get("id")
    if n % 7 == 0:  # an adapter retrying a start it already got an answer for
        ledger.duplicates += 1
        await client.post("/api/jobs/start_job/", body, 201)
    state, duration = stop_of(n)
    stop = stop_payload(job_id, start, start + duration, state)
    answer = await client.post("/api/jobs/stop_job/", stop, 200)
    if answer is None:
        return
    if answer.get("jobState") != state or answer.get("duration") != duration:
        ledger.unexpected.append(f"stop answer of {job_id} says {answer.get('jobState')}/{answer.get('duration')}")
    ledger.stops[n] = (state, duration)
    if n % 11 == 0:
        ledger.duplicates += 1
        await client.post("/api/jobs/stop_job/", stop, 200)


async def crash_repeatedly(server: CcstreamServer, ledger: Ledger, total: int, done: asyncio.Event) -> int:
    """SIGKILL the server each time another quarter of the expected answers is in, then restart it."""
    kills = 0
    for k in range(1, KILLS + 1):
        threshold = total * k // (KILLS + 1)
        while ledger.acked < threshold and not done.is_set():
            await asyncio.sleep(0.002)
        if done.is_set():
            break
        server.kill9()
        kills += 1
        await asyncio.to_thread(server.start)
    return kills


async def drive(server: CcstreamServer) -> tuple[Ledger, int]:
    ledger = Ledger()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(JOBS):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers, limits=limits, timeout=30.0
    ) as http:
        client = Client(http, ledger)

        async def worker() -> None:
            while not queue.empty():
                await run_job(client, queue.get_nowait())

        done = asyncio.Event()
        # Expected answers: start + stop per job, plus the duplicate sends.
        total = 2 * JOBS + JOBS // 13 + JOBS // 7 + JOBS // 11
        crasher = asyncio.create_task(crash_repeatedly(server, ledger, total, done))
        try:
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        finally:
            done.set()
            kills = await crasher
    return ledger, kills


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CcstreamServer]:
    srv = CcstreamServer(tmp_path / "ccstream")
    try:
        srv.prepare()
        srv.start()
        yield srv
    finally:
        srv.stop()


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def check_job_db(server: CcstreamServer, ledger: Ledger) -> None:
    with read_only(server.job_db) as db:
        unique = [
            [col[2] for col in db.execute(f"PRAGMA index_info('{name}')")]
            for _, name, is_unique, *_ in db.execute("PRAGMA index_list('job')")
            if is_unique
        ]
        assert ["job_id", "cluster", "start_time"] in unique
        rows = db.execute("SELECT id, job_id, cluster, start_time, job_state, duration FROM job").fetchall()
        twice = db.execute(
            "SELECT job_id, cluster, start_time, COUNT(*) FROM job GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"
        ).fetchall()
    assert twice == []
    by_job_id = Counter(r[1] for r in rows)
    assert [j for j, c in by_job_id.items() if c > 1] == []
    assert len(rows) == len(ledger.starts) == JOBS
    table = {r[1]: r for r in rows}
    for n, db_id in ledger.starts.items():
        row = table.get(job_id_of(n))
        assert row is not None, f"acknowledged start of job {job_id_of(n)} missing from job.db"
        assert row[2] == "fritz" and row[3] == start_time_of(n)
        if db_id is not None:
            assert row[0] == db_id, f"job {job_id_of(n)}: answered id {db_id}, job.db has {row[0]}"
    for n, (state, duration) in ledger.stops.items():
        row = table[job_id_of(n)]
        assert (row[4], row[5]) == (state, duration), f"job {job_id_of(n)} stop lost: {row}"


async def check_api(server: CcstreamServer, ledger: Ledger) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=60.0) as http:
        resp = await http.get("/api/jobs/", params={"cluster": "fritz", "items-per-page": JOBS * 2})
        assert resp.status_code == 200, resp.text
        jobs = resp.json()["jobs"]
        running = await http.get("/api/jobs/", params={"state": "running", "items-per-page": JOBS * 2})
        assert running.status_code == 200
    assert len(jobs) == JOBS
    keys = Counter((j["jobId"], j["cluster"], j["startTime"]) for j in jobs)
    assert [k for k, c in keys.items() if c > 1] == []
    listed = {j["jobId"]: j for j in jobs}
    for n in ledger.starts:
        assert job_id_of(n) in listed, f"acknowledged start of job {job_id_of(n)} missing from GET /api/jobs/"
    for n, (state, duration) in ledger.stops.items():
        j = listed[job_id_of(n)]
        assert (j["jobState"], j["duration"]) == (state, duration)
    expected_running = len(ledger.starts) - len(ledger.stops)
    assert len(running.json()["jobs"]) == expected_running


def check_event_log(server: CcstreamServer, ledger: Ledger) -> None:
    with read_only(server.event_db) as log:
        counts = log.execute(
            "SELECT type, subject, COUNT(*) FROM events WHERE type IN ('job.started', 'job.stopped') GROUP BY 1, 2"
        ).fetchall()
    starts = {s: c for t, s, c in counts if t == "job.started"}
    stops = {s: c for t, s, c in counts if t == "job.stopped"}
    assert {s: c for s, c in starts.items() if c > 1} == {}
    assert {s: c for s, c in stops.items() if c > 1} == {}
    # One start per scheduler job id, whatever start time: a retry never made a second run.
    per_job_id = Counter(s.split("/")[2] for s in starts)
    assert [j for j, c in per_job_id.items() if c > 1] == []
    for n in ledger.starts:
        assert f"job/fritz/{job_id_of(n)}/{start_time_of(n)}" in starts
    for n in ledger.stops:
        assert f"job/fritz/{job_id_of(n)}/{start_time_of(n)}" in stops


@pytest.mark.timeout(300)
async def test_acknowledged_requests_survive_kill9_exactly_once(server: CcstreamServer) -> None:
    began = time.monotonic()
    ledger, kills = await drive(server)
    elapsed = time.monotonic() - began
    print(
        f"\n{JOBS} jobs, {ledger.acked} answers 2xx, {ledger.sent} sends, {ledger.transport_errors} connection "
        f"errors retried ({ledger.cut_off} cut off in flight), {ledger.duplicates} duplicate sends, "
        f"{kills} kill -9, {elapsed:.1f}s"
    )
    assert ledger.unexpected == []
    assert kills == KILLS
    assert server.starts == KILLS + 1
    assert ledger.cut_off > 0, "no request was in flight at a kill: the test proved nothing"
    assert len(ledger.starts) == len(ledger.stops) == JOBS

    await check_api(server, ledger)
    server.stop()
    check_job_db(server, ledger)
    check_event_log(server, ledger)
