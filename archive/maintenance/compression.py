"""`archive.compression`: gzip the plain data.json of archived jobs older than N days, as cc-backend does."""

from __future__ import annotations

import logging
import time

from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.maintenance.report import MaintenanceReport
from archive.paths import InvalidName

log = logging.getLogger(__name__)

#: cc-backend compresses jobs older than a week when `archive.compression` is not set (or 0).
DEFAULT_COMPRESS_DAYS = 7
DAY = 86_400


def compression_days(configured: int) -> int:
    """The effective age in days: cc-backend always runs the compression service, 7 days unless set."""
    return configured if configured > 0 else DEFAULT_COMPRESS_DAYS


def cutoff(days: int, now: float | None = None) -> int:
    """The Unix time before which a job counts as older than `days` days."""
    return int(now if now is not None else time.time()) - days * DAY


def compress_archive(
    backend: ArchiveBackend, days: int, *, now: float | None = None, dry_run: bool = False
) -> MaintenanceReport:
    """Gzip data.json of every job that started more than `days` days ago; returns the run's report.

    Idempotent: a job whose data is already gzipped is counted as skipped, so running it twice (or
    after a crash half-way) does no harm. Jobs stored after the walk began are left for the next run.
    A dry run only counts the candidates: whether a job is stored plain is known only by trying.
    """
    days = compression_days(days)
    report = MaintenanceReport(f"compression (older than {days} days)", dry_run=dry_run)
    before = cutoff(days, now)
    try:
        for key in backend.iter_keys(started_before=before):
            report.examined += 1
            if dry_run:
                continue
            try:
                changed = backend.compress_job(*key)
            except (ArchiveError, InvalidName, OSError) as exc:
                report.fail(key, exc)
                continue
            if changed:
                report.compressed += 1
            else:
                report.skip("already compressed")
    except (ArchiveError, OSError) as exc:
        # The walk itself broke (archive unreachable): report what was done so far.
        report.fail(repr(backend), f"walking the archive failed: {exc}")
    report.finish().log_to(log)
    return report
