"""Background tasks inside `serve`: an APScheduler BackgroundScheduler with cc-backend's task manager's jobs.

cc-backend has no config key for the archive maintenance times; its task manager runs them daily at
fixed hours (local time): retention delete at 03:00, copy at 04:00, move at 05:00, compression at
05:00. So do we; the one-shot CLI commands (`archive-compress`, `archive-retire`) run the same code at
any time. The job workers keep cc-backend's cadence too: the walltime stop daily at 03:00, durations
and footprints every `cron.duration-worker` / `cron.footprint-worker`, node-state retention hourly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from api import jobtasks, walltime
from api.config import Settings
from api.nodestate_retention import NodeStateRetention, NodeStateRetentionTask
from archive.backends import open_archive
from archive.maintenance import MaintenanceReport, RetentionPolicy, compress_archive, compression_days, retire_jobs
from projections import queries
from streams.ingest.parked import ParkedStop, expiry_events
from streams.log import EventLog

if TYPE_CHECKING:
    from api.bootstrap import Services

log = logging.getLogger(__name__)

PARKED_STOPS_JOB = "parked-stop-expiry"
COMPRESSION_JOB = "archive-compression"
RETENTION_JOB = "archive-retention"
WALLTIME_JOB = "stop-jobs-exceeding-walltime"
DURATION_JOB = "duration-worker"
FOOTPRINT_JOB = "footprint-worker"
NODESTATE_RETENTION_JOB = "nodestate-retention"
#: Hour (local time) of the nightly compression, as cc-backend's compression service.
COMPRESSION_HOUR = 5
#: Longest wait, in seconds, for a task run on the server's event loop.
RUN_TIMEOUT = 1800.0
#: A run delayed (busy worker, suspended host) still happens up to an hour late; piled-up runs become one.
_OPTIONS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}


class ArchiveMaintenance:
    """The maintenance tasks bound to one process's settings, event log and job database.

    `events` receives the `job.deleted` events of include-db; `reader` answers omit-tagged. Each run
    opens the archive and closes it again, so a long-lived server holds no archive connection idle.
    """

    def __init__(self, settings: Settings, events: EventLog | None = None, reader: Engine | None = None) -> None:
        self.settings = settings
        self.events = events
        self.reader = reader
        # Checked now: a bad retention section should stop the start, not fail silently at 3 a.m.
        self.policy = RetentionPolicy.from_settings(settings.archive.retention)
        self.compression_days = compression_days(settings.archive.compression)

    def tagged(self, before: int) -> list[tuple[str, int, int]]:
        """Keys of tagged jobs started before `before`, from the job database."""
        if self.reader is None:
            raise RuntimeError("omit-tagged needs the job database")
        with self.reader.connect() as conn:
            return queries.tagged_job_keys(conn, before)

    def compress(self, *, dry_run: bool = False, now: float | None = None) -> MaintenanceReport:
        """One compression run over the configured archive."""
        backend = open_archive(self.settings.archive)
        try:
            return compress_archive(backend, self.compression_days, now=now, dry_run=dry_run)
        finally:
            backend.close()

    def retire(self, *, dry_run: bool = False, now: float | None = None) -> MaintenanceReport:
        """One retention run over the configured archive with the configured policy."""
        backend = open_archive(self.settings.archive)
        try:
            return retire_jobs(backend, self.policy, events=self.events,
                               tagged=self.tagged if self.reader is not None else None, now=now, dry_run=dry_run)
        finally:
            backend.close()


def _logged(task: str, run: Callable[[], object]) -> Callable[[], None]:
    """A scheduler job that logs a crash of the whole run (per-job failures are in the report)."""

    def job() -> None:
        began = time.perf_counter()
        try:
            run()
        except Exception:
            log.exception("%s failed after %.1fs", task, time.perf_counter() - began)

    job.__name__ = task.replace("-", "_")
    return job


def expire_parked_stops(settings: Settings, events: EventLog, reader: Engine, now: float | None = None) -> int:
    """Append the expiry of every parked stop older than `intake.parked-stop-max-age`; how many expired."""
    with reader.connect() as conn:
        parked = [ParkedStop(r["event_id"], r["cluster"], int(r["job_id"]), r["start_time"], float(r["received_at"]))
                  for r in queries.parked_stops(conn)]
    expired = expiry_events(parked, time.time() if now is None else now, settings.intake.parked_stop_max_age)
    if expired:
        events.append(expired)
        log.warning("expired %d parked stop(s) whose start never came", len(expired))
    return len(expired)


def build_scheduler(maintenance: ArchiveMaintenance) -> BackgroundScheduler:
    """A scheduler (not started) with the nightly compression and, unless the policy is none, retention.

    One worker thread: compression and a move never touch the same job at once, and a run that
    overlaps the next day's start is coalesced instead of stacked.
    """
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=1)})
    scheduler.add_job(
        _logged(COMPRESSION_JOB, maintenance.compress), CronTrigger(hour=COMPRESSION_HOUR, minute=0),
        id=COMPRESSION_JOB, name=f"archive compression (older than {maintenance.compression_days} days)", **_OPTIONS,
    )
    if maintenance.events is not None and maintenance.reader is not None:
        events, reader = maintenance.events, maintenance.reader
        scheduler.add_job(
            _logged(PARKED_STOPS_JOB, lambda: expire_parked_stops(maintenance.settings, events, reader)),
            IntervalTrigger(hours=1), id=PARKED_STOPS_JOB, name="expiry of parked stops", **_OPTIONS,
        )
    policy = maintenance.policy
    if policy.enabled:
        scheduler.add_job(
            _logged(RETENTION_JOB, maintenance.retire), CronTrigger(hour=policy.hour, minute=0),
            id=RETENTION_JOB, name=f"archive {policy.describe()}", **_OPTIONS,
        )
    return scheduler


def _on_loop(loop: asyncio.AbstractEventLoop, run: Callable[[], Coroutine[Any, Any, object]]) -> Callable[[], None]:
    """A scheduler job running a coroutine on the server's event loop (where the intake's locks live)."""

    def job() -> None:
        # Bounded: a loop that stopped answering must not hold the scheduler's one worker forever.
        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=RUN_TIMEOUT)

    return job


def check_job_tasks(settings: Settings) -> None:
    """Raise ValueError naming the key when `cron.*` or `main.nodestate-retention` cannot work."""
    jobtasks.interval(settings.cron.duration_worker, "cron.duration-worker")
    jobtasks.interval(settings.cron.footprint_worker, "cron.footprint-worker")
    if settings.main.nodestate_retention is not None:
        NodeStateRetention.from_settings(settings.main.nodestate_retention)


def add_job_tasks(scheduler: BackgroundScheduler, services: Services, loop: asyncio.AbstractEventLoop) -> None:
    """cc-backend's job workers: walltime stops (daily at 03:00, when `main.stop-jobs-exceeding-walltime`
    is set), durations (`cron.duration-worker`), footprints (`cron.footprint-worker`, with a metric store)."""
    settings = services.settings
    grace = settings.main.stop_jobs_exceeding_walltime
    if grace > 0:
        scheduler.add_job(
            _logged(WALLTIME_JOB, _on_loop(loop, lambda: walltime.stop_jobs_exceeding_walltime(
                services.intake, services.reader, grace, int(time.time())))),
            CronTrigger(hour=walltime.HOUR, minute=0), id=WALLTIME_JOB,
            name=f"stop of jobs running {grace}s past their walltime", **_OPTIONS,
        )
    every = jobtasks.interval(settings.cron.duration_worker, "cron.duration-worker")
    scheduler.add_job(
        _logged(DURATION_JOB, lambda: jobtasks.update_durations(services.log, services.reader, int(time.time()))),
        IntervalTrigger(seconds=every.total_seconds()), id=DURATION_JOB,
        name=f"duration of running jobs (every {settings.cron.duration_worker})", **_OPTIONS,
    )
    source = services.metric_source
    if source is not None:
        every = jobtasks.interval(settings.cron.footprint_worker, "cron.footprint-worker")
        scheduler.add_job(
            _logged(FOOTPRINT_JOB, lambda: jobtasks.update_footprints(
                services.log, services.reader, source, services.clusters, int(time.time()))),
            IntervalTrigger(seconds=every.total_seconds()), id=FOOTPRINT_JOB,
            name=f"footprint of running jobs (every {settings.cron.footprint_worker})", **_OPTIONS,
        )
    retention = settings.main.nodestate_retention
    if retention is not None:
        task = NodeStateRetentionTask(retention, services.log, services.reader, services.runner.wait_for)
        scheduler.add_job(
            _logged(NODESTATE_RETENTION_JOB, lambda: task.run(int(time.time()))), IntervalTrigger(hours=1),
            id=NODESTATE_RETENTION_JOB, name=f"node-state retention ({task.describe()})", **_OPTIONS,
        )


def start_maintenance(services: Services, loop: asyncio.AbstractEventLoop | None = None) -> BackgroundScheduler:
    """Build and start the maintenance scheduler of a running server; stop it with `stop_maintenance`.

    With the server's event `loop`, the job workers run too (`add_job_tasks`). Raises
    `archive.maintenance.PolicyError` when `archive.retention` or `main.nodestate-retention` cannot
    work (e.g. move without target), and ValueError for a `cron.*` interval that is no duration.
    """
    maintenance = ArchiveMaintenance(services.settings, services.log, services.reader)
    scheduler = build_scheduler(maintenance)
    if loop is not None:
        add_job_tasks(scheduler, services, loop)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s, next run %s", job.name, job.next_run_time)
    return scheduler


def stop_maintenance(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop the scheduler; with `wait`, a run in progress finishes first (it must not lose its log)."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)
