"""Rebuilding read models from the log into new files, checking them, and swapping them in live.

A rebuild never writes the live file until the very end: it fills a scratch file next to it with the
bulk loader, catches it up with the log head, checks it (quick_check, foreign keys, checkpoint ==
head), catches up once more, and then copies it over the live file with SQLite's online backup API.
The copy runs under the live file's write lock, so readers (WAL) see the old or the new content, never
a mix. The running server's AgentRunner learns of the swap from the projection's checkpoint guard
(`JobDatabaseProjection.apply` compares each batch with the stored checkpoint under the write lock):
events the swapped-in file already has are skipped, and a batch that would leave a gap is refused with
`CheckpointMoved`, upon which the runner re-reads the checkpoint and carries on from there.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from replay.bulk import MMAP_SIZE
from replay.pages import Page, PageReader, read_in_processes
from replay.registry import ReadModel
from streams.log import EventLog, SQLiteEventLog

#: Events per read of a rebuild.
PAGE = 20_000
#: Events to replay from which processes of their own read and decode the log (they take a second to start).
PARALLEL_FROM = 500_000
#: Reading processes: decoding takes them about twice as long as the loader takes to apply the pages.
READERS = 2

#: Called with (events loaded so far, events to load in total).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Until:
    """Replay up to and including `position`, or every event recorded at or before `time` (unix seconds)."""

    position: int | None = None
    time: float | None = None

    def describe(self) -> str:
        if self.position is not None:
            return f"position {self.position}"
        assert self.time is not None
        return f"{datetime.fromtimestamp(self.time, UTC).isoformat()} (@{self.time:.3f})"


def _unix_seconds(text: str) -> float | None:
    """The number in `text`, or None when it is not one (then it may be an ISO 8601 time)."""
    try:
        return float(text)
    except ValueError:
        return None


def parse_until(text: str) -> Until:
    """A plain integer is a log position; `@<unix seconds>`, a decimal fraction or ISO 8601 is a time.

    Times compare with the log's `recorded_at`, when an event was stored, not when it happened at the
    source: that is what makes the result "the read model as it stood then". ISO 8601 without an offset
    is taken as UTC.
    """
    value = text.strip()
    if value.isdigit():
        return Until(position=int(value))
    seconds = _unix_seconds(value[1:] if value.startswith("@") else value)
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"--until {text!r}: not a time (unix seconds are finite and not negative)")
        return Until(time=seconds)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"--until {text!r}: expected a position (integer), @<unix seconds>, or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Until(time=moment.timestamp())


class RebuildError(RuntimeError):
    """A rebuild could not be completed or its result failed a check; the live file is untouched."""


def read_pages(
    log: EventLog, after: int, until: Until | None = None, page: int = PAGE, *, parallel: bool | None = None
) -> Generator[Page, None, None]:
    """Events after `after` up to the bound, in pages.

    With `parallel` (by default: from PARALLEL_FROM events on, in an SQLite log, unless cut at a time),
    READERS processes read and predecode the pages while the caller applies them. Otherwise they
    are read on the caller's thread: a reader thread only contended for the GIL, which sqlite3 takes
    again for every row, and made a rebuild slower.
    """
    end = until.position if until is not None else None
    moment = until.time if until is not None else None
    if parallel is None:
        parallel = isinstance(log, SQLiteEventLog) and (end if end is not None else log.head()) - after >= PARALLEL_FROM
    if parallel and isinstance(log, SQLiteEventLog) and moment is None:
        yield from read_in_processes(log, after, end, page, READERS)
        return
    reader = PageReader(log)
    try:
        position = after
        while (size := page if end is None else min(page, end - position)) > 0:
            records, cut = reader.read(position, size, moment)
            if not records:
                return
            yield records
            if cut:
                return
            position = records.last
    finally:
        reader.close()


def remove_database(path: Path) -> None:
    """Delete a database file and its journal sidecars."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def page_size_of(path: Path) -> int | None:
    """The page size of an existing database (a WAL backup target needs the source to match)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def load(
    log: EventLog, model: ReadModel, path: Path, *, until: Until | None = None, fresh: bool = True,
    progress: Progress | None = None, page_size: int | None = None,
) -> int:
    """Load `path` from the log (from position 0 when fresh) up to the head or the bound; the checkpoint."""
    if fresh:
        remove_database(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        loader = model.loader(path, page_size)
    except Exception as exc:
        raise RebuildError(f"{path}: cannot open: {exc}") from exc
    try:
        start = loader.checkpoint()
        target = until.position if until is not None and until.position is not None else log.head()
        done = 0
        with contextlib.closing(read_pages(log, start, until)) as pages:  # stops reading processes on errors
            for records in pages:
                loader.load(records)
                done += len(records)
                if progress is not None:
                    progress(done, max(target - start, done))
        loader.finish()
        return loader.checkpoint()
    except RebuildError:
        raise
    except Exception as exc:
        raise RebuildError(f"{model.name}: replay failed: {type(exc).__name__}: {exc}") from exc
    finally:
        loader.close()


def check(path: Path, model: ReadModel, position: int) -> dict[str, int]:
    """quick_check, foreign_key_check and the checkpoint of a rebuilt file; its row counts.

    quick_check reads every page and row and checks NOT NULL and CHECK constraints, which the bulk
    loader leaves to it. integrity_check would also look up every row in every index: seven times as
    long on a million jobs, for indexes CREATE INDEX has just built from these rows, and uniqueness
    SQLite enforced on every insert.
    """
    # Read-write on purpose: on a read-only connection the checks skip the CHECK constraints.
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchmany(5)]
        if problems != ["ok"]:
            raise RebuildError(f"{model.name}: quick_check failed: {'; '.join(problems)}")
        dangling = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        if dangling:
            raise RebuildError(f"{model.name}: foreign_key_check failed: {dangling}")
        row = conn.execute("SELECT position FROM ccstream_checkpoint WHERE name = ?", (model.name,)).fetchone()
        stored = int(row[0]) if row else 0
        if stored != position:
            raise RebuildError(f"{model.name}: checkpoint is {stored}, expected {position}")
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: int(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]) for name in names}
    finally:
        conn.close()


def swap_in(scratch: Path, live: Path) -> None:
    """Copy the scratch database over the live one with the online backup API, in one step and lock."""
    live.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)
    target = sqlite3.connect(live, timeout=60)
    try:
        target.execute("PRAGMA busy_timeout=60000")
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        source.close()
        target.close()


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild produced: where it stands, what the check counted, and how long the replay took."""

    model: str
    path: Path
    position: int
    rows: dict[str, int]
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events replayed per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild_live(log: EventLog, model: ReadModel, live: Path, progress: Progress | None = None) -> Rebuilt:
    """Rebuild a read model from position 0 and swap it in; the running server carries on from it."""
    scratch = live.with_name(f"{live.name}.rebuild-{os.getpid()}")  # two rebuilds must not share one
    try:
        started = time.perf_counter()
        events = load(log, model, scratch, progress=progress, page_size=page_size_of(live))
        seconds = time.perf_counter() - started
        position = load(log, model, scratch, fresh=False)
        rows = check(scratch, model, position)
        # The check took a while on a big file: take in what arrived meanwhile, then swap.
        position = load(log, model, scratch, fresh=False)
        swap_in(scratch, live)
        return Rebuilt(model.name, live, position, rows, events, seconds)
    finally:
        remove_database(scratch)


def rebuild_until(
    log: EventLog, model: ReadModel, until: Until, output: Path, progress: Progress | None = None
) -> Rebuilt:
    """The read model as it stood at a position or time, written to `output` (never the live file)."""
    scratch = output.with_name(f"{output.name}.partial")
    try:
        started = time.perf_counter()
        position = load(log, model, scratch, until=until, progress=progress)
        seconds = time.perf_counter() - started
        if until.position is not None and position != until.position:
            raise RebuildError(f"the log ends at position {position}, before {until.position}")
        rows = check(scratch, model, position)
        remove_database(output)
        scratch.replace(output)
        return Rebuilt(model.name, output, position, rows, position, seconds)
    finally:
        remove_database(scratch)
