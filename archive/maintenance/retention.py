"""`archive.retention`: delete, copy or move archived jobs older than `age` days, as cc-backend's policies do.

The order of a move never loses a job: copy, verify, record `job.deleted` (include-db), then delete
the source entry. A crash anywhere leaves the job in the source (and maybe also in the target); the
next run finishes it. The deletion events have ids derived from the job, so a rerun appends nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.maintenance.compression import cutoff as age_cutoff
from archive.maintenance.policy import PolicyError, RetentionPolicy
from archive.maintenance.report import MaintenanceReport
from archive.maintenance.sinks import JsonSink, ParquetSink, Sink
from archive.maintenance.targets import (
    Location,
    open_location,
    open_target_archive,
    read_marker,
    write_marker,
)
from archive.paths import JobKey
from streams.events import derived_event_id, job_subject, new_event
from streams.log.protocol import EventLog

log = logging.getLogger(__name__)

#: Keys of the tagged jobs that started before a Unix time; the job database answers it (omit-tagged).
TaggedJobs = Callable[[int], Iterable[tuple[str, int, int]]]
SOURCE = "agent:retention"


def deletion_event_id(key: JobKey) -> str:
    """The id of the `job.deleted` retention appends for a job: the same on every rerun."""
    return derived_event_id("retention", job_subject(*key))


class _Run:
    """One retention run's state: the batch of jobs awaiting removal, the sink, the report."""

    def __init__(self, source: ArchiveBackend, policy: RetentionPolicy, events: EventLog | None,
                 report: MaintenanceReport, now: float, batch_size: int) -> None:
        self.source, self.policy, self.events, self.report = source, policy, events, report
        self.now = now
        self.batch_size = batch_size
        self.pending: list[JobKey] = []
        self.first_failed_start: int | None = None
        self.walk_failed = False

    def fail(self, key: JobKey, error: object) -> None:
        self.report.fail(key, error)
        if self.first_failed_start is None or key.start_time < self.first_failed_start:
            self.first_failed_start = key.start_time

    def transfer(self, sink: Sink, key: JobKey) -> None:
        try:
            meta = self.source.load_meta(*key)
            data = self.source.load_data(*key)
            done = sink.add(key, meta, data)
        except Exception as exc:  # one unreadable or unwritable job must not stop the run
            self.fail(key, exc)
            return
        self.copied(done)

    def copied(self, keys: list[JobKey]) -> None:
        self.report.copied += len(keys)
        if self.policy.removes_jobs:
            self.remove(keys)

    def remove(self, keys: list[JobKey], *, flush: bool = False) -> None:
        self.pending.extend(keys)
        if self.pending and (flush or len(self.pending) >= self.batch_size):
            batch, self.pending = self.pending, []
            self._remove(batch)

    def _remove(self, keys: list[JobKey]) -> None:
        if self.policy.include_db and self.events is not None:
            reason = f"retention {self.policy.policy}: older than {self.policy.age} days"
            events = [new_event("job.deleted", job_subject(*k), {"reason": reason}, id=deletion_event_id(k),
                                source=SOURCE, at=self.now) for k in keys]
            try:
                results = self.events.append(events)
            except Exception as exc:  # without the events the jobs must stay: they are retried next run
                for key in keys:
                    self.fail(key, f"appending job.deleted failed, job kept: {exc}")
                return
            self.report.db_deleted += sum(1 for r in results if not r.duplicate)
        for key in keys:
            try:
                if self.source.delete_job(*key):
                    self.report.deleted += 1
                else:
                    self.report.skip("gone already")
            except Exception as exc:
                self.fail(key, exc)


def retire_jobs(
    source: ArchiveBackend,
    policy: RetentionPolicy,
    *,
    events: EventLog | None = None,
    tagged: TaggedJobs | None = None,
    now: float | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
) -> MaintenanceReport:
    """Apply `policy` to the jobs of `source` that started more than `policy.age` days before `now`.

    `events` receives a `job.deleted` per removed job when include-db is set (delete and move);
    `tagged` answers omit-tagged from the job database. A dry run reads only keys, tags and the copy
    marker, and counts what a real run would do. Raises PolicyError when a needed part is missing.
    """
    policy = policy.checked()
    report = MaintenanceReport(policy.describe(), dry_run=dry_run)
    if not policy.enabled:
        return report.finish()
    if policy.omit_tagged and tagged is None:
        raise PolicyError("archive.retention.omit-tagged needs the job database to tell tagged jobs")
    if policy.include_db and policy.removes_jobs and events is None and not dry_run:
        raise PolicyError("archive.retention.include-db needs the event log to record job.deleted")
    now = time.time() if now is None else now
    before = age_cutoff(policy.age, now)
    skip = {JobKey(*k) for k in tagged(before)} if tagged is not None and policy.omit_tagged else set()
    location = open_location(policy) if policy.writes_target else None
    try:
        lower = read_marker(location) if location is not None and policy.policy == "copy" else 0
        run = _Run(source, policy, events, report, now, batch_size)
        sink = None if dry_run or location is None else _open_sink(run, location)
        try:
            _walk(run, sink, before, lower, skip)
        finally:
            if sink is not None:
                run.copied(sink.close())
                if isinstance(sink, JsonSink):
                    sink.target.close()
            run.remove([], flush=True)
        if location is not None and policy.policy == "copy" and not dry_run and not run.walk_failed:
            # Failed jobs are retried next time: the marker stops at the oldest of them.
            write_marker(location, before if run.first_failed_start is None else run.first_failed_start)
    finally:
        if location is not None:
            location.close()
    report.finish().log_to(log)
    return report


def _open_sink(run: _Run, location: Location) -> Sink:
    if run.policy.format == "parquet":
        return ParquetSink(run.source, location, run.policy.max_file_bytes, run.report, now=run.now, fail=run.fail)
    return JsonSink(run.source, open_target_archive(run.policy))


def _walk(run: _Run, sink: Sink | None, before: int, lower: int, skip: set[JobKey]) -> None:
    report = run.report
    try:
        for key in run.source.iter_keys(started_before=before):
            report.examined += 1
            if key.start_time < lower:
                report.skip("copied by an earlier run")
            elif key in skip:
                report.skip("tagged")
            elif report.dry_run:
                report.copied += run.policy.writes_target
                report.deleted += run.policy.removes_jobs
                report.db_deleted += run.policy.removes_jobs and run.policy.include_db
            elif sink is None:
                run.remove([key])
            else:
                run.transfer(sink, key)
    except (ArchiveError, OSError) as exc:
        # The walk itself broke (archive unreachable): what was copied so far is still finished.
        run.walk_failed = True
        report.fail(repr(run.source), f"walking the archive failed: {exc}")
