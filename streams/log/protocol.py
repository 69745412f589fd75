"""The event log port: what every log implementation (SQLite, in-memory, Kafka) offers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from streams.events import Event


class AppendResult(NamedTuple):
    """Where an appended event stands; `duplicate` when its id was already in the log."""

    position: int
    duplicate: bool


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

    def read_subject(self, subject: str) -> list[Event]:
        """All events of one subject, in order."""
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
