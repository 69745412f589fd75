"""`ccstream` commands for data already there: dead letters, imports, replay, archive maintenance."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from api.cli_common import CliError, catch_up, cli_settings
from api.config import Settings

if TYPE_CHECKING:
    from archive.backends import ArchiveBackend
    from archive.imports.report import ImportReport
    from archive.maintenance import MaintenanceReport
    from streams.log import EventLog


def _dead_letter_path(settings: Settings) -> Path:
    from api.config import NatsSettings

    return Path((settings.nats or NatsSettings()).dead_letter_path)


def cmd_rejected_list(args: argparse.Namespace) -> None:
    """Print refused NATS messages (open ones unless --all), one per line, or as JSON."""
    from streams.deadletter import DeadLetterStore

    path = _dead_letter_path(cli_settings(args))
    if not path.exists():
        print(f"no rejected messages ({path} does not exist)")
        return
    store = DeadLetterStore(path)
    try:
        entries = store.entries(status=None if args.all else "open", limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(orjson.dumps([e.to_json() for e in entries], option=orjson.OPT_INDENT_2).decode())
        return
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.received_at))
        raw = e.raw.decode("utf-8", "replace").replace("\n", "\\n")
        print(f"{e.id}\t{when}\t{e.status}\t{e.subject}\t{e.kind}\t{e.reason}\t{raw[:200]}")
    print(f"{len(entries)} rejected message(s)")


def cmd_rejected_retry(args: argparse.Namespace) -> None:
    """Re-run a refused message through the intake, appending to the event log directly.

    The CLI builds the same JobIntake/NodeStateIntake as the server, on the same log file (the server
    picks the events up as it picks up users added by the CLI). Node reports retried here get the
    health of a host without metric data: the metric store lives in the server process.
    """
    import asyncio

    from api.bootstrap import open_log
    from streams.clusters import ClusterRegistry
    from streams.deadletter import DeadLetterStore
    from streams.ingest.intake import JobIntake
    from streams.ingest.nats.processor import NatsProcessor, retry_dead_letter
    from streams.ingest.nodestate import NodeStateIntake

    settings = cli_settings(args)
    path = _dead_letter_path(settings)
    if not path.exists():
        raise CliError(f"no rejected messages: {path} does not exist")
    try:
        clusters = ClusterRegistry.load(Path(settings.archive.path))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = DeadLetterStore(path)
    log = open_log(settings)
    try:
        processor = NatsProcessor(JobIntake(log, clusters, settings.intake), NodeStateIntake(log, clusters), store)
        try:
            result, outcomes = asyncio.run(retry_dead_letter(processor, args.id))
        except KeyError:
            raise CliError(f"no rejected message with id {args.id}") from None
        entry = store.get(args.id)
    finally:
        log.close()
        store.close()
    for o in outcomes:
        print(f"line {o.number}: {o.status}{f' ({o.kind}) {o.reason}' if o.status == 'rejected' else ''}")
    print(f"rejected message {args.id}: {result}")
    if result == "rejected":
        raise CliError(f"still refused: {entry.reason if entry else ''}")


def _print_import_report(report: ImportReport, verbose: bool) -> None:
    """Errors and schema problems (the first 20 unless --verbose) on stderr, the summary on stdout."""
    limit = None if verbose else 20
    for message in report.errors[:limit]:
        print(f"error: {message}", file=sys.stderr)
    for message in report.problems[:limit]:
        print(f"warning: {message}", file=sys.stderr)
    hidden = len(report.errors) + len(report.problems) - len(report.errors[:limit]) - len(report.problems[:limit])
    if hidden > 0:
        print(f"... {hidden} more messages (use --verbose)", file=sys.stderr)
    print(report.summary())


def _finish_import(report: ImportReport, args: argparse.Namespace) -> None:
    _print_import_report(report, args.verbose)
    if report.failed and args.strict:
        raise CliError(f"{report.failed} job(s) could not be imported")


def _import_log(settings: Settings) -> EventLog:
    """The configured event log, as `api.bootstrap.open_log` opens it, without importing the server.

    Importing api.bootstrap pulls in FastAPI and SQLAlchemy (over a second); an import command
    needs only the log. Keep the choice of implementation in step with open_log.
    """
    from streams.log import MemoryEventLog, SQLiteEventLog

    if settings.event_log.kind == "memory":
        return MemoryEventLog()
    return SQLiteEventLog(settings.event_log.path)


def cmd_import_archive(args: argparse.Namespace) -> None:
    """Append every job of an existing job archive to the event log (cc-backend's -init-db)."""
    from archive.backends import ArchiveError, InvalidName, open_archive, open_location
    from archive.imports.progress import progress_bar
    from archive.imports.walk import import_archive

    settings = cli_settings(args)
    try:
        configured = open_archive(settings.archive)
        backend = open_location(args.source, settings.archive) if args.source else configured
        copy_to = _copy_target(backend, configured)
    except (ArchiveError, InvalidName) as exc:
        raise CliError(str(exc)) from None
    log = _import_log(settings)
    try:
        show = sys.stderr.isatty() and not args.no_progress
        total = sum(1 for _ in backend.iter_keys()) if show else None
        with progress_bar(f"importing {backend!r}", total, enabled=show) as advance:
            report = import_archive(backend, log, batch_size=args.batch, progress=advance, copy_to=copy_to,
                                    validate=settings.main.validate_)
    except (ArchiveError, InvalidName) as exc:
        raise CliError(str(exc)) from None
    finally:
        log.close()
        backend.close()
        if configured is not backend:
            configured.close()
    _finish_import(report, args)


def _copy_target(source: ArchiveBackend, configured: ArchiveBackend) -> ArchiveBackend | None:
    """The configured archive when the jobs must be copied into it, None when `source` is that archive.

    The server reads job data only from the configured archive; when it cannot take the copies the
    import is refused here, before any event is appended.
    """
    from archive.imports.copy import check_writable, same_archive

    if source is configured or same_archive(source, configured):
        return None
    check_writable(configured)
    return configured


def cmd_import_db(args: argparse.Namespace) -> None:
    """Append the jobs (keeping their ids), tags and users of a cc-backend job.db to the event log."""
    from archive.imports.progress import progress_bar
    from replay.import_db import DbImportError, import_database, open_database

    settings = cli_settings(args)
    path = Path(args.database)
    try:
        open_database(path).close()  # check the schema version before touching the log
    except DbImportError as exc:
        raise CliError(str(exc)) from None
    log = _import_log(settings)
    try:
        with progress_bar(f"importing {path}", None, enabled=sys.stderr.isatty() and not args.no_progress) as advance:
            report = import_database(path, log, batch_size=args.batch, progress=advance)
    except DbImportError as exc:
        raise CliError(str(exc)) from None
    finally:
        log.close()
    _finish_import(report, args)


def cmd_import_job(args: argparse.Namespace) -> None:
    """Store single jobs (meta.json:data.json) in the configured archive and append their events."""
    from archive.backends import ArchiveError, open_archive
    from archive.imports.job import import_jobs, parse_spec

    settings = cli_settings(args)
    try:
        pairs = [pair for spec in args.jobs for pair in parse_spec(spec)]
        backend = open_archive(settings.archive)
    except (ValueError, ArchiveError) as exc:
        raise CliError(str(exc)) from None
    log = _import_log(settings)
    try:
        report = import_jobs(backend, log, pairs, validate=settings.main.validate_)
    finally:
        log.close()
        backend.close()
    if report.failed and len(pairs) == 1:
        raise CliError(report.errors[0])
    _finish_import(report, args)


def cmd_replay(args: argparse.Namespace) -> None:
    """Run a `replay` action (rebuild, verify, export, import, dump); never inside the server."""
    from replay.cli import ReplayError, run

    try:
        run(args, cli_settings(args))
    except ReplayError as exc:
        raise CliError(str(exc)) from None


def _finish_maintenance(report: MaintenanceReport, verbose: bool) -> None:
    """Failures (the first 20 unless --verbose) on stderr, the summary on stdout; exit 1 when jobs failed."""
    for message in report.failures[: None if verbose else 20]:
        print(f"error: {message}", file=sys.stderr)
    print(report.summary())
    if report.failed:
        raise CliError(f"{report.failed} job(s) failed in {report.task}; first: {report.failures[0]}")


def cmd_archive_compress(args: argparse.Namespace) -> None:
    """Gzip data.json of archived jobs older than `archive.compression` days (default 7), once."""
    from api.scheduler import ArchiveMaintenance
    from archive.backends import ArchiveError, InvalidName

    try:
        report = ArchiveMaintenance(cli_settings(args)).compress(dry_run=args.dry_run)
    except (ArchiveError, InvalidName, ValueError) as exc:
        raise CliError(str(exc)) from None
    _finish_maintenance(report, args.verbose)


def cmd_archive_retire(args: argparse.Namespace) -> None:
    """Apply `archive.retention` (delete, copy or move old jobs) once; include-db appends job.deleted events."""
    from api.scheduler import ArchiveMaintenance
    from archive.backends import ArchiveError, InvalidName
    from archive.maintenance import RetentionPolicy
    from projections.db import reader_engine

    settings = cli_settings(args)
    try:
        policy = RetentionPolicy.from_settings(settings.archive.retention)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not policy.enabled:
        raise CliError("archive.retention.policy is none (or not set): nothing to do")
    reader = None
    if policy.omit_tagged:
        catch_up(settings)  # tags come from the job database: bring it up to date with the log first
        reader = reader_engine(settings.main.db)
    events = _import_log(settings) if policy.removes_jobs and policy.include_db and not args.dry_run else None
    try:
        report = ArchiveMaintenance(settings, events, reader).retire(dry_run=args.dry_run)
    except (ArchiveError, InvalidName, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        if events is not None:
            events.close()
        if reader is not None:
            reader.dispose()
    _finish_maintenance(report, args.verbose)
