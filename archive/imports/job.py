"""Importing single jobs (cc-backend's `-import-job meta.json:data.json`): into the archive, then the log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archive.backends.codec import decode_object
from archive.backends.protocol import ArchiveBackend, ArchiveError, JobNotFound
from archive.imports.report import ImportReport, append_jobs
from archive.jobjson import MetaError, events_from_meta, job_from_events, meta_from_job
from archive.paths import InvalidName
from archive.validate import data_problems, meta_problems
from streams.clusters import ClusterConfigError, ClusterRegistry
from streams.log import EventLog

JOB_SOURCE = "import:job"


def parse_spec(spec: str) -> list[tuple[Path, Path]]:
    """`meta.json:data.json[,meta2.json:data2.json...]` as pairs of paths."""
    pairs = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        meta, sep, data = item.partition(":")
        if not sep or not meta or not data or ":" in data:
            raise ValueError(f"{item!r}: expected <meta.json>:<data.json>")
        pairs.append((Path(meta), Path(data)))
    if not pairs:
        raise ValueError("no job given: expected <meta.json>:<data.json>")
    return pairs


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc.strerror}") from None
    return decode_object(raw, str(path))


def _metric_config(backend: ArchiveBackend, meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The subcluster's metricConfig from the archive's cluster.json; None (default footprint) if unknown."""
    try:
        registry = ClusterRegistry.from_dicts([backend.load_cluster(str(meta.get("cluster")))])
        return registry.metric_config(str(meta["cluster"]), str(meta.get("subCluster")))
    except (JobNotFound, ClusterConfigError, InvalidName, KeyError):
        return None


def import_job(backend: ArchiveBackend, log: EventLog, meta_path: Path, data_path: Path, report: ImportReport) -> None:
    """Store one job in the archive as cc-backend would have archived it, and append its events.

    The archive entry is written first: the `job.archived` event names its location, and a retry
    after a failed append rewrites the same entry and then appends the same (deterministic) events.
    """
    report.seen += 1
    where = str(meta_path)
    try:
        meta, data = _read(meta_path), _read(data_path)
        config = _metric_config(backend, meta)
        draft = events_from_meta(meta, metric_config=config, data=data, source=JOB_SOURCE)
        if report.validate and report.refuses(where, meta_problems(meta)):
            return  # nothing stored, nothing appended
        stored = meta_from_job(job_from_events(draft.events))
        location = backend.store_job(stored, data)
        job = events_from_meta(stored, metric_config=config, location=location, source=JOB_SOURCE)
    except (ArchiveError, MetaError, InvalidName, OSError) as exc:
        report.error(f"{where}: {exc}")
        return
    problems = [*draft.problems, *(f"data.json: {p}" for p in data_problems(data)[:5])]
    if config is None:
        problems.append(f"cluster {job.key.cluster!r} or its subcluster not in the archive: default footprint")
    report.problem(where, problems)
    append_jobs(log, [job.events], report)


def import_jobs(backend: ArchiveBackend, log: EventLog, pairs: Sequence[tuple[Path, Path]], *,
                validate: bool = False) -> ImportReport:
    """Import each (meta.json, data.json) pair; one failing job does not stop the others.

    With `validate` (`main.validate`) a meta.json that deviates from the schema is refused before anything is stored.
    """
    started = time.perf_counter()
    report = ImportReport(validate=validate)
    for meta_path, data_path in pairs:
        import_job(backend, log, meta_path, data_path, report)
    report.seconds = time.perf_counter() - started
    return report
