"""`ccstream replay …`: arguments and operator output of rebuild, verify, time travel, export and import.

api/cli.py registers these with `configure` and turns a ReplayError into its one-line error and exit 1.
Nothing heavy is imported until a command runs, and none of this runs inside the server.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from api.config import Settings
    from replay.rebuild import Rebuilt
    from replay.registry import ReadModel
    from streams.log import EventLog

#: Differences printed by `verify` before it only counts.
DEFAULT_MAX_DIFFS = 20


class ReplayError(Exception):
    """A replay command failed; the message is the one line the operator sees."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the replay actions to the `replay` sub-command's parser."""
    from replay.registry import READ_MODELS

    models = ", ".join(f"{name} ({m.help})" for name, m in READ_MODELS.items())
    sub = parser.add_subparsers(dest="replay_command", required=True, metavar="ACTION")

    def add(name: str, fn: Callable[[argparse.Namespace, Settings], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(replay_func=fn)
        return p

    p = add("rebuild", cmd_rebuild, "Rebuild read models from the log into new files, check them, swap them in.")
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"read models (default all): {models}")
    p.add_argument("--until", metavar="POSITION|TIME",
                   help="time travel: replay up to a log position (integer) or a time (ISO 8601, or @unix-seconds,"
                        " compared with when events were recorded); needs --output, never touches the live file")
    p.add_argument("--output", metavar="FILE", help="with --until: the database file to write (a directory for"
                                                    " several models)")
    p.add_argument("--force", action="store_true", help="with --until: overwrite an existing --output")
    p = add("verify", cmd_verify, "Rebuild into a temporary file and compare it with the live read model.")
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"read models (default all): {models}")
    p.add_argument("--max-diffs", type=int, default=DEFAULT_MAX_DIFFS, help="differences to print (default 20)")
    p = add("export", cmd_export, "Write the event log as JSON Lines.")
    p.add_argument("--after", type=int, default=0, metavar="N", help="only events after position N")
    p.add_argument("--output", default="-", metavar="FILE", help="file to write, - for stdout (default)")
    p = add("import", cmd_import, "Append the events of a JSON Lines export, keeping their ids (repeatable).")
    p.add_argument("file", metavar="FILE", help="JSON Lines file, - for stdin")
    p = add("dump", cmd_dump, "Write the canonical dump of a read-model file as JSON Lines.")
    p.add_argument("model", nargs="?", default="jobdb", metavar="MODEL", help="read model (default jobdb)")
    p.add_argument("--db", metavar="FILE", help="database file (default: the live file)")
    p.add_argument("--output", default="-", metavar="FILE", help="file to write, - for stdout (default)")


def run(args: argparse.Namespace, settings: Settings) -> None:
    """Run the chosen action."""
    args.replay_func(args, settings)


@contextmanager
def _open_log(settings: Settings) -> Iterator[EventLog]:
    from api.bootstrap import open_log

    if settings.event_log.kind == "memory":
        raise ReplayError("event-log.kind is memory: there is no stored log to replay")
    log = open_log(settings)
    try:
        yield log
    finally:
        log.close()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn())
    started = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None, rate="")

        def update(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} events/s")

        yield update


def _models(names: list[str]) -> list[ReadModel]:
    from replay.registry import select_models

    try:
        return select_models(names)
    except KeyError as exc:
        raise ReplayError(exc.args[0]) from None


def _summary(result: Rebuilt) -> str:
    rows = ", ".join(f"{t} {n:,}" for t, n in result.rows.items() if n and not t.startswith("ccstream_"))
    return (f"{result.model}: replayed {result.events:,} events in {result.seconds:.1f} s "
            f"({result.rate:,.0f} events/s); quick check ok, checkpoint {result.position:,}; rows: {rows or 'none'}")


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> None:
    """Rebuild into new files and swap them in, or with --until write the past state to --output."""
    from replay.rebuild import RebuildError, parse_until, rebuild_live, rebuild_until

    models = _models(args.models)
    if args.until is None and args.output:
        raise ReplayError("--output is only for --until; a rebuild replaces the live file")
    try:
        until = None if args.until is None else parse_until(args.until)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    outputs = {}
    if until is not None:
        if not args.output:
            raise ReplayError("--until needs --output FILE: time travel never touches the live file")
        out = Path(args.output)
        outputs = {m.name: out if len(models) == 1 else out / f"{m.name}.db" for m in models}
        live = {m.db_path(settings).resolve() for m in models}
        for target in outputs.values():
            if target.resolve() in live:
                raise ReplayError(f"{target} is a live read model; choose another --output")
            if target.exists() and not args.force:
                raise ReplayError(f"{target} exists; use --force to overwrite it")
            target.parent.mkdir(parents=True, exist_ok=True)
    with _open_log(settings) as log:
        for model in models:
            try:
                with _progress(f"{model.name}") as progress:
                    if until is None:
                        result = rebuild_live(log, model, model.db_path(settings), progress)
                    else:
                        result = rebuild_until(log, model, until, outputs[model.name], progress)
            except RebuildError as exc:
                raise ReplayError(str(exc)) from None
            print(_summary(result))
            where = "swapped into" if until is None else f"as of {until.describe()} written to"
            print(f"{model.name}: {where} {result.path}")


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    """Compare each live read model with a rebuild at its checkpoint; exit 1 on any difference."""
    from replay.rebuild import RebuildError
    from replay.verify import verify

    failed: list[str] = []
    with _open_log(settings) as log:
        for model in _models(args.models):
            if not model.db_path(settings).exists():
                raise ReplayError(f"{model.db_path(settings)}: no such database file; start the server or run"
                                  " `ccstream replay rebuild`")
            try:
                with _progress(f"verify {model.name}") as progress:
                    result = verify(log, model, model.db_path(settings), limit=args.max_diffs, progress=progress)
            except RebuildError as exc:
                raise ReplayError(str(exc)) from None
            comparison = result.comparison
            if result.ok:
                rows = ", ".join(f"{t} {n:,}" for t, n in comparison.rows.items() if n)
                print(f"{model.name}: identical to a rebuild at position {result.position:,} ({rows or 'no rows'};"
                      f" {result.seconds:.1f} s)")
                continue
            for diff in comparison.differences:
                print(diff.describe())
            if comparison.total > len(comparison.differences):
                print(f"… and {comparison.total - len(comparison.differences):,} more")
            tables = ", ".join(f"{t} {n:,}" for t, n in comparison.per_table.items())
            failed.append(f"{model.name} differs from a rebuild at position {result.position:,}: "
                          f"{comparison.total:,} differences ({tables})")
    if failed:
        raise ReplayError("; ".join(failed))


@contextmanager
def _output(name: str) -> Iterator[BinaryIO]:
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(name, "wb") as out:
        yield out


def cmd_export(args: argparse.Namespace, settings: Settings) -> None:
    """Export the log (from --after) as JSON Lines."""
    from replay.export import export_events

    with _open_log(settings) as log, _output(args.output) as out:
        count = export_events(log, out, after=args.after)
    print(f"exported {count:,} events", file=sys.stderr)


def cmd_import(args: argparse.Namespace, settings: Settings) -> None:
    """Import a JSON Lines export; malformed lines are listed and skipped, and make the exit status 1."""
    from replay.export import import_events

    source = sys.stdin.buffer if args.file == "-" else None
    if source is None and not Path(args.file).is_file():
        raise ReplayError(f"{args.file}: no such file")
    with _open_log(settings) as log:
        if source is not None:
            report = import_events(log, source)
        else:
            with open(args.file, "rb") as lines:
                report = import_events(log, lines)
    for line_no, reason in report.problems:
        print(f"line {line_no}: {reason}", file=sys.stderr)
    print(f"read {report.lines:,} lines: {report.appended:,} events appended, {report.duplicates:,} already in"
          f" the log, {report.malformed:,} malformed lines skipped")
    if report.malformed:
        raise ReplayError(f"{report.malformed:,} malformed lines skipped (listed above); everything else imported")


def cmd_dump(args: argparse.Namespace, settings: Settings) -> None:
    """Write a canonical dump (sorted, JSON normalised, volatile columns dropped) for ordinary diff tools."""
    import sqlite3

    from replay.dump import write_dump

    [model] = _models([args.model])
    path = Path(args.db) if args.db else model.db_path(settings)
    if not path.exists():
        raise ReplayError(f"{path}: no such database file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        with _output(args.output) as out:
            count = write_dump(conn, model.tables, out)
    finally:
        conn.close()
    print(f"dumped {count:,} rows", file=sys.stderr)
