"""`ccstream demo`: a working installation in one command, with history and a live cluster."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

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
from replay.simulator.topology import machine_from_cluster
from streams.events import new_event
from streams.log import SQLiteEventLog

DEMO_USER, DEMO_PASSWORD = "demo", "demo"
HISTORY_MARKER = ".demo-history"
#: Hosts per cluster in the history and in the live simulation: enough to look real, small enough for a laptop.
HISTORY_NODES, LIVE_NODES = 32, 8


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
        data = {"username": DEMO_USER, "password": hash_password(DEMO_PASSWORD), "roles": ["admin", "api", "user"],
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


async def live_cluster(settings: Settings, base_url: str, token: str, seed: int) -> None:
    """A small real-time cluster per configured cluster, started two hours ago and caught up at 60x."""
    archive = FileArchive(Path(settings.archive.path))
    start = int(time.time()) - 2 * 3600
    clusters = []
    for index, name in enumerate(archive.clusters()):
        machine = machine_from_cluster(archive.load_cluster(name), LIVE_NODES)
        scheduler = Scheduler(machine, seed=seed + 100 + index, start=start, jobs_per_hour=12.0,
                              first_job_id=(index + 1) * 10_000_000 + (start // 60) % 1_000_000 * 10)
        clusters.append(SimulatedCluster(machine, scheduler, NodeAgents(machine, seed + index)))
    counters = Counters()
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Token": token}, timeout=60.0) as client:
        for _ in range(200):  # wait for the server to listen
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        simulation = Simulation(clusters, RestJobSender(client, counters), HttpMetricSender(client, counters),
                                counters, LoopSettings(speed=60.0, follow_wall_clock=True))
        await simulation.run(start)


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
