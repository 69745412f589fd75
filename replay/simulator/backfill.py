"""History in seconds: simulate past days and write the finished jobs as a cc-backend job archive."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive.backends.protocol import ArchiveBackend
from archive.stats import energy, footprint, job_statistics
from replay.simulator.adapter import start_payload
from replay.simulator.metrics import NodeAgents
from replay.simulator.model import Ended, Scheduler, SimJob
from replay.simulator.topology import Machine

#: At most this many samples per series: history is for browsing, not for the last detail.
MAX_SAMPLES = 120


@dataclass(frozen=True)
class BackfillReport:
    """How much history was written."""

    jobs: int
    running_at_end: int


def job_data(job: SimJob, machine: Machine, agents: NodeAgents) -> tuple[dict[str, Any], int]:
    """A node-scope data.json for a finished job, and the timestep used."""
    base_step = min(int(m.get("timestep", 60)) for m in machine.metric_config)
    step = max(base_step, -(-job.duration // MAX_SAMPLES))
    times = list(range(job.start_time, job.end_time, step)) or [job.start_time]
    units = {m["name"]: m.get("unit") or {"base": ""} for m in machine.metric_config}
    series: dict[str, list[dict[str, Any]]] = {name: [] for name in units}
    for host in job.hosts:
        # What a job does is steady in this model: one level per host plus measurement noise, and the
        # memory of an out-of-memory job running full in its last ten minutes.
        base = agents.base_node_values(job.start_time, [job], host)
        rng = np.random.default_rng(zlib.crc32(f"{agents.seed}:{job.job_id}:{job.start_time}:{host}".encode()))
        noise = 1 + rng.normal(0, 0.03, size=(len(units), len(times)))
        for row, name in enumerate(units):
            level = np.full(len(times), base.get(name, 0.0))
            if name == "mem_used" and job.final_state == "out-of-memory":
                level[np.asarray(times) > job.end_time - 600] = 0.97 * agents.mem_peak
            values = np.round(np.maximum(level * noise[row], 0.0), 3).tolist()
            series[name].append({
                "hostname": host,
                "statistics": {"min": min(values), "avg": round(sum(values) / len(values), 3), "max": max(values)},
                "data": values,
            })
    data = {name: {"node": {"unit": units[name], "timestep": step, "series": s}} for name, s in series.items()}
    return data, step


def job_meta(job: SimJob, machine: Machine, state: str, data: dict[str, Any]) -> dict[str, Any]:
    """meta.json as cc-backend writes it at archive time."""
    body = start_payload(job, machine)
    stats = job_statistics(data, job.num_nodes)
    energy_per_metric, total = energy(data, machine.metric_config, job.duration)
    meta = {k: v for k, v in body.items() if k not in ("concurrentJobs", "statistics", "footprint",
                                                         "energyFootprint", "energy", "jobState", "duration")}
    meta.update({
        "subCluster": machine.subcluster,
        "jobState": "out_of_memory" if state == "out-of-memory" else state,
        "duration": job.duration,
        "submitTime": job.submit_time,
        "monitoringStatus": 3,
        "smt": 1,
        "statistics": stats,
        "footprint": footprint(stats, machine.metric_config),
        "energyFootprint": energy_per_metric or None,
        "energy": total,
        "tags": [],
    })
    return meta


def backfill(
    machine: Machine, archive: ArchiveBackend, *, seed: int, start: int, end: int,
    jobs_per_hour: float | None = None, first_job_id: int = 1_000_000,
    progress: Callable[[int], None] | None = None,
) -> tuple[BackfillReport, Scheduler]:
    """Simulate [start, end) and archive every job that ended in it; returns the scheduler at `end`."""
    scheduler = Scheduler(machine, seed=seed, jobs_per_hour=jobs_per_hour, start=start, first_job_id=first_job_id)
    agents = NodeAgents(machine, seed)
    written = 0
    day = 86400
    for chunk_end in range(start + day, end + day, day):
        for event in scheduler.advance(min(chunk_end, end)):
            if not isinstance(event, Ended):
                continue
            data, _ = job_data(event.job, machine, agents)
            archive.store_job(job_meta(event.job, machine, event.state, data), data)
            written += 1
            if progress is not None:
                progress(written)
    return BackfillReport(written, len(scheduler.running)), scheduler
