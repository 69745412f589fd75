"""Archive maintenance inside `serve`: an APScheduler BackgroundScheduler running compression and retention nightly.

cc-backend has no config key for these times; its task manager runs them daily at fixed hours (local
time): retention delete at 03:00, copy at 04:00, move at 05:00, compression at 05:00. So do we; the
one-shot CLI commands (`archive-compress`, `archive-retire`) run the same code at any time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from api.config import Settings
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
#: Hour (local time) of the nightly compression, as cc-backend's compression service.
COMPRESSION_HOUR = 5
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


def start_maintenance(services: Services) -> BackgroundScheduler:
    """Build and start the maintenance scheduler of a running server; stop it with `stop_maintenance`.

    Raises `archive.maintenance.PolicyError` when `archive.retention` cannot work (e.g. move without target).
    """
    maintenance = ArchiveMaintenance(services.settings, services.log, services.reader)
    scheduler = build_scheduler(maintenance)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s, next run %s", job.name, job.next_run_time)
    return scheduler


def stop_maintenance(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop the scheduler; with `wait`, a run in progress finishes first (it must not lose its log)."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)
