"""`ccstream demo`: a working installation in one command, with history and a live cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.config import Settings
from archive.backends.file import FileArchive
from archive.imports.walk import import_archive
from replay.simulator.backfill import backfill
from replay.simulator.metrics import NodeAgents
from replay.simulator.model import Scheduler
from replay.simulator.run import LoopSettings, SimulatedCluster, Simulation
from replay.simulator.senders import Counters, HttpMetricSender, RestJobSender
from replay.simulator.topology import Machine, machine_from_cluster
from streams.events import new_event
from streams.log import SQLiteEventLog

log = logging.getLogger(__name__)

DEMO_USER, DEMO_PASSWORD = "demo", "demo"
#: The demo administrator's roles; the token printed at start carries all of them.
DEMO_ROLES = ["admin", "api", "user"]
HISTORY_MARKER = ".demo-history"
#: Where the live clusters record how far their simulated time got, so that a restart resumes from there.
LIVE_MARKER = ".demo-live"
#: How far back a live cluster starts on its first run (caught up at 60x): an hour or two of jobs to look at.
LIVE_CATCH_UP = 2 * 3600
#: Wall seconds between two records of the live clusters' simulated time.
LIVE_MARK_EVERY = 5.0
#: Hosts per cluster in the history and in the live simulation: enough to look real, small enough for a laptop.
HISTORY_NODES, LIVE_NODES = 32, 8
#: State of the jobs a previous demo run left running: its scheduler went away with it.
ENDED_STATE = "cancelled"


def ensure_demo_user(settings: Settings) -> bool:
    """Add the demo admin unless a user of that name exists; True when it was added."""
    from api.passwords import hash_password
    from projections import queries
    from projections.db import reader_engine

    db = Path(settings.main.db)
    if db.exists():
        engine = reader_engine(db)
        try:
            with engine.connect() as conn:
                if queries.find_user(conn, DEMO_USER) is not None:
                    return False
        finally:
            engine.dispose()
    log = SQLiteEventLog(settings.event_log.path)
    try:
        data = {"username": DEMO_USER, "password": hash_password(DEMO_PASSWORD), "roles": DEMO_ROLES,
                "projects": [], "name": "Demo Administrator", "authSource": 0}
        log.append([new_event("user.created", f"users/{DEMO_USER}", data, source="demo")])
    finally:
        log.close()
    return True


def ensure_history(settings: Settings, days: float, seed: int) -> int:
    """Backfill `days` of finished jobs of every cluster into the archive and import them, once."""
    root = Path(settings.archive.path)
    marker = root / HISTORY_MARKER
    if marker.exists() or days <= 0:
        return 0
    archive = FileArchive(root, durable=False)  # one sync at the end instead of one per file
    end = int(time.time()) - 3 * 3600
    written = 0
    for index, name in enumerate(archive.clusters()):
        machine = machine_from_cluster(archive.load_cluster(name), HISTORY_NODES)
        report, _ = backfill(machine, archive, seed=seed + index, start=end - int(days * 86400), end=end,
                             first_job_id=(index + 1) * 1_000_000)
        written += report.jobs
    os.sync()
    log = SQLiteEventLog(settings.event_log.path)
    try:
        import_archive(FileArchive(root), log)
    finally:
        log.close()
    marker.write_text(f"{written}\n")
    return written


def live_marker(settings: Settings) -> Path:
    """The file beside the event log that holds the live clusters' simulated time."""
    return Path(settings.event_log.path).parent / LIVE_MARKER


def previous_run_end(marker: Path) -> int | None:
    """Simulated time the previous demo run had reached, or None on the first run (or an unreadable record)."""
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError):
        return None


def live_start(now: int, resume_after: int | None) -> int:
    """Where the live clusters start: two hours back on a first run, else just after the previous run.

    Starting after the previous run (`resume_after`: its end, or the last stop of the jobs it left
    running, whichever is later) keeps every node booked once: those jobs are ended then, and the new
    schedule only begins after it.
    """
    if resume_after is None:
        return now - LIVE_CATCH_UP
    return min(now, max(now - LIVE_CATCH_UP, resume_after + 1))


def jobs_to_end(jobs: Sequence[dict[str, Any]], hosts: set[str], ended_at: int) -> list[dict[str, Any]]:
    """Stop requests for the running jobs on the live hosts, stopped when the previous run ended."""
    stops = []
    for job in jobs:
        if not any(r.get("hostname") in hosts for r in job.get("resources") or ()):
            continue
        start = int(job["startTime"])
        stops.append({"jobId": job["jobId"], "cluster": job["cluster"], "startTime": start,
                      "jobState": ENDED_STATE, "stopTime": max(start + 1, ended_at)})
    return stops


async def end_previous_run(client: httpx.AsyncClient, machines: Sequence[Machine], ended_at: int) -> list[int]:
    """Stop the jobs a previous run left running on the live hosts (it cannot stop them any more).

    Returns the stop times given; the caller resumes after the latest.
    """
    stopped: list[int] = []
    for machine in machines:
        answer = await client.get("/api/jobs/", params={"state": "running", "cluster": machine.cluster,
                                                        "items-per-page": 100_000})
        answer.raise_for_status()
        for stop in jobs_to_end(answer.json()["jobs"], set(machine.hosts), ended_at):
            response = await client.post("/api/jobs/stop_job/", json=stop)
            if response.status_code >= 400:
                log.warning("could not end job %s of the previous demo run: %s", stop["jobId"], response.text)
            else:
                stopped.append(stop["stopTime"])
    return stopped


async def _record_progress(simulation: Simulation, marker: Path) -> None:
    """Write the simulated time reached every few seconds (atomically), and once more when cancelled."""
    try:
        while True:
            await asyncio.sleep(LIVE_MARK_EVERY)
            _write_marker(marker, simulation.now)
    finally:
        _write_marker(marker, simulation.now)


def _write_marker(marker: Path, now: int | None) -> None:
    if now is None:
        return
    scratch = marker.with_suffix(".tmp")
    scratch.write_text(f"{now}\n")
    os.replace(scratch, marker)


async def live_cluster(settings: Settings, base_url: str, token: str, seed: int,
                       caught_up: Callable[[], Awaitable[object]]) -> None:
    """A small real-time cluster per configured cluster, resuming where the previous run stopped.

    `caught_up` waits until the job database shows the whole log, so the previous run's running jobs are
    all listed before they are ended.
    """
    archive = FileArchive(Path(settings.archive.path))
    machines = [machine_from_cluster(archive.load_cluster(name), LIVE_NODES) for name in archive.clusters()]
    marker = live_marker(settings)
    previous_end = previous_run_end(marker)
    counters = Counters()
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Token": token}, timeout=60.0) as client:
        for _ in range(200):  # wait for the server to listen
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        await caught_up()
        now = int(time.time())
        # Jobs left running without a record of the run's end (an older installation) end now.
        stopped = await end_previous_run(client, machines, previous_end if previous_end is not None else now)
        if stopped:
            print(f"ended {len(stopped)} jobs the previous demo run left running (state {ENDED_STATE})")
        resume_after = max([*stopped, *([] if previous_end is None else [previous_end])], default=None)
        start = live_start(now, resume_after)
        clusters = []
        for index, machine in enumerate(machines):
            scheduler = Scheduler(machine, seed=seed + 100 + index, start=start, jobs_per_hour=12.0,
                                  first_job_id=(index + 1) * 10_000_000 + (start // 60) % 1_000_000 * 10)
            clusters.append(SimulatedCluster(machine, scheduler, NodeAgents(machine, seed + index)))
        simulation = Simulation(clusters, RestJobSender(client, counters), HttpMetricSender(client, counters),
                                counters, LoopSettings(speed=60.0, follow_wall_clock=True))
        progress = asyncio.create_task(_record_progress(simulation, marker))
        try:
            await simulation.run(start)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress


def cluster_names(settings: Settings) -> list[str]:
    """Clusters installed in the archive."""
    root = Path(settings.archive.path)
    return sorted(p.parent.name for p in root.glob("*/cluster.json")) if root.exists() else []


def read_cluster(path: Path) -> dict[str, object]:
    """A cluster.json file."""
    value = orjson.loads(path.read_bytes())
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value
