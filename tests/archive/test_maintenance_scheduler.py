"""The nightly schedule (APScheduler inside `serve`) and the one-shot CLI commands, over real files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from apscheduler.triggers.cron import CronTrigger

from api.bootstrap import build_services
from api.config import Settings, parse_settings
from api.scheduler import (
    COMPRESSION_JOB,
    RETENTION_JOB,
    ArchiveMaintenance,
    build_scheduler,
    start_maintenance,
    stop_maintenance,
)
from archive.backends import FileArchive, JobKey
from archive.maintenance import PolicyError, read_jobs
from projections import queries
from projections.db import reader_engine
from streams.events import job_subject, new_event
from streams.log import SQLiteEventLog
from tests.archive.test_maintenance import fill, keys

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400


def settings(tmp_path: Path, retention: dict[str, Any] | None = None, **archive: Any) -> Settings:
    """Settings as config.json spells them, everything under tmp_path."""
    section: dict[str, Any] = {"kind": "file", "path": str(tmp_path / "archive"), **archive}
    if retention is not None:
        section["retention"] = retention
    config = {"main": {"db": str(tmp_path / "job.db"), "disable-authentication": True}, "archive": section,
              "event-log": {"kind": "sqlite", "path": str(tmp_path / "events.db")}}
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    return parse_settings(orjson.dumps(config))


def dated_archive(tmp_path: Path) -> tuple[FileArchive, JobKey, JobKey]:
    """Jobs 40 and 1 day(s) old by the real clock: the scheduler's jobs run with the real time."""
    archive = FileArchive(tmp_path / "archive")
    now = int(time.time())
    fill(archive, [(1000, now - 40 * DAY), (2000, now - DAY)])
    return archive, JobKey("fritz", 1000, now - 40 * DAY), JobKey("fritz", 2000, now - DAY)


def hour(trigger: Any) -> str:
    assert isinstance(trigger, CronTrigger)
    return str(next(f for f in trigger.fields if f.name == "hour"))


@pytest.mark.parametrize(("policy", "expected"), [("delete", "3"), ("copy", "4"), ("move", "5")])
def test_scheduler_has_compression_and_retention_at_cc_backends_hours(
    tmp_path: Path, policy: str, expected: str
) -> None:
    retention = {"policy": policy, "age": 30, "target-path": str(tmp_path / "t"), "include-db": False}
    scheduler = build_scheduler(ArchiveMaintenance(settings(tmp_path, retention, compression=14)))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {COMPRESSION_JOB, RETENTION_JOB}
    assert (hour(jobs[COMPRESSION_JOB].trigger), hour(jobs[RETENTION_JOB].trigger)) == ("5", expected)
    assert "older than 14 days" in jobs[COMPRESSION_JOB].name
    assert all(j.coalesce and j.max_instances == 1 and j.misfire_grace_time == 3600 for j in jobs.values())


def test_without_retention_only_compression_is_scheduled(tmp_path: Path) -> None:
    scheduler = build_scheduler(ArchiveMaintenance(settings(tmp_path)))
    [job] = scheduler.get_jobs()
    assert job.id == COMPRESSION_JOB and "older than 7 days" in job.name


def test_scheduled_job_functions_do_the_work(tmp_path: Path) -> None:
    archive, old, recent = dated_archive(tmp_path)
    retention = {"policy": "move", "format": "parquet", "age": 30, "target-path": str(tmp_path / "pq"),
                 "include-db": False}
    jobs = {j.id: j for j in build_scheduler(ArchiveMaintenance(settings(tmp_path, retention))).get_jobs()}
    jobs[COMPRESSION_JOB].func()
    assert (archive.root / old.directory() / "data.json.gz").is_file()
    assert (archive.root / recent.directory() / "data.json").is_file()
    jobs[RETENTION_JOB].func()
    assert keys(archive) == {recent}
    [file] = (tmp_path / "pq" / "fritz").glob("*.parquet")
    assert [JobKey.from_meta(meta) for meta, _ in read_jobs(file.read_bytes())] == [old]


def test_a_retention_section_that_cannot_work_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="target-path"):
        ArchiveMaintenance(settings(tmp_path, {"policy": "move", "age": 30}))


def test_start_and_stop_with_the_servers_services(tmp_path: Path) -> None:
    dated_archive(tmp_path)
    services = build_services(settings(tmp_path, {"policy": "delete", "age": 30}))
    services.start()
    try:
        scheduler = start_maintenance(services)
        assert scheduler.running
        assert all(job.next_run_time is not None for job in scheduler.get_jobs())
        stop_maintenance(scheduler)
        assert not scheduler.running
        stop_maintenance(scheduler)  # a second stop is harmless
    finally:
        services.close()


# -- CLI ----------------------------------------------------------------------------------------------


def ccstream(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "api.cli", "--config", "config.json", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_cli_retire_dry_run_then_for_real_with_include_db_and_omit_tagged(tmp_path: Path) -> None:
    archive, old, recent = dated_archive(tmp_path)
    tagged_old = JobKey("fritz", 3000, old.start_time - DAY)
    fill(archive, [(3000, tagged_old.start_time)])
    settings(tmp_path, {"policy": "delete", "age": 30, "include-db": True, "omit-tagged": True})
    log = SQLiteEventLog(tmp_path / "events.db")
    started = [new_event("job.started", job_subject(*k), {
        "jobId": k.job_id, "user": "u", "project": "p", "cluster": "fritz", "subCluster": "main", "numNodes": 1,
        "startTime": k.start_time, "resources": [{"hostname": "f0649"}]}) for k in (old, recent, tagged_old)]
    log.append([*started, new_event("job.tag_added", job_subject(*tagged_old), {"type": "app", "name": "vasp"})])
    log.close()

    dry = ccstream(tmp_path, "archive-retire", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "examined 2, would delete 1, would remove from the job database 1, skipped 1 (tagged 1)" in dry.stdout
    assert keys(archive) == {old, recent, tagged_old}

    real = ccstream(tmp_path, "archive-retire")
    assert real.returncode == 0, real.stderr
    assert "deleted 1, removed from the job database 1" in real.stdout
    assert keys(archive) == {recent, tagged_old}
    ccstream(tmp_path, "archive-retire")  # the CLI catches the job database up first (omit-tagged)
    engine = reader_engine(tmp_path / "job.db")
    try:
        with engine.connect() as conn:
            assert queries.find_job_by_key(conn, *old) is None
            assert queries.find_job_by_key(conn, *tagged_old) is not None
    finally:
        engine.dispose()


def test_cli_compress_and_one_line_errors(tmp_path: Path) -> None:
    archive, old, _ = dated_archive(tmp_path)
    settings(tmp_path)
    done = ccstream(tmp_path, "archive-compress")
    assert done.returncode == 0, done.stderr
    assert "examined 1, compressed 1, failed 0" in done.stdout
    assert (archive.root / old.directory() / "data.json.gz").is_file()
    nothing = ccstream(tmp_path, "archive-retire")
    assert nothing.returncode == 1
    assert nothing.stderr.strip().splitlines() == [
        "ccstream: archive.retention.policy is none (or not set): nothing to do"]
    settings(tmp_path, {"policy": "move", "age": 30, "target-path": str(tmp_path / "t"), "include-db": False})
    (tmp_path / "t" / "fritz").mkdir(parents=True)
    (tmp_path / "t" / "fritz" / "1").write_text("blocks job 1000's folder")
    failed = ccstream(tmp_path, "archive-retire")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("ccstream: 1 job(s) failed in retention move")
    assert keys(archive) >= {old}
