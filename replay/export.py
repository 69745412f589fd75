"""The log as JSON Lines: export for backups and moves, import that preserves ids (so it is repeatable).

Export writes each event exactly as stored (its payload version included); import lifts old versions
through the upcasting codec and checks each payload against its model, so an export from an older
ccstream imports into this one. A line that cannot become a valid event is reported with its line
number and skipped; every other line is appended, in file order, in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

import orjson
from pydantic import ValidationError

from streams.events import Event, UnknownEventType, validate_payload
from streams.events.codec import decode_event, event_to_dict
from streams.log import EventLog

#: Events per append during import: one transaction (and one fsync) each.
CHUNK = 5_000
#: Malformed lines listed in full; beyond that only counted.
MAX_REPORTED = 100


def export_events(
    log: EventLog, out: IO[bytes], *, after: int = 0, progress: Callable[[int], None] | None = None
) -> int:
    """Write every event after position `after` as one JSON line; returns how many."""
    count = 0
    while True:
        records = log.read_stored(after, CHUNK)
        if not records:
            return count
        out.write(b"".join(orjson.dumps(event_to_dict(r.event())) + b"\n" for r in records))
        count += len(records)
        after = records[-1].position
        if progress is not None:
            progress(count)


@dataclass
class ImportReport:
    """What an import did: lines read, events appended, ids already in the log, lines rejected."""

    lines: int = 0
    appended: int = 0
    duplicates: int = 0
    malformed: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line_no: int, reason: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append((line_no, reason))


def parse_line(raw: bytes) -> Event:
    """One exported line as an event of the current payload version; ValueError says what is wrong."""
    try:
        event = decode_event(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except UnknownEventType as exc:
        raise ValueError(str(exc)) from None
    except KeyError as exc:
        raise ValueError(f"missing field {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an event: {exc}") from None
    if not isinstance(event.data, dict):
        raise ValueError("'data' is not an object")
    try:
        validate_payload(event.type, event.version, event.data)
    except ValidationError as exc:
        raise ValueError(f"invalid {event.type} payload: {exc.errors()[0].get('msg')} at "
                         f"{'.'.join(str(p) for p in exc.errors()[0].get('loc', ()))}") from None
    # The log assigns positions and recording times anew.
    return Event(
        id=event.id, type=event.type, subject=event.subject, data=event.data, version=event.version,
        time=event.time, source=event.source, causation_id=event.causation_id,
    )


def import_events(
    log: EventLog, lines: Iterable[bytes], *, progress: Callable[[ImportReport], None] | None = None
) -> ImportReport:
    """Append the events of an export, keeping their ids: a second import of the same file appends nothing."""
    report = ImportReport()
    chunk: list[Event] = []

    def flush() -> None:
        results = log.append(chunk)
        duplicates = sum(1 for r in results if r.duplicate)
        report.duplicates += duplicates
        report.appended += len(results) - duplicates
        chunk.clear()
        if progress is not None:
            progress(report)

    for line_no, raw in enumerate(lines, start=1):
        report.lines = line_no
        if not raw.strip():
            continue
        try:
            chunk.append(parse_line(raw))
        except ValueError as exc:
            report.reject(line_no, str(exc))
            continue
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()
    return report
