"""Pages of events for a rebuild: the five fields every event needs, the whole event on demand.

A rebuild reads every event of the log, and building a `StoredEvent` of ten fields per row costs
about as much as the SQLite read itself. The fast paths of the bulk loader look at position, type,
version, subject and payload only; handlers need the whole event (id, times, source), which
`Page.fetch` reads from the log for the few events that go through them.

For a big SQLite log, processes of their own read the pages and decode their starts and stops
(`fold.predecode`) while the loader applies the pages before: threads could not do that, they would
hold the GIL the loader needs. The pages travel as `marshal` bytes, which costs the loader a
fraction of decoding them itself.
"""

from __future__ import annotations

import gc
import itertools
import marshal
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from replay.fold import Raw, Started, Stopped, predecode
from streams.log import EventLog, SQLiteEventLog, StoredEvent


@dataclass(frozen=True)
class Page:
    """Consecutive events of the log, in position order; `fetch` gives the whole event at a position.

    `decoded`, when there, holds `fold.predecode` of the rows, one entry per row; the rows it decoded
    have an empty payload.
    """

    rows: Sequence[Raw]
    fetch: Callable[[int], StoredEvent]
    decoded: Sequence[Started | Stopped | None] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last(self) -> int:
        """Position of the page's last event."""
        return self.rows[-1][0]


def page_of(records: Sequence[StoredEvent]) -> Page:
    """A page of events read whole already."""
    by_position = {record.position: record for record in records}
    return Page([(r.position, r.type, r.version, r.subject, r.data) for r in records], by_position.__getitem__)


def fetcher(log: EventLog) -> Callable[[int], StoredEvent]:
    """Reads one whole event by its position (positions have no gaps)."""

    def fetch(position: int) -> StoredEvent:
        found = log.read_stored(position - 1, 1)
        if not found or found[0].position != position:
            raise LookupError(f"no event at position {position}")
        return found[0]

    return fetch


_RAW = "SELECT position, type, version, subject, data{extra} FROM events WHERE position > ? ORDER BY position LIMIT ?"


def _connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)


class PageReader:
    """Reads pages of a log: straight from the events table of an SQLite log, else through `read_stored`.

    The direct read depends on the table of `streams.log.sqlite` (its `_COLUMNS`); it selects five
    of its ten columns, plus `recorded_at` when pages are cut at a time.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.fetch = fetcher(log)
        self._conn = _connect(str(log.path)) if isinstance(log, SQLiteEventLog) else None

    def read(self, after: int, limit: int, moment: float | None = None) -> tuple[Page, bool]:
        """Up to `limit` events after position `after`; with `moment`, only the prefix recorded by then.

        The flag tells whether the page was cut at `moment` (nothing after it is to be read).
        """
        if self._conn is None:
            records = self.log.read_stored(after, limit)
            kept = records if moment is None else _prefix_until(records, moment)
            return page_of(kept), len(kept) < len(records)
        if moment is None:
            return Page(self._conn.execute(_RAW.format(extra=""), (after, limit)).fetchall(), self.fetch), False
        rows = self._conn.execute(_RAW.format(extra=", recorded_at"), (after, limit)).fetchall()
        cut = next((index for index, row in enumerate(rows) if row[5] > moment), len(rows))
        return Page([row[:5] for row in rows[:cut]], self.fetch), cut < len(rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _prefix_until(records: list[StoredEvent], moment: float) -> list[StoredEvent]:
    # The log as it stood at `moment`: everything before the first event recorded later.
    for index, record in enumerate(records):
        if record.recorded_at > moment:
            return records[:index]
    return records


# Frames of a reading process on its stdout: kind, length, body. A page, the end, or what went wrong.
_PAGE, _END, _FAILED = b"P", b"Z", b"E"
_HEADER = struct.Struct("<cQ")
_RANGE = (
    "SELECT position, type, version, subject, data FROM events WHERE position > ? AND position <= ? ORDER BY position"
)
_BEYOND = "SELECT 1 FROM events WHERE position > ? LIMIT 1"


def read_in_processes(log: SQLiteEventLog, after: int, end: int | None, page: int, processes: int) -> Iterator[Page]:
    """Pages after position `after` (up to `end`), read and predecoded by processes of their own.

    Process i of n reads the i-th, (i+n)-th, ... page of `page` positions, and the pages are taken
    from them in turn, so they come in log order. Each is `python -m replay.pages`, which imports
    little, and is stopped when the pages are consumed or abandoned; a pipe holds its next page.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(processes):
            argv = [str(log.path), str(after), "" if end is None else str(end), str(page), str(index), str(processes)]
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "replay.pages", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                env=env,
            ))
        fetch = fetcher(log)
        for worker in itertools.cycle(workers):
            assert worker.stdout is not None
            kind, body = _read_frame(worker.stdout)
            if kind == _END:
                return
            if kind != _PAGE:
                raise RuntimeError(f"reading the log failed: {body.decode(errors='replace')}")
            rows, decoded = marshal.loads(body)
            if rows:
                yield Page(rows, fetch, decoded)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def _read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return _FAILED, b"the reading process ended early"
    kind, length = _HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        return _FAILED, b"the reading process ended early"
    return kind, body


def serve(path: str, after: int, end: int | None, page: int, index: int, step: int, out: IO[bytes]) -> None:
    """A reading process: its pages of rows with their predecoded starts and stops, to the log's end."""
    gc.disable()  # nothing here makes reference cycles

    def send(kind: bytes, body: bytes) -> None:
        out.write(_HEADER.pack(kind, len(body)))
        out.write(body)
        out.flush()

    conn = _connect(path)
    try:
        for number in itertools.count(index, step):
            low = after + number * page
            high = low + page if end is None else min(low + page, end)
            if low >= high:
                break
            rows = conn.execute(_RANGE, (low, high)).fetchall()
            if not rows and conn.execute(_BEYOND, (high,)).fetchone() is None:
                break  # past the end; an empty range inside the log (positions have no gaps) is an empty page
            decoded = predecode(rows)
            # The loader takes a predecoded row's payload from `Page.fetch` if it needs it after all.
            rows = [(p, t, v, s, b"") if pre is not None else (p, t, v, s, d)
                    for (p, t, v, s, d), pre in zip(rows, decoded, strict=True)]
            send(_PAGE, marshal.dumps((rows, decoded)))
        send(_END, b"")
    except Exception as exc:
        send(_FAILED, f"{type(exc).__name__}: {exc}".encode())
    finally:
        conn.close()


if __name__ == "__main__":
    _path, _after, _end, _page, _index, _step = sys.argv[1:7]
    serve(_path, int(_after), int(_end) if _end else None, int(_page), int(_index), int(_step), sys.stdout.buffer)
