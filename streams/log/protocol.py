"""The event log port: what every log implementation (SQLite, in-memory, Kafka) offers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple, Protocol

from streams.events import Event
from streams.events.codec import decode_data, lift


class AppendResult(NamedTuple):
    """Where an appended event stands; `duplicate` when its id was already in the log."""

    position: int
    duplicate: bool


class StoredEvent(NamedTuple):
    """An event as the log stores it, payload still encoded.

    Bulk readers (replay) decode only the payloads they need and skip building an `Event` per row,
    which costs more than reading the row.
    """

    position: int
    id: str
    type: str
    version: int
    subject: str
    time: float
    source: str
    causation_id: str | None
    data: bytes
    recorded_at: float

    def event(self) -> Event:
        """The full event as every reader sees it (payload decoded and lifted to the current version)."""
        return lift(Event(
            id=self.id, type=self.type, subject=self.subject, data=decode_data(self.data), version=self.version,
            time=self.time, source=self.source, causation_id=self.causation_id, position=self.position,
            recorded_at=self.recorded_at,
        ))


class LogClosed(RuntimeError):
    """The log was closed; nothing more can be appended."""


class EventLog(Protocol):
    """An append-only, totally ordered sequence of events with unique ids.

    Positions start at 1 and grow by one per stored event. An append is atomic (all events of one call
    or none), returns only once the events are durable, and a second append of an id that is already
    stored is a no-op answering the first position.
    """

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        """Append durably; blocks until stored."""
        ...

    async def append_async(self, events: Sequence[Event]) -> list[AppendResult]:
        """Append durably without blocking the event loop."""
        ...

    def read(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events with position > after, in order, at most `limit`."""
        ...

    def read_types(self, types: Collection[str], after: int = 0, limit: int = 1000) -> list[Event]:
        """Like `read`, only events of the given types (agents that care about few of them)."""
        ...

    def read_stored(self, after: int = 0, limit: int = 10000) -> list[StoredEvent]:
        """Like `read`, with payloads left encoded: the fast path for replaying a whole log."""
        ...

    def read_subject(self, subject: str) -> list[Event]:
        """All events of one subject, in order."""
        ...

    def read_prefix_stored(self, prefix: str) -> list[StoredEvent]:
        """Like `read_prefix`, payloads left encoded (the intake decodes only what it decides on)."""
        ...

    def read_prefix(self, prefix: str) -> list[Event]:
        """All events whose subject starts with `prefix`, in position order."""
        ...

    def get(self, event_id: str) -> Event | None:
        """One event by id."""
        ...

    def head(self) -> int:
        """Position of the last stored event (0 when empty)."""
        ...

    def wait(self, after: int, timeout: float) -> int:
        """Block until head > after or the timeout passes; returns the head."""
        ...

    def close(self) -> None:
        """Finish pending appends and release resources."""
        ...
