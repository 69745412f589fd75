"""In-memory event log: the same contract as the SQLite log, for tests and tools."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Sequence

from streams.events import Event
from streams.events.codec import as_read, encode_data
from streams.log.protocol import AppendResult, LogClosed, StoredEvent


class MemoryEventLog:
    """A list of events guarded by one lock; durable only as long as the process lives."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._by_id: dict[str, int] = {}
        self._changed = threading.Condition()
        self._closed = False

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        with self._changed:
            if self._closed:
                raise LogClosed("event log is closed")
            results: list[AppendResult] = []
            now = time.time()
            for event in events:
                known = self._by_id.get(event.id)
                if known is not None:
                    results.append(AppendResult(known, True))
                    continue
                position = len(self._events) + 1
                # Stored as readers of a log file would see it: round-tripped through the codec, lifted.
                self._events.append(as_read(event, encode_data(event.data), position, now))
                self._by_id[event.id] = position
                results.append(AppendResult(position, False))
            self._changed.notify_all()
            return results

    async def append_async(self, events: Sequence[Event]) -> list[AppendResult]:
        await asyncio.sleep(0)
        return self.append(events)

    def read(self, after: int = 0, limit: int = 1000) -> list[Event]:
        with self._changed:
            return self._events[max(after, 0) : max(after, 0) + limit]

    def read_types(self, types: Collection[str], after: int = 0, limit: int = 1000) -> list[Event]:
        wanted = set(types)
        with self._changed:
            return [e for e in self._events[max(after, 0) :] if e.type in wanted][:limit]

    def read_stored(self, after: int = 0, limit: int = 10000) -> list[StoredEvent]:
        return [_stored(e) for e in self.read(after, limit)]

    def read_subject(self, subject: str) -> list[Event]:
        with self._changed:
            return [e for e in self._events if e.subject == subject]

    def read_prefix_stored(self, prefix: str) -> list[StoredEvent]:
        return [_stored(e) for e in self.read_prefix(prefix)]

    def read_prefix(self, prefix: str) -> list[Event]:
        with self._changed:
            return [e for e in self._events if e.subject.startswith(prefix)]

    def get(self, event_id: str) -> Event | None:
        with self._changed:
            position = self._by_id.get(event_id)
            return None if position is None else self._events[position - 1]

    def head(self) -> int:
        with self._changed:
            return len(self._events)

    def wait(self, after: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) > after or self._closed, timeout)
            return len(self._events)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


def _stored(e: Event) -> StoredEvent:
    return StoredEvent(
        e.position or 0, e.id, e.type, e.version, e.subject, e.time, e.source, e.causation_id,
        encode_data(e.data), e.recorded_at or 0.0,
    )
