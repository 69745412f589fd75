"""The job intake's decisions, against a real in-memory log and the real fritz cluster.json."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.clusters import ClusterRegistry
from streams.ingest.intake import JobIntake
from streams.ingest.outcomes import Invalid, JobConflict, NotFound
from streams.log import MemoryEventLog
from streams.settings import IntakeSettings
from tests.support.specs import find_specs

SPECS = find_specs()
SLURM_START = (SPECS / "examples" / "slurm-adapter-start_job.request.json").read_bytes()


@pytest.fixture
def clusters() -> ClusterRegistry:
    return ClusterRegistry.from_dicts([orjson.loads((SPECS / "archive" / "fritz" / "cluster.json").read_bytes())])


@pytest.fixture
def log() -> MemoryEventLog:
    return MemoryEventLog()


@pytest.fixture
def intake(log: MemoryEventLog, clusters: ClusterRegistry) -> JobIntake:
    return JobIntake(log, clusters)


def job(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(SLURM_START)
    body.update(overrides)
    return body


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_slurm_adapter_payload_is_accepted_and_normalised(intake: JobIntake, log: MemoryEventLog) -> None:
    accepted = run(intake.start_job(SLURM_START, source="test"))
    assert accepted.subject == "job/fritz/398764/1675954353" and not accepted.repeated
    [event] = log.read()
    assert event.type == "job.started" and event.source == "test"
    assert event.data["subCluster"] == "main"  # assigned from host f0649 through the nodelist
    assert event.data["metaData"]["submitTime"] == "1675954300"
    assert "jobState" not in event.data and "concurrentJobs" not in event.data


def test_identical_retry_is_idempotent(intake: JobIntake, log: MemoryEventLog) -> None:
    first = run(intake.start_job(SLURM_START, source="test"))
    again = run(intake.start_job(SLURM_START, source="test"))
    assert again.repeated and again.position == first.position
    assert log.head() == 1


def test_duplicate_start_within_a_day_is_a_conflict(intake: JobIntake) -> None:
    run(intake.start_job(job(), source="test"))
    with pytest.raises(JobConflict) as caught:
        run(intake.start_job(job(startTime=1675954353 + 3600), source="test"))
    assert caught.value.kind == "conflict"
    assert caught.value.describe(42) == (
        "a job with that jobId, cluster and startTime already exists: dbid: 42, jobid: 398764"
    )
    # A requeue a day later is a new run of the same job id.
    assert run(intake.start_job(job(startTime=1675954353 + 86400), source="test")).position == 2


def test_concurrent_starts_of_one_job_accept_exactly_one(intake: JobIntake, log: MemoryEventLog) -> None:
    async def race() -> list[object]:
        bodies = [job(startTime=1675954353 + i) for i in range(10)]
        return await asyncio.gather(*(intake.start_job(b, source="t") for b in bodies), return_exceptions=True)

    outcomes = run(race())
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, JobConflict) for o in outcomes if isinstance(o, Exception))
    assert log.head() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster": "nowhere"}, "no such cluster: nowhere"),
        ({"numNodes": 2}, "job has 1 resources but numNodes is 2"),
        ({"user": ""}, "'resources', 'user', 'project' and 'cluster' are required"),
        ({"resources": []}, "'resources', 'user', 'project' and 'cluster' are required"),
        ({"subCluster": "gpu"}, "subcluster 'gpu' is unknown on cluster 'fritz'"),
        ({"resources": [{"hostname": "zz99"}]}, "no subcluster found for cluster fritz and host zz99"),
        ({"jobState": "completed"}, "a started job must be running"),
        ({"startTime": 0}, "'startTime' is required"),
        ({"colour": "red"}, "json: unknown field 'colour'"),
        ({"jobId": "398764"}, "jobId"),
        ({"numNodes": 1.5}, "numNodes"),
    ],
)
def test_invalid_starts_are_refused_with_a_precise_message(
    intake: JobIntake, log: MemoryEventLog, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(intake.start_job(job(**overrides), source="test"))
    assert log.head() == 0


def test_malformed_json_is_invalid(intake: JobIntake) -> None:
    with pytest.raises(Invalid, match="parsing request body failed"):
        run(intake.start_job(b"{not json", source="test"))


def test_stop_without_start_time_stops_the_newest_run(intake: JobIntake, log: MemoryEventLog) -> None:
    run(intake.start_job(job(), source="t"))
    run(intake.start_job(job(startTime=1675954353 + 90000), source="t"))
    accepted = run(intake.stop_job({"jobId": 398764, "cluster": "fritz", "stopTime": 1676044453 + 10,
                                    "jobState": ""}, source="t"))
    assert accepted.subject == "job/fritz/398764/1676044353"
    stop = log.read()[-1]
    assert stop.data == {"jobState": "completed", "stopTime": 1676044463, "duration": 110, "parkedStopId": None}


def test_stop_rules(intake: JobIntake) -> None:
    run(intake.start_job(job(), source="t"))
    stop = {"jobId": 398764, "cluster": "fritz", "jobState": "completed", "stopTime": 1675954530}
    with pytest.raises(JobConflict, match="must be larger/equal than startTime") as early:
        run(intake.stop_job({**stop, "stopTime": 5}, source="t"))
    assert early.value.kind == "invalid"
    run(intake.stop_job(stop, source="t"))
    assert run(intake.stop_job(stop, source="t")).repeated
    with pytest.raises(JobConflict, match=r"job has already been stopped \(state is: completed\)"):
        run(intake.stop_job({**stop, "jobState": "failed"}, source="t"))
    with pytest.raises(Invalid, match="the field 'jobId' is required"):
        run(intake.stop_job({"stopTime": 1}, source="t"))
    with pytest.raises(Invalid, match="jobState"):
        run(intake.stop_job({**stop, "jobState": "exploded"}, source="t"))
    with pytest.raises(NotFound, match="no such cluster"):
        run(intake.stop_job({**stop, "cluster": "nowhere"}, source="t"))


def test_stop_before_start_is_parked_then_applied(intake: JobIntake, log: MemoryEventLog) -> None:
    parked = run(intake.stop_job({"jobId": 398764, "cluster": "fritz", "jobState": "timeout",
                                  "stopTime": 1675954530}, source="t"))
    assert parked.parked and parked.subject == "job/fritz/398764/*"
    started = run(intake.start_job(job(), source="t"))
    assert started.resolved_parked_stop
    types = [e.type for e in log.read()]
    assert types == ["job.stop_parked", "job.started", "job.stopped"]
    stop = log.read()[-1]
    assert stop.data["parkedStopId"] == log.read()[0].id and stop.data["jobState"] == "timeout"
    assert stop.data["duration"] == 177


def test_parked_stop_with_start_time_waits_for_that_run(intake: JobIntake, log: MemoryEventLog) -> None:
    run(intake.stop_job({"jobId": 398764, "cluster": "fritz", "startTime": 1675954353 + 86400,
                         "jobState": "completed", "stopTime": 1676040800}, source="t"))
    assert not run(intake.start_job(job(), source="t")).resolved_parked_stop
    assert run(intake.start_job(job(startTime=1675954353 + 86400), source="t")).resolved_parked_stop


def test_unknown_job_is_not_found_when_parking_is_off(log: MemoryEventLog, clusters: ClusterRegistry) -> None:
    strict = JobIntake(log, clusters, IntakeSettings(park_early_stops=False))
    with pytest.raises(NotFound, match="finding job failed"):
        run(strict.stop_job({"jobId": 1, "cluster": "fritz", "jobState": "completed", "stopTime": 9}, source="t"))
    assert log.head() == 0


def test_a_requeued_job_starts_again_under_the_same_id(intake: JobIntake, log: MemoryEventLog) -> None:
    run(intake.start_job(job(), source="t"))
    run(intake.stop_job({"jobId": 398764, "cluster": "fritz", "jobState": "node_fail", "stopTime": 1675954400},
                        source="t"))
    # Slurm requeues the job under its id; cc-backend would refuse this start for a day.
    again = run(intake.start_job(job(startTime=1675954500), source="t"))
    assert again.subject == "job/fritz/398764/1675954500"
    with pytest.raises(JobConflict):  # while the requeued run runs, another start is a duplicate
        run(intake.start_job(job(startTime=1675954600), source="t"))
    with pytest.raises(JobConflict):  # and a start at a stopped run's own time is one too
        run(intake.start_job(job(startTime=1675954353, metaData={"jobName": "x"}), source="t"))
