"""cc-backend's job workers inside the server: walltime stops, durations and footprints, as events.

Each test runs the real app over real SQLite files; the tasks are called with a chosen `now` (the
clock is the only thing faked) on the server's event loop, as the scheduler calls them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.bootstrap import Services
from api.jobtasks import update_durations, update_footprints
from api.scheduler import DURATION_JOB, FOOTPRINT_JOB, NODESTATE_RETENTION_JOB, WALLTIME_JOB, add_job_tasks
from api.walltime import SOURCE, stop_jobs_exceeding_walltime
from tests.api.conftest import AppFactory, Tokens, assert_error, start_job
from tests.support.wait import eventually

GRACE = 300


def services(http: TestClient) -> Services:
    value: Services = http.app.state.services  # type: ignore[attr-defined]
    return value


def job_row(http: TestClient, db_id: int) -> dict[str, Any]:
    with services(http).reader.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM job WHERE id = :id"), {"id": db_id}).mappings().one())


def run_walltime_task(http: TestClient, now: int) -> list[int]:
    s = services(http)
    result: list[int] = http.portal.call(stop_jobs_exceeding_walltime, s.intake, s.reader, GRACE, now)
    return result


def test_jobs_past_walltime_and_grace_are_stopped_failed_and_archived(make_client: AppFactory,
                                                                      tokens: Tokens) -> None:
    http = make_client({"main": {"stop-jobs-exceeding-walltime": GRACE}})
    now = int(time.time())
    start = now - 3600
    overdue = start_job(http, tokens, jobId=1, startTime=start, walltime=600)
    no_walltime = start_job(http, tokens, jobId=2, startTime=start, walltime=0)
    within_grace = start_job(http, tokens, jobId=3, startTime=start, walltime=3600 - GRACE)  # exactly at the limit
    s = services(http)
    eventually(lambda: s.runner.position >= s.log.head(), what="the job table shows the starts")

    [position] = run_walltime_task(http, now)
    eventually(lambda: s.runner.position >= position, what="the walltime stop is applied")
    row = job_row(http, overdue)
    assert row["job_state"] == "failed"
    assert row["duration"] == 600 + GRACE  # stopped when its grace ran out
    assert job_row(http, no_walltime)["job_state"] == "running"
    assert job_row(http, within_grace)["job_state"] == "running"
    [event] = [e for e in s.log.read_prefix("job/fritz/1/") if e.type == "job.stopped"]
    assert event.source == SOURCE and event.position == position
    assert event.data == {"jobState": "failed", "stopTime": start + 600 + GRACE,
                                           "duration": 600 + GRACE, "parkedStopId": None}

    # The archiver archives it as any stopped job.
    eventually(lambda: job_row(http, overdue)["monitoring_status"] == 3, what="the stopped job is archived")
    meta = http.get(f"/api/jobs/{overdue}", headers=tokens.headers()).json()["meta"]
    assert meta["jobState"] == "failed" and meta["duration"] == 600 + GRACE

    # A second run appends nothing; a late real stop is answered as for any already stopped job.
    head = s.log.head()
    assert run_walltime_task(http, now) == []
    assert s.log.head() == head
    late = {"jobId": 1, "cluster": "fritz", "startTime": start, "jobState": "completed", "stopTime": now}
    assert_error(http.post("/api/jobs/stop_job/", json=late, headers=tokens.headers()), 422,
                 "job has already been stopped", "state is: failed")
    assert job_row(http, overdue)["job_state"] == "failed"


def test_a_job_stopped_by_its_scheduler_first_keeps_that_stop(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    now = int(time.time())
    db_id = start_job(http, tokens, jobId=5, startTime=now - 7200, walltime=60)
    s = services(http)
    eventually(lambda: s.runner.position >= s.log.head(), what="the job table shows the start")
    # The scheduler's stop is in the log; whether the job table shows it yet or not, the task appends
    # nothing: the intake decides against the log and finds the job stopped.
    stop = {"jobId": 5, "cluster": "fritz", "jobState": "timeout", "stopTime": now - 7000}
    http.portal.call(lambda: s.intake.stop_job(stop, source="test"))
    assert run_walltime_task(http, now) == []
    eventually(lambda: job_row(http, db_id)["job_state"] == "timeout", what="the scheduler's stop")


def test_durations_of_running_jobs_follow_the_worker_and_stopped_jobs_keep_theirs(
        make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    s = services(http)
    now = 1_700_000_000
    assert update_durations(s.log, s.reader, now) is None  # no running job: no event
    running = start_job(http, tokens, jobId=10, startTime=now - 1000)
    stopped = start_job(http, tokens, jobId=11, startTime=now - 1000)
    body = {"jobId": 11, "cluster": "fritz", "jobState": "completed", "stopTime": now - 900}
    assert http.post("/api/jobs/stop_job/", json=body, headers=tokens.headers()).status_code == 200

    event = update_durations(s.log, s.reader, now)
    assert event is not None and event.type == "job.durations_updated" and event.data == {"asOf": now}
    eventually(lambda: job_row(http, running)["duration"] == 1000, what="the running job's duration")
    assert job_row(http, stopped)["duration"] == 100
    update_durations(s.log, s.reader, now + 300)
    eventually(lambda: job_row(http, running)["duration"] == 1300, what="the next duration")
    assert http.get(f"/api/jobs/{running}", headers=tokens.headers()).json()["meta"]["duration"] >= 1300


def write_metrics(http: TestClient, tok: Tokens, start: int, steps: int) -> None:
    lines = []
    for i in range(steps):
        t = start + 60 * i + 30
        lines.append(f"cpu_load,cluster=fritz,hostname=f0101,type=node,type-id=0 value={10 * (i + 1)} {t}")
        lines.append(f"mem_used,cluster=fritz,hostname=f0101,type=node,type-id=0 value={i + 1} {t}")
        lines.append(f"cpu_power,cluster=fritz,hostname=f0101,type=socket,type-id=0 value=100 {t}")
    response = http.post("/api/write/?cluster=fritz", content="\n".join(lines).encode(), headers=tok.headers())
    assert response.status_code == 200, response.text


def test_footprints_of_running_jobs_from_the_metric_store_as_the_archiver_computes_them(
        make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    s = services(http)
    assert s.metric_source is not None
    now = int(time.time())
    start = now - 600
    write_metrics(http, tokens, start, 5)
    running = start_job(http, tokens, jobId=20, startTime=start)
    eventually(lambda: s.runner.position >= s.log.head(), what="the job table shows the start")

    def run(at: int) -> list[Any]:
        assert s.metric_source is not None
        return update_footprints(s.log, s.reader, s.metric_source, s.clusters, at)

    [event] = run(now)
    assert event.type == "job.footprint_updated" and event.subject == f"job/fritz/20/{start}"
    assert event.data["footprint"]["cpu_load_avg"] == 30.0 and event.data["footprint"]["mem_used_max"] == 5.0
    assert event.data["energyFootprint"]["cpu_power"] > 0 and event.data["energy"] > 0
    eventually(lambda: job_row(http, running)["footprint"] is not None, what="the footprint column")
    row = job_row(http, running)
    assert orjson.loads(row["footprint"]) == event.data["footprint"]
    assert orjson.loads(row["energy_footprint"]) == event.data["energyFootprint"]
    assert row["energy"] == event.data["energy"]

    assert run(now) == []  # nothing changed: no event
    write_metrics(http, tokens, start + 300, 3)  # later samples: the average moves
    [changed] = run(now + 120)
    assert changed.data["footprint"]["cpu_load_avg"] != 30.0

    # Stopped: no more updates; the archiver's final footprint comes from the same functions.
    stop = {"jobId": 20, "cluster": "fritz", "jobState": "completed", "stopTime": now + 120}
    assert http.post("/api/jobs/stop_job/", json=stop, headers=tokens.headers()).status_code == 200
    eventually(lambda: job_row(http, running)["monitoring_status"] == 3, what="the job is archived")
    assert run(now + 240) == []
    assert orjson.loads(job_row(http, running)["footprint"]) == changed.data["footprint"]


def test_the_server_schedules_the_workers_with_cc_backends_cadence(make_client: AppFactory) -> None:
    http = make_client({
        "main": {"stop-jobs-exceeding-walltime": 600,
                 "nodestate-retention": {"policy": "delete", "age": 48}},
        "cron": {"duration-worker": "2m30s", "footprint-worker": "1h"},
    })
    scheduler = BackgroundScheduler()
    add_job_tasks(scheduler, services(http), asyncio.new_event_loop())
    jobs = {job.id: job.trigger for job in scheduler.get_jobs()}
    assert set(jobs) == {WALLTIME_JOB, DURATION_JOB, FOOTPRINT_JOB, NODESTATE_RETENTION_JOB}
    walltime = jobs[WALLTIME_JOB]
    assert isinstance(walltime, CronTrigger) and str(walltime) == "cron[hour='3', minute='0']"
    assert isinstance(jobs[DURATION_JOB], IntervalTrigger) and jobs[DURATION_JOB].interval.total_seconds() == 150
    assert isinstance(jobs[FOOTPRINT_JOB], IntervalTrigger) and jobs[FOOTPRINT_JOB].interval.total_seconds() == 3600
    assert jobs[NODESTATE_RETENTION_JOB].interval.total_seconds() == 3600  # type: ignore[attr-defined]

    default = BackgroundScheduler()
    add_job_tasks(default, services(make_client()), asyncio.new_event_loop())
    # 0 (the default) turns the walltime stop off; the workers run every 5 and 10 minutes as in cc-backend.
    intervals = {job.id: job.trigger.interval.total_seconds() for job in default.get_jobs()}
    assert intervals == {DURATION_JOB: 300, FOOTPRINT_JOB: 600}


def test_the_scheduled_walltime_job_runs_on_the_servers_loop(make_client: AppFactory, tokens: Tokens) -> None:
    """The scheduler's job itself (real clock), as APScheduler calls it from its worker thread."""
    http = make_client({"main": {"stop-jobs-exceeding-walltime": GRACE}})
    s = services(http)
    db_id = start_job(http, tokens, jobId=30, startTime=int(time.time()) - 7200, walltime=60)
    eventually(lambda: s.runner.position >= s.log.head(), what="the job table shows the start")
    scheduler = BackgroundScheduler()
    add_job_tasks(scheduler, s, http.portal.call(asyncio.get_running_loop))
    job = scheduler.get_job(WALLTIME_JOB)
    assert job is not None
    job.func()
    eventually(lambda: job_row(http, db_id)["job_state"] == "failed", what="the scheduled walltime stop")
    assert job_row(http, db_id)["duration"] == 60 + GRACE
