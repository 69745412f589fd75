"""Importing a whole job archive (cc-backend's `-init-db`): walk it, turn jobs into events, append in batches.

Reading and appending overlap: while the log commits one batch (one transaction, one fsync), the
next batch is read and converted. A broken entry is reported and counted; the walk goes on.

Everything here holds the GIL but file reads and SQLite's own work, so the import's pace is its
CPU time per job: each step is kept cheap (see filewalk and jobjson), and threads are only used
where they wait on I/O.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from archive.backends.file import FileArchive
from archive.backends.protocol import ArchiveBackend, ArchiveEntry, ArchiveError
from archive.imports.copy import CLUSTERS_COPIED, COPIED, ArchiveCopier
from archive.imports.filewalk import iter_file_entries
from archive.imports.footprint import FootprintRules
from archive.imports.report import ImportReport, append_jobs
from archive.jobjson import ARCHIVE_SOURCE, MetaError, events_from_meta
from archive.paths import VERSION, InvalidName
from archive.validate import meta_problems
from streams.clusters import ClusterConfigError, ClusterRegistry
from streams.events import Event
from streams.log import EventLog

Progress = Callable[[int], None]
_PROGRESS_EVERY = 256


class MetricConfigs:
    """Each subcluster's footprint and energy metrics from its effective metricConfig, worked out once."""

    def __init__(self, backend: ArchiveBackend, report: ImportReport) -> None:
        self.registry = ClusterRegistry()
        self._cache: dict[tuple[str, str], FootprintRules] = {}
        for name in backend.clusters():
            try:
                self.registry.add(backend.load_cluster(name))
            except (ArchiveError, ClusterConfigError, InvalidName) as exc:
                report.error(f"cluster {name}: {exc} (its jobs get the default footprint metrics)")

    def get(self, cluster: str, subcluster: str) -> FootprintRules:
        key = (cluster, subcluster)
        rules = self._cache.get(key)
        if rules is None:
            try:
                config: Sequence[Mapping[str, Any]] | None = self.registry.metric_config(cluster, subcluster)
            except KeyError:
                config = None  # unknown cluster or subcluster: default footprint metrics
            rules = self._cache[key] = FootprintRules.of(config)
        return rules


def check_version(backend: ArchiveBackend) -> None:
    """Refuse archives of another format version, as cc-backend does (it ships a migration tool)."""
    found = backend.version()
    if found != VERSION:
        raise ArchiveError(f"{backend!r}: archive version {found}, this program reads version {VERSION}")


def entries(backend: ArchiveBackend) -> Iterator[ArchiveEntry]:
    """The backend's job entries; a file archive's read by whole directories (see filewalk)."""
    if type(backend) is FileArchive:  # a subclass may read differently
        return iter_file_entries(backend)
    return backend.iter_jobs()


def job_events(
    backend: ArchiveBackend,
    entry: ArchiveEntry,
    configs: MetricConfigs,
    report: ImportReport,
    copier: ArchiveCopier | None = None,
) -> list[Event] | None:
    """The events of one walked entry, or None (reported) when it cannot be imported.

    With a `copier` the job is first written into the configured archive: a job whose copy fails
    is left out of the log, so no archived job lacks its data.
    """
    if not entry.ok or entry.meta is None:
        report.error(entry.error or f"{entry.location}: unreadable")
        return None
    meta = entry.meta
    try:
        data = None
        if not meta.get("statistics") and entry.key is not None:
            data = entry.data if entry.data is not None else backend.load_data(*entry.key)
        config = configs.get(str(meta.get("cluster")), str(meta.get("subCluster")))
        job = events_from_meta(meta, metric_config=config, data=data, location=entry.location, source=ARCHIVE_SOURCE)
        if report.validate and report.refuses(entry.location, meta_problems(meta)):
            return None
        if copier is not None and copier.copy_job(job.key, meta, data if data is not None else entry.data):
            report.extra[COPIED] = report.extra.get(COPIED, 0) + 1
    except (ArchiveError, MetaError, InvalidName) as exc:
        report.error(f"{entry.location}: {exc}")
        return None
    problems = list(job.problems)
    if entry.key is not None and entry.key != job.key:
        problems.append(f"meta.json says {job.key}, its place in the archive says {entry.key}")
    report.problem(entry.location, problems)
    return job.events


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk import.

    An import allocates millions of short-lived dicts and lists (decoded JSON, payloads) without
    reference cycles; refcounting frees them, and collections triggered by the allocation count
    alone cost a third of the import's CPU time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_archive(
    backend: ArchiveBackend,
    log: EventLog,
    *,
    batch_size: int = 5000,
    progress: Progress | None = None,
    copy_to: ArchiveBackend | None = None,
    validate: bool = False,
) -> ImportReport:
    """Append every importable job of an archive to the log; running it again appends nothing new.

    `copy_to` is the configured archive when `backend` is another one: its jobs and missing cluster
    files are copied there first (see archive.imports.copy), since the server reads data only from it.
    With `validate` (`main.validate`) a job whose meta.json deviates from the schema is left out, as an error.
    """
    started = time.perf_counter()
    check_version(backend)
    report = ImportReport(validate=validate)
    copier = ArchiveCopier(backend, copy_to) if copy_to is not None else None
    if copier is not None:
        clusters = copier.copy_clusters()
        if clusters:
            report.extra[CLUSTERS_COPIED] = clusters
    configs = MetricConfigs(backend, report)
    pending: Future[None] | None = None
    batch: list[list[Event]] = []
    with gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="import-append") as appender:
        for entry in entries(backend):
            report.seen += 1
            events = job_events(backend, entry, configs, report, copier)
            if events is not None:
                batch.append(events)
            if len(batch) >= batch_size:
                if pending is not None:
                    pending.result()
                pending = appender.submit(append_jobs, log, batch, report)
                batch = []
            if progress is not None and report.seen % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)
        if progress is not None:
            progress(report.seen % _PROGRESS_EVERY)
        if pending is not None:
            pending.result()
        if batch:
            append_jobs(log, batch, report)
    report.seconds = time.perf_counter() - started
    return report
