"""The archiver against a real metric store fed with line protocol, a real file archive and real logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from archive.agentstate import AgentStateStore
from archive.archiver import Archiver
from archive.backends.file import FileArchive
from metricstore.http_source import ExternalMetricStore, HttpMetricSource
from metricstore.settings import MetricStoreSettings
from metricstore.source import InProcessMetricSource
from metricstore.store import MetricStore
from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.clusters import ClusterRegistry
from streams.events import Event, new_event
from streams.ingest.intake import JobIntake
from streams.log import MemoryEventLog
from streams.runtime import AgentRunner
from tests.support.specs import find_specs

SPECS = find_specs()
START = 1_700_000_000
DURATION = 600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fritz() -> dict[str, Any]:
    return json.loads((SPECS / "archive" / "fritz" / "cluster.json").read_text())


@pytest.fixture
def clock() -> Clock:
    return Clock(START + 3600)


@pytest.fixture
def store(tmp_path: Path, fritz: dict[str, Any], clock: Clock) -> MetricStore:
    settings = MetricStoreSettings.model_validate({"checkpoints": {"directory": str(tmp_path / "ckpt")}})
    store = MetricStore(settings, [fritz], clock=clock)
    lines = []
    for i in range(10):
        t = START + 60 * i + 30
        lines += [
            f"cpu_load,cluster=fritz,hostname=f0101,type=node,type-id=0 value={10 * (i + 1)} {t}",
            f"cpu_load,cluster=fritz,hostname=f0102,type=node,type-id=0 value=30 {t}",
            f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id=0 value=1.0 {t}",
            f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id=1 value=2.0 {t}",
            f"flops_any,cluster=fritz,hostname=f0102,type=hwthread,type-id=0 value=5.0 {t}",
            f"cpu_power,cluster=fritz,hostname=f0101,type=socket,type-id=0 value=100 {t}",
            f"cpu_power,cluster=fritz,hostname=f0101,type=socket,type-id=1 value=100 {t}",
            f"cpu_power,cluster=fritz,hostname=f0102,type=socket,type-id=0 value=50 {t}",
            f"cpu_power,cluster=fritz,hostname=f0102,type=socket,type-id=1 value=50 {t}",
        ]
    report = store.ingest_lines("\n".join(lines).encode(), None)
    assert report.ok
    return store


def start_body(job_id: int = 4711, **extra: Any) -> dict[str, Any]:
    body = {
        "jobId": job_id, "user": "alice", "project": "p1", "cluster": "fritz", "numNodes": 2,
        "startTime": START, "walltime": 3600,
        "resources": [{"hostname": "f0101"}, {"hostname": "f0102"}], "metaData": {"jobName": "sim"},
    }
    body.update(extra)
    return body


def run_job(log: MemoryEventLog, fritz: dict[str, Any], job_id: int = 4711, edits: bool = False,
            **extra: Any) -> str:
    intake = JobIntake(log, ClusterRegistry.from_dicts([fritz]))
    accepted = asyncio.run(intake.start_job(start_body(job_id, **extra), source="rest:test"))
    if edits:
        log.append([
            new_event("job.tag_added", accepted.subject, {"type": "issue", "name": "imbalance", "scope": "global"}),
            new_event("job.metadata_updated", accepted.subject, {"key": "note", "value": "checked"}),
        ])
    stop = {"jobId": job_id, "cluster": "fritz", "jobState": "completed", "stopTime": START + DURATION}
    asyncio.run(intake.stop_job(stop, source="rest:test"))
    return accepted.subject


def make_archiver(tmp_path: Path, log: MemoryEventLog, source: Any, fritz: dict[str, Any], clock: Clock,
                  **kw: Any) -> Archiver:
    return Archiver(log, FileArchive(tmp_path / "archive"), source, ClusterRegistry.from_dicts([fritz]),
                    AgentStateStore(tmp_path / "agents.db"), clock=clock, **kw)


def of_type(log: MemoryEventLog, type_: str) -> list[Event]:
    return [e for e in log.read(0, 10_000) if e.type == type_]


def test_archives_with_hand_computed_statistics(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                                clock: Clock) -> None:
    log = MemoryEventLog()
    subject = run_job(log, fritz, edits=True)
    archiver = make_archiver(tmp_path, log, InProcessMetricSource(store), fritz, clock)
    AgentRunner(log, archiver).run_until_caught_up()

    [archived] = of_type(log, "job.archived")
    d = archived.data
    assert archived.subject == subject and archived.source == "agent:archiver"
    # cpu_load: f0101 averages 55 (10..100), f0102 30 -> (55 + 30) / 2 nodes
    assert d["statistics"]["cpu_load"]["avg"] == pytest.approx(42.5)
    assert d["statistics"]["cpu_load"]["min"] == pytest.approx(10)
    assert d["statistics"]["cpu_load"]["max"] == pytest.approx(100)
    # flops_any summed over hwthreads per node: 3 on f0101, 5 on f0102
    assert d["statistics"]["flops_any"]["avg"] == pytest.approx(4.0)
    assert d["footprint"] == {"cpu_load_avg": pytest.approx(42.5), "flops_any_avg": pytest.approx(4.0)}
    # (200 W + 100 W) for 600 s = 180 kJ = 0.05 kWh
    assert d["energyFootprint"]["cpu_power"] == pytest.approx(0.05)
    assert d["energy"] == pytest.approx(0.05)
    assert "mem_bw" in d["missingMetrics"] and "cpu_load" not in d["missingMetrics"]

    archive = FileArchive(tmp_path / "archive")
    meta = archive.load_meta("fritz", 4711, START)
    assert meta["jobState"] == "completed" and meta["duration"] == DURATION and meta["monitoringStatus"] == 3
    assert meta["tags"] == [{"type": "issue", "name": "imbalance", "scope": "global"}]
    assert meta["metaData"] == {"jobName": "sim", "note": "checked"}
    assert meta["statistics"]["cpu_load"]["avg"] == pytest.approx(42.5)
    data = archive.load_data("fritz", 4711, START)
    assert {"node", "core"} <= set(data["flops_any"])  # core scope for jobs of up to 8 nodes
    assert d["location"]


def test_projection_records_the_archived_facts(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                               clock: Clock) -> None:
    log = MemoryEventLog()
    run_job(log, fritz)
    AgentRunner(log, make_archiver(tmp_path, log, InProcessMetricSource(store), fritz, clock)).run_until_caught_up()
    engine = writer_engine(tmp_path / "job.db")
    AgentRunner(log, JobDatabaseProjection(engine)).run_until_caught_up()
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT monitoring_status, footprint, energy FROM job").one()
    assert row[0] == 3 and json.loads(row[1])["flops_any_avg"] == pytest.approx(4.0) and row[2] == pytest.approx(0.05)


def test_reprocessing_archives_exactly_once(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                            clock: Clock) -> None:
    log = MemoryEventLog()
    run_job(log, fritz)
    source = InProcessMetricSource(store)
    AgentRunner(log, make_archiver(tmp_path, log, source, fritz, clock)).run_until_caught_up()
    # A crash before the checkpoint was stored: a fresh state file means processing everything again.
    other_state = Archiver(log, FileArchive(tmp_path / "archive"), source, ClusterRegistry.from_dicts([fritz]),
                           AgentStateStore(tmp_path / "fresh.db"), clock=clock)
    AgentRunner(log, other_state).run_until_caught_up()
    assert len(of_type(log, "job.archived")) == 1


def test_failure_is_reported_retried_and_recovers(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                                  clock: Clock) -> None:
    log = MemoryEventLog()
    run_job(log, fritz)
    # A real HTTP metric source pointed at a port nobody listens on.
    down = HttpMetricSource([ExternalMetricStore(url="http://127.0.0.1:9")], [fritz])
    archiver = make_archiver(tmp_path, log, down, fritz, clock, backoff=10)
    AgentRunner(log, archiver).run_until_caught_up()
    [failed] = of_type(log, "job.archiving_failed")
    assert failed.data["attempt"] == 1 and not failed.data["final"]
    assert archiver.state.pending("archiver")[0].due == pytest.approx(clock.now + 10)

    archiver.retry_due()  # not due yet
    assert len(of_type(log, "job.archiving_failed")) == 1
    clock.now += 11
    archiver.source = InProcessMetricSource(store)  # the metric store is back
    archiver.retry_due()
    assert len(of_type(log, "job.archived")) == 1
    assert archiver.state.pending("archiver") == []


def test_gives_up_after_the_limit(tmp_path: Path, fritz: dict[str, Any], clock: Clock) -> None:
    log = MemoryEventLog()
    run_job(log, fritz)
    down = HttpMetricSource([ExternalMetricStore(url="http://127.0.0.1:9")], [fritz])
    archiver = make_archiver(tmp_path, log, down, fritz, clock, max_attempts=3, backoff=1)
    AgentRunner(log, archiver).run_until_caught_up()
    for _ in range(5):
        clock.now += 3600
        archiver.retry_due()
    attempts = [e.data["attempt"] for e in of_type(log, "job.archiving_failed")]
    assert attempts == [1, 2, 3]
    assert of_type(log, "job.archiving_failed")[-1].data["final"]
    engine = writer_engine(tmp_path / "job.db")
    AgentRunner(log, JobDatabaseProjection(engine)).run_until_caught_up()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT monitoring_status FROM job").scalar() == 2


def test_skips_jobs_without_monitoring_and_imported_jobs(tmp_path: Path, store: MetricStore,
                                                         fritz: dict[str, Any], clock: Clock) -> None:
    log = MemoryEventLog()
    run_job(log, fritz, job_id=1, monitoringStatus=0)
    imported = new_event("job.started", "job/fritz/2/1700000000", {**start_body(2), "subCluster": "main"},
                         source="import:archive")
    log.append([imported, new_event("job.stopped", imported.subject,
                                    {"jobState": "completed", "stopTime": START + 60, "duration": 60})])
    AgentRunner(log, make_archiver(tmp_path, log, InProcessMetricSource(store), fritz, clock)).run_until_caught_up()
    assert of_type(log, "job.archived") == [] and of_type(log, "job.archiving_failed") == []


def test_gives_way_to_a_busy_intake_but_never_stops(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                                   clock: Clock) -> None:
    """While the intake is busy each job waits, at most GIVE_WAY seconds; once it is quiet, none waits."""
    import time

    from archive.archiver import GIVE_WAY

    log = MemoryEventLog()
    for job_id in (1, 2, 3):
        run_job(log, fritz, job_id)
    asked: list[float] = []

    def always_busy() -> bool:
        asked.append(time.monotonic())
        return True

    archiver = make_archiver(tmp_path, log, InProcessMetricSource(store), fritz, clock, give_way_to=always_busy)
    began = time.monotonic()
    AgentRunner(log, archiver).run_until_caught_up()
    assert len(of_type(log, "job.archived")) == 3, "a busy intake slows archiving, never stops it"
    assert time.monotonic() - began >= 3 * GIVE_WAY
    assert asked

    log2 = MemoryEventLog()
    run_job(log2, fritz)
    calls: list[bool] = []
    quiet = make_archiver(tmp_path / "quiet", log2, InProcessMetricSource(store), fritz, clock,
                          give_way_to=lambda: calls.append(False) or False)
    AgentRunner(log2, quiet).run_until_caught_up()
    assert len(of_type(log2, "job.archived")) == 1 and calls == [False]


def test_reports_a_batch_in_one_append(tmp_path: Path, store: MetricStore, fritz: dict[str, Any],
                                       clock: Clock) -> None:
    log = MemoryEventLog()
    for job_id in range(1, 6):
        run_job(log, fritz, job_id)
    head = log.head()
    AgentRunner(log, make_archiver(tmp_path, log, InProcessMetricSource(store), fritz, clock)).run_until_caught_up()
    reports = of_type(log, "job.archived")
    assert len(reports) == 5 and [e.position for e in reports] == list(range(head + 1, head + 6))
    assert len({e.recorded_at for e in reports}) == 1, "one append for the batch"
