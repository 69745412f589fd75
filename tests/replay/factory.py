"""Realistic mixed logs: job lifecycles through the real JobIntake, plus direct appends of every other kind.

Intake makes starts, stops (with and without startTime), parked stops resolved by a later start, and
still-running jobs; direct appends add bulk jobs, tags (added, removed, deleted), metadata, deletions
(and restarts of deleted jobs), users, archiving outcomes, node states, a start with a database id and
tags, and a stop that arrives before its start in the same batch.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson

from streams.clusters import ClusterRegistry
from streams.events import Event, derived_event_id, job_subject, new_event
from streams.ingest.intake import JobIntake
from streams.log import EventLog
from tests.support.server import FRITZ_MAIN_HOSTS, specs_dir, start_payload, stop_payload

T0 = 1_700_000_000
STATES = ("completed", "completed", "completed", "failed", "cancelled", "timeout", "out-of-memory")


def fritz() -> ClusterRegistry:
    """The real fritz cluster.json of the reference specs."""
    return ClusterRegistry.from_dicts([orjson.loads((specs_dir() / "archive" / "fritz" / "cluster.json").read_bytes())])


async def _gather(calls: list[Any], width: int = 256) -> None:
    for i in range(0, len(calls), width):
        await asyncio.gather(*calls[i : i + width])


async def _intake_jobs(intake: JobIntake, first: int, count: int) -> None:
    jobs = [(first + n, T0 + (first + n) * 7) for n in range(count)]
    early = [(j, s) for j, s in jobs if j % 25 == 0]  # their stop arrives before their start: parked
    await _gather([intake.stop_job(stop_payload(j, s, s + 300, "failed"), source="test") for j, s in early])
    await _gather([
        intake.start_job(start_payload(j, s, host_index=j, user=f"user{j % 37}", project=f"p{j % 11}"), source="test")
        for j, s in jobs
    ])
    later = []
    for j, s in jobs:
        if j % 25 == 0 or j % 10 == 3:  # parked ones are stopped already; every tenth keeps running
            continue
        body = stop_payload(j, s, s + 60 + j % 5000, STATES[j % len(STATES)])
        if j % 4 == 0:
            del body["startTime"]  # cc-slurm-adapter style: the newest run is meant
        later.append(intake.stop_job(body, source="test"))
    await _gather(later)


def intake_jobs(log: EventLog, first: int, count: int) -> None:
    """Start and stop `count` jobs through the real intake, as REST and NATS would."""
    asyncio.run(_intake_jobs(JobIntake(log, fritz()), first, count))


def _started(job_id: int, start: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jobId": job_id, "user": f"user{job_id % 53}", "project": f"p{job_id % 13}", "cluster": "fritz",
        "subCluster": "main", "partition": "singlenode", "numNodes": 1, "numHwthreads": 72, "walltime": 86400,
        "submitTime": start - 60, "startTime": start, "shared": "none", "monitoringStatus": 1, "smt": 1,
        "resources": [{"hostname": FRITZ_MAIN_HOSTS[job_id % len(FRITZ_MAIN_HOSTS)], "hwthreads": [0, 1]}],
        "metaData": {"jobName": f"bulk-{job_id}"}, "tags": [],
    }
    data.update(extra)
    return data


def bulk_jobs(first: int, count: int) -> list[Event]:
    """Starts of `count` jobs and the stops of nine in ten, appended without the intake (like an import)."""
    starts, stops = [], []
    for j in range(first, first + count):
        start = T0 + j * 7
        subject = job_subject("fritz", j, start)
        starts.append(new_event("job.started", subject, _started(j, start), id=derived_event_id("b", subject)))
        if j % 10:
            state, duration = STATES[j % len(STATES)], 60 + j % 7000
            data = {"jobState": state, "stopTime": start + duration, "duration": duration, "parkedStopId": None}
            stops.append(new_event("job.stopped", subject, data, id=derived_event_id("b-stop", subject)))
    return starts + stops


def edits(subjects: list[str], count: int, seed: int = 7) -> list[Event]:
    """`count` events of every other kind, about jobs in `subjects` (and a few unknown ones)."""
    rng = random.Random(seed)
    tags = [{"type": t, "name": n, "scope": s} for t in ("app", "class") for n in ("vasp", "gromacs", "lammps")
            for s in ("global", "admin")]
    out: list[Event] = []
    for n in range(count):
        subject = rng.choice(subjects) if n % 50 else "job/fritz/999999999/1"
        kind = n % 12
        if kind in (0, 1, 2):
            out.append(new_event("job.tag_added", subject, rng.choice(tags)))
        elif kind == 3:
            out.append(new_event("job.tag_removed", subject, rng.choice(tags)))
        elif kind in (4, 5):
            out.append(new_event("job.metadata_updated", subject, {"key": rng.choice(["issues", "note"]),
                                                                   "value": f"v{n}"}))
        elif kind == 6:
            out.append(new_event("job.archived", subject, {"footprint": {"flops_any_avg": rng.random() * 100},
                                                           "energyFootprint": {"cpu_power": 0.1 * n},
                                                           "energy": 0.1 * n, "location": f"x/{n}"}))
        elif kind == 7:
            out.append(new_event("job.archiving_failed", subject, {"reason": "no data", "attempt": 1 + n % 5,
                                                                   "final": n % 3 == 0}))
        elif kind == 8:
            out.append(new_event("job.deleted", subject, {"reason": "test"}))
        elif kind == 9:
            name = f"u{n % 40}"
            out.append(new_event("user.created", f"users/{name}", {
                "username": name, "password": None, "roles": ["user", "api"][: 1 + n % 2],
                "projects": [f"p{n % 7}"], "name": f"User {n}", "email": None, "authSource": n % 3}))
        elif kind == 10:
            name = f"u{n % 40}"
            if (n // 12) % 3:
                out.append(new_event("user.updated", f"users/{name}", {"username": name, "roles": ["manager"],
                                                                       "projects": None}))
            else:
                out.append(new_event("user.deleted", f"users/{name}", {"username": name}))
        elif n % 120 == 11:
            out.append(new_event("tag.deleted", "tags", rng.choice(tags)))
        else:
            hosts = rng.sample(FRITZ_MAIN_HOSTS, 3)
            out.append(new_event("node.states_reported", "nodes/fritz", {"cluster": "fritz", "timeStamp": T0 + n,
                "nodes": [{"hostname": h, "subCluster": "main", "states": ["MIXED"], "nodeState": "mixed",
                           "healthState": "full", "healthMetrics": {"missing": [], "degraded": [h]},
                           "jobsRunning": 1, "cpusAllocated": 4} for h in hosts]}))
    # Tags made without a job and UI settings, after the rest (their own sequence, not the random one above).
    for n in range(count // 60):
        out.append(new_event("tag.created", "tags", {**tags[n % len(tags)], "name": f"made{n % 5}"}))
        out.append(new_event("user.configuration_updated", f"users/u{n % 40}", {
            "username": f"u{n % 40}", "key": ("jobList_jobsPerPage", "plotConfiguration_lineWidth")[n % 2],
            "value": str(n % 9)}))
    return out


def oddities() -> list[Event]:
    """Cases the bulk loader must order and route exactly like the handlers."""
    a, b = job_subject("fritz", 77, T0), job_subject("fritz", 78, T0)
    return [
        # A stop before its start (a direct append, not the intake): the stop changes nothing.
        new_event("job.stopped", a, {"jobState": "failed", "stopTime": T0 + 9, "duration": 9}),
        new_event("job.started", a, _started(77, T0)),
        # An imported job: fixed database id and tags on the start.
        new_event("job.started", b, _started(78, T0, dbId=5_000_000, tags=[{"type": "app", "name": "vasp"}])),
        new_event("job.stopped", b, {"jobState": "completed", "stopTime": T0 + 5, "duration": 5}),
        # A restart of a deleted job gets a new row, and a second start of a live job is ignored.
        new_event("job.deleted", b, {"reason": "test"}),
        new_event("job.started", b, _started(78, T0, footprint={"flops_any_avg": 0.1 + 0.2})),
        new_event("job.started", b, _started(78, T0, user="someone-else")),
    ]


def mixed_log(log: EventLog, *, intake: int, bulk: int, edit: int, first: int = 1) -> list[str]:
    """Fill `log` with a realistic mix; returns the job subjects it started."""
    intake_jobs(log, first, intake)
    log.append(oddities())
    jobs = bulk_jobs(first + intake, bulk)
    for i in range(0, len(jobs), 20_000):
        log.append(jobs[i : i + 20_000])
    subjects = [job_subject("fritz", j, T0 + j * 7) for j in range(first, first + intake + bulk)]
    changes = edits(subjects, edit)
    for i in range(0, len(changes), 20_000):
        log.append(changes[i : i + 20_000])
    return subjects
